//! Links between Hostaway listings and TVL units.

use chrono::{DateTime, Utc};
use domain::{AccountId, ListingId, UnitId};
use sqlx::{PgConnection, PgPool, Row};

use crate::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingLink {
    pub account: AccountId,
    pub listing: ListingId,
    pub unit: UnitId,
    pub updated_at: DateTime<Utc>,
}

/// Links (or relinks) a listing to a unit. The account must exist. Webhooks
/// of the listing that waited for the link, parked or dead-lettered, are due
/// at once (the ingestor releases them).
pub async fn link(
    pool: &PgPool,
    account: &AccountId,
    listing: &ListingId,
    unit: UnitId,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let result = sqlx::query(
        "INSERT INTO listing_links (hostaway_account_id, hostaway_listing_id, unit_id)
         SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM channels WHERE hostaway_account_id = $1)
         ON CONFLICT (hostaway_account_id, hostaway_listing_id)
         DO UPDATE SET unit_id = EXCLUDED.unit_id, updated_at = now()",
    )
    .bind(account.as_str())
    .bind(listing.as_str())
    .bind(unit.as_uuid())
    .execute(&mut *tx)
    .await?;
    if result.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("account {account}")));
    }
    let woken = crate::parked::wake_ready(&mut tx, Some(account), Some(listing)).await?;
    tx.commit().await?;
    if woken > 0 {
        tracing::info!(account_id = %account, listing_id = %listing, webhooks = woken, "listing linked; its waiting webhooks are released");
    }
    Ok(())
}

pub async fn unlink(
    pool: &PgPool,
    account: &AccountId,
    listing: &ListingId,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "DELETE FROM listing_links WHERE hostaway_account_id = $1 AND hostaway_listing_id = $2",
    )
    .bind(account.as_str())
    .bind(listing.as_str())
    .execute(pool)
    .await?;
    Ok(result.rows_affected() > 0)
}

pub async fn list(
    pool: &PgPool,
    account: Option<&AccountId>,
) -> Result<Vec<ListingLink>, StoreError> {
    let rows = sqlx::query(
        "SELECT hostaway_account_id, hostaway_listing_id, unit_id, updated_at FROM listing_links
         WHERE $1::text IS NULL OR hostaway_account_id = $1
         ORDER BY hostaway_account_id, hostaway_listing_id",
    )
    .bind(account.map(AccountId::as_str))
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            let account: String = row.try_get("hostaway_account_id")?;
            let listing: String = row.try_get("hostaway_listing_id")?;
            Ok(ListingLink {
                account: AccountId::parse(account)
                    .map_err(|e| StoreError::Invalid(e.to_string()))?,
                listing: ListingId::parse(listing)
                    .map_err(|e| StoreError::Invalid(e.to_string()))?,
                unit: UnitId::from_uuid(row.try_get("unit_id")?),
                updated_at: row.try_get("updated_at")?,
            })
        })
        .collect()
}

/// The unit a listing is linked to, if it is.
pub async fn resolve_unit(
    conn: &mut PgConnection,
    account: &AccountId,
    listing: &ListingId,
) -> Result<Option<UnitId>, StoreError> {
    let unit: Option<uuid::Uuid> = sqlx::query_scalar(
        "SELECT unit_id FROM listing_links WHERE hostaway_account_id = $1 AND hostaway_listing_id = $2",
    )
    .bind(account.as_str())
    .bind(listing.as_str())
    .fetch_optional(conn)
    .await?;
    Ok(unit.map(UnitId::from_uuid))
}

/// [`resolve_unit`] for several listings (of any accounts) in one statement:
/// the linked ones, keyed by account and listing.
pub async fn resolve_units(
    conn: &mut PgConnection,
    keys: &[(&AccountId, &ListingId)],
) -> Result<std::collections::HashMap<(AccountId, ListingId), UnitId>, StoreError> {
    // `= ANY` on each column of the key: an index scan whatever the
    // planner thinks of the table; pairs nobody asked for are dropped after.
    let mut accounts: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
    accounts.sort_unstable();
    accounts.dedup();
    let rows: Vec<(String, String, uuid::Uuid)> = sqlx::query_as(
        "SELECT hostaway_account_id, hostaway_listing_id, unit_id FROM listing_links
         WHERE hostaway_account_id = ANY($1) AND hostaway_listing_id = ANY($2)",
    )
    .bind(accounts)
    .bind(keys.iter().map(|k| k.1.as_str()).collect::<Vec<_>>())
    .fetch_all(conn)
    .await?;
    let mut linked = std::collections::HashMap::with_capacity(keys.len());
    for (account, listing, unit) in rows {
        let account = AccountId::parse(account)
            .map_err(|e| StoreError::Invalid(format!("stored link has an invalid account: {e}")))?;
        let listing = ListingId::parse(listing)
            .map_err(|e| StoreError::Invalid(format!("stored link has an invalid listing: {e}")))?;
        if keys.contains(&(&account, &listing)) {
            linked.insert((account, listing), UnitId::from_uuid(unit));
        }
    }
    Ok(linked)
}

/// What Hostaway calls a listing and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingLabel {
    pub listing: ListingId,
    pub name: Option<String>,
    pub address: Option<String>,
}

/// Remembers the names and addresses Hostaway just gave for an account's
/// listings (to suggest units for unlinked listings later).
pub async fn remember_labels(
    pool: &PgPool,
    account: &AccountId,
    labels: &[ListingLabel],
) -> Result<(), StoreError> {
    let ids: Vec<&str> = labels.iter().map(|l| l.listing.as_str()).collect();
    let names: Vec<Option<&str>> = labels.iter().map(|l| l.name.as_deref()).collect();
    let addresses: Vec<Option<&str>> = labels.iter().map(|l| l.address.as_deref()).collect();
    sqlx::query(
        "INSERT INTO hostaway_listings (hostaway_account_id, hostaway_listing_id, name, address)
         SELECT $1, id, name, address FROM unnest($2::text[], $3::text[], $4::text[]) AS t(id, name, address)
         ON CONFLICT (hostaway_account_id, hostaway_listing_id)
         DO UPDATE SET name = EXCLUDED.name, address = EXCLUDED.address, fetched_at = now()",
    )
    .bind(account.as_str())
    .bind(ids)
    .bind(names)
    .bind(addresses)
    .execute(pool)
    .await?;
    Ok(())
}

/// A TVL unit and a text known to describe it: the name TVL gave it (a
/// listing change), or the name or address of a Hostaway listing linked to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitLabel {
    pub unit: UnitId,
    /// `tvl name`, `listing name` or `listing address`.
    pub source: &'static str,
    pub text: String,
}

pub async fn unit_labels(pool: &PgPool) -> Result<Vec<UnitLabel>, StoreError> {
    let rows: Vec<(uuid::Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT unit_id, 'tvl name', value #>> '{}' FROM desired_listing WHERE field = 'name'
         UNION ALL
         SELECT l.unit_id, 'listing name', h.name FROM listing_links l
         JOIN hostaway_listings h USING (hostaway_account_id, hostaway_listing_id)
         UNION ALL
         SELECT l.unit_id, 'listing address', h.address FROM listing_links l
         JOIN hostaway_listings h USING (hostaway_account_id, hostaway_listing_id)",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(unit, source, text)| {
            let source = match source.as_str() {
                "tvl name" => "tvl name",
                "listing name" => "listing name",
                _ => "listing address",
            };
            text.filter(|t| !t.trim().is_empty()).map(|text| UnitLabel {
                unit: UnitId::from_uuid(unit),
                source,
                text,
            })
        })
        .collect())
}
