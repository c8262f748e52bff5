//! What the replicas of the sync dispatcher share about Hostaway's API: the
//! request budgets (per account and per egress identity), the accounts'
//! circuits, and one access token per account (encrypted, like the account's
//! other credentials). See migration `…_shared_api_budget`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::AccountId;
use secrecy::SecretString;
use sqlx::{PgConnection, PgPool, Row};

use crate::StoreError;
use crate::crypto::CredentialCipher;

/// What the budgets said about one more request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetAnswer {
    /// How long until the account's budget has room (zero: taken).
    pub account_wait: Duration,
    /// How long until the egress's budget has room (zero: taken).
    pub egress_wait: Duration,
    /// The account's circuit is open this long more (nothing was taken).
    pub circuit_open: Option<Duration>,
}

impl BudgetAnswer {
    pub fn granted(&self) -> bool {
        self.circuit_open.is_none() && self.account_wait.is_zero() && self.egress_wait.is_zero()
    }
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Takes one request from the account's budget (`account_limit` per
/// `window`) and the egress's (`egress_limit` per `window`), both or neither.
///
/// An account whose configuration (`channel_configs`, the version in force)
/// sets `rateLimit.maxRequestsPerMinute` gets the lower of that rate, over
/// `rate_window` (Hostaway's 10 s), and `account_limit`: read here, in the
/// same statement, so every replica applies a change from its next request.
pub async fn take_budget(
    pool: &PgPool,
    account: &AccountId,
    egress: &str,
    account_limit: u32,
    egress_limit: u32,
    window: Duration,
    rate_window: Duration,
) -> Result<BudgetAnswer, StoreError> {
    let row = sqlx::query(
        "SELECT account_wait_ms, egress_wait_ms, circuit_open_ms
         FROM take_api_budget($1, $2,
             LEAST($3, coalesce(
                 (SELECT greatest(1, (c.config #>> '{rateLimit,maxRequestsPerMinute}')::bigint * $6 / 60)::int
                  FROM channel_configs c WHERE c.hostaway_account_id = $1
                  ORDER BY c.version DESC LIMIT 1),
                 $3)),
             $4, $5)",
    )
    .bind(account.as_str())
    .bind(egress)
    .bind(i32::try_from(account_limit).unwrap_or(i32::MAX))
    .bind(i32::try_from(egress_limit).unwrap_or(i32::MAX))
    .bind(window)
    .bind(i64::try_from(rate_window.as_secs()).unwrap_or(10).max(1))
    .fetch_one(pool)
    .await?;
    Ok(BudgetAnswer {
        account_wait: millis(row.try_get("account_wait_ms")?),
        egress_wait: millis(row.try_get("egress_wait_ms")?),
        circuit_open: row
            .try_get::<Option<i64>, _>("circuit_open_ms")?
            .map(millis),
    })
}

/// Requests taken from a budget in the last `window` (for reports and tests).
pub async fn taken_in_window(
    pool: &PgPool,
    scope_account: bool,
    key: &str,
    window: Duration,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM api_budget_calls
         WHERE scope = $1 AND key = $2 AND at > clock_timestamp() - $3",
    )
    .bind(if scope_account { "a" } else { "e" })
    .bind(key)
    .bind(window)
    .fetch_one(pool)
    .await?)
}

/// Opens the account's circuit for every replica for `open_for` (never
/// shortening one already open longer).
pub async fn open_circuit(
    pool: &PgPool,
    account: &AccountId,
    open_for: Duration,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_circuits (hostaway_account_id, open_until) VALUES ($1, clock_timestamp() + $2)
         ON CONFLICT (hostaway_account_id) DO UPDATE
         SET open_until = greatest(api_circuits.open_until, excluded.open_until), opened_at = now()",
    )
    .bind(account.as_str())
    .bind(open_for)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn close_circuit(pool: &PgPool, account: &AccountId) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM api_circuits WHERE hostaway_account_id = $1")
        .bind(account.as_str())
        .execute(pool)
        .await?;
    Ok(())
}

