//! Hostaway's REST API: the response envelopes, error bodies, tokens and the
//! records the client reads and writes. Tolerant like the webhook readers: every
//! envelope variant, error text in `message` or `result`, 0/1 or true/false,
//! numbers as int, float or string, `""` for null.

pub mod calendar;
pub mod envelope;
pub mod listing;
pub mod token;
pub mod webhook_config;

pub use calendar::{CalendarDay, CalendarInterval, parse_calendar_day};
pub use envelope::{ApiParseError, ApiStatus, Envelope, error_text, parse_envelope};
pub use listing::{Listing, parse_listing};
pub use token::{AccessToken, parse_access_token};
pub use webhook_config::{UnifiedWebhook, UnifiedWebhookRequest, parse_unified_webhook};
