//! Each account's own settings, every version kept (`channel_configs`). The
//! settings are JSON here: their shape and rules belong to the services that
//! honour them (`sync_dispatcher::channel_config`).

use chrono::{DateTime, Utc};
use domain::AccountId;
use sqlx::PgPool;

use crate::StoreError;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredConfig {
    pub version: i32,
    pub config: serde_json::Value,
    pub set_at: DateTime<Utc>,
    pub set_by: String,
}

/// The version in force, if the account has ever been configured.
pub async fn current(
    pool: &PgPool,
    account: &AccountId,
) -> Result<Option<StoredConfig>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT version, config, set_at, set_by FROM channel_configs
         WHERE hostaway_account_id = $1 ORDER BY version DESC LIMIT 1",
    )
    .bind(account.as_str())
    .fetch_optional(pool)
    .await?)
}

/// What [`set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// A new version, now in force.
    New(i32),
    /// The configuration in force already was this one: nothing written.
    Unchanged(i32),
}

impl Saved {
    pub fn version(self) -> i32 {
        match self {
            Saved::New(v) | Saved::Unchanged(v) => v,
        }
    }
}

/// Writes `config` as the account's next version. With `expected`, only if
/// the version in force is that one (0: never configured), so two operators
/// editing at once cannot silently undo each other: the second gets
/// `Conflict` and reads again.
pub async fn set(
    pool: &PgPool,
    account: &AccountId,
    expected: Option<i32>,
    config: &serde_json::Value,
    set_by: &str,
) -> Result<Saved, StoreError> {
    let mut tx = pool.begin().await?;
    // The account's row serialises writers of its configuration.
    let exists: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM channels WHERE hostaway_account_id = $1 FOR UPDATE")
            .bind(account.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound(format!("account {account}")));
    }
    let in_force: Option<(i32, serde_json::Value)> = sqlx::query_as(
        "SELECT version, config FROM channel_configs
         WHERE hostaway_account_id = $1 ORDER BY version DESC LIMIT 1",
    )
    .bind(account.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let version = in_force.as_ref().map_or(0, |(v, _)| *v);
    if let Some(expected) = expected
        && expected != version
    {
        return Err(StoreError::Conflict(format!(
            "the configuration of account {account} is at version {version}, not {expected}: read it again"
        )));
    }
    if in_force.as_ref().is_some_and(|(_, c)| c == config) {
        return Ok(Saved::Unchanged(version));
    }
    sqlx::query(
        "INSERT INTO channel_configs (hostaway_account_id, version, config, set_by)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(account.as_str())
    .bind(version + 1)
    .bind(config)
    .bind(set_by)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Saved::New(version + 1))
}

/// Every configured account's configuration in force.
pub async fn all_current(pool: &PgPool) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT ON (hostaway_account_id) hostaway_account_id, config
         FROM channel_configs ORDER BY hostaway_account_id, version DESC",
    )
    .fetch_all(pool)
    .await?)
}
