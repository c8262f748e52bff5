//! The order of one reservation's payloads.
//!
//! Hostaway repeats and reorders webhooks, so the connector never trusts arrival
//! order. Every payload gets a [`Version`]; a booking keeps the greatest version
//! it has seen, and a payload whose version is not greater changes nothing. The
//! order is total, so any interleaving of the same payloads ends in the same state.

use chrono::NaiveDateTime;
use sha2::{Digest, Sha256};

/// Which kind of webhook carried the payload. Only breaks ties between payloads
/// stamped with the same second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventRank {
    Created = 0,
    Updated = 1,
    Cancelled = 2,
}

/// Where a payload came from. Only breaks ties: a record read from Hostaway's
/// API (polling, or a fetch of an incomplete reservation) is the state at
/// the moment of the read, so it wins over a webhook payload that agrees on
/// every stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    Webhook = 0,
    ApiRead = 1,
}

/// Fields compare in declaration order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Hostaway's `updatedOn` (UTC, one-second resolution), or the
    /// specification envelope's `timestamp`. A payload that carries neither sorts
    /// before every stamped one: it cannot overwrite a state Hostaway dated.
    pub updated_at: Option<NaiveDateTime>,
    /// Within one second, a terminal status (cancelled, declined…) wins: a
    /// cancellation is never undone by a same-second update.
    pub terminal: bool,
    /// Hostaway's `latestActivityOn`: orders two updates stamped with the same
    /// `updatedOn` second (absent sorts first).
    pub latest_activity: Option<NaiveDateTime>,
    /// An API read wins a tie over a webhook payload.
    pub origin: Origin,
    pub event: EventRank,
    /// SHA-256 of the payload's canonical JSON: the final, deterministic tiebreak
    /// between different payloads that agree on everything above.
    pub digest: [u8; 32],
}

impl Version {
    pub fn digest_of(canonical_payload: &[u8]) -> [u8; 32] {
        Sha256::digest(canonical_payload).into()
    }
}
