//! The connector's protobuf messages.
//!
//! Generated types stay raw (`pb`); conversions from [`domain`] types live here so
//! every publisher fills them the same way.

#[allow(missing_debug_implementations, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/hostaway.connector.v1.rs"));
}

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use domain::{BlockKind, Money};

pub use prost::Message;

pub fn date(d: NaiveDate) -> pb::Date {
    pb::Date {
        year: d.year(),
        month: d.month() as i32,
        day: d.day() as i32,
    }
}

/// The date a `pb::Date` names, if it is a real one.
pub fn naive_date(d: &pb::Date) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(
        d.year,
        u32::try_from(d.month).ok()?,
        u32::try_from(d.day).ok()?,
    )
}

pub fn sync_kind(kind: domain::SyncKind) -> pb::SyncKind {
    match kind {
        domain::SyncKind::Availability => pb::SyncKind::Availability,
        domain::SyncKind::Pricing => pb::SyncKind::Pricing,
        domain::SyncKind::Listing => pb::SyncKind::Listing,
        domain::SyncKind::Reservations => pb::SyncKind::Reservations,
    }
}

pub fn from_sync_kind(kind: pb::SyncKind) -> Option<domain::SyncKind> {
    match kind {
        pb::SyncKind::Unspecified => None,
        pb::SyncKind::Availability => Some(domain::SyncKind::Availability),
        pb::SyncKind::Pricing => Some(domain::SyncKind::Pricing),
        pb::SyncKind::Listing => Some(domain::SyncKind::Listing),
        pb::SyncKind::Reservations => Some(domain::SyncKind::Reservations),
    }
}

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

pub fn naive_timestamp(at: NaiveDateTime) -> prost_types::Timestamp {
    timestamp(at.and_utc())
}

pub fn from_timestamp(ts: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

pub fn money(m: Money) -> pb::Money {
    pb::Money {
        minor_units: m.minor_units(),
        currency: m.currency().to_string(),
    }
}

pub fn block_kind(kind: Option<BlockKind>) -> pb::BlockKind {
    match kind {
        None => pb::BlockKind::None,
        Some(BlockKind::Booking) => pb::BlockKind::Booking,
        Some(BlockKind::OwnerStay) => pb::BlockKind::OwnerStay,
    }
}

pub fn booking_change(change: domain::ChangeKind) -> pb::BookingChange {
    match change {
        domain::ChangeKind::Created => pb::BookingChange::Created,
        domain::ChangeKind::Updated => pb::BookingChange::Updated,
        domain::ChangeKind::Cancelled => pb::BookingChange::Cancelled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbound_webhook_round_trips() {
        let msg = pb::InboundWebhook {
            webhook_id: "abc".into(),
            account_id: "59808".into(),
            event: "reservation.created".into(),
            received_at: Some(timestamp(Utc::now())),
            raw_body: b"{\"data\":{}}".to_vec(),
            source: pb::Source::WebhookBasic as i32,
            request_id: "r1".into(),
            problem: Some(pb::Problem {
                reason: "invalid_payload".into(),
                field: "departureDate".into(),
                detail: "departure is before arrival".into(),
            }),
            account_disabled: true,
        };
        let bytes = msg.encode_to_vec();
        assert_eq!(pb::InboundWebhook::decode(bytes.as_slice()), Ok(msg));
    }

    #[test]
    fn dates_and_timestamps_convert() {
        let d = NaiveDate::from_ymd_opt(2026, 4, 10).unwrap();
        assert_eq!(
            date(d),
            pb::Date {
                year: 2026,
                month: 4,
                day: 10
            }
        );
        let now = Utc::now();
        assert_eq!(from_timestamp(&timestamp(now)), Some(now));
    }
}
