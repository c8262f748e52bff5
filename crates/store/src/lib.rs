//! PostgreSQL persistence for the connector.
//!
//! Functions take a `&mut PgConnection` when they belong inside a caller's
//! transaction (the ingestor's one-transaction-per-webhook) and a `&PgPool`
//! when they stand alone (admin commands, the gateway's credential reload).

pub mod accounts;
pub mod admin;
pub mod api_shared;
pub mod bookings;
pub mod channel_config;
pub mod crypto;
pub mod desired;
pub mod dlq;
pub mod error;
pub mod links;
pub mod outbox;
pub mod parked;
pub mod remote;
pub mod sync_jobs;
pub mod webhook_log;

use std::time::Duration;

pub use error::{StoreError, Trouble};
pub use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The migrations under `migrations/`, embedded.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// Longest wait for a row or advisory lock (PostgreSQL `lock_timeout`).
    pub lock_timeout: Option<Duration>,
    /// Longest statement (PostgreSQL `statement_timeout`).
    pub statement_timeout: Option<Duration>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            lock_timeout: None,
            statement_timeout: None,
        }
    }
}

/// A pool that connects on first use: a service starts, and answers its
/// health checks, while PostgreSQL is still down.
pub fn connect_lazy(url: &SecretString, settings: &PoolSettings) -> Result<PgPool, StoreError> {
    let mut options: PgConnectOptions = url
        .expose_secret()
        .parse()
        .map_err(|_| StoreError::Invalid("DATABASE_URL is not a valid PostgreSQL URL".into()))?;
    let mut server_settings = Vec::new();
    if let Some(timeout) = settings.lock_timeout {
        server_settings.push(("lock_timeout", format!("{}ms", timeout.as_millis())));
    }
    if let Some(timeout) = settings.statement_timeout {
        server_settings.push(("statement_timeout", format!("{}ms", timeout.as_millis())));
    }
    if !server_settings.is_empty() {
        options = options.options(server_settings);
    }
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_lazy_with(options))
}

/// Settings of a transaction that applies a batch, in one round trip:
///
/// - every statement planned for its own parameters and the tables as they
///   are now, never with a plan cached for an earlier execution: a cached
///   (generic) plan made while a table was small stays a sequential scan
///   until autovacuum analyses the table again, and a batch on a fast-growing
///   table (a new deployment's first burst) would scan all of it, statement
///   after statement. Planning costs tens of microseconds a statement, once
///   per batch;
/// - locks waited for at most `lock_wait` (or the connection's own limit, if
///   shorter): a batch that meets a lock held elsewhere gives up soon and is
///   applied one webhook at a time, so only the webhook that needs the lock
///   waits the full limit.
pub async fn batch_transaction(
    conn: &mut PgConnection,
    lock_wait: Duration,
) -> Result<(), StoreError> {
    sqlx::query(
        "SELECT set_config('plan_cache_mode', 'force_custom_plan', true),
                set_config('lock_timeout',
                    CASE WHEN current_setting('lock_timeout')::interval = interval '0'
                           OR current_setting('lock_timeout')::interval > make_interval(secs => $1)
                         THEN ($1 * 1000)::bigint::text || 'ms'
                         ELSE current_setting('lock_timeout') END,
                    true)",
    )
    .bind(lock_wait.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| StoreError::Migration(e.to_string()))
}

/// Checks that every migration this binary knows has been applied (by
/// `hostaway-admin migrate`): a service runs against the schema it was built
/// for, or reports, naming the versions, that it cannot.
pub async fn verify_schema(pool: &PgPool) -> Result<(), StoreError> {
    let wanted = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await
            .or_else(|error| match &error {
                // No migrations table: nothing applied yet.
                sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => Ok(None),
                _ => Err(error),
            })?;
    match applied {
        Some(version) if version >= wanted => Ok(()),
        applied => Err(StoreError::Invalid(format!(
            "the database schema is at migration {}, this binary needs {wanted}: run `hostaway-admin migrate`",
            applied.map_or_else(|| "none".to_owned(), |v| v.to_string())
        ))),
    }
}

/// `SELECT 1`: whether the database answers now.
pub async fn ping(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

/// Creates the database named in `url` if it does not exist, connecting to the
/// server's `postgres` database to do so. Returns whether it was created.
pub async fn create_database_if_missing(url: &SecretString) -> Result<bool, StoreError> {
    let options: PgConnectOptions = url
        .expose_secret()
        .parse()
        .map_err(|_| StoreError::Invalid("DATABASE_URL is not a valid PostgreSQL URL".into()))?;
    let name = options
        .get_database()
        .ok_or_else(|| StoreError::Invalid("DATABASE_URL names no database".into()))?
        .to_owned();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(StoreError::Invalid(
            "the database name may only contain letters, digits and '_'".into(),
        ));
    }
    let maintenance = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.database("postgres"))
        .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&maintenance)
            .await?;
    if !exists {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&maintenance)
            .await?;
    }
    maintenance.close().await;
    Ok(!exists)
}
