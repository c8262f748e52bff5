//! Between the API's messages and the connector's types, and from the
//! connector's errors to gRPC statuses.

use chrono::{DateTime, Utc};
use domain::{AccountId, ListingId, UnitId};
use hostaway_client::{ErrorKind, HostawayError};
use store::StoreError;
use tonic::Status;

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

pub fn instant(
    field: &str,
    at: Option<&prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, Status> {
    at.map(|t| {
        u32::try_from(t.nanos)
            .ok()
            .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos))
            .ok_or_else(|| Status::invalid_argument(format!("{field}: not a valid instant")))
    })
    .transpose()
}

pub fn account(raw: &str) -> Result<AccountId, Status> {
    AccountId::parse(raw.trim()).map_err(|e| Status::invalid_argument(format!("account_id: {e}")))
}

pub fn listing(raw: &str) -> Result<ListingId, Status> {
    ListingId::parse(raw.trim()).map_err(|e| Status::invalid_argument(format!("listing_id: {e}")))
}

pub fn optional_listing(raw: &str) -> Result<Option<ListingId>, Status> {
    if raw.trim().is_empty() {
        Ok(None)
    } else {
        listing(raw).map(Some)
    }
}

pub fn unit(raw: &str) -> Result<UnitId, Status> {
    raw.trim()
        .parse()
        .map_err(|_| Status::invalid_argument("unit_id: a UUID"))
}

/// A page size a caller asked for: `default` for 0, at most 1,000.
pub fn limit(requested: u32, default: i64) -> i64 {
    if requested == 0 {
        default
    } else {
        i64::from(requested.min(1_000))
    }
}

pub fn non_empty(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// Store errors as statuses. Database details stay in the log.
pub fn store_status(error: StoreError) -> Status {
    match error {
        StoreError::NotFound(what) => Status::not_found(format!("{what} not found")),
        StoreError::Conflict(message) => Status::aborted(message),
        StoreError::Invalid(message) => Status::invalid_argument(message),
        StoreError::Unavailable(_) | StoreError::Busy(_) | StoreError::Timeout(_) => {
            tracing::warn!(%error, "database trouble");
            Status::unavailable("the database is not answering; try again")
        }
        error => {
            tracing::error!(%error, "database error");
            Status::internal("database error (see the service's log)")
        }
    }
}

/// Hostaway's answers as statuses. A refusal of credentials is not a
/// refusal of the caller: FAILED_PRECONDITION, not PERMISSION_DENIED.
pub fn hostaway_status(error: HostawayError) -> Status {
    let message = error.to_string();
    match error.kind {
        ErrorKind::Auth => Status::failed_precondition(format!(
            "Hostaway refused the account's API credentials: {message}"
        )),
        ErrorKind::NotFound => Status::not_found(message),
        ErrorKind::Validation | ErrorKind::BusinessRule | ErrorKind::Conflict => {
            Status::failed_precondition(message)
        }
        ErrorKind::RateLimit | ErrorKind::Throttled | ErrorKind::CircuitOpen => {
            Status::resource_exhausted(message)
        }
        ErrorKind::Server | ErrorKind::Network => Status::unavailable(message),
        ErrorKind::Mapping => Status::internal(message),
    }
}
