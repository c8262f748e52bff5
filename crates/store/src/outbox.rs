//! The transactional outbox: events are written with the state change they
//! describe and published after the commit.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxEvent {
    /// The event id, also the `Nats-Msg-Id`.
    pub id: Uuid,
    /// Below the events prefix, e.g. `booking.created`.
    pub subject_suffix: String,
    pub payload: Vec<u8>,
}

/// Writes the event; false when an event with its id is already there (an
/// event whose id is derived from its content was written before).
pub async fn enqueue(conn: &mut PgConnection, event: &OutboxEvent) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO outbox (id, subject_suffix, payload) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(event.id)
    .bind(&event.subject_suffix)
    .bind(&event.payload)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// [`enqueue`] for several events in one statement; returns the ids of the
/// events that were new.
pub async fn enqueue_many(
    conn: &mut PgConnection,
    events: &[&OutboxEvent],
) -> Result<std::collections::HashSet<Uuid>, StoreError> {
    if events.is_empty() {
        return Ok(std::collections::HashSet::new());
    }
    let fresh: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO outbox (id, subject_suffix, payload)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[])
         ON CONFLICT (id) DO NOTHING
         RETURNING id",
    )
    .bind(events.iter().map(|e| e.id).collect::<Vec<_>>())
    .bind(
        events
            .iter()
            .map(|e| e.subject_suffix.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        events
            .iter()
            .map(|e| e.payload.as_slice())
            .collect::<Vec<_>>(),
    )
    .fetch_all(conn)
    .await?;
    Ok(fresh.into_iter().collect())
}

pub async fn mark_published(pool: &PgPool, ids: &[Uuid]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE outbox SET published_at = now() WHERE id = ANY($1) AND published_at IS NULL",
    )
    .bind(ids)
    .execute(pool)
    .await?;
    Ok(())
}

/// Unpublished events older than `min_age`, locked for this transaction so
/// replicas sweeping at once do not publish the same rows.
pub async fn claim_unpublished(
    conn: &mut PgConnection,
    min_age: Duration,
    limit: i64,
) -> Result<Vec<OutboxEvent>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, subject_suffix, payload FROM outbox
         WHERE published_at IS NULL AND created_at < now() - $1
         ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(min_age)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

pub async fn mark_published_in(conn: &mut PgConnection, ids: &[Uuid]) -> Result<(), StoreError> {
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes published events older than `age`.
pub async fn purge_published(pool: &PgPool, age: Duration) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < now() - $1",
    )
    .bind(age)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

pub async fn count_unpublished(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(pool)
            .await?,
    )
}
