//! A Hostaway reservation record → [`ReservationUpdate`].
//!
//! Real field names first, the specification's as aliases: `arrivalDate`/`checkIn`,
//! `departureDate`/`checkOut`, `listingMapId`/`listingId`, `phone`/`guestPhone`,
//! `updatedOn`/`updatedAt`.

use chrono::NaiveDateTime;
use domain::{
    AccountId, Currency, EventRank, GuestPatch, ListingId, Money, MoneyError, Origin, Patch,
    ReservationId, ReservationStatus, ReservationUpdate, StayDates, StayError, Version,
};
use serde_json::{Map, Value};

use crate::canonical::{HashWriter, write_canonical_object};
use crate::json::{AdjustmentAction, Adjustments, MAX_TEXT_LEN, Mapped, Record};
use crate::{MappingError, Problem, WebhookEvent};

/// More guests than this in one reservation is an error upstream.
pub const MAX_GUESTS: i64 = 1000;
/// Longest status name accepted (the longest documented one has 25 characters).
const MAX_STATUS_LEN: usize = 40;

/// How far ahead of the connector's clock a payload's `updatedOn` may be. A
/// version far in the future would make every genuine later update of the
/// booking stale.
pub const MAX_VERSION_SKEW: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Refuses a version stamped more than [`MAX_VERSION_SKEW`] after `received`
/// (when the connector received it).
pub fn check_version_skew(
    update: &ReservationUpdate,
    received: NaiveDateTime,
) -> Result<(), MappingError> {
    match update.version.updated_at {
        Some(at) if at > received + MAX_VERSION_SKEW => Err(MappingError::new(
            "updatedOn",
            Problem::OutOfRange("more than an hour ahead of the connector's clock"),
        )),
        _ => Ok(()),
    }
}

/// Maps one reservation record.
///
/// `event` ranks same-second payloads and forces `cancelled` for the
/// specification's `reservation.cancelled`; `sent_at` (the specification
/// envelope's `timestamp`) stands in for a missing `updatedOn`; `origin` says
/// whether the record is a webhook's or was read from the API.
///
/// Only what makes a booking impossible or dangerous is an error: no id, an
/// unreadable listing or status, dates that are missing, unreadable or
/// impossible (departure before arrival, out of range), money that is
/// negative or absurd. Any other field that cannot be read is left out, and
/// text that is too long is cut; both are listed in the adjustments.
pub fn map_reservation(
    account: &AccountId,
    event: WebhookEvent,
    data: &Map<String, Value>,
    sent_at: Option<NaiveDateTime>,
    origin: Origin,
) -> Result<Mapped<ReservationUpdate>, MappingError> {
    let r = Record::new(data);
    let mut notes = Adjustments::default();

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

    let stay = stay(&r, &mut notes)?;
    let text = |notes: &mut Adjustments, field: &'static str, names: &[&str]| {
        r.lenient_text(field, names, MAX_TEXT_LEN, notes)
    };
    let guest = GuestPatch {
        name: text(&mut notes, "guestName", &["guestName"]),
        first_name: text(&mut notes, "guestFirstName", &["guestFirstName"]),
        last_name: text(&mut notes, "guestLastName", &["guestLastName"]),
        email: text(&mut notes, "guestEmail", &["guestEmail"]),
        phone: text(&mut notes, "phone", &["phone", "guestPhone"]),
        number_of_guests: notes.optional(r.count(
            "numberOfGuests",
            &["numberOfGuests"],
            MAX_GUESTS,
        )),
        adults: notes.optional(r.count("adults", &["adults"], MAX_GUESTS)),
        children: notes.optional(r.count("children", &["children"], MAX_GUESTS)),
        infants: notes.optional(r.count("infants", &["infants"], MAX_GUESTS)),
        pets: notes.optional(r.count("pets", &["pets"], MAX_GUESTS)),
    };
    let total = total(&r, &mut notes)?;
    let (channel_id, channel_name) = channel(&r, &mut notes);

    let updated_at = match notes.optional(r.datetime("updatedOn", &["updatedOn", "updatedAt"])) {
        Patch::Set(at) => Some(at),
        _ => sent_at,
    };
    let latest_activity = notes
        .optional(r.datetime("latestActivityOn", &["latestActivityOn"]))
        .set();
    let event_rank = match event {
        WebhookEvent::ReservationCreated => EventRank::Created,
        WebhookEvent::ReservationCancelled => EventRank::Cancelled,
        _ => EventRank::Updated,
    };
    let version = Version {
        updated_at,
        terminal: status.as_ref().is_some_and(ReservationStatus::is_terminal),
        latest_activity,
        origin,
        event: event_rank,
        digest: canonical_digest(data),
    };

    let value = ReservationUpdate {
        account: account.clone(),
        reservation,
        listing,
        status,
        stay,
        guest,
        total,
        channel_id,
        channel_name,
        channel_reservation_id: text(
            &mut notes,
            "reservationId",
            &["reservationId", "channelReservationId"],
        ),
        confirmation_code: text(&mut notes, "confirmationCode", &["confirmationCode"]),
        cancelled_by: text(&mut notes, "cancelledBy", &["cancelledBy"]),
        // Hostaway writes "0000-00-00 00:00:00" here when there is none.
        cancelled_at: notes.optional(r.datetime("cancellationDate", &["cancellationDate"])),
        version,
    };
    Ok(Mapped {
        value,
        adjustments: notes.into_vec(),
    })
}

