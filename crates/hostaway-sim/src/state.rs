//! The simulator's data: accounts, tokens, listings, calendars, reservations,
//! unified webhooks, and what happened (requests, webhook deliveries).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::LazyLock;

use chrono::{NaiveDate, Utc};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::SimConfig;
use crate::limits::SlidingWindows;

/// One request as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub at: Instant,
    pub peer: IpAddr,
    /// The account of the token (or of the token request), when known.
    pub account: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// The W3C trace context the caller sent, if any.
    pub traceparent: Option<String>,
}

/// One webhook delivery attempt by the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub event: String,
    pub reservation_id: u64,
    /// HTTP status, or 0 for a network error.
    pub status: u16,
    pub attempt: u32,
    /// No further attempt will follow (delivered, refused for good, or out of retries).
    pub last: bool,
}

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub account: String,
    pub active_from: Instant,
    pub expires_at: Instant,
    /// Revoked (its account's key was): answered 401.
    pub revoked: bool,
}

/// A calendar day as stored; days never written take the listing's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Day {
    pub is_available: bool,
    pub price: f64,
    pub minimum_stay: i64,
    pub maximum_stay: i64,
    pub closed_on_arrival: Option<bool>,
    pub closed_on_departure: Option<bool>,
    pub note: Option<String>,
    /// Multi-unit listings only: units offered that night. Their days are
    /// available when it is above 0, and `isAvailable` does not change them.
    pub desired_units_to_sell: Option<i64>,
}

/// The units of a multi-unit listing (`listingUnits`, one entry per unit);
/// `None` for an ordinary listing.
pub fn multi_units(listing: &Map<String, Value>) -> Option<i64> {
    listing
        .get("listingUnits")
        .and_then(Value::as_array)
        .map(Vec::len)
        .filter(|n| *n > 0)
        .and_then(|n| i64::try_from(n).ok())
}

#[derive(Debug, Default)]
pub struct Account {
    pub secret: String,
    pub listings: BTreeMap<u64, Map<String, Value>>,
    pub calendars: HashMap<u64, BTreeMap<NaiveDate, Day>>,
    pub reservations: BTreeMap<u64, Map<String, Value>>,
    pub webhooks: BTreeMap<u64, Map<String, Value>>,
}

#[derive(Debug)]
pub struct SimState {
    pub config: SimConfig,
    pub accounts: HashMap<String, Account>,
    pub tokens: HashMap<String, IssuedToken>,
    pub requests: Vec<RequestRecord>,
    pub deliveries: Vec<Delivery>,
    pub account_windows: SlidingWindows,
    pub ip_windows: SlidingWindows,
    pub webhook_target: Option<(crate::sender::WebhookTarget, crate::sender::DeliveryOptions)>,
    /// How deliveries to registered unified webhooks behave.
    pub registered_delivery: crate::sender::DeliveryOptions,
    next_id: u64,
}

const STAMP: &str = "%Y-%m-%d %H:%M:%S";

/// Hostaway's date-time format (UTC).
pub fn now_text() -> String {
    Utc::now().format(STAMP).to_string()
}

/// Now, or a second after `previous` if now is not later: each change of a
/// reservation gets a later `updatedOn`, as two changes seconds apart would.
fn later_than(previous: Option<&str>) -> String {
    let now = Utc::now().naive_utc();
    let after = previous
        .and_then(|p| chrono::NaiveDateTime::parse_from_str(p, STAMP).ok())
        .map(|p| p + chrono::Duration::seconds(1));
    match after {
        Some(after) if after > now => after.format(STAMP).to_string(),
        _ => now.format(STAMP).to_string(),
    }
}

impl SimState {
    pub fn new(config: SimConfig) -> Self {
        Self {
            config,
            accounts: HashMap::new(),
            tokens: HashMap::new(),
            requests: Vec::new(),
            deliveries: Vec::new(),
            account_windows: SlidingWindows::default(),
            ip_windows: SlidingWindows::default(),
            webhook_target: None,
            registered_delivery: crate::sender::DeliveryOptions::default(),
            next_id: 100_000,
        }
    }

    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn add_account(&mut self, account: &str, secret: &str) {
        self.accounts.entry(account.to_owned()).or_default().secret = secret.to_owned();
    }

