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

/// Binds what every new `webhook_log` row starts with as $1…$6: webhook id,
/// account, event, object id, source, received at.
fn bind_meta<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    meta: &WebhookMeta<'q>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(meta.webhook_id)
        .bind(meta.account)
        .bind(meta.event)
        .bind(meta.object_id)
        .bind(meta.source)
        .bind(meta.received_at)
}

fn bind_meta_scalar<'q, O>(
    query: sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    meta: &WebhookMeta<'q>,
) -> sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    query
        .bind(meta.webhook_id)
        .bind(meta.account)
        .bind(meta.event)
        .bind(meta.object_id)
        .bind(meta.source)
        .bind(meta.received_at)
}

/// What the log knew about a webhook before this delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prior {
    /// First time this webhook id is seen.
    New,
    /// Already processed: this delivery is a repeat.
    Processed,
    /// Seen before and not finished (retrying, parked or dead-lettered).
    Unfinished { status: String, attempts: i32 },
}

/// Records this delivery (inside the processing transaction) and says what
/// came before, in one statement. The upsert takes the row's lock: a
/// redelivery racing this one waits until this transaction ends, then sees its
/// outcome (the row returned is the latest committed one).
pub async fn begin(conn: &mut PgConnection, meta: &WebhookMeta<'_>) -> Result<Prior, StoreError> {
    let row = bind_meta(
        sqlx::query(
            "INSERT INTO webhook_log (webhook_id, hostaway_account_id, event, object_id, source, received_at, status)
             VALUES ($1, $2, $3, $4, $5, $6, 'processing')
             ON CONFLICT (webhook_id) DO UPDATE SET deliveries = webhook_log.deliveries + 1,
                 object_id = COALESCE(webhook_log.object_id, EXCLUDED.object_id), updated_at = now()
             RETURNING (xmax = 0) AS inserted, status, attempts",
        ),
        meta,
    )
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

/// [`begin`] for several webhooks in one statement, rows taken in webhook id
/// order (two batches sharing ids lock them in the same order). Returns what
/// came before each, in the order of `metas`. Ids must be distinct.
pub async fn begin_many(
    conn: &mut PgConnection,
    metas: &[WebhookMeta<'_>],
) -> Result<Vec<Prior>, StoreError> {
    let mut ordered: Vec<&WebhookMeta<'_>> = metas.iter().collect();
    ordered.sort_by_key(|meta| meta.webhook_id);
    let rows = sqlx::query(
        "INSERT INTO webhook_log (webhook_id, hostaway_account_id, event, object_id, source, received_at, status)
         SELECT id, account, event, object_id, source, received_at, 'processing'
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
              AS t(id, account, event, object_id, source, received_at)
         ON CONFLICT (webhook_id) DO UPDATE SET deliveries = webhook_log.deliveries + 1,
             object_id = COALESCE(webhook_log.object_id, EXCLUDED.object_id), updated_at = now()
         RETURNING webhook_id, (xmax = 0) AS inserted, status, attempts",
    )
    .bind(ordered.iter().map(|m| m.webhook_id).collect::<Vec<_>>())
    .bind(ordered.iter().map(|m| m.account).collect::<Vec<_>>())
    .bind(ordered.iter().map(|m| m.event).collect::<Vec<_>>())
    .bind(ordered.iter().map(|m| m.object_id).collect::<Vec<_>>())
    .bind(ordered.iter().map(|m| m.source).collect::<Vec<_>>())
    .bind(ordered.iter().map(|m| m.received_at).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    let mut priors = std::collections::HashMap::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get("webhook_id")?;
        let prior = if row.try_get::<bool, _>("inserted")? {
            Prior::New
        } else {
            let status: String = row.try_get("status")?;
            match status.as_str() {
                "processed" => Prior::Processed,
                _ => Prior::Unfinished {
                    status,
                    attempts: row.try_get("attempts")?,
                },
            }
        };
        priors.insert(id, prior);
    }
    metas
        .iter()
        .map(|meta| {
            priors.remove(meta.webhook_id).ok_or_else(|| {
                StoreError::Invalid(format!("webhook {} was not logged", meta.webhook_id))
            })
        })
        .collect()
}

/// What [`finish_many`] writes for one webhook.
#[derive(Debug, Clone)]
pub struct Finished<'a> {
    pub webhook_id: &'a str,
    pub outcome: &'a str,
    pub booking: Option<Uuid>,
    pub adjustments: Option<String>,
}

/// [`finish`] for several webhooks in one statement.
pub async fn finish_many(
    conn: &mut PgConnection,
    finished: &[Finished<'_>],
) -> Result<(), StoreError> {
    if finished.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE webhook_log l SET status = 'processed', outcome = f.outcome,
             booking_id = COALESCE(f.booking, l.booking_id), error = NULL,
             adjustments = f.adjustments, processed_at = now(), updated_at = now()
         FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[]) AS f(id, outcome, booking, adjustments)
         WHERE l.webhook_id = f.id AND l.webhook_id = ANY($1)",
    )
    .bind(finished.iter().map(|f| f.webhook_id).collect::<Vec<_>>())
    .bind(finished.iter().map(|f| f.outcome).collect::<Vec<_>>())
    .bind(finished.iter().map(|f| f.booking).collect::<Vec<_>>())
    .bind(
        finished
            .iter()
            .map(|f| f.adjustments.as_deref())
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the webhook processed with its outcome and what the mapping had to
/// adjust (`None`: nothing).
pub async fn finish(
    conn: &mut PgConnection,
    webhook_id: &str,
    outcome: &str,
    booking: Option<Uuid>,
    adjustments: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE webhook_log SET status = 'processed', outcome = $2, booking_id = COALESCE($3, booking_id),
             error = NULL, adjustments = $4, processed_at = now(), updated_at = now()
         WHERE webhook_id = $1",
    )
    .bind(webhook_id)
    .bind(outcome)
    .bind(booking)
    .bind(adjustments)
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts one statement or lock timeout of a webhook (outside its rolled-back
/// transaction); returns the timeouts so far, `None` when it was processed
/// meanwhile.
pub async fn record_timeout(
    pool: &PgPool,
    meta: &WebhookMeta<'_>,
) -> Result<Option<i32>, StoreError> {
    Ok(bind_meta_scalar(
        sqlx::query_scalar(
            "INSERT INTO webhook_log (webhook_id, hostaway_account_id, event, object_id, source, received_at,
                                      status, timeouts)
             VALUES ($1, $2, $3, $4, $5, $6, 'retrying', 1)
             ON CONFLICT (webhook_id) DO UPDATE SET timeouts = webhook_log.timeouts + 1, updated_at = now()
             WHERE webhook_log.status <> 'processed'
             RETURNING timeouts",
        ),
        meta,
    )
    .fetch_optional(pool)
    .await?)
}

/// Notes that the webhook waits in `parked_webhooks`.
pub async fn mark_parked(
    conn: &mut PgConnection,
    meta: &WebhookMeta<'_>,
    error: &str,
) -> Result<(), StoreError> {
    bind_meta(
        sqlx::query(
            "INSERT INTO webhook_log (webhook_id, hostaway_account_id, event, object_id, source, received_at,
                                      status, error)
             VALUES ($1, $2, $3, $4, $5, $6, 'parked', $7)
             ON CONFLICT (webhook_id) DO UPDATE SET status = 'parked', error = EXCLUDED.error,
                 object_id = COALESCE(webhook_log.object_id, EXCLUDED.object_id), updated_at = now()
             WHERE webhook_log.status <> 'processed'",
        ),
        meta,
    )
    .bind(error)
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
    Ok(bind_meta_scalar(
        sqlx::query_scalar(
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
        ),
        meta,
    )
    .bind(error)
    .fetch_optional(pool)
    .await?)
}

/// Records that the webhook went to the dead-letter queue (a row is made if
/// it never had one: a webhook refused before any attempt is logged too).
pub async fn mark_dead_lettered(
    conn: &mut PgConnection,
    meta: &WebhookMeta<'_>,
    error: &str,
) -> Result<(), StoreError> {
    bind_meta(
        sqlx::query(
            "INSERT INTO webhook_log (webhook_id, hostaway_account_id, event, object_id, source, received_at,
                                      status, error)
             VALUES ($1, $2, $3, $4, $5, $6, 'dead_lettered', $7)
             ON CONFLICT (webhook_id) DO UPDATE SET status = 'dead_lettered', error = EXCLUDED.error,
                 timeouts = 0,
                 object_id = COALESCE(webhook_log.object_id, EXCLUDED.object_id), updated_at = now()",
        ),
        meta,
    )
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
    pub adjustments: Option<String>,
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
        "SELECT webhook_id, hostaway_account_id, event, object_id, status, outcome, attempts, deliveries,
                error, adjustments
         FROM webhook_log ORDER BY first_seen_at DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
