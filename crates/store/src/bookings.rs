//! Bookings, their calendar blocks and double-booking detection. All of it runs
//! inside the ingestor's per-webhook transaction.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use domain::{
    AccountId, BlockKind, BookingId, BookingRecord, CalendarBlock, Currency, EXTERNAL_SOURCE,
    EventRank, Guest, ListingId, Money, Origin, ReservationId, ReservationStatus, StayDates,
    UnitId, Version,
};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::StoreError;

/// A booking as stored: TVL's ids plus the merged record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBooking {
    pub id: BookingId,
    pub unit: UnitId,
    pub record: BookingRecord,
    /// Bumped by every [`save`]; 0 for a booking not saved yet.
    pub revision: i64,
}

/// Serialises all work on one reservation across ingestor replicas until the
/// transaction ends.
pub async fn lock_reservation(
    conn: &mut PgConnection,
    account: &AccountId,
    reservation: &ReservationId,
) -> Result<(), StoreError> {
    lock_reservation_key(conn, account.as_str(), reservation.as_str()).await
}

/// The same lock as [`lock_reservation`], by the ids as text.
pub async fn lock_reservation_key(
    conn: &mut PgConnection,
    account: &str,
    reservation: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('reservation:' || $1 || '/' || $2, 0))",
    )
    .bind(account)
    .bind(reservation)
    .execute(conn)
    .await?;
    Ok(())
}

/// [`lock_reservation`] for several reservations, in one statement and in
/// one order (account, then reservation id) whoever asks: two batches never
/// wait on each other in a cycle.
pub async fn lock_reservations(
    conn: &mut PgConnection,
    keys: &[(&AccountId, &ReservationId)],
) -> Result<(), StoreError> {
    let mut keys: Vec<(&str, &str)> = keys
        .iter()
        .map(|(account, reservation)| (account.as_str(), reservation.as_str()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    // unnest yields its rows in array order, and the projection locks them
    // as they come.
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('reservation:' || a || '/' || r, 0))
         FROM unnest($1::text[], $2::text[]) AS t(a, r)",
    )
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// [`lock_unit`] for several units, in one statement and in unit id order.
pub async fn lock_units(conn: &mut PgConnection, units: &[UnitId]) -> Result<(), StoreError> {
    let mut units: Vec<Uuid> = units.iter().map(|u| u.as_uuid()).collect();
    units.sort_unstable();
    units.dedup();
    if units.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('unit:' || u::text, 0))
         FROM unnest($1::uuid[]) AS t(u)",
    )
    .bind(units)
    .execute(conn)
    .await?;
    Ok(())
}

/// Serialises block changes on one unit, so two bookings landing on the same
/// nights at the same moment still see each other.
pub async fn lock_unit(conn: &mut PgConnection, unit: UnitId) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('unit:' || $1::text, 0))")
        .bind(unit.as_uuid())
        .execute(conn)
        .await?;
    Ok(())
}

const BOOKING_COLUMNS: &str =
    "id, unit_id, hostaway_account_id, external_id, hostaway_listing_id, status,
    arrival_date, departure_date, guest_name, guest_first_name, guest_last_name, guest_email,
    guest_phone, number_of_guests, adults, children, infants, pets, total_amount_minor, currency,
    channel_id, channel_name, channel_reservation_id, confirmation_code, cancelled_by,
    cancelled_at, source_updated_at, version_terminal, version_latest_activity, version_origin,
    version_event, version_digest, revision";

/// The account's booking for a reservation. Bookings are keyed per account: a
/// webhook authenticated as one account never reaches another's bookings.
pub async fn find(
    conn: &mut PgConnection,
    account: &AccountId,
    reservation: &ReservationId,
) -> Result<Option<StoredBooking>, StoreError> {
    let sql = format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings
         WHERE external_source = $1 AND hostaway_account_id = $2 AND external_id = $3"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(EXTERNAL_SOURCE)
        .bind(account.as_str())
        .bind(reservation.as_str())
        .fetch_optional(conn)
        .await?;
    row.map(|r| from_row(&r)).transpose()
}

