//! The Hostaway API client.
//!
//! One [`HostawayClient`] per process (one egress IP) serves every account.
//! Each request goes through, in order: the account's [circuit breaker](breaker)
//! (an open circuit fails fast and sends nothing), the account's
//! [access token](token) (fetched with client credentials, cached until it
//! expires, used no sooner than a second after issue, refreshed once on a
//! token-related 403), the [rate limits](limits) (per account and per egress
//! IP, both enforced before sending), the request, and the
//! [classification](error) of its outcome (retried with exponential backoff and
//! full jitter when the class is retryable; a 429 waits as Hostaway says, or a
//! whole window).
//!
//! Time is tokio's, so tests run the limits, the breaker and token expiry on a
//! paused clock.

pub mod breaker;
pub mod budget;
pub mod config;
pub mod credentials;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod ops;
pub mod token;
mod transport;

pub use budget::{Admission, Budget, LocalBudget};
pub use config::{ClientConfig, HostawayApiArgs, RateLimit};
pub use credentials::{CredentialFn, CredentialSource, StaticCredentials};
pub use error::{ErrorKind, HostawayError};
pub use metrics::ClientMetrics;
pub use ops::{
    AvailabilityUpdate, ListingsQuery, Page, PricingUpdate, ReservationsQuery,
    compress_availability, compress_pricing,
};
pub use token::{SharedToken, TokenLock, TokenStore};
pub use transport::{
    AccountSettings, AccountSettingsSource, BreakerSettings, HostawayClient, Shared,
};

/// Most ranges `PUT …/calendarIntervals` takes in one call.
pub const MAX_CALENDAR_INTERVALS: usize = 200;
