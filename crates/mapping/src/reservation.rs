//! A Hostaway reservation record → [`ReservationUpdate`].
//!
//! Real field names first, the specification's as aliases: `arrivalDate`/`checkIn`,
//! `departureDate`/`checkOut`, `listingMapId`/`listingId`, `phone`/`guestPhone`,
//! `updatedOn`/`updatedAt`.

use chrono::NaiveDateTime;
use domain::{
    AccountId, Currency, EventRank, GuestPatch, ListingId, Money, MoneyError, Patch, ReservationId,
    ReservationStatus, ReservationUpdate, StayDates, StayError, Version,
};
use serde_json::{Map, Value};

use crate::canonical::object_to_canonical_bytes;
use crate::json::Record;
use crate::{MappingError, Problem, WebhookEvent};

/// More guests than this in one reservation is an error upstream.
pub const MAX_GUESTS: i64 = 1000;
/// Longest status name accepted (the longest documented one has 25 characters).
const MAX_STATUS_LEN: usize = 40;

/// Maps one reservation record.
///
/// `event` ranks same-second payloads and forces `cancelled` for the
/// specification's `reservation.cancelled`; `sent_at` (the specification
/// envelope's `timestamp`) stands in for a missing `updatedOn`.
pub fn map_reservation(
    account: &AccountId,
    event: WebhookEvent,
    data: &Map<String, Value>,
    sent_at: Option<NaiveDateTime>,
) -> Result<ReservationUpdate, MappingError> {
    let r = Record::new(data);

    let reservation = match r.id("id", &["id", "hostawayReservationId"])? {
        Patch::Set(id) => ReservationId::parse(id)
            .map_err(|e| MappingError::new("id", Problem::Invalid(e.to_string())))?,
        _ => return Err(MappingError::new("id", Problem::Missing)),
    };
    let listing = match r.id("listingMapId", &["listingMapId", "listingId"])? {
        Patch::Set(id) => Some(
            ListingId::parse(id)
                .map_err(|e| MappingError::new("listingMapId", Problem::Invalid(e.to_string())))?,
        ),
        _ => None,
    };

    let status = match event {
        WebhookEvent::ReservationCancelled => Some(ReservationStatus::Cancelled),
        _ => match r.text_up_to("status", &["status"], MAX_STATUS_LEN)? {
            Patch::Set(text) => {
                if !text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(MappingError::new(
                        "status",
                        Problem::WrongType("a status name (letters and digits)"),
                    ));
                }
                Some(ReservationStatus::parse(&text))
            }
            _ => None,
        },
    };

    let stay = stay(&r)?;
    let guest = GuestPatch {
        name: r.text("guestName", &["guestName"])?,
        first_name: r.text("guestFirstName", &["guestFirstName"])?,
        last_name: r.text("guestLastName", &["guestLastName"])?,
        email: r.text("guestEmail", &["guestEmail"])?,
        phone: r.text("phone", &["phone", "guestPhone"])?,
        number_of_guests: r.count("numberOfGuests", &["numberOfGuests"], MAX_GUESTS)?,
        adults: r.count("adults", &["adults"], MAX_GUESTS)?,
        children: r.count("children", &["children"], MAX_GUESTS)?,
        infants: r.count("infants", &["infants"], MAX_GUESTS)?,
        pets: r.count("pets", &["pets"], MAX_GUESTS)?,
    };
    let total = total(&r)?;
    let (channel_id, channel_name) = channel(&r)?;

    let updated_at = match r.datetime("updatedOn", &["updatedOn", "updatedAt"])? {
        Patch::Set(at) => Some(at),
        _ => sent_at,
    };
    let event_rank = match event {
        WebhookEvent::ReservationCreated => EventRank::Created,
        WebhookEvent::ReservationCancelled => EventRank::Cancelled,
        _ => EventRank::Updated,
    };
    let version = Version {
        updated_at,
        terminal: status.as_ref().is_some_and(ReservationStatus::is_terminal),
        event: event_rank,
        digest: Version::digest_of(&object_to_canonical_bytes(data)),
    };

    Ok(ReservationUpdate {
        account: account.clone(),
        reservation,
        listing,
        status,
        stay,
        guest,
        total,
        channel_id,
        channel_name,
        channel_reservation_id: r
            .text("reservationId", &["reservationId", "channelReservationId"])?,
        confirmation_code: r.text("confirmationCode", &["confirmationCode"])?,
        cancelled_by: r.text("cancelledBy", &["cancelledBy"])?,
        cancelled_at: r.datetime("cancellationDate", &["cancellationDate"])?,
        version,
    })
}

