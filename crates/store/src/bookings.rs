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
    // `= ANY` on each column of the unique index, whatever the planner
    // thinks of the table's size: an index scan, never a scan of every
    // booking. Pairs of one account's and another's ids are dropped after.
    let sql = format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings
         WHERE external_source = $1 AND hostaway_account_id = ANY($2) AND external_id = ANY($3)"
    );
    let mut accounts: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
    accounts.sort_unstable();
    accounts.dedup();
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(EXTERNAL_SOURCE)
        .bind(accounts)
        .bind(keys.iter().map(|k| k.1.as_str()).collect::<Vec<_>>())
        .fetch_all(conn)
        .await?;
    let wanted: std::collections::HashSet<(&AccountId, &ReservationId)> =
        keys.iter().copied().collect();
    let mut found = std::collections::HashMap::with_capacity(keys.len());
    for row in &rows {
        let booking = from_row(row)?;
        if wanted.contains(&(&booking.record.account, &booking.record.reservation)) {
            found.insert(
                (
                    booking.record.account.clone(),
                    booking.record.reservation.clone(),
                ),
                booking,
            );
        }
    }
    Ok(found)
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
    save_many(conn, &[booking])
        .await?
        .pop()
        .ok_or_else(|| StoreError::Invalid(format!("booking {} was not saved", booking.id)))
}

/// [`save`] for several bookings in one statement (each booking at most
/// once: one row cannot be written twice by one statement); returns each
/// booking's new revision, in the order given.
pub async fn save_many(
    conn: &mut PgConnection,
    bookings: &[&StoredBooking],
) -> Result<Vec<i64>, StoreError> {
    if bookings.is_empty() {
        return Ok(Vec::new());
    }
    let column = |f: &dyn Fn(&StoredBooking) -> Option<String>| -> Vec<Option<String>> {
        bookings.iter().map(|b| f(b)).collect()
    };
    let records: Vec<&BookingRecord> = bookings.iter().map(|b| &b.record).collect();
    let int = |f: &dyn Fn(&BookingRecord) -> Option<i32>| -> Vec<Option<i32>> {
        records.iter().map(|r| f(r)).collect()
    };
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "INSERT INTO bookings (id, external_source, external_id, hostaway_account_id, hostaway_listing_id,
             unit_id, status, arrival_date, departure_date, guest_name, guest_first_name, guest_last_name,
             guest_email, guest_phone, number_of_guests, adults, children, infants, pets,
             total_amount_minor, currency, channel_id, channel_name, channel_reservation_id,
             confirmation_code, cancelled_by, cancelled_at, source_updated_at, version_terminal,
             version_event, version_digest, version_latest_activity, version_origin)
         SELECT id, $2, external_id, account, listing, unit, status, arrival, departure, guest_name,
                first_name, last_name, email, phone, guests, adults, children, infants, pets,
                total, currency, channel_id, channel_name, channel_reservation_id, confirmation_code,
                cancelled_by, cancelled_at, updated_at, terminal, event, digest, latest_activity, origin
         FROM unnest($1::uuid[], $3::text[], $4::text[], $5::text[], $6::uuid[], $7::text[],
                     $8::date[], $9::date[], $10::text[], $11::text[], $12::text[], $13::text[],
                     $14::text[], $15::int[], $16::int[], $17::int[], $18::int[], $19::int[],
                     $20::bigint[], $21::text[], $22::bigint[], $23::text[], $24::text[], $25::text[],
                     $26::text[], $27::timestamp[], $28::timestamp[], $29::bool[], $30::smallint[],
                     $31::bytea[], $32::timestamp[], $33::smallint[])
              AS t(id, external_id, account, listing, unit, status, arrival, departure, guest_name,
                   first_name, last_name, email, phone, guests, adults, children, infants, pets,
                   total, currency, channel_id, channel_name, channel_reservation_id,
                   confirmation_code, cancelled_by, cancelled_at, updated_at, terminal, event,
                   digest, latest_activity, origin)
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
         RETURNING id, revision",
    )
    .bind(bookings.iter().map(|b| b.id.as_uuid()).collect::<Vec<_>>())
    .bind(EXTERNAL_SOURCE)
    .bind(column(&|b| Some(b.record.reservation.as_str().to_owned())))
    .bind(column(&|b| Some(b.record.account.as_str().to_owned())))
    .bind(column(&|b| Some(b.record.listing.as_str().to_owned())))
    .bind(bookings.iter().map(|b| b.unit.as_uuid()).collect::<Vec<_>>())
    .bind(column(&|b| Some(b.record.status.as_str().to_owned())))
    .bind(records.iter().map(|r| r.stay.arrival()).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.stay.departure()).collect::<Vec<_>>())
    .bind(column(&|b| b.record.guest.name.clone()))
    .bind(column(&|b| b.record.guest.first_name.clone()))
    .bind(column(&|b| b.record.guest.last_name.clone()))
    .bind(column(&|b| b.record.guest.email.clone()))
    .bind(column(&|b| b.record.guest.phone.clone()))
    .bind(int(&|r| r.guest.number_of_guests))
    .bind(int(&|r| r.guest.adults))
    .bind(int(&|r| r.guest.children))
    .bind(int(&|r| r.guest.infants))
    .bind(int(&|r| r.guest.pets))
    .bind(records.iter().map(|r| r.total.map(|m| m.minor_units())).collect::<Vec<_>>())
    .bind(column(&|b| b.record.total.map(|m| m.currency().to_string())))
    .bind(records.iter().map(|r| r.channel_id).collect::<Vec<_>>())
    .bind(column(&|b| b.record.channel_name.clone()))
    .bind(column(&|b| b.record.channel_reservation_id.clone()))
    .bind(column(&|b| b.record.confirmation_code.clone()))
    .bind(column(&|b| b.record.cancelled_by.clone()))
    .bind(records.iter().map(|r| r.cancelled_at).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.version.updated_at).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.version.terminal).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.version.event as i16).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.version.digest.as_slice()).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.version.latest_activity).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.version.origin as i16).collect::<Vec<_>>())
    .fetch_all(conn)
    .await?;
    let revisions: std::collections::HashMap<Uuid, i64> = rows.into_iter().collect();
    bookings
        .iter()
        .map(|b| {
            revisions
                .get(&b.id.as_uuid())
                .copied()
                .ok_or_else(|| StoreError::Invalid(format!("booking {} was not saved", b.id)))
        })
        .collect()
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

