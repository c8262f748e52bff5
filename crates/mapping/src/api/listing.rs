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
    /// The units of a multi-unit listing (`listingUnits`, one entry each);
    /// 0 for an ordinary listing. Multi-unit listings are opened and closed
    /// with `desiredUnitsToSell`, not `isAvailable`.
    pub units: u32,
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
        units: map
            .get("listingUnits")
            .and_then(Value::as_array)
            .map_or(0, |units| u32::try_from(units.len()).unwrap_or(u32::MAX)),
        raw: map.clone(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn a_multi_unit_listing_counts_its_units() {
        let single = json!({"id": 1, "listingUnits": []});
        assert_eq!(parse_listing(single.as_object().unwrap()).unwrap().units, 0);
        let absent = json!({"id": 2});
        assert_eq!(parse_listing(absent.as_object().unwrap()).unwrap().units, 0);
        let multi = json!({"id": 3, "listingUnits": [{"id": 31}, {"id": 32}, {"id": 33}]});
        assert_eq!(parse_listing(multi.as_object().unwrap()).unwrap().units, 3);
    }
}
