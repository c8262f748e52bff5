//! Hostaway's wire formats and their mapping to [`domain`] types.
//!
//! Real payloads disagree with the documentation and with each other: ids are
//! integers or strings, amounts are ints or floats, booleans are 0/1 or
//! true/false, an empty value is `""` or `null`, and the webhook record sits under
//! `data` or `payload.data`. The readers in [`json`] accept all of these; the
//! mappers turn a payload into a validated domain value or say which field is
//! wrong, never echoing the value itself.

pub mod api;
pub mod canonical;
pub mod error;
pub mod json;
pub mod listing_change;
pub mod message;
pub mod probe;
pub mod reservation;
pub mod signature;
pub mod webhook;

pub use error::{MappingError, Problem};
pub use json::{Adjustment, AdjustmentAction, Adjustments, Mapped};
pub use listing_change::{ListingChange, map_listing_change};
pub use message::map_message;
pub use probe::probe_account;
pub use reservation::{MAX_VERSION_SKEW, check_version_skew, map_reservation};
pub use webhook::{
    EnvelopeError, Webhook, WebhookEvent, parse_webhook, raw_webhook_id, webhook_id,
};
