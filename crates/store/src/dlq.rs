//! The specification's `dead_letter_queue` table. Every row also exists as a
//! message on the DLQ stream; the table is what operators query and replay from.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::StoreError;

#[derive(Debug, Clone)]
pub struct NewDeadLetter {
    pub job_id: String,
    pub job_name: String,
    pub data: Value,
    pub payload: Vec<u8>,
    pub attempts: i32,
    pub error_kind: String,
    pub error_message: String,
    pub stream_sequence: Option<u64>,
}

pub async fn insert(conn: &mut PgConnection, letter: &NewDeadLetter) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO dead_letter_queue (id, job_id, job_name, data, payload, attempts, error, stream_sequence)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(&letter.job_id)
    .bind(&letter.job_name)
    .bind(&letter.data)
    .bind(&letter.payload)
    .bind(letter.attempts)
    .bind(serde_json::json!({"kind": letter.error_kind, "message": letter.error_message}))
    .bind(letter.stream_sequence.and_then(|s| i64::try_from(s).ok()))
    .execute(conn)
    .await?;
    Ok(id)
}

/// Records a failure that repeats an open letter (the same job failing for
/// the same kind of reason) on that letter, counting the repeats in
/// `data.repeats`, so that a listing that fails every run leaves one letter
/// to read, not one per run; otherwise inserts it. Returns the letter's id.
pub async fn insert_or_refresh(
    conn: &mut PgConnection,
    letter: &NewDeadLetter,
) -> Result<Uuid, StoreError> {
    let refreshed: Option<Uuid> = sqlx::query_scalar(
        "UPDATE dead_letter_queue SET
             failed_at = now(), payload = $4, attempts = $5,
             error = jsonb_build_object('kind', $6::text, 'message', $7::text),
             stream_sequence = $8,
             data = $3 || jsonb_build_object('repeats', coalesce((data->>'repeats')::int, 1) + 1)
         WHERE id = (SELECT id FROM dead_letter_queue
                     WHERE job_id = $1 AND job_name = $2 AND resolved_at IS NULL
                       AND error->>'kind' = $6
                     ORDER BY failed_at DESC LIMIT 1)
         RETURNING id",
    )
    .bind(&letter.job_id)
    .bind(&letter.job_name)
    .bind(&letter.data)
    .bind(&letter.payload)
    .bind(letter.attempts)
    .bind(&letter.error_kind)
    .bind(&letter.error_message)
    .bind(letter.stream_sequence.and_then(|s| i64::try_from(s).ok()))
    .fetch_optional(&mut *conn)
    .await?;
    match refreshed {
        Some(id) => Ok(id),
        None => insert(conn, letter).await,
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeadLetter {
    pub id: Uuid,
    pub job_id: String,
    pub job_name: String,
    pub data: Value,
    pub payload: Vec<u8>,
    pub failed_at: DateTime<Utc>,
    pub attempts: i32,
    pub error: Value,
    pub stream_sequence: Option<i64>,
    pub replayed_at: Option<DateTime<Utc>>,
    pub replay_count: i32,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Which dead letters an operator means. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub account: Option<String>,
    /// A prefix of the job name: `webhook`, `webhook:reservation.updated`, `sync`…
    pub kind: Option<String>,
    /// `error.kind`, exactly.
    pub reason: Option<String>,
    pub failed_after: Option<DateTime<Utc>>,
    pub failed_before: Option<DateTime<Utc>>,
    pub include_resolved: bool,
}

pub async fn list_filtered(
    pool: &PgPool,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<DeadLetter>, StoreError> {
    // The kind is a prefix: its LIKE metacharacters are matched literally.
    let kind = filter.kind.as_ref().map(|k| {
        format!(
            "{}%",
            k.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    Ok(sqlx::query_as(
        "SELECT id, job_id, job_name, data, payload, failed_at, attempts, error, stream_sequence,
                replayed_at, replay_count, resolved_at
         FROM dead_letter_queue
         WHERE ($1 OR resolved_at IS NULL)
           AND ($2::text IS NULL OR data->>'accountId' = $2)
           AND ($3::text IS NULL OR job_name LIKE $3)
           AND ($4::text IS NULL OR error->>'kind' = $4)
           AND ($5::timestamptz IS NULL OR failed_at >= $5)
           AND ($6::timestamptz IS NULL OR failed_at < $6)
         ORDER BY failed_at LIMIT $7",
    )
    .bind(filter.include_resolved)
    .bind(&filter.account)
    .bind(kind)
    .bind(&filter.reason)
    .bind(filter.failed_after)
    .bind(filter.failed_before)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<DeadLetter>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, job_id, job_name, data, payload, failed_at, attempts, error, stream_sequence,
                replayed_at, replay_count, resolved_at
         FROM dead_letter_queue WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Notes a replay; returns the replay number (1 for the first).
pub async fn mark_replayed(pool: &PgPool, id: Uuid) -> Result<i32, StoreError> {
    let count: Option<i32> = sqlx::query_scalar(
        "UPDATE dead_letter_queue SET replayed_at = now(), replay_count = replay_count + 1
         WHERE id = $1 RETURNING replay_count",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    count.ok_or_else(|| StoreError::NotFound(format!("dead letter {id}")))
}

/// Closes the dead letters of a webhook that has now been processed.
pub async fn resolve_for_job(conn: &mut PgConnection, job_id: &str) -> Result<u64, StoreError> {
    let result =
        sqlx::query("UPDATE dead_letter_queue SET resolved_at = now() WHERE job_id = $1 AND resolved_at IS NULL")
            .bind(job_id)
            .execute(conn)
            .await?;
    Ok(result.rows_affected())
}

/// Closes one dead letter by hand (an operator dealt with it otherwise);
/// false when it was already closed.
pub async fn resolve(pool: &PgPool, id: Uuid) -> Result<bool, StoreError> {
    let exists: Option<bool> = sqlx::query_scalar(
        "WITH closed AS (
             UPDATE dead_letter_queue SET resolved_at = now()
             WHERE id = $1 AND resolved_at IS NULL RETURNING id)
         SELECT EXISTS (SELECT 1 FROM closed) FROM dead_letter_queue WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    exists.ok_or_else(|| StoreError::NotFound(format!("dead letter {id}")))
}

/// Deletes dead letters resolved longer than `age` ago: they may hold guest
/// data (a reservation's payload), kept no longer than needed.
pub async fn purge_resolved(pool: &PgPool, age: std::time::Duration) -> Result<u64, StoreError> {
    let result = sqlx::query("DELETE FROM dead_letter_queue WHERE resolved_at < now() - $1")
        .bind(age)
        .execute(pool)
        .await?;
    Ok(result.rows_affected())
}

/// Deletes resolved dead letters that failed before `before` (an operator's
/// purge; open letters are never purged).
pub async fn purge_resolved_before(
    pool: &PgPool,
    before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "DELETE FROM dead_letter_queue WHERE resolved_at IS NOT NULL AND failed_at < $1",
    )
    .bind(before)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// Open dead letters of one account.
pub async fn count_open_of(pool: &PgPool, account: &str) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM dead_letter_queue WHERE resolved_at IS NULL AND data->>'accountId' = $1",
    )
    .bind(account)
    .fetch_one(pool)
    .await?)
}

/// Open dead letters by kind of error, for the gauge.
pub async fn count_open_by_kind(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT coalesce(error->>'kind', 'unknown'), count(*) FROM dead_letter_queue
         WHERE resolved_at IS NULL GROUP BY 1",
    )
    .fetch_all(pool)
    .await?)
}

pub async fn count_open(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM dead_letter_queue WHERE resolved_at IS NULL")
            .fetch_one(pool)
            .await?,
    )
}
