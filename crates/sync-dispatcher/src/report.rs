//! Where outbound sync stands, per linked listing: what TVL wants, what is
//! still to push, and the fewest calendar writes that could carry TVL's
//! calendar to a Hostaway that knew none of it (the lower bound the demo and
//! the benchmark compare the calls made with).

use chrono::Utc;
use domain::{AccountId, ListingId, UnitId};
use store::{PgPool, StoreError};

use crate::plan::{self, PlannedDay};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingStatus {
    pub account: AccountId,
    pub listing: ListingId,
    pub unit: UnitId,
    /// Days from yesterday on with a wanted availability or price.
    pub desired_days: usize,
    /// Days whose availability (or stay rules) Hostaway is not known to have.
    pub pending_availability: usize,
    /// Days whose price Hostaway is not known to have.
    pub pending_pricing: usize,
    /// Maximal runs of equal wanted values, availability and pricing.
    pub runs: (usize, usize),
    /// The fewest `calendarIntervals` calls for all of it: maximal runs of
    /// the combined wanted values (a range sets availability, stay rules and
    /// price at once), 200 ranges a call.
    pub minimum_writes: usize,
    /// Hostaway calls the listing's jobs made so far (reads included).
    pub calls: i64,
}

impl ListingStatus {
    pub fn in_line(&self) -> bool {
        self.pending_availability == 0 && self.pending_pricing == 0
    }
}

/// The status of every linked listing of enabled accounts.
/// Every linked listing's status, or one account's.
pub async fn status(
    pool: &PgPool,
    account: Option<&AccountId>,
) -> Result<Vec<ListingStatus>, StoreError> {
    let from = Utc::now().date_naive() - chrono::Duration::days(1);
    let calls: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT hostaway_account_id, hostaway_listing_id, sum(calls)::bigint FROM sync_jobs
         GROUP BY 1, 2",
    )
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    for (account, listing) in store::sync_jobs::linked_listings_of(pool, account).await? {
        let mut conn = pool.acquire().await?;
        let Some(unit) = store::links::resolve_unit(&mut conn, &account, &listing).await? else {
            continue;
        };
        let days =
            store::desired::calendar(&mut conn, unit, account.as_str(), listing.as_str(), from)
                .await?;
        let availability = plan::availability_days(&days);
        let pricing = plan::price_days(&days);
        let runs = (
            plan::runs(&all_dirty(&availability)).len(),
            plan::runs(&all_dirty(&pricing)).len(),
        );
        let combined = plan::runs(&all_dirty(&plan::combined_days(&days, None))).len();
        out.push(ListingStatus {
            desired_days: days.len(),
            pending_availability: availability.iter().filter(|d| d.dirty).count(),
            pending_pricing: pricing.iter().filter(|d| d.dirty).count(),
            runs,
            minimum_writes: plan::calls_for(combined),
            calls: calls
                .iter()
                .filter(|(a, l, _)| a == account.as_str() && l == listing.as_str())
                .map(|(_, _, n)| *n)
                .sum(),
            account,
            listing,
            unit,
        });
    }
    Ok(out)
}

/// The same days, as if Hostaway knew none of them.
fn all_dirty<V: Clone>(days: &[PlannedDay<V>]) -> Vec<PlannedDay<V>> {
    days.iter()
        .map(|d| PlannedDay {
            dirty: true,
            ..d.clone()
        })
        .collect()
}