/// [`find`] for several reservations (of any accounts) in one statement:
/// the bookings that exist, keyed by account and reservation.
pub async fn find_many(
    conn: &mut PgConnection,
    keys: &[(&AccountId, &ReservationId)],
) -> Result<std::collections::HashMap<(AccountId, ReservationId), StoredBooking>, StoreError> {
    let sql = format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings
         WHERE external_source = $1
           AND (hostaway_account_id, external_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(EXTERNAL_SOURCE)
        .bind(keys.iter().map(|k| k.0.as_str()).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.1.as_str()).collect::<Vec<_>>())
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|row| {
            let booking = from_row(row)?;
            Ok((
                (
                    booking.record.account.clone(),
                    booking.record.reservation.clone(),
                ),
                booking,
            ))
        })
        .collect()
}

/// Where a page of [`changed_since`] ends: the next page starts after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangedCursor {
    pub updated_at: DateTime<Utc>,
    pub id: Uuid,
}

/// Bookings last changed at or after `since` (of one account, if given), in
/// the order they changed, a page of `limit` after `after`.
pub async fn changed_since(
    pool: &PgPool,
    since: DateTime<Utc>,
    account: Option<&AccountId>,
    after: Option<ChangedCursor>,
    limit: i64,
) -> Result<Vec<(StoredBooking, ChangedCursor)>, StoreError> {
    let sql = format!(
        "SELECT {BOOKING_COLUMNS}, updated_at FROM bookings
         WHERE external_source = $1 AND updated_at >= $2
           AND ($3::text IS NULL OR hostaway_account_id = $3)
           AND ($4::timestamptz IS NULL OR (updated_at, id) > ($4, $5))
         ORDER BY updated_at, id LIMIT $6"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(EXTERNAL_SOURCE)
        .bind(since)
        .bind(account.map(AccountId::as_str))
        .bind(after.map(|c| c.updated_at))
        .bind(after.map(|c| c.id))
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            let booking = from_row(row)?;
            let cursor = ChangedCursor {
                updated_at: row.try_get("updated_at")?,
                id: booking.id.as_uuid(),
            };
            Ok((booking, cursor))
        })
        .collect()
}

fn invalid(what: &str) -> impl Fn(String) -> StoreError + '_ {
    move |e| StoreError::Invalid(format!("stored booking has an invalid {what}: {e}"))
}

fn from_row(row: &PgRow) -> Result<StoredBooking, StoreError> {
    let arrival: NaiveDate = row.try_get("arrival_date")?;
    let departure: NaiveDate = row.try_get("departure_date")?;
    let stay = if arrival == departure {
        StayDates::zero_nights(arrival)
    } else {
        StayDates::new(arrival, departure)
    }
    .map_err(|e| invalid("stay")(e.to_string()))?;
    let total = match (
        row.try_get::<Option<i64>, _>("total_amount_minor")?,
        row.try_get::<Option<String>, _>("currency")?,
    ) {
        (Some(minor), Some(code)) => Some(
            Currency::parse(&code)
                .and_then(|c| Money::from_minor_units(minor, c))
                .map_err(|e| invalid("amount")(e.to_string()))?,
        ),
        _ => None,
    };
    let digest: Vec<u8> = row.try_get("version_digest")?;
    let event = match row.try_get::<i16, _>("version_event")? {
        0 => EventRank::Created,
        1 => EventRank::Updated,
        _ => EventRank::Cancelled,
    };
    let record = BookingRecord {
        account: AccountId::parse(row.try_get::<String, _>("hostaway_account_id")?)
            .map_err(|e| invalid("account")(e.to_string()))?,
        reservation: ReservationId::parse(row.try_get::<String, _>("external_id")?)
            .map_err(|e| invalid("external id")(e.to_string()))?,
        listing: ListingId::parse(row.try_get::<String, _>("hostaway_listing_id")?)
            .map_err(|e| invalid("listing")(e.to_string()))?,
        status: ReservationStatus::parse(&row.try_get::<String, _>("status")?),
        stay,
        guest: Guest {
            name: row.try_get("guest_name")?,
            first_name: row.try_get("guest_first_name")?,
            last_name: row.try_get("guest_last_name")?,
            email: row.try_get("guest_email")?,
            phone: row.try_get("guest_phone")?,
            number_of_guests: row.try_get("number_of_guests")?,
            adults: row.try_get("adults")?,
            children: row.try_get("children")?,
            infants: row.try_get("infants")?,
            pets: row.try_get("pets")?,
        },
        total,
        channel_id: row.try_get("channel_id")?,
        channel_name: row.try_get("channel_name")?,
        channel_reservation_id: row.try_get("channel_reservation_id")?,
        confirmation_code: row.try_get("confirmation_code")?,
        cancelled_by: row.try_get("cancelled_by")?,
        cancelled_at: row.try_get::<Option<NaiveDateTime>, _>("cancelled_at")?,
        version: Version {
            updated_at: row.try_get("source_updated_at")?,
            terminal: row.try_get("version_terminal")?,
            latest_activity: row.try_get("version_latest_activity")?,
            origin: match row.try_get::<i16, _>("version_origin")? {
                0 => Origin::Webhook,
                _ => Origin::ApiRead,
            },
            event,
            digest: digest
                .try_into()
                .map_err(|_| invalid("version digest")("not 32 bytes".into()))?,
        },
    };
    Ok(StoredBooking {
        id: BookingId::from_uuid(row.try_get("id")?),
        unit: UnitId::from_uuid(row.try_get("unit_id")?),
        record,
        revision: row.try_get("revision")?,
    })
}

