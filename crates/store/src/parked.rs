//! `parked_webhooks`: webhooks that cannot be applied yet but will be, once
//! something else happens. Hostaway's first webhook of a reservation can lag
//! its updates by minutes and a listing may be linked after its first
//! booking arrives, so waiting webhooks are kept here, in PostgreSQL, rather
//! than held unacknowledged by JetStream (where thousands of them would fill
//! the consumer's ack window and stall every other webhook).
//!
//! A parked webhook is released (published again by the ingestor) when its
//! retry falls due, and at once when what it waits for happens: its
//! reservation's booking is created ([`wake_reservation`]), its listing is
//! linked or its account enabled ([`wake_ready`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::{AccountId, ListingId};
use sqlx::{PgConnection, PgPool, Row};

use crate::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkReason {
    /// A partial payload of a reservation with no booking yet.
    IncompletePayload,
    /// A reservation on a listing no TVL unit is linked to.
    ListingNotLinked,
    /// The account is disabled in the connector.
    AccountDisabled,
}

impl ParkReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            ParkReason::IncompletePayload => "incomplete_payload",
            ParkReason::ListingNotLinked => "listing_not_linked",
            ParkReason::AccountDisabled => "account_disabled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            ParkReason::IncompletePayload,
            ParkReason::ListingNotLinked,
            ParkReason::AccountDisabled,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }
}

/// A webhook to park.
#[derive(Debug, Clone)]
pub struct NewParked<'a> {
    pub webhook_id: &'a str,
    pub account: &'a str,
    pub reason: ParkReason,
    pub reservation_id: Option<&'a str>,
    pub listing_id: Option<&'a str>,
    pub event: &'a str,
    pub subject: &'a str,
    pub payload: &'a [u8],
    pub error: &'a str,
}

/// What parking did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parking {
    /// Parked; released again after `due_in` (`None`: only when what it waits
    /// for happens). `retries`: releases that found it still waiting.
    Parked {
        retries: i32,
        due_in: Option<Duration>,
    },
    /// A repeat delivery of a webhook already parked: its release time stands.
    AlreadyParked,
    /// Another copy of the webhook was applied meanwhile: nothing to park.
    AlreadyApplied,
    /// Every retry of `schedule` was spent: dead-letter it (the row is gone).
    Exhausted { retries: i32 },
}

/// Parks `webhook`, or parks it again after a release found it still
/// waiting: the n-th release comes `schedule[n]` after the n-th parking. An
/// account-disabled webhook has no schedule: it waits for the account.
pub async fn park(
    conn: &mut PgConnection,
    webhook: &NewParked<'_>,
    schedule: &[Duration],
) -> Result<Parking, StoreError> {
    // Another copy of the same webhook may have been applied meanwhile (a
    // repeat, a poll of the same content): nothing is left to wait for.
    let processed: Option<bool> = sqlx::query_scalar(
        "SELECT status = 'processed' FROM webhook_log WHERE webhook_id = $1 FOR UPDATE",
    )
    .bind(webhook.webhook_id)
    .fetch_optional(&mut *conn)
    .await?;
    if processed == Some(true) {
        remove(conn, webhook.webhook_id).await?;
        return Ok(Parking::AlreadyApplied);
    }
    let prior = sqlx::query(
        "SELECT retries, claimed_until IS NOT NULL AS released FROM parked_webhooks
         WHERE webhook_id = $1 FOR UPDATE",
    )
    .bind(webhook.webhook_id)
    .fetch_optional(&mut *conn)
    .await?;
    let retries = match &prior {
        None => 0,
        Some(row) if row.try_get::<bool, _>("released")? => row.try_get::<i32, _>("retries")? + 1,
        // Hostaway repeated it while it waited: nothing to count or move.
        Some(_) => return Ok(Parking::AlreadyParked),
    };
    let mut due_in = match webhook.reason {
        ParkReason::AccountDisabled => None,
        _ => match schedule.get(usize::try_from(retries).unwrap_or(usize::MAX)) {
            Some(delay) => Some(*delay),
            None => {
                remove(conn, webhook.webhook_id).await?;
                return Ok(Parking::Exhausted { retries });
            }
        },
    };
    if webhook.reason == ParkReason::IncompletePayload
        && let Some(reservation) = webhook.reservation_id
    {
        // The booking may have been created between this webhook's rolled
        // back attempt and now; its creation woke the parked rows it saw,
        // not this one. Serialised with it by the reservation's lock.
        crate::bookings::lock_reservation_key(conn, webhook.account, reservation).await?;
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM bookings WHERE hostaway_account_id = $1 AND external_id = $2)",
        )
        .bind(webhook.account)
        .bind(reservation)
        .fetch_one(&mut *conn)
        .await?;
        if exists {
            due_in = Some(Duration::ZERO);
        }
    }
    sqlx::query(
        "INSERT INTO parked_webhooks (webhook_id, hostaway_account_id, reason, reservation_id,
             listing_id, event, subject, payload, retries, due_at, last_error)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + $10, $11)
         ON CONFLICT (webhook_id) DO UPDATE SET reason = EXCLUDED.reason,
             reservation_id = EXCLUDED.reservation_id, listing_id = EXCLUDED.listing_id,
             retries = EXCLUDED.retries, due_at = EXCLUDED.due_at, claimed_until = NULL,
             last_error = EXCLUDED.last_error",
    )
    .bind(webhook.webhook_id)
    .bind(webhook.account)
    .bind(webhook.reason.as_str())
    .bind(webhook.reservation_id)
    .bind(webhook.listing_id)
    .bind(webhook.event)
    .bind(webhook.subject)
    .bind(webhook.payload)
    .bind(retries)
    .bind(due_in)
    .bind(webhook.error)
    .execute(&mut *conn)
    .await?;
    Ok(Parking::Parked { retries, due_in })
}

