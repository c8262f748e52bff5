//! What Hostaway has, as far as the connector knows: written when Hostaway
//! accepted a push, and overwritten by what reconciliation reads back.

use chrono::{DateTime, NaiveDate, Utc};
use domain::Currency;
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Row};

use crate::StoreError;

/// A Hostaway listing of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListingRef<'a> {
    pub account: &'a str,
    pub listing: &'a str,
}

impl<'a> ListingRef<'a> {
    pub fn of(account: &'a domain::AccountId, listing: &'a domain::ListingId) -> Self {
        Self {
            account: account.as_str(),
            listing: listing.as_str(),
        }
    }
}

/// Days `[start, end]` set to the same values by one accepted interval.
/// `None` fields were not part of the push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedRange {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub available: Option<bool>,
    pub min_stay: Option<i32>,
    pub max_stay: Option<i32>,
    pub price_minor: Option<i64>,
}

/// Records ranges Hostaway accepted.
pub async fn record_pushed(
    pool: &PgPool,
    listing: ListingRef<'_>,
    ranges: &[PushedRange],
) -> Result<(), StoreError> {
    let starts: Vec<NaiveDate> = ranges.iter().map(|r| r.start).collect();
    let ends: Vec<NaiveDate> = ranges.iter().map(|r| r.end).collect();
    let available: Vec<Option<bool>> = ranges.iter().map(|r| r.available).collect();
    let min_stay: Vec<Option<i32>> = ranges.iter().map(|r| r.min_stay).collect();
    let max_stay: Vec<Option<i32>> = ranges.iter().map(|r| r.max_stay).collect();
    let price: Vec<Option<i64>> = ranges.iter().map(|r| r.price_minor).collect();
    sqlx::query(
        "INSERT INTO remote_calendar AS r
             (hostaway_account_id, hostaway_listing_id, day, available, min_stay, max_stay, price_minor, pushed_at)
         SELECT $1, $2, g::date, t.a, t.mn, t.mx, t.p, now()
         FROM unnest($3::date[], $4::date[], $5::boolean[], $6::integer[], $7::integer[], $8::bigint[])
              AS t(s, e, a, mn, mx, p),
              generate_series(t.s, t.e, interval '1 day') AS g
         ON CONFLICT (hostaway_account_id, hostaway_listing_id, day) DO UPDATE SET
             available = coalesce(excluded.available, r.available),
             min_stay = coalesce(excluded.min_stay, r.min_stay),
             max_stay = coalesce(excluded.max_stay, r.max_stay),
             price_minor = coalesce(excluded.price_minor, r.price_minor),
             pushed_at = now()",
    )
    .bind(listing.account)
    .bind(listing.listing)
    .bind(starts)
    .bind(ends)
    .bind(available)
    .bind(min_stay)
    .bind(max_stay)
    .bind(price)
    .execute(pool)
    .await?;
    Ok(())
}

/// A day as Hostaway showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadDay {
    pub day: NaiveDate,
    pub available: Option<bool>,
    pub min_stay: Option<i32>,
    pub max_stay: Option<i32>,
    pub price_minor: Option<i64>,
    pub reserved: bool,
}

/// The database's clock, which stamps `pushed_at`: taken before a read, it
/// tells which days were pushed while the read was under way.
pub async fn clock(pool: &PgPool) -> Result<DateTime<Utc>, StoreError> {
    Ok(sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(pool)
        .await?)
}

/// Replaces what the connector knows of these days with what Hostaway showed
/// in a read begun at `read_started` (see [`clock`]), except days pushed
/// since (the read may predate that push), and notes when the listing's
/// calendar was read.
pub async fn record_read_calendar(
    pool: &PgPool,
    listing: ListingRef<'_>,
    days: &[ReadDay],
    read_started: DateTime<Utc>,
) -> Result<(), StoreError> {
    let dates: Vec<NaiveDate> = days.iter().map(|d| d.day).collect();
    let available: Vec<Option<bool>> = days.iter().map(|d| d.available).collect();
    let min_stay: Vec<Option<i32>> = days.iter().map(|d| d.min_stay).collect();
    let max_stay: Vec<Option<i32>> = days.iter().map(|d| d.max_stay).collect();
    let price: Vec<Option<i64>> = days.iter().map(|d| d.price_minor).collect();
    let reserved: Vec<bool> = days.iter().map(|d| d.reserved).collect();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO remote_calendar AS r
             (hostaway_account_id, hostaway_listing_id, day, available, min_stay, max_stay, price_minor, reserved, read_at)
         SELECT $1, $2, t.d, t.a, t.mn, t.mx, t.p, t.res, now()
         FROM unnest($3::date[], $4::boolean[], $5::integer[], $6::integer[], $7::bigint[], $8::boolean[])
              AS t(d, a, mn, mx, p, res)
         ON CONFLICT (hostaway_account_id, hostaway_listing_id, day) DO UPDATE SET
             available = excluded.available, min_stay = excluded.min_stay,
             max_stay = excluded.max_stay, price_minor = excluded.price_minor,
             reserved = excluded.reserved, read_at = now()
         WHERE r.pushed_at IS NULL OR r.pushed_at < $9",
    )
    .bind(listing.account)
    .bind(listing.listing)
    .bind(dates)
    .bind(available)
    .bind(min_stay)
    .bind(max_stay)
    .bind(price)
    .bind(reserved)
    .bind(read_started)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO remote_listings (hostaway_account_id, hostaway_listing_id, calendar_read_at)
         VALUES ($1, $2, now())
         ON CONFLICT (hostaway_account_id, hostaway_listing_id) DO UPDATE SET calendar_read_at = now()",
    )
    .bind(listing.account)
    .bind(listing.listing)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What the connector knows about a listing itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListingFacts {
    pub currency: Option<Currency>,
    /// Units of a multi-unit listing; 0 for an ordinary one; `None` until the
    /// listing is read.
    pub units: Option<u32>,
    /// Seconds since the calendar was last read, if it ever was.
    pub calendar_read_secs_ago: Option<f64>,
}

