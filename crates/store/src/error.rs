use crate::crypto::CipherError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or asked us to retry: waiting helps.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Another transaction was in the way (deadlock, serialization failure):
    /// retry soon; nothing is wrong with the work or the database.
    #[error("database busy: {0}")]
    Busy(#[source] sqlx::Error),
    /// A statement or lock timeout: usually contention, but work that always
    /// times out is poisoned, so callers count repeats as attempts.
    #[error("database timeout: {0}")]
    Timeout(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error(transparent)]
    Cipher(#[from] CipherError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
}

/// What a database error means for the work that met it: the one reading
/// the three consumers (webhooks, TVL changes, sync jobs) act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// The database is unreachable or refusing work: consumption pauses
    /// until it answers; the work is not at fault (no attempt counted).
    Outage,
    /// Another transaction was in the way (deadlock, serialization): retry
    /// soon; not an attempt.
    Contention,
    /// A statement or lock timeout: usually contention, but work that always
    /// times out is poisoned, so each counts as an attempt.
    Timeout,
    /// Anything else: an attempt that failed.
    Failure,
}

impl StoreError {
    pub fn trouble(&self) -> Trouble {
        match self {
            StoreError::Unavailable(_) => Trouble::Outage,
            StoreError::Busy(_) => Trouble::Contention,
            StoreError::Timeout(_) => Trouble::Timeout,
            _ => Trouble::Failure,
        }
    }

    /// Whether the database is out (waiting, not the work, fixes it).
    pub fn is_outage(&self) -> bool {
        self.trouble() == Trouble::Outage
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match classify(&error) {
            Class::Outage => StoreError::Unavailable(error),
            Class::Contention => StoreError::Busy(error),
            Class::Timeout => StoreError::Timeout(error),
            Class::Other => StoreError::Database(error),
        }
    }
}

enum Class {
    Outage,
    Contention,
    Timeout,
    Other,
}

fn classify(error: &sqlx::Error) -> Class {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => Class::Outage,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // serialization failure, deadlock
            Some("40001" | "40P01") => Class::Contention,
            // lock timeout, statement timeout
            Some("55P03" | "57014") => Class::Timeout,
            // connection exceptions, too many connections, server shutting down
            // or starting up, read-only replica
            Some(code)
                if code.starts_with("08")
                    || code == "53300"
                    || code.starts_with("57P")
                    || code == "25006" =>
            {
                Class::Outage
            }
            _ => Class::Other,
        },
        _ => Class::Other,
    }
}
