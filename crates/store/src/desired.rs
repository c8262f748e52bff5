//! What TVL wants: the desired calendar (per unit and day) and listing details
//! (per unit and field), each field kept at its newest change by
//! [`ChangeStamp`]. Applying a change twice, or an older change after a newer
//! one, changes nothing.

use chrono::NaiveDate;
use domain::{ChangeStamp, Currency, SyncKind, UnitId};
use serde_json::Value;
use sqlx::{PgConnection, Row};

use crate::StoreError;

/// Days `[start, end]` (both included) of a unit set to the values given;
/// `None` leaves that field as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailabilityChange {
    pub unit: UnitId,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub available: Option<bool>,
    pub min_stay: Option<i32>,
    pub max_stay: Option<i32>,
    pub stamp: ChangeStamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceChange {
    pub unit: UnitId,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub price_minor: i64,
    pub currency: Currency,
    pub stamp: ChangeStamp,
}

/// Listing fields by their Hostaway names, with the JSON Hostaway takes.
#[derive(Debug, Clone, PartialEq)]
pub struct ListingChange {
    pub unit: UnitId,
    pub fields: Vec<(String, Value)>,
    pub stamp: ChangeStamp,
}

/// Applies an availability change; returns the days whose desired state moved.
pub async fn apply_availability(
    conn: &mut PgConnection,
    change: &AvailabilityChange,
) -> Result<u64, StoreError> {
    let moved = apply_calendar_batch(conn, &[change], &[]).await?;
    Ok(moved.iter().map(|(_, _, days)| days).sum())
}

/// Applies a price change; returns the days whose desired price moved.
pub async fn apply_price(conn: &mut PgConnection, change: &PriceChange) -> Result<u64, StoreError> {
    let moved = apply_calendar_batch(conn, &[], &[change]).await?;
    Ok(moved.iter().map(|(_, _, days)| days).sum())
}

/// Applies listing details; returns the fields whose desired value moved.
pub async fn apply_listing(
    conn: &mut PgConnection,
    change: &ListingChange,
) -> Result<u64, StoreError> {
    let (fields, values): (Vec<&str>, Vec<&Value>) = change
        .fields
        .iter()
        .map(|(field, value)| (field.as_str(), value))
        .unzip();
    let result = sqlx::query(
        "INSERT INTO desired_listing AS d (unit_id, field, value, stamp)
         SELECT $1, f, v, $4 FROM unnest($2::text[], $3::jsonb[]) AS t(f, v)
         ON CONFLICT (unit_id, field) DO UPDATE SET
             value = excluded.value, stamp = excluded.stamp, updated_at = now()
         WHERE excluded.stamp > d.stamp",
    )
    .bind(change.unit.as_uuid())
    .bind(fields)
    .bind(values)
    .bind(change.stamp.as_bytes())
    .execute(&mut *conn)
    .await?;
    bump(conn, change.unit, SyncKind::Listing, result.rows_affected()).await
}

/// The newest of one field of one day among a batch of changes.
type Newest<T> = Option<(T, Vec<u8>)>;

fn keep_newest<T: Copy>(slot: &mut Newest<T>, value: Option<T>, stamp: &[u8]) {
    if let Some(value) = value
        && slot
            .as_ref()
            .is_none_or(|(_, have)| stamp > have.as_slice())
    {
        *slot = Some((value, stamp.to_vec()));
    }
}

fn split<T: Copy>(slot: &Newest<T>) -> (Option<T>, Option<Vec<u8>>) {
    match slot {
        Some((value, stamp)) => (Some(*value), Some(stamp.clone())),
        None => (None, None),
    }
}

#[derive(Default)]
struct WantedDay {
    available: Newest<bool>,
    min_stay: Newest<i32>,
    max_stay: Newest<i32>,
    price: Newest<(i64, Currency)>,
}