/// Hostaway's `channelId` is a number (2018 = Airbnb); the specification's
/// example sends a name there (`"airbnb"`), which is read as the channel name.
fn channel(r: &Record<'_>, notes: &mut Adjustments) -> (Patch<i64>, Patch<String>) {
    let name = r.lenient_text("channelName", &["channelName"], MAX_TEXT_LEN, notes);
    match r.int("channelId", &["channelId"]) {
        Ok(id) => (id, name),
        Err(_) => {
            let named = r.lenient_text("channelId", &["channelId"], 64, notes);
            let name = if name.is_absent() { named } else { name };
            (Patch::Absent, name)
        }
    }
}

/// The stay. Both dates are needed to make a booking, and they must make
/// sense: missing one, an unreadable one or a departure before the arrival is
/// an error. A departure equal to the arrival is a stay of no nights (an
/// undated inquiry's placeholder, or a day the channel sold no night of): it
/// holds no block.
fn stay(r: &Record<'_>, notes: &mut Adjustments) -> Result<Option<StayDates>, MappingError> {
    let arrival = r.date("arrivalDate", &["arrivalDate", "checkIn"])?;
    let departure = r.date("departureDate", &["departureDate", "checkOut"])?;
    let unspecified =
        notes.optional(r.flag("isDatesUnspecified", &["isDatesUnspecified"])) == Patch::Set(true);
    match (arrival, departure) {
        (Patch::Set(arrival), Patch::Set(departure)) => {
            let result = if arrival == departure {
                if !unspecified {
                    notes.note(
                        "departureDate",
                        AdjustmentAction::Dropped(Problem::Invalid(
                            "equals arrivalDate: a stay of no nights, no block".into(),
                        )),
                    );
                }
                StayDates::zero_nights(arrival)
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

/// `totalPrice` in `currency`. Money that is negative or absurd is an error
/// (it says the record is corrupt); a price that cannot be read, or has no
/// readable currency, is left out: the connector never guesses a currency
/// (the captured `reservation.created` subset has exactly this shape; the next
/// complete payload fills it in).
fn total(r: &Record<'_>, notes: &mut Adjustments) -> Result<Patch<Money>, MappingError> {
    let amount = notes.optional(r.decimal("totalPrice", &["totalPrice"]));
    let currency = match notes.optional(r.text("currency", &["currency"])) {
        Patch::Set(code) => match Currency::parse(&code) {
            Ok(currency) => Some(currency),
            Err(e) => {
                notes.note(
                    "currency",
                    AdjustmentAction::Dropped(Problem::Invalid(e.to_string())),
                );
                None
            }
        },
        _ => None,
    };
    let Patch::Set(text) = amount else {
        return Ok(match amount {
            Patch::Clear => Patch::Clear,
            _ => Patch::Absent,
        });
    };
    // Checked even without a currency: a corrupt amount says the record is.
    let any = currency
        .map_or_else(|| Currency::parse("XXX"), Ok)
        .map_err(|e| MappingError::new("currency", Problem::Invalid(e.to_string())))?;
    match Money::from_decimal(&text, any) {
        Ok(money) if currency.is_some() => Ok(Patch::Set(money)),
        Ok(_) => Ok(Patch::Absent),
        Err(MoneyError::NotANumber | MoneyError::BadCurrency) => {
            notes.note(
                "totalPrice",
                AdjustmentAction::Dropped(Problem::WrongType("a decimal number")),
            );
            Ok(Patch::Absent)
        }
        Err(e) => Err(MappingError::new(
            "totalPrice",
            Problem::Invalid(e.to_string()),
        )),
    }
}

/// `Version::digest_of` the record's canonical bytes, hashed as they are
/// written.
fn canonical_digest(data: &Map<String, Value>) -> [u8; 32] {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    write_canonical_object(data, &mut HashWriter(&mut hasher));
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn account() -> AccountId {
        AccountId::parse("59808").unwrap()
    }

    fn mapped(value: Value) -> Result<Mapped<ReservationUpdate>, MappingError> {
        map_reservation(
            &account(),
            WebhookEvent::ReservationUpdated,
            value.as_object().unwrap(),
            None,
            Origin::Webhook,
        )
    }

    fn map(value: Value) -> Result<ReservationUpdate, MappingError> {
        mapped(value).map(|m| m.value)
    }

    fn dropped(value: Value) -> Vec<&'static str> {
        mapped(value)
            .unwrap()
            .adjustments
            .iter()
            .map(|a| a.field)
            .collect()
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
            Origin::Webhook,
        )
        .unwrap()
        .value;
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
            Origin::Webhook,
        )
        .unwrap()
        .value;
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
    }

    #[test]
    fn what_makes_a_booking_impossible_or_dangerous_is_refused_by_field() {
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
                json!({"id": 1, "arrivalDate": "2026-4-1", "departureDate": "2026-04-03"}),
                "arrivalDate",
            ),
            (
                json!({"id": 1, "arrivalDate": "1970-01-01", "departureDate": "1970-01-02"}),
                "arrivalDate",
            ),
            (
                json!({"id": 1, "arrivalDate": "2025-01-01", "departureDate": "2030-01-02"}),
                "departureDate",
            ),
            (
                json!({"id": 1, "totalPrice": -5, "currency": "USD"}),
                "totalPrice",
            ),
            (
                json!({"id": 1, "totalPrice": 1e12, "currency": "USD"}),
                "totalPrice",
            ),
            (json!({"id": 1, "totalPrice": 1e12}), "totalPrice"),
            (json!({"id": 1, "status": "new; drop table"}), "status"),
            (json!({"id": 1, "listingMapId": [1]}), "listingMapId"),
        ];
        for (value, field) in cases {
            let err = map(value.clone()).expect_err(&value.to_string());
            assert_eq!(err.field, field, "{value}");
        }
    }

    #[test]
    fn fields_tvl_can_do_without_never_sink_the_booking() {
        let long = "x".repeat(MAX_TEXT_LEN + 1);
        let base = || {
            json!({"id": 1, "listingMapId": 2, "status": "new",
                   "arrivalDate": "2026-04-10", "departureDate": "2026-04-12"})
        };
        let with = |key: &str, value: Value| {
            let mut v = base();
            v[key] = value;
            v
        };
        let cases = [
            (with("guestName", json!(long)), "guestName"),
            (with("guestName", json!({"first": "x"})), "guestName"),
            (
                with("guestEmail", json!("a\u{0}b@example.com")),
                "guestEmail",
            ),
            (with("numberOfGuests", json!(100_000)), "numberOfGuests"),
            (with("adults", json!(-1)), "adults"),
            (with("totalPrice", json!("NaN")), "totalPrice"),
            (with("currency", json!("dollars")), "currency"),
            (
                with("cancellationDate", json!("0000-00-00 00:00:00")),
                "cancellationDate",
            ),
            (with("updatedOn", json!("yesterday")), "updatedOn"),
            (with("latestActivityOn", json!(7)), "latestActivityOn"),
            (with("isDatesUnspecified", json!(7)), "isDatesUnspecified"),
            (with("channelName", json!([1])), "channelName"),
        ];
        for (value, field) in cases {
            let update = map(value.clone()).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(update.stay.unwrap().nights(), 2, "{value}");
            assert_eq!(dropped(value.clone()), vec![field], "{value}");
        }
        let update = map(with("guestName", json!(long))).unwrap();
        assert_eq!(
            update.guest.name.set().unwrap().chars().count(),
            MAX_TEXT_LEN
        );
        let update = map(with("cancellationDate", json!("0000-00-00 00:00:00"))).unwrap();
        assert_eq!(update.cancelled_at, Patch::Absent);
        let update = map(with("updatedOn", json!("yesterday"))).unwrap();
        assert_eq!(update.version.updated_at, None);
    }

    #[test]
    fn a_dated_stay_of_no_nights_holds_no_block() {
        let update = map(json!({
            "id": 1, "listingMapId": 2, "status": "new",
            "arrivalDate": "2026-04-10", "departureDate": "2026-04-10"
        }))
        .unwrap();
        assert_eq!(update.stay.unwrap().nights(), 0);
    }

    #[test]
    fn latest_activity_and_origin_enter_the_version() {
        let data = json!({"id": 1, "updatedOn": "2026-01-01 10:00:00", "latestActivityOn": "2026-01-01 10:00:05"});
        let read = map_reservation(
            &account(),
            WebhookEvent::ReservationUpdated,
            data.as_object().unwrap(),
            None,
            Origin::ApiRead,
        )
        .unwrap()
        .value;
        assert_eq!(read.version.origin, Origin::ApiRead);
        assert_eq!(
            read.version.latest_activity,
            crate::json::parse_datetime("2026-01-01 10:00:05")
        );
    }
}
