//! Bookkeeping of the sync jobs: the lease that keeps two workers off one
//! listing, attempts of failures, the reconciliation slots claimed, and the
//! reservation polling cursors.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::{AccountId, ListingId, SyncKind, UnitId};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::StoreError;

/// What one job works on. Reservation polling is per account: its listing is
/// empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobKey {
    pub account: AccountId,
    pub listing: Option<ListingId>,
    pub kind: SyncKind,
}

impl JobKey {
    pub fn listing_str(&self) -> &str {
        self.listing.as_ref().map_or("", ListingId::as_str)
    }

    /// `availability:70001:300101`: the dead-letter job id.
    pub fn id(&self) -> String {
        format!("{}:{}:{}", self.kind, self.account, self.listing_str())
    }
}

/// A lease taken: what the job's row says of the runs before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leased {
    /// Failed attempts since the last success.
    pub attempts: i32,
    pub last_success_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Takes the job's lease for `ttl`, unless another holder's lease is still
/// running.
pub async fn acquire_lease(
    pool: &PgPool,
    key: &JobKey,
    holder: Uuid,
    ttl: Duration,
) -> Result<Option<Leased>, StoreError> {
    let row: Option<(i32, Option<chrono::DateTime<chrono::Utc>>)> = sqlx::query_as(
        "INSERT INTO sync_jobs (hostaway_account_id, hostaway_listing_id, kind, lease_holder, lease_until)
         VALUES ($1, $2, $3, $4, now() + $5 * interval '1 millisecond')
         ON CONFLICT (hostaway_account_id, hostaway_listing_id, kind) DO UPDATE SET
             lease_holder = excluded.lease_holder, lease_until = excluded.lease_until, updated_at = now()
         WHERE sync_jobs.lease_until IS NULL OR sync_jobs.lease_until < now()
            OR sync_jobs.lease_holder = excluded.lease_holder
         RETURNING attempts, last_success_at",
    )
    .bind(key.account.as_str())
    .bind(key.listing_str())
    .bind(key.kind.as_str())
    .bind(holder)
    .bind(ttl.as_millis() as f64)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(attempts, last_success_at)| Leased {
        attempts,
        last_success_at,
    }))
}

/// Extends a lease still held. False when it was lost (expired and taken).
pub async fn renew_lease(
    pool: &PgPool,
    key: &JobKey,
    holder: Uuid,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE sync_jobs SET lease_until = now() + $5 * interval '1 millisecond'
         WHERE hostaway_account_id = $1 AND hostaway_listing_id = $2 AND kind = $3 AND lease_holder = $4",
    )
    .bind(key.account.as_str())
    .bind(key.listing_str())
    .bind(key.kind.as_str())
    .bind(holder)
    .bind(ttl.as_millis() as f64)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// How a job ended, for its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd<'a> {
    Succeeded,
    /// A failure that counts as an attempt.
    Failed(&'a str),
    /// Not an attempt: the lease is simply given back (outage, open circuit,
    /// shutdown).
    Released,
}

/// Gives the lease back and records the outcome and the API calls made.
/// Returns the failed attempts since the last success.
pub async fn release(
    pool: &PgPool,
    key: &JobKey,
    holder: Uuid,
    end: JobEnd<'_>,
    calls: u32,
) -> Result<i32, StoreError> {
    let (success, failure) = match end {
        JobEnd::Succeeded => (true, None),
        JobEnd::Failed(error) => (false, Some(error)),
        JobEnd::Released => (false, None),
    };
    let attempts: Option<i32> = sqlx::query_scalar(
        "UPDATE sync_jobs SET
             lease_holder = NULL, lease_until = NULL, updated_at = now(),
             calls = calls + $7,
             attempts = CASE WHEN $5 THEN 0 WHEN $6::text IS NOT NULL THEN attempts + 1 ELSE attempts END,
             last_error = CASE WHEN $5 THEN NULL ELSE coalesce($6, last_error) END,
             last_success_at = CASE WHEN $5 THEN now() ELSE last_success_at END
         WHERE hostaway_account_id = $1 AND hostaway_listing_id = $2 AND kind = $3
           AND (lease_holder = $4 OR lease_holder IS NULL)
         RETURNING attempts",
    )
    .bind(key.account.as_str())
    .bind(key.listing_str())
    .bind(key.kind.as_str())
    .bind(holder)
    .bind(success)
    .bind(failure)
    .bind(i64::from(calls))
    .fetch_optional(pool)
    .await?;
    Ok(attempts.unwrap_or(0))
}