/// Hostaway's `channelId` is a number (2018 = Airbnb); the specification's
/// example sends a name there (`"airbnb"`), which is read as the channel name.
fn channel(r: &Record<'_>) -> Result<(Patch<i64>, Patch<String>), MappingError> {
    let name = r.text("channelName", &["channelName"])?;
    match r.int("channelId", &["channelId"]) {
        Ok(id) => Ok((id, name)),
        Err(_) => {
            let named = r.text_up_to("channelId", &["channelId"], 64)?;
            let name = if name.is_absent() { named } else { name };
            Ok((Patch::Absent, name))
        }
    }
}

fn stay(r: &Record<'_>) -> Result<Option<StayDates>, MappingError> {
    let arrival = r.date("arrivalDate", &["arrivalDate", "checkIn"])?;
    let departure = r.date("departureDate", &["departureDate", "checkOut"])?;
    let unspecified = r.flag("isDatesUnspecified", &["isDatesUnspecified"])? == Patch::Set(true);
    match (arrival, departure) {
        (Patch::Set(arrival), Patch::Set(departure)) => {
            let result = if unspecified && arrival == departure {
                StayDates::unspecified(arrival)
            } else {
                StayDates::new(arrival, departure)
            };
            result.map(Some).map_err(|e| {
                let field = match e {
                    StayError::OutOfRange { .. } => "arrivalDate",
                    _ => "departureDate",
                };
                MappingError::new(field, Problem::Invalid(e.to_string()))
            })
        }
        (Patch::Set(_), _) => Err(MappingError::new(
            "departureDate",
            Problem::Invalid("arrivalDate without departureDate".into()),
        )),
        (_, Patch::Set(_)) => Err(MappingError::new(
            "arrivalDate",
            Problem::Invalid("departureDate without arrivalDate".into()),
        )),
        _ => Ok(None),
    }
}