impl ListingFacts {
    pub fn calendar_read_within(&self, window: std::time::Duration) -> bool {
        self.calendar_read_secs_ago
            .is_some_and(|ago| ago <= window.as_secs_f64())
    }
}

pub async fn facts(pool: &PgPool, listing: ListingRef<'_>) -> Result<ListingFacts, StoreError> {
    let row = sqlx::query(
        "SELECT currency, units, extract(epoch FROM now() - calendar_read_at)::float8 AS read_ago
         FROM remote_listings WHERE hostaway_account_id = $1 AND hostaway_listing_id = $2",
    )
    .bind(listing.account)
    .bind(listing.listing)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(ListingFacts::default());
    };
    let currency: Option<String> = row.try_get("currency")?;
    let units: Option<i32> = row.try_get("units")?;
    Ok(ListingFacts {
        // A code that no longer parses is treated as unknown: it is read again.
        currency: currency.and_then(|c| Currency::parse(c.trim()).ok()),
        units: units.and_then(|u| u32::try_from(u).ok()),
        calendar_read_secs_ago: row.try_get("read_ago")?,
    })
}

/// What one read of a listing says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingRead {
    pub listing: String,
    pub currency: Option<Currency>,
    /// Units of a multi-unit listing; 0 for an ordinary one.
    pub units: u32,
}

/// Notes a listing read: its currency, its units and the fields Hostaway showed.
pub async fn record_read_listing(
    pool: &PgPool,
    account: &str,
    read: &ListingRead,
    fields: &[(String, Option<Value>)],
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    upsert_reads(&mut tx, account, std::slice::from_ref(read)).await?;
    let listing = ListingRef {
        account,
        listing: &read.listing,
    };
    if !fields.is_empty() {
        let (names, values): (Vec<&str>, Vec<Option<&Value>>) = fields
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_ref()))
            .unzip();
        sqlx::query(
            "INSERT INTO remote_listing AS r (hostaway_account_id, hostaway_listing_id, field, value, read_at)
             SELECT $1, $2, f, v, now() FROM unnest($3::text[], $4::jsonb[]) AS t(f, v)
             ON CONFLICT (hostaway_account_id, hostaway_listing_id, field)
             DO UPDATE SET value = excluded.value, read_at = now()",
        )
        .bind(listing.account)
        .bind(listing.listing)
        .bind(names)
        .bind(values)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Notes what one page of `GET /listings` says of many listings of an
/// account at once (a hundred a page).
pub async fn record_listing_reads(
    pool: &PgPool,
    account: &str,
    reads: &[ListingRead],
) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    upsert_reads(&mut conn, account, reads).await
}

async fn upsert_reads(
    conn: &mut PgConnection,
    account: &str,
    reads: &[ListingRead],
) -> Result<(), StoreError> {
    let listings: Vec<&str> = reads.iter().map(|r| r.listing.as_str()).collect();
    let codes: Vec<Option<&str>> = reads
        .iter()
        .map(|r| r.currency.as_ref().map(Currency::as_str))
        .collect();
    let units: Vec<i32> = reads
        .iter()
        .map(|r| i32::try_from(r.units).unwrap_or(i32::MAX))
        .collect();
    sqlx::query(
        "INSERT INTO remote_listings (hostaway_account_id, hostaway_listing_id, currency, units, listing_read_at)
         SELECT $1, l, c, u, now() FROM unnest($2::text[], $3::text[], $4::int[]) AS t(l, c, u)
         ON CONFLICT (hostaway_account_id, hostaway_listing_id)
         DO UPDATE SET currency = excluded.currency, units = excluded.units, listing_read_at = now()",
    )
    .bind(account)
    .bind(listings)
    .bind(codes)
    .bind(units)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records listing fields Hostaway accepted.
pub async fn record_pushed_listing(
    pool: &PgPool,
    listing: ListingRef<'_>,
    fields: &[(String, Value)],
) -> Result<(), StoreError> {
    let (names, values): (Vec<&str>, Vec<&Value>) = fields
        .iter()
        .map(|(name, value)| (name.as_str(), value))
        .unzip();
    sqlx::query(
        "INSERT INTO remote_listing AS r (hostaway_account_id, hostaway_listing_id, field, value, pushed_at)
         SELECT $1, $2, f, v, now() FROM unnest($3::text[], $4::jsonb[]) AS t(f, v)
         ON CONFLICT (hostaway_account_id, hostaway_listing_id, field)
         DO UPDATE SET value = excluded.value, pushed_at = now()",
    )
    .bind(listing.account)
    .bind(listing.listing)
    .bind(names)
    .bind(values)
    .execute(pool)
    .await?;
    Ok(())
}