/// Inserts a new booking or overwrites an existing one with `booking`'s state;
/// returns the booking's new revision.
pub async fn save(conn: &mut PgConnection, booking: &StoredBooking) -> Result<i64, StoreError> {
    let r = &booking.record;
    let revision = sqlx::query_scalar(
        "INSERT INTO bookings (id, external_source, external_id, hostaway_account_id, hostaway_listing_id,
             unit_id, status, arrival_date, departure_date, guest_name, guest_first_name, guest_last_name,
             guest_email, guest_phone, number_of_guests, adults, children, infants, pets,
             total_amount_minor, currency, channel_id, channel_name, channel_reservation_id,
             confirmation_code, cancelled_by, cancelled_at, source_updated_at, version_terminal,
             version_event, version_digest, version_latest_activity, version_origin)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
                 $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33)
         ON CONFLICT (id) DO UPDATE SET
             hostaway_listing_id = EXCLUDED.hostaway_listing_id, unit_id = EXCLUDED.unit_id,
             status = EXCLUDED.status, arrival_date = EXCLUDED.arrival_date,
             departure_date = EXCLUDED.departure_date, guest_name = EXCLUDED.guest_name,
             guest_first_name = EXCLUDED.guest_first_name, guest_last_name = EXCLUDED.guest_last_name,
             guest_email = EXCLUDED.guest_email, guest_phone = EXCLUDED.guest_phone,
             number_of_guests = EXCLUDED.number_of_guests, adults = EXCLUDED.adults,
             children = EXCLUDED.children, infants = EXCLUDED.infants, pets = EXCLUDED.pets,
             total_amount_minor = EXCLUDED.total_amount_minor, currency = EXCLUDED.currency,
             channel_id = EXCLUDED.channel_id, channel_name = EXCLUDED.channel_name,
             channel_reservation_id = EXCLUDED.channel_reservation_id,
             confirmation_code = EXCLUDED.confirmation_code, cancelled_by = EXCLUDED.cancelled_by,
             cancelled_at = EXCLUDED.cancelled_at, source_updated_at = EXCLUDED.source_updated_at,
             version_terminal = EXCLUDED.version_terminal, version_event = EXCLUDED.version_event,
             version_digest = EXCLUDED.version_digest,
             version_latest_activity = EXCLUDED.version_latest_activity,
             version_origin = EXCLUDED.version_origin, revision = bookings.revision + 1,
             updated_at = now()
         RETURNING revision",
    )
    .bind(booking.id.as_uuid())
    .bind(EXTERNAL_SOURCE)
    .bind(r.reservation.as_str())
    .bind(r.account.as_str())
    .bind(r.listing.as_str())
    .bind(booking.unit.as_uuid())
    .bind(r.status.as_str())
    .bind(r.stay.arrival())
    .bind(r.stay.departure())
    .bind(&r.guest.name)
    .bind(&r.guest.first_name)
    .bind(&r.guest.last_name)
    .bind(&r.guest.email)
    .bind(&r.guest.phone)
    .bind(r.guest.number_of_guests)
    .bind(r.guest.adults)
    .bind(r.guest.children)
    .bind(r.guest.infants)
    .bind(r.guest.pets)
    .bind(r.total.map(|m| m.minor_units()))
    .bind(r.total.map(|m| m.currency().to_string()))
    .bind(r.channel_id)
    .bind(&r.channel_name)
    .bind(&r.channel_reservation_id)
    .bind(&r.confirmation_code)
    .bind(&r.cancelled_by)
    .bind(r.cancelled_at)
    .bind(r.version.updated_at)
    .bind(r.version.terminal)
    .bind(r.version.event as i16)
    .bind(r.version.digest.as_slice())
    .bind(r.version.latest_activity)
    .bind(r.version.origin as i16)
    .fetch_one(conn)
    .await?;
    Ok(revision)
}