    /// Adds a listing (the fields given over Hostaway-like defaults); returns its id.
    pub fn add_listing(&mut self, account: &str, fields: Map<String, Value>) -> Option<u64> {
        let id = match fields.get("id").and_then(Value::as_u64) {
            Some(id) => id,
            None => self.next_id(),
        };
        let mut listing = default_listing(id);
        listing.extend(fields);
        listing.insert("id".into(), json!(id));
        self.accounts.get_mut(account)?.listings.insert(id, listing);
        Some(id)
    }

    pub fn listing_account(&self, listing: u64) -> Option<&str> {
        self.accounts
            .iter()
            .find(|(_, a)| a.listings.contains_key(&listing))
            .map(|(id, _)| id.as_str())
    }

    /// The day as Hostaway would show it.
    pub fn day(&self, account: &str, listing: u64, date: NaiveDate) -> Option<Day> {
        let acct = self.accounts.get(account)?;
        let stored = acct
            .calendars
            .get(&listing)
            .and_then(|c| c.get(&date))
            .cloned();
        let listing = acct.listings.get(&listing)?;
        Some(stored.unwrap_or_else(|| {
            Day {
                is_available: true,
                price: listing
                    .get("price")
                    .and_then(Value::as_f64)
                    .unwrap_or(100.0),
                minimum_stay: listing
                    .get("minNights")
                    .and_then(Value::as_i64)
                    .unwrap_or(1),
                maximum_stay: listing
                    .get("maxNights")
                    .and_then(Value::as_i64)
                    .unwrap_or(1125),
                closed_on_arrival: None,
                closed_on_departure: None,
                note: None,
                desired_units_to_sell: multi_units(listing),
            }
        }))
    }

    /// Whether a guest holds the night: a reservation on the listing that is
    /// not cancelled covers it (arrival included, departure not).
    pub fn reserved(&self, account: &str, listing: u64, date: NaiveDate) -> bool {
        let Some(acct) = self.accounts.get(account) else {
            return false;
        };
        let day = date.to_string();
        acct.reservations.values().any(|r| {
            let text = |key: &str| r.get(key).and_then(Value::as_str).unwrap_or_default();
            r.get("listingMapId").and_then(Value::as_u64) == Some(listing)
                && !matches!(
                    text("status"),
                    "cancelled" | "canceled" | "declined" | "expired" | "inquiry"
                )
                && text("arrivalDate") <= day.as_str()
                && day.as_str() < text("departureDate")
        })
    }