/// Clears a job's attempts (an operator replayed its dead letter).
pub async fn reset_attempts(pool: &PgPool, key: &JobKey) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE sync_jobs SET attempts = 0, updated_at = now()
         WHERE hostaway_account_id = $1 AND hostaway_listing_id = $2 AND kind = $3",
    )
    .bind(key.account.as_str())
    .bind(key.listing_str())
    .bind(key.kind.as_str())
    .execute(pool)
    .await?;
    Ok(())
}

/// A job's row, for operators and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub key: JobKey,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub calls: i64,
    pub leased: bool,
}

/// Every job's row, or one account's.
pub async fn list(pool: &PgPool, account: Option<&AccountId>) -> Result<Vec<JobRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT hostaway_account_id, hostaway_listing_id, kind, attempts, last_error,
                last_success_at, calls, (lease_until IS NOT NULL AND lease_until > now()) AS leased
         FROM sync_jobs WHERE $1::text IS NULL OR hostaway_account_id = $1
         ORDER BY hostaway_account_id, hostaway_listing_id, kind",
    )
    .bind(account.map(AccountId::as_str))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let account: String = row.try_get("hostaway_account_id")?;
            let listing: String = row.try_get("hostaway_listing_id")?;
            let kind: String = row.try_get("kind")?;
            Ok(JobRow {
                key: JobKey {
                    account: AccountId::parse(account)
                        .map_err(|e| StoreError::Invalid(e.to_string()))?,
                    listing: if listing.is_empty() {
                        None
                    } else {
                        Some(
                            ListingId::parse(listing)
                                .map_err(|e| StoreError::Invalid(e.to_string()))?,
                        )
                    },
                    kind: SyncKind::parse(&kind)
                        .ok_or_else(|| StoreError::Invalid(format!("sync kind {kind}")))?,
                },
                attempts: row.try_get("attempts")?,
                last_error: row.try_get("last_error")?,
                last_success_at: row.try_get("last_success_at")?,
                calls: row.try_get("calls")?,
                leased: row.try_get("leased")?,
            })
        })
        .collect()
}

/// Claims the run of `schedule` at `slot`: for exactly one caller per slot,
/// however many replicas ask, the number of runs claimed before it. A slot
/// claimed but not completed for `takeover_after` (its replica died) is
/// claimed again, keeping its run number (the same slice).
pub async fn claim_slot(
    pool: &PgPool,
    schedule: &str,
    slot: chrono::DateTime<chrono::Utc>,
    holder: Uuid,
    takeover_after: Duration,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO reconcile_slots (schedule, last_slot, claimed_by) VALUES ($1, $2, $3)
         ON CONFLICT (schedule) DO UPDATE
         SET last_slot = excluded.last_slot, claimed_by = excluded.claimed_by,
             claimed_at = now(), completed_at = NULL,
             runs = CASE WHEN reconcile_slots.last_slot < excluded.last_slot
                         THEN reconcile_slots.runs + 1 ELSE reconcile_slots.runs END
         WHERE reconcile_slots.last_slot < excluded.last_slot
            OR (reconcile_slots.last_slot = excluded.last_slot
                AND reconcile_slots.completed_at IS NULL
                AND reconcile_slots.claimed_at < now() - $4)
         RETURNING runs",
    )
    .bind(schedule)
    .bind(slot)
    .bind(holder)
    .bind(takeover_after)
    .fetch_optional(pool)
    .await?)
}

/// The slot's jobs are queued: nobody needs to take it over.
pub async fn complete_slot(
    pool: &PgPool,
    schedule: &str,
    slot: chrono::DateTime<chrono::Utc>,
    holder: Uuid,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE reconcile_slots SET completed_at = now()
         WHERE schedule = $1 AND last_slot = $2 AND claimed_by = $3",
    )
    .bind(schedule)
    .bind(slot)
    .bind(holder)
    .execute(pool)
    .await?;
    Ok(())
}

/// The Hostaway listings of several units at once (a batch of changes).
pub async fn listings_of_units(
    conn: &mut PgConnection,
    units: &[UnitId],
) -> Result<Vec<(UnitId, AccountId, ListingId)>, StoreError> {
    let ids: Vec<uuid::Uuid> = units.iter().map(UnitId::as_uuid).collect();
    let rows: Vec<(uuid::Uuid, String, String)> = sqlx::query_as(
        "SELECT l.unit_id, l.hostaway_account_id, l.hostaway_listing_id
         FROM listing_links l JOIN channels c USING (hostaway_account_id)
         WHERE l.unit_id = ANY($1) AND c.enabled
         ORDER BY 1, 2, 3",
    )
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(unit, account, listing)| {
            Ok((
                UnitId::from_uuid(unit),
                AccountId::parse(account).map_err(|e| StoreError::Invalid(e.to_string()))?,
                ListingId::parse(listing).map_err(|e| StoreError::Invalid(e.to_string()))?,
            ))
        })
        .collect()
}