/// [`set_block`] for several bookings (each at most once) in two
/// statements; returns what happened to each block, in the order given.
pub async fn set_blocks(
    conn: &mut PgConnection,
    blocks: &[(BookingId, UnitId, Option<CalendarBlock>)],
) -> Result<Vec<BlockChange>, StoreError> {
    let released: Vec<Uuid> = blocks
        .iter()
        .filter(|(_, _, block)| block.is_none())
        .map(|(booking, _, _)| booking.as_uuid())
        .collect();
    let released: std::collections::HashSet<Uuid> = if released.is_empty() {
        std::collections::HashSet::new()
    } else {
        sqlx::query_scalar::<_, Uuid>(
            "DELETE FROM availability_blocks WHERE booking_id = ANY($1) RETURNING booking_id",
        )
        .bind(released)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect()
    };
    let held: Vec<(Uuid, Uuid, CalendarBlock)> = blocks
        .iter()
        .filter_map(|(booking, unit, block)| block.map(|b| (booking.as_uuid(), unit.as_uuid(), b)))
        .collect();
    let written: std::collections::HashMap<Uuid, bool> = if held.is_empty() {
        std::collections::HashMap::new()
    } else {
        sqlx::query_as::<_, (Uuid, bool)>(
            "INSERT INTO availability_blocks (booking_id, unit_id, kind, start_date, end_date)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::date[], $5::date[])
             ON CONFLICT (booking_id) DO UPDATE SET unit_id = EXCLUDED.unit_id, kind = EXCLUDED.kind,
                 start_date = EXCLUDED.start_date, end_date = EXCLUDED.end_date, updated_at = now()
             WHERE (availability_blocks.unit_id, availability_blocks.kind,
                    availability_blocks.start_date, availability_blocks.end_date)
                   IS DISTINCT FROM (EXCLUDED.unit_id, EXCLUDED.kind, EXCLUDED.start_date, EXCLUDED.end_date)
             RETURNING booking_id, (xmax = 0)",
        )
        .bind(held.iter().map(|h| h.0).collect::<Vec<_>>())
        .bind(held.iter().map(|h| h.1).collect::<Vec<_>>())
        .bind(held.iter().map(|h| h.2.kind.as_str()).collect::<Vec<_>>())
        .bind(held.iter().map(|h| h.2.stay.arrival()).collect::<Vec<_>>())
        .bind(held.iter().map(|h| h.2.stay.departure()).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect()
    };
    Ok(blocks
        .iter()
        .map(|(booking, _, block)| {
            let id = booking.as_uuid();
            match block {
                None if released.contains(&id) => BlockChange::Released,
                None => BlockChange::Unchanged,
                Some(_) => match written.get(&id) {
                    None => BlockChange::Unchanged,
                    Some(true) => BlockChange::Created,
                    Some(false) => BlockChange::Moved,
                },
            }
        })
        .collect())
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
    rows.iter()
        .map(|row| overlap_from_row(row, block))
        .collect()
}

/// [`overlapping_blocks`] for several bookings' blocks in one statement
/// (each unit's blocks read through its index); returns the overlaps of
/// each, in the order given.
pub async fn overlapping_blocks_many(
    conn: &mut PgConnection,
    blocks: &[(BookingId, UnitId, CalendarBlock)],
) -> Result<Vec<Vec<Overlap>>, StoreError> {
    if blocks.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT t.n, o.booking_id, o.external_id, o.kind, o.start_date, o.end_date
         FROM unnest($1::uuid[], $2::uuid[], $3::date[], $4::date[]) WITH ORDINALITY
              AS t(booking, unit, arrival, departure, n)
         CROSS JOIN LATERAL (
             SELECT b.booking_id, k.external_id, b.kind, b.start_date, b.end_date
             FROM availability_blocks b JOIN bookings k ON k.id = b.booking_id
             WHERE b.unit_id = t.unit AND b.booking_id <> t.booking
               AND b.start_date < t.departure AND b.end_date > t.arrival
         ) o
         ORDER BY t.n, o.start_date, o.booking_id",
    )
    .bind(blocks.iter().map(|b| b.0.as_uuid()).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| b.1.as_uuid()).collect::<Vec<_>>())
    .bind(
        blocks
            .iter()
            .map(|b| b.2.stay.arrival())
            .collect::<Vec<_>>(),
    )
    .bind(
        blocks
            .iter()
            .map(|b| b.2.stay.departure())
            .collect::<Vec<_>>(),
    )
    .fetch_all(conn)
    .await?;
    let mut overlaps: Vec<Vec<Overlap>> = blocks.iter().map(|_| Vec::new()).collect();
    for row in rows {
        let n: i64 = row.try_get("n")?;
        let index = usize::try_from(n - 1)
            .ok()
            .filter(|i| *i < blocks.len())
            .ok_or_else(|| StoreError::Invalid("overlap query returned an unknown block".into()))?;
        overlaps[index].push(overlap_from_row(&row, &blocks[index].2)?);
    }
    Ok(overlaps)
}

