//! `webhook_log`: one row per webhook id with what became of it.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::StoreError;

#[derive(Debug, Clone)]
pub struct WebhookMeta<'a> {
    pub webhook_id: &'a str,
    pub account: &'a str,
    pub event: &'a str,
    pub object_id: Option<&'a str>,
    pub source: &'a str,
    pub received_at: DateTime<Utc>,
}

/// What the log knew about a webhook before this delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prior {
    /// First time this webhook id is seen.
    New,
    /// Already processed: this delivery is a repeat.
    Processed,
    /// Seen before and not finished (retrying or dead-lettered).
    Unfinished { status: String, attempts: i32 },
}

/// Records this delivery (inside the processing transaction) and says what
/// came before, in one statement. The upsert takes the row's lock: a
/// redelivery racing this one waits until this transaction ends, then sees its
/// outcome (the row returned is the latest committed one).
pub async fn begin(conn: &mut PgConnection, meta: &WebhookMeta<'_>) -> Result<Prior, StoreError> {
    let row = sqlx::query(
        "INSERT INTO webhook_log (webhook_id, hostaway_account_id, event, object_id, source, received_at, status)
         VALUES ($1, $2, $3, $4, $5, $6, 'processing')
         ON CONFLICT (webhook_id) DO UPDATE SET deliveries = webhook_log.deliveries + 1,
             object_id = COALESCE(webhook_log.object_id, EXCLUDED.object_id), updated_at = now()
         RETURNING (xmax = 0) AS inserted, status, attempts",
    )
    .bind(meta.webhook_id)
    .bind(meta.account)
    .bind(meta.event)
    .bind(meta.object_id)
    .bind(meta.source)
    .bind(meta.received_at)
    .fetch_one(&mut *conn)
    .await?;
    if row.try_get::<bool, _>("inserted")? {
        return Ok(Prior::New);
    }
    let status: String = row.try_get("status")?;
    Ok(match status.as_str() {
        "processed" => Prior::Processed,
        _ => Prior::Unfinished {
            status,
            attempts: row.try_get("attempts")?,
        },
    })
}

pub async fn finish(
    conn: &mut PgConnection,
    webhook_id: &str,
    outcome: &str,
    booking: Option<Uuid>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE webhook_log SET status = 'processed', outcome = $2, booking_id = COALESCE($3, booking_id),
             error = NULL, processed_at = now(), updated_at = now()
         WHERE webhook_id = $1",
    )
    .bind(webhook_id)
    .bind(outcome)
    .bind(booking)
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts one failed attempt (outside the rolled-back processing transaction)
/// and returns the attempts so far: 1 again after a dead letter (a replay, or
/// Hostaway sending it anew, starts a fresh set). `None` when the webhook was
/// processed meanwhile (a redelivery that raced this one won): nothing to retry.
pub async fn record_failure(
    pool: &PgPool,
    meta: &WebhookMeta<'_>,
    error: &str,
) -> Result<Option<i32>, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO webhook_log (webhook_id, hostaway_account_id, event, object_id, source, received_at,
                                  status, attempts, error)
         VALUES ($1, $2, $3, $4, $5, $6, 'retrying', 1, $7)
         ON CONFLICT (webhook_id) DO UPDATE SET
             status = 'retrying',
             attempts = CASE WHEN webhook_log.status = 'dead_lettered' THEN 1 ELSE webhook_log.attempts + 1 END,
             object_id = COALESCE(webhook_log.object_id, EXCLUDED.object_id),
             error = EXCLUDED.error, updated_at = now()
         WHERE webhook_log.status <> 'processed'
         RETURNING attempts",
    )
    .bind(meta.webhook_id)
    .bind(meta.account)
    .bind(meta.event)
    .bind(meta.object_id)
    .bind(meta.source)
    .bind(meta.received_at)
    .bind(error)
    .fetch_optional(pool)
    .await?)
}

pub async fn mark_dead_lettered(
    conn: &mut PgConnection,
    webhook_id: &str,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE webhook_log SET status = 'dead_lettered', error = $2, updated_at = now() WHERE webhook_id = $1",
    )
    .bind(webhook_id)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WebhookLogView {
    pub webhook_id: String,
    pub hostaway_account_id: String,
    pub event: String,
    pub object_id: Option<String>,
    pub status: String,
    pub outcome: Option<String>,
    pub attempts: i32,
    pub deliveries: i32,
    pub error: Option<String>,
}

/// Deletes processed entries older than `age`. Repeats older than that are
/// still harmless: the version rule makes them stale.
pub async fn purge_processed(pool: &PgPool, age: std::time::Duration) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "DELETE FROM webhook_log WHERE status = 'processed' AND processed_at < now() - $1",
    )
    .bind(age)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

pub async fn list(pool: &PgPool, limit: i64) -> Result<Vec<WebhookLogView>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT webhook_id, hostaway_account_id, event, object_id, status, outcome, attempts, deliveries, error
         FROM webhook_log ORDER BY first_seen_at DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