/// The webhook was applied (or dead-lettered): it waits no more.
pub async fn remove(conn: &mut PgConnection, webhook_id: &str) -> Result<bool, StoreError> {
    let result = sqlx::query("DELETE FROM parked_webhooks WHERE webhook_id = $1")
        .bind(webhook_id)
        .execute(conn)
        .await?;
    Ok(result.rows_affected() > 0)
}

/// [`remove`] for several webhooks in one statement.
pub async fn remove_many(conn: &mut PgConnection, webhook_ids: &[&str]) -> Result<(), StoreError> {
    if webhook_ids.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM parked_webhooks WHERE webhook_id = ANY($1)")
        .bind(webhook_ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// A parked webhook to publish again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub webhook_id: String,
    pub reason: String,
    pub subject: String,
    pub payload: Vec<u8>,
    /// Identifies this release: its `Nats-Msg-Id` is made of it, so a
    /// release published twice (a claim that expired) is deduplicated.
    pub release_key: String,
}

/// Claims up to `limit` parked webhooks that are due, oldest first, for
/// `claim_for`: the caller publishes them; the claim lasts until the webhook
/// is parked again or applied, or the claim expires (a publish that failed, or
/// a message lost), when it is published again. Replicas claiming at once
/// take disjoint rows.
pub async fn claim_due(
    pool: &PgPool,
    limit: i64,
    claim_for: Duration,
) -> Result<Vec<Release>, StoreError> {
    let rows = sqlx::query(
        "UPDATE parked_webhooks SET claimed_until = now() + $2
         WHERE webhook_id IN (
             SELECT webhook_id FROM parked_webhooks
             WHERE due_at <= now() AND (claimed_until IS NULL OR claimed_until < now())
             ORDER BY due_at, parked_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING webhook_id, reason, subject, payload,
                   retries || '-' || floor(extract(epoch FROM parked_at) * 1000)::bigint AS release_key",
    )
    .bind(limit)
    .bind(claim_for)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Release {
                webhook_id: row.try_get("webhook_id")?,
                reason: row.try_get("reason")?,
                subject: row.try_get("subject")?,
                payload: row.try_get("payload")?,
                release_key: row.try_get("release_key")?,
            })
        })
        .collect()
}

/// A booking of the reservation now exists: its parked partial payloads are
/// due at once (inside the transaction that created it).
pub async fn wake_reservation(
    conn: &mut PgConnection,
    account: &AccountId,
    reservation: &str,
) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "UPDATE parked_webhooks SET due_at = now()
         WHERE hostaway_account_id = $1 AND reservation_id = $2
           AND reason = 'incomplete_payload' AND due_at > now()",
    )
    .bind(account.as_str())
    .bind(reservation)
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