/// Every linked listing of enabled accounts (what reconciliation walks).
pub async fn linked_listings(pool: &PgPool) -> Result<Vec<(AccountId, ListingId)>, StoreError> {
    linked_listings_of(pool, None).await
}

/// As [`linked_listings`], of one account only when given.
pub async fn linked_listings_of(
    pool: &PgPool,
    account: Option<&AccountId>,
) -> Result<Vec<(AccountId, ListingId)>, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT l.hostaway_account_id, l.hostaway_listing_id
         FROM listing_links l JOIN channels c USING (hostaway_account_id)
         WHERE c.enabled AND ($1::text IS NULL OR l.hostaway_account_id = $1) ORDER BY 1, 2",
    )
    .bind(account.map(AccountId::as_str))
    .fetch_all(pool)
    .await?;
    parse_pairs(rows)
}

/// Enabled accounts that have an API key (what reservation polling walks).
pub async fn accounts_with_api_key(pool: &PgPool) -> Result<Vec<AccountId>, StoreError> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT hostaway_account_id FROM channels
         WHERE enabled AND credentials ? 'encrypted_api_key' ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|a| AccountId::parse(a).map_err(|e| StoreError::Invalid(e.to_string())))
        .collect()
}

fn parse_pairs(rows: Vec<(String, String)>) -> Result<Vec<(AccountId, ListingId)>, StoreError> {
    rows.into_iter()
        .map(|(account, listing)| {
            Ok((
                AccountId::parse(account).map_err(|e| StoreError::Invalid(e.to_string()))?,
                ListingId::parse(listing).map_err(|e| StoreError::Invalid(e.to_string()))?,
            ))
        })
        .collect()
}

/// The latest `updatedOn` seen by reservation polling of an account.
pub async fn poll_cursor(pool: &PgPool, account: &AccountId) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT cursor FROM reservation_poll_cursors WHERE hostaway_account_id = $1",
    )
    .bind(account.as_str())
    .fetch_optional(pool)
    .await?)
}

/// Seconds since the enabled account polled least recently was last polled
/// successfully; an account never polled counts from its creation (`None`
/// while there is no enabled account).
pub async fn oldest_poll_age_secs(pool: &PgPool) -> Result<Option<f64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT extract(epoch FROM now() - min(coalesce(c.polled_at, ch.created_at)))::float8
         FROM channels ch
         LEFT JOIN reservation_poll_cursors c ON c.hostaway_account_id = ch.hostaway_account_id
         WHERE ch.enabled",
    )
    .fetch_one(pool)
    .await?)
}

/// Moves the cursor forward (never back).
pub async fn advance_poll_cursor(
    pool: &PgPool,
    account: &AccountId,
    cursor: &str,
    seen: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO reservation_poll_cursors (hostaway_account_id, cursor, reservations_seen)
         VALUES ($1, $2, $3)
         ON CONFLICT (hostaway_account_id) DO UPDATE SET
             cursor = greatest(reservation_poll_cursors.cursor, excluded.cursor),
             polled_at = now(),
             reservations_seen = reservation_poll_cursors.reservations_seen + excluded.reservations_seen",
    )
    .bind(account.as_str())
    .bind(cursor)
    .bind(i64::try_from(seen).unwrap_or(i64::MAX))
    .execute(pool)
    .await?;
    Ok(())
}

/// Asks for a reservation's complete record to be fetched from the API (the
/// ingestor met an incomplete payload of it). Inside the caller's
/// transaction; asking twice is asking once; false when nothing was asked
/// (already asked, or the account has no API key to fetch with).
pub async fn request_fetch(
    conn: &mut PgConnection,
    account: &AccountId,
    reservation: &str,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO reservation_fetches (hostaway_account_id, reservation_id)
         SELECT $1, $2 WHERE EXISTS (
             SELECT 1 FROM channels WHERE hostaway_account_id = $1 AND enabled
               AND credentials ? 'encrypted_api_key')
         ON CONFLICT DO NOTHING",
    )
    .bind(account.as_str())
    .bind(reservation)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// The account's reservations waiting to be fetched, oldest request first.
pub async fn pending_fetches(
    pool: &PgPool,
    account: &AccountId,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT reservation_id FROM reservation_fetches WHERE hostaway_account_id = $1
         ORDER BY requested_at LIMIT $2",
    )
    .bind(account.as_str())
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The reservation was fetched (and fed to the ingestor), or Hostaway does
/// not have it.
pub async fn fetch_done(
    pool: &PgPool,
    account: &AccountId,
    reservation: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM reservation_fetches WHERE hostaway_account_id = $1 AND reservation_id = $2",
    )
    .bind(account.as_str())
    .bind(reservation)
    .execute(pool)
    .await?;
    Ok(())
}