    /// The calendar of `[start, end]` (tests and the demo read convergence here).
    pub fn calendar(
        &self,
        listing: u64,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Vec<(NaiveDate, Day)> {
        let Some(account) = self.listing_account(listing).map(str::to_owned) else {
            return Vec::new();
        };
        start
            .iter_days()
            .take_while(|d| *d <= end)
            .filter_map(|d| self.day(&account, listing, d).map(|day| (d, day)))
            .collect()
    }

    /// Requests of one account (or all with `None`), in order.
    pub fn requests_of(&self, account: Option<&str>) -> Vec<RequestRecord> {
        self.requests
            .iter()
            .filter(|r| account.is_none() || r.account.as_deref() == account)
            .cloned()
            .collect()
    }

    /// Creates a reservation from Hostaway-like fields; returns it.
    pub fn create_reservation(
        &mut self,
        account: &str,
        fields: Map<String, Value>,
    ) -> Option<Map<String, Value>> {
        let id = self.next_id();
        let mut reservation = default_reservation(id);
        reservation.extend(fields);
        reservation.insert("id".into(), json!(id));
        if let Some(nights) = nights(&reservation) {
            reservation.insert("nights".into(), json!(nights));
        }
        reservation.insert("hostawayReservationId".into(), json!(id.to_string()));
        let stamp = now_text();
        reservation.insert("insertedOn".into(), json!(stamp));
        reservation.insert("updatedOn".into(), json!(stamp));
        reservation.insert("latestActivityOn".into(), json!(stamp));
        self.accounts
            .get_mut(account)?
            .reservations
            .insert(id, reservation.clone());
        Some(reservation)
    }

    /// Changes a reservation's fields, its `updatedOn` and its
    /// `latestActivityOn` (a change is activity); returns it.
    pub fn modify_reservation(
        &mut self,
        account: &str,
        id: u64,
        changes: Map<String, Value>,
    ) -> Option<Map<String, Value>> {
        let reservation = self.accounts.get_mut(account)?.reservations.get_mut(&id)?;
        let previous = reservation
            .get("updatedOn")
            .and_then(Value::as_str)
            .map(str::to_owned);
        reservation.extend(changes);
        let stamp = later_than(previous.as_deref());
        reservation.insert("updatedOn".into(), json!(stamp));
        reservation.insert("latestActivityOn".into(), json!(stamp));
        Some(reservation.clone())
    }
}

/// A listing with every key a real one carries (144, in Hostaway's order and
/// JSON types: 0/1 flags, nulls, empty strings, `"2"` as text, nested
/// amenities, images and units), with the simulator's own values.
static LISTING: LazyLock<Map<String, Value>> =
    LazyLock::new(|| record(include_str!("records/listing.json")));

/// A reservation with every key a real one carries (123), likewise.
static RESERVATION: LazyLock<Map<String, Value>> =
    LazyLock::new(|| record(include_str!("records/reservation.json")));

fn record(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn default_listing(id: u64) -> Map<String, Value> {
    let mut listing = LISTING.clone();
    for (key, value) in [
        ("id", json!(id)),
        ("name", json!(format!("Simulated listing {id}"))),
        (
            "externalListingName",
            json!(format!("Simulated listing {id}")),
        ),
        ("internalListingName", json!(format!("sim-{id}"))),
        // Each listing somewhere of its own (suggestions match by address).
        ("street", json!(format!("{} Example Quay", id % 10_000))),
        (
            "address",
            json!(format!(
                "{} Example Quay, Sampletown, CA 99999, United States",
                id % 10_000
            )),
        ),
        ("latestActivityOn", json!(now_text())),
    ] {
        listing.insert(key.into(), value);
    }
    listing
}

fn default_reservation(id: u64) -> Map<String, Value> {
    let mut reservation = RESERVATION.clone();
    for (key, value) in [
        ("id", json!(id)),
        ("reservationId", json!(format!("SIMRES{id}"))),
        ("channelReservationId", json!(format!("2018-{id}"))),
        ("confirmationCode", json!(format!("SIM{id}"))),
        ("guestAuthHash", json!(format!("sim{id:x}"))),
        (
            "guestPortalUrl",
            json!(format!("https://portal.example.org/sim{id:x}")),
        ),
        (
            "hostProxyEmail",
            json!(format!("guest-{id}@proxy.example.org")),
        ),
        ("reservationDate", json!(now_text())),
    ] {
        reservation.insert(key.into(), value);
    }
    reservation
}

/// Nights between a reservation's dates, as Hostaway counts them.
fn nights(reservation: &Map<String, Value>) -> Option<i64> {
    let date = |key: &str| {
        reservation
            .get(key)
            .and_then(Value::as_str)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    };
    Some(
        (date("departureDate")? - date("arrivalDate")?)
            .num_days()
            .max(0),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn records_carry_every_key_a_real_one_does_with_its_quirks() {
        let listing = default_listing(7);
        assert_eq!(listing.len(), 144);
        assert_eq!(listing["id"], json!(7));
        assert_eq!(listing["cleannessStatus"], json!("2"), "a number as text");
        assert_eq!(listing["instantBookable"], json!(1), "a 0/1 flag");
        assert_eq!(
            listing["bookingcomPropertyName"],
            json!(""),
            "an empty string"
        );
        assert!(listing["keyPickup"].is_null());
        assert!(listing["listingUnits"].as_array().unwrap().is_empty());
        let parsed = mapping::api::parse_listing(&listing).unwrap();
        assert_eq!(parsed.units, 0);
        assert_eq!(parsed.currency.unwrap().as_str(), "USD");

        let mut state = SimState::new(SimConfig::default());
        state.accounts.insert("1".into(), Account::default());
        let mut fields = Map::new();
        fields.insert("arrivalDate".into(), json!("2026-08-01"));
        fields.insert("departureDate".into(), json!("2026-08-06"));
        let reservation = state.create_reservation("1", fields).unwrap();
        assert_eq!(reservation.len(), 123);
        assert_eq!(reservation["nights"], json!(5));
        assert!(
            reservation["reservationId"].is_string(),
            "the channel's id, as text"
        );
        assert!(reservation["hostawayReservationId"].is_string());
        assert_eq!(reservation["isArchived"], json!(0));
    }
}
