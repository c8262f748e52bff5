use crate::crypto::CipherError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or asked us to retry: waiting helps.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
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

impl StoreError {
    /// Whether retrying the same work later can succeed without anyone acting.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if is_transient(&error) {
            StoreError::Unavailable(error)
        } else {
            StoreError::Database(error)
        }
    }
}

fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // serialization failure, deadlock, connection exceptions, too many
            // connections, server shutting down or starting up, read-only replica.
            code == "40001"
                || code == "40P01"
                || code.starts_with("08")
                || code == "53300"
                || code.starts_with("57P")
                || code == "25006"
        }),
        _ => false,
    }
}