/// Several changes in one go, with the outcome of applying them one by one
/// in any order: per unit and day, the newest value of each field among
/// them is written where it is newer than what is stored. One statement for
/// every row, in (unit, day) order, so that concurrent batches wait for each
/// other but never deadlock. Returns the days whose desired state moved, per
/// unit and kind (whose revisions are bumped).
pub async fn apply_calendar_batch(
    conn: &mut PgConnection,
    availability: &[&AvailabilityChange],
    prices: &[&PriceChange],
) -> Result<Vec<(UnitId, SyncKind, u64)>, StoreError> {
    use std::collections::BTreeMap;
    let mut days: BTreeMap<(UnitId, NaiveDate), WantedDay> = BTreeMap::new();
    for change in availability {
        let stamp = change.stamp.as_bytes();
        for day in change.start.iter_days().take_while(|d| *d <= change.end) {
            let slot = days.entry((change.unit, day)).or_default();
            keep_newest(&mut slot.available, change.available, stamp);
            keep_newest(&mut slot.min_stay, change.min_stay, stamp);
            keep_newest(&mut slot.max_stay, change.max_stay, stamp);
        }
    }
    for change in prices {
        let stamp = change.stamp.as_bytes();
        for day in change.start.iter_days().take_while(|d| *d <= change.end) {
            let slot = days.entry((change.unit, day)).or_default();
            keep_newest(
                &mut slot.price,
                Some((change.price_minor, change.currency)),
                stamp,
            );
        }
    }
    if days.is_empty() {
        return Ok(Vec::new());
    }
    let n = days.len();
    let (mut units, mut dates) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut available, mut available_stamp) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut min_stay, mut min_stay_stamp) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut max_stay, mut max_stay_stamp) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut price, mut currency, mut price_stamp) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for ((unit, day), slot) in &days {
        units.push(unit.as_uuid());
        dates.push(*day);
        let (value, stamp) = split(&slot.available);
        available.push(value);
        available_stamp.push(stamp);
        let (value, stamp) = split(&slot.min_stay);
        min_stay.push(value);
        min_stay_stamp.push(stamp);
        let (value, stamp) = split(&slot.max_stay);
        max_stay.push(value);
        max_stay_stamp.push(stamp);
        let (value, stamp) = split(&slot.price);
        price.push(value.map(|(amount, _)| amount));
        currency.push(value.map(|(_, c)| c.as_str().to_owned()));
        price_stamp.push(stamp);
    }
    // A field moved where the row now holds this batch's stamp for it
    // (stamps end with the change id: no other change has them).
    let rows: Vec<(uuid::Uuid, i64, i64)> = sqlx::query_as(
        "WITH input AS (
             SELECT * FROM unnest($1::uuid[], $2::date[], $3::boolean[], $4::bytea[],
                                  $5::integer[], $6::bytea[], $7::integer[], $8::bytea[],
                                  $9::bigint[], $10::text[], $11::bytea[])
                 AS i(unit_id, day, available, available_stamp, min_stay, min_stay_stamp,
                      max_stay, max_stay_stamp, price_minor, currency, price_stamp)
         ),
         moved AS (
             INSERT INTO desired_calendar AS d
                 (unit_id, day, available, available_stamp, min_stay, min_stay_stamp,
                  max_stay, max_stay_stamp, price_minor, currency, price_stamp)
             SELECT * FROM input
             ON CONFLICT (unit_id, day) DO UPDATE SET
                 available = CASE WHEN excluded.available_stamp > coalesce(d.available_stamp, '') THEN excluded.available ELSE d.available END,
                 available_stamp = CASE WHEN excluded.available_stamp > coalesce(d.available_stamp, '') THEN excluded.available_stamp ELSE d.available_stamp END,
                 min_stay = CASE WHEN excluded.min_stay_stamp > coalesce(d.min_stay_stamp, '') THEN excluded.min_stay ELSE d.min_stay END,
                 min_stay_stamp = CASE WHEN excluded.min_stay_stamp > coalesce(d.min_stay_stamp, '') THEN excluded.min_stay_stamp ELSE d.min_stay_stamp END,
                 max_stay = CASE WHEN excluded.max_stay_stamp > coalesce(d.max_stay_stamp, '') THEN excluded.max_stay ELSE d.max_stay END,
                 max_stay_stamp = CASE WHEN excluded.max_stay_stamp > coalesce(d.max_stay_stamp, '') THEN excluded.max_stay_stamp ELSE d.max_stay_stamp END,
                 price_minor = CASE WHEN excluded.price_stamp > coalesce(d.price_stamp, '') THEN excluded.price_minor ELSE d.price_minor END,
                 currency = CASE WHEN excluded.price_stamp > coalesce(d.price_stamp, '') THEN excluded.currency ELSE d.currency END,
                 price_stamp = CASE WHEN excluded.price_stamp > coalesce(d.price_stamp, '') THEN excluded.price_stamp ELSE d.price_stamp END,
                 updated_at = now()
             WHERE excluded.available_stamp > coalesce(d.available_stamp, '')
                OR excluded.min_stay_stamp > coalesce(d.min_stay_stamp, '')
                OR excluded.max_stay_stamp > coalesce(d.max_stay_stamp, '')
                OR excluded.price_stamp > coalesce(d.price_stamp, '')
             RETURNING d.unit_id, d.day, d.available_stamp, d.min_stay_stamp, d.max_stay_stamp, d.price_stamp
         )
         SELECT m.unit_id,
                count(*) FILTER (WHERE m.available_stamp = i.available_stamp
                                    OR m.min_stay_stamp = i.min_stay_stamp
                                    OR m.max_stay_stamp = i.max_stay_stamp),
                count(*) FILTER (WHERE m.price_stamp = i.price_stamp)
         FROM moved m JOIN input i USING (unit_id, day)
         GROUP BY m.unit_id ORDER BY m.unit_id",
    )
    .bind(&units)
    .bind(&dates)
    .bind(&available)
    .bind(&available_stamp)
    .bind(&min_stay)
    .bind(&min_stay_stamp)
    .bind(&max_stay)
    .bind(&max_stay_stamp)
    .bind(&price)
    .bind(&currency)
    .bind(&price_stamp)
    .fetch_all(&mut *conn)
    .await?;
    let mut moved = Vec::new();
    for (unit, availability_days, price_days) in rows {
        let unit = UnitId::from_uuid(unit);
        if availability_days > 0 {
            moved.push((unit, SyncKind::Availability, availability_days as u64));
        }
        if price_days > 0 {
            moved.push((unit, SyncKind::Pricing, price_days as u64));
        }
    }
    // Revisions in (kind, unit) order.
    for kind in [SyncKind::Availability, SyncKind::Pricing] {
        let units: Vec<uuid::Uuid> = moved
            .iter()
            .filter(|(_, k, _)| *k == kind)
            .map(|(unit, _, _)| unit.as_uuid())
            .collect();
        if units.is_empty() {
            continue;
        }
        sqlx::query(
            "INSERT INTO desired_revisions (unit_id, kind, revision)
             SELECT unnest($1::uuid[]), $2, 1
             ON CONFLICT (unit_id, kind) DO UPDATE
             SET revision = desired_revisions.revision + 1, changed_at = now()",
        )
        .bind(&units)
        .bind(kind.as_str())
        .execute(&mut *conn)
        .await?;
    }
    Ok(moved)
}