/// An account's shared access token, decrypted.
#[derive(Debug, Clone)]
pub struct StoredToken {
    pub secret: SecretString,
    pub key_fingerprint: Option<[u8; 32]>,
    pub usable_from: DateTime<Utc>,
    pub refresh_at: DateTime<Utc>,
}

const TOKEN_FIELD: &str = "api_token";

fn context(account: &AccountId) -> String {
    format!("{account}/{TOKEN_FIELD}")
}

/// The account's stored token, if any (one that no longer decrypts is none).
pub async fn load_token(
    conn: &mut PgConnection,
    cipher: &CredentialCipher,
    account: &AccountId,
) -> Result<Option<StoredToken>, StoreError> {
    let row = sqlx::query(
        "SELECT encrypted_token, key_fingerprint, usable_from, refresh_at
         FROM api_tokens WHERE hostaway_account_id = $1",
    )
    .bind(account.as_str())
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let encrypted: String = row.try_get("encrypted_token")?;
    let Ok(secret) = cipher.decrypt(&context(account), &encrypted) else {
        return Ok(None);
    };
    let key: Option<Vec<u8>> = row.try_get("key_fingerprint")?;
    Ok(Some(StoredToken {
        secret,
        key_fingerprint: key.and_then(|k| k.try_into().ok()),
        usable_from: row.try_get("usable_from")?,
        refresh_at: row.try_get("refresh_at")?,
    }))
}

/// Serialises the refresh of one account's token across replicas until the
/// transaction ends.
pub async fn lock_token(conn: &mut PgConnection, account: &AccountId) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('api-token:' || $1, 0))")
        .bind(account.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn save_token(
    conn: &mut PgConnection,
    cipher: &CredentialCipher,
    account: &AccountId,
    token: &StoredToken,
    token_fingerprint: [u8; 32],
) -> Result<(), StoreError> {
    let encrypted = cipher.encrypt(&context(account), &token.secret)?;
    sqlx::query(
        "INSERT INTO api_tokens (hostaway_account_id, encrypted_token, token_fingerprint,
             key_fingerprint, usable_from, refresh_at)
         SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM channels WHERE hostaway_account_id = $1)
         ON CONFLICT (hostaway_account_id) DO UPDATE SET encrypted_token = excluded.encrypted_token,
             token_fingerprint = excluded.token_fingerprint, key_fingerprint = excluded.key_fingerprint,
             usable_from = excluded.usable_from, refresh_at = excluded.refresh_at, minted_at = now()",
    )
    .bind(account.as_str())
    .bind(encrypted)
    .bind(token_fingerprint.as_slice())
    .bind(token.key_fingerprint.map(|k| k.to_vec()))
    .bind(token.usable_from)
    .bind(token.refresh_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets the stored token if it is the one with `token_fingerprint`.
pub async fn forget_token(
    pool: &PgPool,
    account: &AccountId,
    token_fingerprint: [u8; 32],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM api_tokens WHERE hostaway_account_id = $1 AND token_fingerprint = $2")
        .bind(account.as_str())
        .bind(token_fingerprint.as_slice())
        .execute(pool)
        .await?;
    Ok(())
}

/// Tokens minted so far (the table's rows: one per account at most).
pub async fn stored_tokens(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM api_tokens")
        .fetch_one(pool)
        .await?)
}

/// An account's circuit (open until, if open) and the requests it took from
/// its budget within the last `window`: for operators.
pub async fn account_state(
    pool: &PgPool,
    account: &AccountId,
    window: std::time::Duration,
) -> Result<(Option<DateTime<Utc>>, i64), StoreError> {
    Ok(sqlx::query_as(
        "SELECT (SELECT open_until FROM api_circuits
                 WHERE hostaway_account_id = $1 AND open_until > clock_timestamp()),
                (SELECT count(*) FROM api_budget_calls
                 WHERE scope = 'a' AND key = $1 AND at > clock_timestamp() - $2)",
    )
    .bind(account.as_str())
    .bind(window)
    .fetch_one(pool)
    .await?)
}