fn overlap_from_row(row: &PgRow, block: &CalendarBlock) -> Result<Overlap, StoreError> {
    let stay = StayDates::new(row.try_get("start_date")?, row.try_get("end_date")?)
        .map_err(|e| invalid("block")(e.to_string()))?;
    let kind = match row.try_get::<String, _>("kind")?.as_str() {
        "owner_stay" => BlockKind::OwnerStay,
        _ => BlockKind::Booking,
    };
    let nights = stay
        .overlap(&block.stay)
        .ok_or_else(|| StoreError::Invalid("overlap query returned a disjoint block".into()))?;
    Ok(Overlap {
        other: BookingId::from_uuid(row.try_get("booking_id")?),
        other_external_id: row.try_get("external_id")?,
        other_block: CalendarBlock { kind, stay },
        nights,
    })
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

/// Bookings by arrival, `limit` at most (`None`: all).
pub async fn list(
    pool: &PgPool,
    account: Option<&AccountId>,
    limit: Option<i64>,
) -> Result<Vec<BookingView>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT k.id, k.external_id, k.hostaway_account_id, k.hostaway_listing_id, k.unit_id, k.status,
                k.arrival_date, k.departure_date, k.nights, k.guest_name, k.total_amount_minor,
                trim(k.currency) AS currency, k.channel_name, k.source_updated_at, b.kind AS block_kind
         FROM bookings k LEFT JOIN availability_blocks b ON b.booking_id = k.id
         WHERE $1::text IS NULL OR k.hostaway_account_id = $1
         ORDER BY k.arrival_date, k.external_id LIMIT $2",
    )
    .bind(account.map(AccountId::as_str))
    .bind(limit)
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
