//! Calendar days (`GET /v1/listings/{id}/calendar`) and the ranges written with
//! `PUT …/calendar` (one) and `PUT …/calendarIntervals` (at most 200).
//! `endDate` is taken as inclusive, as third-party clients write single days
//! with `startDate == endDate` (the docs do not say).

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::json::Record;
use crate::{MappingError, Problem};
use domain::Patch;

#[derive(Debug, Clone, PartialEq)]
pub struct CalendarDay {
    pub date: NaiveDate,
    pub is_available: Option<bool>,
    /// available, blocked, reserved, pending, …
    pub status: Option<String>,
    /// The nightly price in the listing's currency, as its decimal text.
    pub price: Option<String>,
    pub minimum_stay: Option<i64>,
    pub maximum_stay: Option<i64>,
    pub closed_on_arrival: Option<bool>,
    pub closed_on_departure: Option<bool>,
    pub note: Option<String>,
    /// Multi-unit listings.
    pub desired_units_to_sell: Option<i64>,
}

pub fn parse_calendar_day(map: &Map<String, Value>) -> Result<CalendarDay, MappingError> {
    let r = Record::new(map);
    let date = match r.date("date", &["date"])? {
        Patch::Set(date) => date,
        _ => return Err(MappingError::new("date", Problem::Missing)),
    };
    Ok(CalendarDay {
        date,
        is_available: r.flag("isAvailable", &["isAvailable"])?.set(),
        status: r.text("status", &["status"])?.set(),
        price: r.decimal("price", &["price"])?.set(),
        minimum_stay: r.int("minimumStay", &["minimumStay"])?.set(),
        maximum_stay: r.int("maximumStay", &["maximumStay"])?.set(),
        closed_on_arrival: r.flag("closedOnArrival", &["closedOnArrival"])?.set(),
        closed_on_departure: r.flag("closedOnDeparture", &["closedOnDeparture"])?.set(),
        note: r.text("note", &["note"])?.set(),
        desired_units_to_sell: r.int("desiredUnitsToSell", &["desiredUnitsToSell"])?.set(),
    })
}

/// One range of days set to the same values. Unset fields are left out of the
/// request (Hostaway keeps their current value). Booleans go out as 0/1, as the
/// docs ask.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarInterval {
    pub start_date: NaiveDate,
    /// Inclusive.
    pub end_date: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "zero_one")]
    pub is_available: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_stay: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_stay: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "zero_one")]
    pub closed_on_arrival: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "zero_one")]
    pub closed_on_departure: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_units_to_sell: Option<i64>,
}

fn zero_one<S: serde::Serializer>(value: &Option<bool>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(true) => serializer.serialize_u8(1),
        Some(false) => serializer.serialize_u8(0),
        None => serializer.serialize_none(),
    }
}

impl CalendarInterval {
    pub fn new(start_date: NaiveDate, end_date: NaiveDate) -> Self {
        Self {
            start_date,
            end_date,
            is_available: None,
            price: None,
            minimum_stay: None,
            maximum_stay: None,
            closed_on_arrival: None,
            closed_on_departure: None,
            note: None,
            desired_units_to_sell: None,
        }
    }

    /// A price given in minor units of a currency with `exponent` decimals,
    /// written as the decimal Hostaway expects (`9999`, 2 → `99.99`). Division
    /// is correctly rounded, so the number's shortest form is the exact decimal.
    pub fn with_price_minor(mut self, minor_units: i64, exponent: u32) -> Self {
        self.price = Some(minor_units as f64 / 10f64.powi(exponent as i32));
        self
    }

    pub fn days(&self) -> i64 {
        (self.end_date - self.start_date).num_days() + 1
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_documented_day_parses() {
        let day = json!({"id": 46253, "date": "2017-07-15", "isAvailable": 0, "isProcessed": 1, "status": "reserved",
                         "price": 225, "minimumStay": 1, "maximumStay": 1125, "closedOnArrival": null,
                         "closedOnDeparture": null, "note": null, "desiredUnitsToSell": null, "reservations": []});
        let day = parse_calendar_day(day.as_object().unwrap()).unwrap();
        assert_eq!(day.is_available, Some(false));
        assert_eq!(day.price.as_deref(), Some("225"));
        assert_eq!(day.closed_on_arrival, None);
    }

    #[test]
    fn intervals_serialize_like_the_documented_body() {
        let mut interval =
            CalendarInterval::new(d("2017-10-05"), d("2017-10-06")).with_price_minor(2000, 2);
        interval.is_available = Some(true);
        interval.minimum_stay = Some(1);
        interval.closed_on_arrival = Some(false);
        assert_eq!(
            serde_json::to_value(&interval).unwrap(),
            json!({"startDate": "2017-10-05", "endDate": "2017-10-06", "isAvailable": 1, "price": 20.0,
                   "minimumStay": 1, "closedOnArrival": 0})
        );
        assert_eq!(interval.days(), 2);
        let cents =
            CalendarInterval::new(d("2026-01-01"), d("2026-01-01")).with_price_minor(9999, 2);
        assert_eq!(serde_json::to_string(&cents.price).unwrap(), "99.99");
    }
}