async fn bump(
    conn: &mut PgConnection,
    unit: UnitId,
    kind: SyncKind,
    changed: u64,
) -> Result<u64, StoreError> {
    if changed > 0 {
        sqlx::query(
            "INSERT INTO desired_revisions (unit_id, kind, revision) VALUES ($1, $2, 1)
             ON CONFLICT (unit_id, kind) DO UPDATE
             SET revision = desired_revisions.revision + 1, changed_at = now()",
        )
        .bind(unit.as_uuid())
        .bind(kind.as_str())
        .execute(conn)
        .await?;
    }
    Ok(changed)
}

/// The revision of a unit's desired state of `kind`, and how long ago it last
/// changed (0 when it never did).
pub async fn revision(
    conn: &mut PgConnection,
    unit: UnitId,
    kind: SyncKind,
) -> Result<(i64, Option<std::time::Duration>), StoreError> {
    let row = sqlx::query(
        "SELECT revision, greatest(extract(epoch FROM now() - changed_at), 0)::float8 AS age
         FROM desired_revisions WHERE unit_id = $1 AND kind = $2",
    )
    .bind(unit.as_uuid())
    .bind(kind.as_str())
    .fetch_optional(conn)
    .await?;
    match row {
        Some(row) => Ok((
            row.try_get("revision")?,
            Some(std::time::Duration::from_secs_f64(row.try_get("age")?)),
        )),
        None => Ok((0, None)),
    }
}

