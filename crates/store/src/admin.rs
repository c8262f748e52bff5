//! The operations API's bearer tokens and audit trail.
//!
//! A token is shown once, when issued; only its SHA-256 is stored. Tokens
//! carry 256 random bits, so a plain hash cannot be reversed by guessing, and
//! a call finds its token with one indexed lookup.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AdminToken {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

pub async fn insert_token(
    pool: &PgPool,
    id: Uuid,
    name: &str,
    role: &str,
    token_sha256: &[u8; 32],
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO admin_tokens (id, name, role, token_sha256) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(name)
        .bind(role)
        .bind(token_sha256.as_slice())
        .execute(pool)
        .await?;
    Ok(())
}

/// The live token with this hash, marked used now.
pub async fn use_token(
    pool: &PgPool,
    token_sha256: &[u8; 32],
) -> Result<Option<AdminToken>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE admin_tokens SET last_used_at = now()
         WHERE token_sha256 = $1 AND revoked_at IS NULL
         RETURNING id, name, role, created_at, revoked_at, last_used_at",
    )
    .bind(token_sha256.as_slice())
    .fetch_optional(pool)
    .await?)
}

/// Revokes a token by id; false if there is no such live token.
pub async fn revoke_token(pool: &PgPool, id: Uuid) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE admin_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn list_tokens(pool: &PgPool) -> Result<Vec<AdminToken>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, name, role, created_at, revoked_at, last_used_at FROM admin_tokens
         ORDER BY created_at",
    )
    .fetch_all(pool)
    .await?)
}

/// One audited call.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub token_id: Option<Uuid>,
    pub actor: String,
    pub role: String,
    pub method: String,
    pub account_id: Option<String>,
    pub outcome: String,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct NewAuditEntry<'a> {
    pub token_id: Option<Uuid>,
    pub actor: &'a str,
    pub role: &'a str,
    pub method: &'a str,
    pub account_id: Option<&'a str>,
    pub outcome: &'a str,
    pub detail: serde_json::Value,
}

pub async fn audit(pool: &PgPool, entry: &NewAuditEntry<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO admin_audit (token_id, actor, role, method, account_id, outcome, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(entry.token_id)
    .bind(entry.actor)
    .bind(entry.role)
    .bind(entry.method)
    .bind(entry.account_id)
    .bind(entry.outcome)
    .bind(&entry.detail)
    .execute(pool)
    .await?;
    Ok(())
}

/// Audit entries, newest first, optionally of one account or since an instant.
pub async fn audit_entries(
    pool: &PgPool,
    account: Option<&str>,
    since: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<AuditEntry>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, at, token_id, actor, role, method, account_id, outcome, detail FROM admin_audit
         WHERE ($1::text IS NULL OR account_id = $1) AND ($2::timestamptz IS NULL OR at >= $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(account)
    .bind(since)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
