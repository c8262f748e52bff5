//! A listing (`GET /v1/listings[/{id}]`): the fields the connector uses, typed,
//! and the whole record kept for the rest. Real listings carry `null` where the
//! docs show booleans, `"2"` strings, and ratings as int or float.

use domain::{Currency, ListingId, Patch};
use serde_json::{Map, Value};

use crate::json::Record;
use crate::{MappingError, Problem};

#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub id: ListingId,
    pub name: Option<String>,
    pub internal_name: Option<String>,
    /// The currency of the calendar's prices.
    pub currency: Option<Currency>,
    /// The base nightly price, as its decimal text.
    pub base_price: Option<String>,
    pub person_capacity: Option<i32>,
    pub bedrooms: Option<i32>,
    pub min_nights: Option<i64>,
    pub max_nights: Option<i64>,
    /// IANA time zone of the listing (check-in hours are local).
    pub time_zone: Option<String>,
    /// `archived`, or none.
    pub special_status: Option<String>,
    pub raw: Map<String, Value>,
}

pub fn parse_listing(map: &Map<String, Value>) -> Result<Listing, MappingError> {
    let r = Record::new(map);
    let id = match r.id("id", &["id"])? {
        Patch::Set(id) => ListingId::parse(id)
            .map_err(|e| MappingError::new("id", Problem::Invalid(e.to_string())))?,
        _ => return Err(MappingError::new("id", Problem::Missing)),
    };
    let currency = match r.text("currencyCode", &["currencyCode"])? {
        Patch::Set(code) => Some(
            Currency::parse(&code)
                .map_err(|e| MappingError::new("currencyCode", Problem::Invalid(e.to_string())))?,
        ),
        _ => None,
    };
    Ok(Listing {
        id,
        name: r.text("name", &["name", "externalListingName"])?.set(),
        internal_name: r
            .text("internalListingName", &["internalListingName"])?
            .set(),
        currency,
        base_price: r.decimal("price", &["price"])?.set(),
        person_capacity: r
            .count("personCapacity", &["personCapacity"], 10_000)?
            .set(),
        bedrooms: r
            .count("bedroomsNumber", &["bedroomsNumber"], 10_000)?
            .set(),
        min_nights: r.int("minNights", &["minNights"])?.set(),
        max_nights: r.int("maxNights", &["maxNights"])?.set(),
        time_zone: r.text("timeZoneName", &["timeZoneName"])?.set(),
        special_status: r.text("specialStatus", &["specialStatus"])?.set(),
        raw: map.clone(),
    })
}
