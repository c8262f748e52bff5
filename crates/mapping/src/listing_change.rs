//! The specification's `listing.updated` and `calendar.updated`: real Hostaway
//! sends neither, but an account configured for the specification's shape may.
//! They carry no state the connector stores; they name a listing whose state
//! should be re-read.

use domain::{ListingId, Patch};
use serde_json::{Map, Value};

use crate::json::Record;
use crate::{MappingError, Problem};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingChange {
    pub listing: ListingId,
}

pub fn map_listing_change(data: &Map<String, Value>) -> Result<ListingChange, MappingError> {
    let r = Record::new(data);
    match r.id("listingId", &["listingId", "listingMapId", "id"])? {
        Patch::Set(id) => ListingId::parse(id)
            .map(|listing| ListingChange { listing })
            .map_err(|e| MappingError::new("listingId", Problem::Invalid(e.to_string()))),
        _ => Err(MappingError::new("listingId", Problem::Missing)),
    }
}