/// What happened to a booking's block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockChange {
    Created,
    Moved,
    Released,
    Unchanged,
}

/// Makes the booking's stored block equal `block`: creates, moves or releases
/// it, in one statement.
pub async fn set_block(
    conn: &mut PgConnection,
    booking: BookingId,
    unit: UnitId,
    block: Option<CalendarBlock>,
) -> Result<BlockChange, StoreError> {
    let Some(block) = block else {
        let released = sqlx::query("DELETE FROM availability_blocks WHERE booking_id = $1")
            .bind(booking.as_uuid())
            .execute(&mut *conn)
            .await?;
        return Ok(if released.rows_affected() > 0 {
            BlockChange::Released
        } else {
            BlockChange::Unchanged
        });
    };
    let inserted: Option<bool> = sqlx::query_scalar(
        "INSERT INTO availability_blocks (booking_id, unit_id, kind, start_date, end_date)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (booking_id) DO UPDATE SET unit_id = EXCLUDED.unit_id, kind = EXCLUDED.kind,
             start_date = EXCLUDED.start_date, end_date = EXCLUDED.end_date, updated_at = now()
         WHERE (availability_blocks.unit_id, availability_blocks.kind,
                availability_blocks.start_date, availability_blocks.end_date)
               IS DISTINCT FROM (EXCLUDED.unit_id, EXCLUDED.kind, EXCLUDED.start_date, EXCLUDED.end_date)
         RETURNING (xmax = 0)",
    )
    .bind(booking.as_uuid())
    .bind(unit.as_uuid())
    .bind(block.kind.as_str())
    .bind(block.stay.arrival())
    .bind(block.stay.departure())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match inserted {
        None => BlockChange::Unchanged,
        Some(true) => BlockChange::Created,
        Some(false) => BlockChange::Moved,
    })
}

/// Another live block on the same unit that shares nights with a booking's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    pub other: BookingId,
    pub other_external_id: String,
    pub other_block: CalendarBlock,
    pub nights: StayDates,
}

/// The live blocks on `unit` that overlap `block`, other than the booking's own.
pub async fn overlapping_blocks(
    conn: &mut PgConnection,
    booking: BookingId,
    unit: UnitId,
    block: &CalendarBlock,
) -> Result<Vec<Overlap>, StoreError> {
    let rows = sqlx::query(
        "SELECT b.booking_id, k.external_id, b.kind, b.start_date, b.end_date
         FROM availability_blocks b JOIN bookings k ON k.id = b.booking_id
         WHERE b.unit_id = $1 AND b.booking_id <> $2 AND b.start_date < $4 AND b.end_date > $3
         ORDER BY b.start_date, b.booking_id",
    )
    .bind(unit.as_uuid())
    .bind(booking.as_uuid())
    .bind(block.stay.arrival())
    .bind(block.stay.departure())
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            let stay = StayDates::new(row.try_get("start_date")?, row.try_get("end_date")?)
                .map_err(|e| invalid("block")(e.to_string()))?;
            let kind = match row.try_get::<String, _>("kind")?.as_str() {
                "owner_stay" => BlockKind::OwnerStay,
                _ => BlockKind::Booking,
            };
            let nights = stay.overlap(&block.stay).ok_or_else(|| {
                StoreError::Invalid("overlap query returned a disjoint block".into())
            })?;
            Ok(Overlap {
                other: BookingId::from_uuid(row.try_get("booking_id")?),
                other_external_id: row.try_get("external_id")?,
                other_block: CalendarBlock { kind, stay },
                nights,
            })
        })
        .collect()
}