/// [`wake_reservation`] for several reservations (of any accounts) in one
/// statement.
pub async fn wake_reservations(
    conn: &mut PgConnection,
    keys: &[(&AccountId, &str)],
) -> Result<u64, StoreError> {
    if keys.is_empty() {
        return Ok(0);
    }
    let result = sqlx::query(
        "UPDATE parked_webhooks p SET due_at = now()
         FROM unnest($1::text[], $2::text[]) AS k(account, reservation)
         WHERE p.hostaway_account_id = k.account AND p.reservation_id = k.reservation
           AND p.reservation_id = ANY($2) AND p.reason = 'incomplete_payload' AND p.due_at > now()",
    )
    .bind(keys.iter().map(|k| k.0.as_str()).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

/// Makes due at once what no longer needs to wait: parked webhooks whose
/// listing is now linked or whose account is enabled again, and the open
/// `listing_not_linked` dead letters of linked listings, which are parked
/// again (their letters resolved, saying so). Limited to one account (and
/// listing) when given. Returns how many webhooks were woken.
pub async fn wake_ready(
    conn: &mut PgConnection,
    account: Option<&AccountId>,
    listing: Option<&ListingId>,
) -> Result<u64, StoreError> {
    let account = account.map(AccountId::as_str);
    let listing = listing.map(ListingId::as_str);
    let requeued = sqlx::query(
        "WITH moved AS (
             UPDATE dead_letter_queue q
             SET resolved_at = now(),
                 data = q.data || jsonb_build_object('resolution', 'parked again: its listing is now linked')
             FROM listing_links l
             WHERE q.resolved_at IS NULL AND q.error->>'kind' = 'listing_not_linked'
               AND q.job_name LIKE 'webhook:%' AND q.data ? 'subject' AND q.data ? 'listingId'
               AND l.hostaway_account_id = q.data->>'accountId'
               AND l.hostaway_listing_id = q.data->>'listingId'
               AND ($1::text IS NULL OR l.hostaway_account_id = $1)
               AND ($2::text IS NULL OR l.hostaway_listing_id = $2)
             RETURNING q.job_id, q.data, q.payload, q.failed_at)
         INSERT INTO parked_webhooks (webhook_id, hostaway_account_id, reason, reservation_id,
             listing_id, event, subject, payload, due_at, last_error)
         SELECT DISTINCT ON (job_id)
                job_id, data->>'accountId', 'listing_not_linked', data->>'objectId',
                data->>'listingId', coalesce(data->>'event', 'reservation.updated'),
                data->>'subject', payload, now(), 'requeued from the dead-letter queue'
         FROM moved
         ORDER BY job_id, failed_at DESC
         ON CONFLICT (webhook_id) DO UPDATE SET due_at = now(), claimed_until = NULL",
    )
    .bind(account)
    .bind(listing)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let woken = sqlx::query(
        "UPDATE parked_webhooks p SET due_at = now()
         WHERE (p.due_at IS NULL OR p.due_at > now())
           AND ($1::text IS NULL OR p.hostaway_account_id = $1)
           AND ($2::text IS NULL OR p.listing_id = $2)
           AND ((p.reason = 'listing_not_linked' AND EXISTS (
                    SELECT 1 FROM listing_links l
                    WHERE l.hostaway_account_id = p.hostaway_account_id
                      AND l.hostaway_listing_id = p.listing_id))
                OR (p.reason = 'account_disabled' AND EXISTS (
                    SELECT 1 FROM channels c
                    WHERE c.hostaway_account_id = p.hostaway_account_id AND c.enabled)))",
    )
    .bind(account)
    .bind(listing)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(requeued + woken)
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ParkedView {
    pub webhook_id: String,
    pub hostaway_account_id: String,
    pub reason: String,
    pub reservation_id: Option<String>,
    pub listing_id: Option<String>,
    pub event: String,
    pub retries: i32,
    pub parked_at: DateTime<Utc>,
    pub due_at: Option<DateTime<Utc>>,
    pub last_error: String,
}

pub async fn list(pool: &PgPool, limit: i64) -> Result<Vec<ParkedView>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT webhook_id, hostaway_account_id, reason, reservation_id, listing_id, event,
                retries, parked_at, due_at, last_error
         FROM parked_webhooks ORDER BY parked_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Parked webhooks by reason, for the gauge.
pub async fn count_by_reason(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT reason, count(*) FROM parked_webhooks GROUP BY reason")
            .fetch_all(pool)
            .await?,
    )
}