/// One day of a listing's calendar: what TVL wants beside what Hostaway has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarDay {
    pub day: NaiveDate,
    pub desired_available: Option<bool>,
    pub desired_min_stay: Option<i32>,
    pub desired_max_stay: Option<i32>,
    pub desired_price_minor: Option<i64>,
    pub desired_currency: Option<String>,
    pub remote_available: Option<bool>,
    pub remote_min_stay: Option<i32>,
    pub remote_max_stay: Option<i32>,
    pub remote_price_minor: Option<i64>,
    pub reserved: bool,
}

/// The unit's desired days from `from` on, each with what the connector knows
/// the Hostaway listing has. A night is reserved if Hostaway showed it so
/// when last read, or if a booking of that listing ingested since holds it
/// (a push must not reopen a night a guest has taken meanwhile).
pub async fn calendar(
    conn: &mut PgConnection,
    unit: UnitId,
    account: &str,
    listing: &str,
    from: NaiveDate,
) -> Result<Vec<CalendarDay>, StoreError> {
    let rows = sqlx::query(
        "SELECT d.day, d.available, d.min_stay, d.max_stay, d.price_minor, d.currency,
                r.available AS r_available, r.min_stay AS r_min_stay, r.max_stay AS r_max_stay,
                r.price_minor AS r_price_minor,
                coalesce(r.reserved, false) OR EXISTS (
                    SELECT 1 FROM availability_blocks b JOIN bookings k ON k.id = b.booking_id
                    WHERE b.unit_id = d.unit_id AND k.hostaway_account_id = $2
                      AND k.hostaway_listing_id = $3
                      AND d.day >= b.start_date AND d.day < b.end_date) AS reserved
         FROM desired_calendar d
         LEFT JOIN remote_calendar r
           ON r.hostaway_account_id = $2 AND r.hostaway_listing_id = $3 AND r.day = d.day
         WHERE d.unit_id = $1 AND d.day >= $4
         ORDER BY d.day",
    )
    .bind(unit.as_uuid())
    .bind(account)
    .bind(listing)
    .bind(from)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(CalendarDay {
                day: row.try_get("day")?,
                desired_available: row.try_get("available")?,
                desired_min_stay: row.try_get("min_stay")?,
                desired_max_stay: row.try_get("max_stay")?,
                desired_price_minor: row.try_get("price_minor")?,
                desired_currency: row.try_get("currency")?,
                remote_available: row.try_get("r_available")?,
                remote_min_stay: row.try_get("r_min_stay")?,
                remote_max_stay: row.try_get("r_max_stay")?,
                remote_price_minor: row.try_get("r_price_minor")?,
                reserved: row.try_get("reserved")?,
            })
        })
        .collect()
}

/// The last desired day of a unit from `from` on (the horizon a calendar read
/// must cover).
pub async fn last_day(
    conn: &mut PgConnection,
    unit: UnitId,
    from: NaiveDate,
) -> Result<Option<NaiveDate>, StoreError> {
    Ok(
        sqlx::query_scalar(
            "SELECT max(day) FROM desired_calendar WHERE unit_id = $1 AND day >= $2",
        )
        .bind(unit.as_uuid())
        .bind(from)
        .fetch_one(conn)
        .await?,
    )
}

/// One listing field: what TVL wants beside what Hostaway has (if known).
#[derive(Debug, Clone, PartialEq)]
pub struct ListingField {
    pub field: String,
    pub desired: Value,
    pub remote: Option<Value>,
}

pub async fn listing(
    conn: &mut PgConnection,
    unit: UnitId,
    account: &str,
    listing: &str,
) -> Result<Vec<ListingField>, StoreError> {
    let rows = sqlx::query(
        "SELECT d.field, d.value, r.value AS remote
         FROM desired_listing d
         LEFT JOIN remote_listing r
           ON r.hostaway_account_id = $2 AND r.hostaway_listing_id = $3 AND r.field = d.field
         WHERE d.unit_id = $1 ORDER BY d.field",
    )
    .bind(unit.as_uuid())
    .bind(account)
    .bind(listing)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ListingField {
                field: row.try_get("field")?,
                desired: row.try_get("value")?,
                remote: row.try_get("remote")?,
            })
        })
        .collect()
}