/// Records a double booking. Returns the record's id when the pair is newly
/// reported (first time, or again after it had been resolved).
pub async fn record_double_booking(
    conn: &mut PgConnection,
    unit: UnitId,
    a: BookingId,
    b: BookingId,
    nights: StayDates,
) -> Result<Option<Uuid>, StoreError> {
    let (first, second) = if a < b { (a, b) } else { (b, a) };
    let id: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO double_bookings (id, unit_id, booking_a, booking_b, overlap_start, overlap_end)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (booking_a, booking_b) DO UPDATE SET
             overlap_start = EXCLUDED.overlap_start, overlap_end = EXCLUDED.overlap_end,
             resolved_at = NULL, detected_at = now()
         WHERE double_bookings.resolved_at IS NOT NULL
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(unit.as_uuid())
    .bind(first.as_uuid())
    .bind(second.as_uuid())
    .bind(nights.arrival())
    .bind(nights.departure())
    .fetch_optional(&mut *conn)
    .await?;
    if id.is_none() {
        // Still open: keep its overlap current.
        sqlx::query(
            "UPDATE double_bookings SET overlap_start = $3, overlap_end = $4
             WHERE booking_a = $1 AND booking_b = $2",
        )
        .bind(first.as_uuid())
        .bind(second.as_uuid())
        .bind(nights.arrival())
        .bind(nights.departure())
        .execute(conn)
        .await?;
    }
    Ok(id)
}

/// Closes the open double bookings of `booking` whose blocks no longer overlap.
pub async fn resolve_stale_double_bookings(
    conn: &mut PgConnection,
    booking: BookingId,
) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "UPDATE double_bookings d SET resolved_at = now()
         WHERE d.resolved_at IS NULL AND (d.booking_a = $1 OR d.booking_b = $1)
           AND NOT EXISTS (
               SELECT 1 FROM availability_blocks x JOIN availability_blocks y
                 ON x.unit_id = y.unit_id AND x.start_date < y.end_date AND x.end_date > y.start_date
               WHERE x.booking_id = d.booking_a AND y.booking_id = d.booking_b)",
    )
    .bind(booking.as_uuid())
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

/// A booking as an operator reads it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BookingView {
    pub id: Uuid,
    pub external_id: String,
    pub hostaway_account_id: String,
    pub hostaway_listing_id: String,
    pub unit_id: Uuid,
    pub status: String,
    pub arrival_date: NaiveDate,
    pub departure_date: NaiveDate,
    pub nights: i32,
    pub guest_name: Option<String>,
    pub total_amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub channel_name: Option<String>,
    pub source_updated_at: Option<NaiveDateTime>,
    pub block_kind: Option<String>,
}

pub async fn list(
    pool: &PgPool,
    account: Option<&AccountId>,
) -> Result<Vec<BookingView>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT k.id, k.external_id, k.hostaway_account_id, k.hostaway_listing_id, k.unit_id, k.status,
                k.arrival_date, k.departure_date, k.nights, k.guest_name, k.total_amount_minor,
                trim(k.currency) AS currency, k.channel_name, k.source_updated_at, b.kind AS block_kind
         FROM bookings k LEFT JOIN availability_blocks b ON b.booking_id = k.id
         WHERE $1::text IS NULL OR k.hostaway_account_id = $1
         ORDER BY k.arrival_date, k.external_id",
    )
    .bind(account.map(AccountId::as_str))
    .fetch_all(pool)
    .await?)
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BlockView {
    pub booking_id: Uuid,
    pub external_id: String,
    pub unit_id: Uuid,
    pub kind: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
}

pub async fn list_blocks(
    pool: &PgPool,
    unit: Option<UnitId>,
) -> Result<Vec<BlockView>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT b.booking_id, k.external_id, b.unit_id, b.kind, b.start_date, b.end_date
         FROM availability_blocks b JOIN bookings k ON k.id = b.booking_id
         WHERE $1::uuid IS NULL OR b.unit_id = $1
         ORDER BY b.unit_id, b.start_date",
    )
    .bind(unit.map(|u| u.as_uuid()))
    .fetch_all(pool)
    .await?)
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DoubleBookingView {
    pub id: Uuid,
    pub unit_id: Uuid,
    pub booking_a: Uuid,
    pub booking_b: Uuid,
    pub overlap_start: NaiveDate,
    pub overlap_end: NaiveDate,
    pub resolved: bool,
}

pub async fn list_double_bookings(pool: &PgPool) -> Result<Vec<DoubleBookingView>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, unit_id, booking_a, booking_b, overlap_start, overlap_end, resolved_at IS NOT NULL AS resolved
         FROM double_bookings ORDER BY detected_at",
    )
    .fetch_all(pool)
    .await?)
}