/// `totalPrice` in `currency`. A price without a currency is not stored: the
/// connector never guesses a currency (the captured `reservation.created` subset
/// has exactly this shape; the next complete payload fills it in).
fn total(r: &Record<'_>) -> Result<Patch<Money>, MappingError> {
    let amount = r.decimal("totalPrice", &["totalPrice"])?;
    let currency = match r.text("currency", &["currency"])? {
        Patch::Set(code) => Some(
            Currency::parse(&code)
                .map_err(|e| MappingError::new("currency", Problem::Invalid(e.to_string())))?,
        ),
        _ => None,
    };
    match (amount, currency) {
        (Patch::Set(text), Some(currency)) => Money::from_decimal(&text, currency)
            .map(Patch::Set)
            .map_err(|e| {
                let problem = match e {
                    MoneyError::NotANumber => Problem::WrongType("a decimal number"),
                    other => Problem::Invalid(other.to_string()),
                };
                MappingError::new("totalPrice", problem)
            }),
        (Patch::Set(text), None) => {
            // Still refuse garbage even when it would not be stored.
            let any = Currency::parse("XXX")
                .map_err(|e| MappingError::new("currency", Problem::Invalid(e.to_string())))?;
            Money::from_decimal(&text, any)
                .map(|_| Patch::Absent)
                .map_err(|e| MappingError::new("totalPrice", Problem::Invalid(e.to_string())))
        }
        (Patch::Clear, _) => Ok(Patch::Clear),
        (Patch::Absent, _) => Ok(Patch::Absent),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn account() -> AccountId {
        AccountId::parse("59808").unwrap()
    }

    fn map(value: Value) -> Result<ReservationUpdate, MappingError> {
        map_reservation(
            &account(),
            WebhookEvent::ReservationUpdated,
            value.as_object().unwrap(),
            None,
        )
    }

    #[test]
    fn a_real_payload_maps_every_field() {
        let update = map(json!({
            "id": 31525485, "hostawayReservationId": "31525485", "listingMapId": 218666,
            "channelId": 2002, "channelName": "homeaway",
            "reservationId": "54a2ab9d-55e2-4e76-856c-9881dcfb0ef0",
            "guestName": "Jane Doe", "guestFirstName": "Jane", "guestLastName": "Doe",
            "guestEmail": "jane.doe@example.com", "phone": "+15555550100",
            "numberOfGuests": 5, "adults": 2, "children": 3, "infants": null, "pets": 0,
            "arrivalDate": "2024-08-17", "departureDate": "2024-08-18", "isDatesUnspecified": 0,
            "totalPrice": 483.47, "currency": "USD", "status": "cancelled",
            "cancellationDate": "2024-08-16 13:03:37", "cancelledBy": "guest",
            "confirmationCode": null, "updatedOn": "2024-08-16 13:03:37"
        }))
        .unwrap();
        assert_eq!(update.reservation.as_str(), "31525485");
        assert_eq!(update.listing.unwrap().as_str(), "218666");
        assert_eq!(update.status, Some(ReservationStatus::Cancelled));
        assert_eq!(update.stay.unwrap().nights(), 1);
        assert_eq!(update.total.clone().set().unwrap().minor_units(), 48347);
        assert_eq!(update.guest.infants, Patch::Clear);
        assert_eq!(update.guest.pets, Patch::Set(0));
        assert_eq!(update.confirmation_code, Patch::Clear);
        assert!(update.version.terminal);
        assert!(update.version.updated_at.is_some());
    }

    #[test]
    fn the_specification_shape_maps_too() {
        let update = map_reservation(
            &AccountId::parse("hostaway_account_123").unwrap(),
            WebhookEvent::ReservationCreated,
            json!({
                "id": "hostaway_res_456", "listingId": "hostaway_lst_789", "channelId": "airbnb", "channelName": "Airbnb",
                "confirmationCode": "ABC123DEF", "status": "confirmed",
                "checkIn": "2025-11-15", "checkOut": "2025-11-20", "nights": 5,
                "guestName": "John Doe", "guestPhone": "+1234567890", "numberOfGuests": 4,
                "totalPrice": 1500.00, "currency": "USD", "isPaid": false,
                "createdAt": "2025-10-24T09:55:00Z"
            })
            .as_object()
            .unwrap(),
            crate::json::parse_datetime("2025-10-24T10:00:00Z"),
        )
        .unwrap();
        assert_eq!(update.status, Some(ReservationStatus::New));
        assert_eq!(update.channel_id, Patch::Absent);
        assert_eq!(update.channel_name, Patch::Set("Airbnb".into()));
        assert_eq!(update.stay.unwrap().nights(), 5);
        assert_eq!(update.guest.phone, Patch::Set("+1234567890".into()));
        assert_eq!(update.total.set().unwrap().minor_units(), 150_000);
        assert!(
            update.version.updated_at.is_some(),
            "envelope timestamp stands in"
        );
        assert_eq!(update.version.event, EventRank::Created);
    }

    #[test]
    fn reservation_cancelled_forces_the_status() {
        let update = map_reservation(
            &account(),
            WebhookEvent::ReservationCancelled,
            json!({"id": 1, "status": "confirmed"}).as_object().unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(update.status, Some(ReservationStatus::Cancelled));
        assert!(update.version.terminal);
    }

    #[test]
    fn undated_inquiries_keep_their_zero_night_placeholder() {
        let update = map(json!({
            "id": 43845206, "listingMapId": 288127, "status": "inquiry",
            "arrivalDate": "2025-06-19", "departureDate": "2025-06-19",
            "isDatesUnspecified": 1, "nights": 0, "totalPrice": 0, "currency": "USD"
        }))
        .unwrap();
        assert_eq!(update.stay.unwrap().nights(), 0);
    }

    #[test]
    fn partial_payloads_leave_the_rest_absent() {
        let update = map(json!({"id": 48464658, "listingMapId": 218666, "guestName": "Test Guest", "status": "modified"}))
            .unwrap();
        assert_eq!(update.stay, None);
        assert_eq!(update.total, Patch::Absent);
        assert_eq!(update.guest.email, Patch::Absent);
    }

    #[test]
    fn a_price_without_currency_is_not_stored() {
        let update = map(json!({"id": 1, "totalPrice": 696.67})).unwrap();
        assert_eq!(update.total, Patch::Absent);
        assert!(map(json!({"id": 1, "totalPrice": "lots"})).is_err());
    }

    #[test]
    fn hostile_values_are_refused_by_field() {
        let cases = [
            (json!({"listingMapId": 1}), "id"),
            (json!({"id": "1 OR 1=1"}), "id"),
            (
                json!({"id": 1, "arrivalDate": "2025-11-23", "departureDate": "2025-11-21"}),
                "departureDate",
            ),
            (
                json!({"id": 1, "arrivalDate": "2025-11-23"}),
                "departureDate",
            ),
            (
                json!({"id": 1, "arrivalDate": "1970-01-01", "departureDate": "1970-01-02"}),
                "arrivalDate",
            ),
            (
                json!({"id": 1, "totalPrice": -5, "currency": "USD"}),
                "totalPrice",
            ),
            (
                json!({"id": 1, "totalPrice": 1e12, "currency": "USD"}),
                "totalPrice",
            ),
            (
                json!({"id": 1, "totalPrice": 10, "currency": "dollars"}),
                "currency",
            ),
            (json!({"id": 1, "numberOfGuests": -1}), "numberOfGuests"),
            (json!({"id": 1, "numberOfGuests": 100000}), "numberOfGuests"),
            (json!({"id": 1, "status": "new; drop table"}), "status"),
            (json!({"id": 1, "guestName": {"first": "x"}}), "guestName"),
            (json!({"id": 1, "updatedOn": "yesterday"}), "updatedOn"),
        ];
        for (value, field) in cases {
            let err = map(value.clone()).expect_err(&value.to_string());
            assert_eq!(err.field, field, "{value}");
        }
    }
}
