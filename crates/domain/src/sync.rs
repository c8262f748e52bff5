//! Outbound sync: the kinds of work, and the stamp that orders TVL's changes.

use std::fmt;

use chrono::{DateTime, Utc};

/// What a sync job pushes (or, for reservations, pulls). Ordered by priority:
/// availability first, because a stale "available" night is a double booking
/// waiting to happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SyncKind {
    Availability,
    /// Inbound healing: reservations changed since the last poll.
    Reservations,
    Pricing,
    Listing,
}

impl SyncKind {
    pub const ALL: [SyncKind; 4] = [
        SyncKind::Availability,
        SyncKind::Reservations,
        SyncKind::Pricing,
        SyncKind::Listing,
    ];

    /// The specification's `sync_type` label, and the token in subjects.
    pub fn as_str(&self) -> &'static str {
        match self {
            SyncKind::Availability => "availability",
            SyncKind::Reservations => "reservations",
            SyncKind::Pricing => "pricing",
            SyncKind::Listing => "listing",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Kinds TVL publishes changes of (reservations come from Hostaway).
    pub fn is_outbound(&self) -> bool {
        !matches!(self, SyncKind::Reservations)
    }
}

impl fmt::Display for SyncKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Orders TVL's changes: by when they happened, then by the publisher's
/// version, then by change id, so that any two distinct changes compare, and a
/// change repeated compares equal to itself. Stored as bytes whose byte order
/// is this order (PostgreSQL compares `bytea` the same way).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangeStamp(Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StampError {
    #[error("occurred_at is before 1970")]
    BeforeEpoch,
    #[error("change_id is empty")]
    EmptyId,
}

impl ChangeStamp {
    pub fn new(
        occurred_at: DateTime<Utc>,
        version: u64,
        change_id: &str,
    ) -> Result<Self, StampError> {
        let micros =
            u64::try_from(occurred_at.timestamp_micros()).map_err(|_| StampError::BeforeEpoch)?;
        if change_id.is_empty() {
            return Err(StampError::EmptyId);
        }
        let mut bytes = Vec::with_capacity(16 + change_id.len());
        bytes.extend_from_slice(&micros.to_be_bytes());
        bytes.extend_from_slice(&version.to_be_bytes());
        bytes.extend_from_slice(change_id.as_bytes());
        Ok(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn stamps_order_by_time_then_version_then_id() {
        let t = |s| Utc.timestamp_opt(s, 0).single().unwrap();
        let a = ChangeStamp::new(t(100), 9, "z").unwrap();
        let b = ChangeStamp::new(t(101), 0, "a").unwrap();
        assert!(a < b, "time first");
        let c = ChangeStamp::new(t(101), 1, "a").unwrap();
        assert!(b < c, "then version");
        let d = ChangeStamp::new(t(101), 1, "b").unwrap();
        assert!(c < d, "then id");
        assert_eq!(d, ChangeStamp::new(t(101), 1, "b").unwrap());
        // Big-endian: a later second beats any number of earlier microseconds.
        let early = ChangeStamp::new(t(255) + chrono::Duration::microseconds(999_999), 0, "x");
        assert!(early.unwrap() < ChangeStamp::new(t(256), 0, "x").unwrap());
        assert_eq!(
            ChangeStamp::new(t(-1), 0, "x"),
            Err(StampError::BeforeEpoch)
        );
        assert_eq!(ChangeStamp::new(t(1), 0, ""), Err(StampError::EmptyId));
    }

    #[test]
    fn kinds_round_trip_their_names() {
        for kind in SyncKind::ALL {
            assert_eq!(SyncKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(SyncKind::parse("calendar"), None);
    }
}
