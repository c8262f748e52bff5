//! Availability and prices: the fewest ranges pushed (200 a call), and in
//! reconciliation Hostaway's calendar read back first.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use domain::{AccountId, Currency, ListingId, SyncKind, UnitId};
use hostaway_client::ListingsQuery;
use serde_json::json;
use store::remote::{ListingRead, ListingRef, ReadDay};

use super::{Calls, JobError, JobRunner, Report, WorkerSettings};
use crate::channel_config::ChannelConfig;
use crate::plan;
use crate::queue::{Job, Mode};

/// Days longer than this are read back in several calls.
const READ_CHUNK_DAYS: i64 = 365;

/// One async lock per key, for work no two jobs should repeat at once (the
/// second waits, then finds it done).
#[derive(Debug)]
pub struct Gates<K>(std::sync::Mutex<std::collections::HashMap<K, Arc<tokio::sync::Mutex<()>>>>);

impl<K> Default for Gates<K> {
    fn default() -> Self {
        Self(std::sync::Mutex::new(std::collections::HashMap::new()))
    }
}

/// Past this many keys, gates nobody holds are dropped.
const GATES_KEPT: usize = 1024;

impl<K: Eq + std::hash::Hash + Clone> Gates<K> {
    pub fn gate(&self, key: &K) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if gates.len() >= GATES_KEPT {
            gates.retain(|_, gate| Arc::strong_count(gate) > 1);
        }
        Arc::clone(gates.entry(key.clone()).or_default())
    }
}

impl JobRunner {
    /// The unit a listing job pushes, and the revision of its desired state;
    /// `None` when the listing is not linked (nothing to push). A push whose
    /// unit is still changing waits (see [`WorkerSettings::settle`]).
    pub(super) async fn target(
        &self,
        job: &Job,
        listing: &ListingId,
        calls: &mut Calls<'_>,
    ) -> Result<Option<UnitId>, JobError> {
        let mut conn = self.pool.acquire().await?;
        let Some(unit) = store::links::resolve_unit(&mut conn, &job.key.account, listing).await?
        else {
            tracing::info!("listing is not linked to a unit; nothing to push");
            return Ok(None);
        };
        let (revision, last_change) =
            store::desired::revision(&mut conn, unit, job.key.kind).await?;
        let waited = calls
            .waiting_since
            .and_then(|at| (Utc::now() - at).to_std().ok())
            .unwrap_or_default();
        if let Some(delay) = settle_delay(&self.settings, job.mode, last_change, waited) {
            return Err(JobError::Defer {
                reason: "settling",
                delay,
            });
        }
        calls.revision = Some((unit, revision));
        Ok(Some(unit))
    }

    pub(super) async fn calendar(
        &self,
        job: &Job,
        listing: &ListingId,
        unit: UnitId,
        calls: &mut Calls<'_>,
        config: &ChannelConfig,
    ) -> Result<Report, JobError> {
        let account = &job.key.account;
        let at = ListingRef::of(account, listing);
        let from = Utc::now().date_naive() - chrono::Duration::days(1);
        let (currency, units) = self.listing_facts(job, listing, calls).await?;
        if job.mode == Mode::Reconcile {
            self.read_calendar(account, listing, unit, from, currency, calls)
                .await?;
        }
        let gate = self
            .calendar_pushes
            .gate(&(account.clone(), listing.clone()));
        let _pushing = gate.lock().await;
        let mut conn = self.pool.acquire().await?;
        let days = store::desired::calendar(&mut conn, unit, at.account, at.listing, from).await?;
        drop(conn);
        let mut refused = None;
        let (mut intervals, mut pushed, dirty): (Vec<_>, Vec<_>, usize) = match job.key.kind {
            SyncKind::Availability => {
                let planned = plan::availability_days(&days);
                let dirty = planned.iter().filter(|d| d.dirty).count();
                let (i, p) = plan::runs(&planned)
                    .iter()
                    .map(plan::availability_interval)
                    .unzip();
                (i, p, dirty)
            }
            _ => {
                let currency = currency.ok_or_else(|| {
                    JobError::business(
                        "Hostaway did not say the listing's currency".into(),
                        json!({"unitId": unit.to_string()}),
                    )
                })?;
                let (planned, mismatch) = plan::pricing_days(&days, currency);
                refused = mismatch;
                let dirty = planned.iter().filter(|d| d.dirty).count();
                let (i, p) = plan::runs(&planned)
                    .iter()
                    .map(|run| plan::pricing_interval(run, currency))
                    .unzip();
                (i, p, dirty)
            }
        };
        // What the other kind has pending for this listing rides along when
        // it fits in the calls this job makes anyway: never a call more, so
        // the job's own kind is never delayed (availability first). Not when
        // the account's configuration turns the other kind off.
        let other_kind = match job.key.kind {
            SyncKind::Availability => SyncKind::Pricing,
            _ => SyncKind::Availability,
        };
        if let Some(currency) = currency
            && !intervals.is_empty()
            && config.syncs(other_kind)
        {
            let (other, other_dirty) = match job.key.kind {
                SyncKind::Availability => (
                    SyncKind::Pricing,
                    plan::pricing_days(&days, currency)
                        .0
                        .iter()
                        .filter(|d| d.dirty)
                        .count(),
                ),
                _ => (
                    SyncKind::Availability,
                    plan::availability_days(&days)
                        .iter()
                        .filter(|d| d.dirty)
                        .count(),
                ),
            };
            let combined = plan::runs(&plan::combined_days(&days, Some(currency)));
            if other_dirty > 0
                && plan::calls_for(combined.len()) <= plan::calls_for(intervals.len())
            {
                if job.mode == Mode::Reconcile {
                    // Found here, so the other kind's job will not find it.
                    self.metrics
                        .drift
                        .with_label_values(&[other.as_str()])
                        .inc_by(other_dirty as u64);
                }
                tracing::debug!(
                    ranges = combined.len(),
                    own_ranges = intervals.len(),
                    "pushing the listing's other pending kind in the same calls"
                );
                (intervals, pushed) = combined
                    .iter()
                    .map(|run| plan::combined_interval(run, currency))
                    .unzip();
            }
        }
        if job.mode == Mode::Reconcile && dirty > 0 {
            self.metrics
                .drift
                .with_label_values(&[job.key.kind.as_str()])
                .inc_by(dirty as u64);
            tracing::info!(days = dirty, "reconciliation found drift");
        }
        if units > 0 {
            plan::sell_units(&mut intervals, units);
        }
        for (chunk, recorded) in intervals
            .chunks(hostaway_client::MAX_CALENDAR_INTERVALS)
            .zip(pushed.chunks(hostaway_client::MAX_CALENDAR_INTERVALS))
        {
            let answer = self
                .client
                .update_calendar_intervals(account, listing, chunk)
                .await;
            calls.count(&answer);
            answer.map_err(|e| {
                JobError::api(
                    e,
                    json!({
                        "unitId": unit.to_string(),
                        "ranges": chunk.len(),
                        "firstDay": chunk.first().map(|i| i.start_date.to_string()),
                        "lastDay": chunk.last().map(|i| i.end_date.to_string()),
                    }),
                )
            })?;
            store::remote::record_pushed(&self.pool, at, recorded).await?;
            self.metrics
                .ranges_pushed
                .with_label_values(&[job.key.kind.as_str()])
                .inc_by(chunk.len() as u64);
        }
        if let Some(mismatch) = refused {
            // The rest was pushed; these days wait for a price in the
            // listing's currency.
            return Err(JobError::business(
                format!("{mismatch}; the other days were pushed"),
                json!({"unitId": unit.to_string(), "firstDay": mismatch.first.to_string(), "days": mismatch.days}),
            ));
        }
        Ok(Report {
            ranges: intervals.len(),
        })
    }

    /// The listing's currency and units: known, or read once (pricing needs
    /// the currency, a calendar read converts prices with it; availability
    /// needs the units: a multi-unit listing is closed with
    /// `desiredUnitsToSell`, never `isAvailable`).
    pub(super) async fn listing_facts(
        &self,
        job: &Job,
        listing: &ListingId,
        calls: &mut Calls<'_>,
    ) -> Result<(Option<Currency>, u32), JobError> {
        let at = ListingRef::of(&job.key.account, listing);
        let known = |facts: &store::remote::ListingFacts| {
            facts.units.is_some()
                && (facts.currency.is_some()
                    || (job.key.kind == SyncKind::Availability && job.mode == Mode::Push))
        };
        let facts = store::remote::facts(&self.pool, at).await?;
        if known(&facts) {
            return Ok((facts.currency, facts.units.unwrap_or(0)));
        }
        // One pass over the account's listings (a hundred a page) learns the
        // currency and units of all of them; concurrent jobs of the account
        // wait for it rather than repeat it.
        let gate = self.currency_reads.gate(&job.key.account);
        let _reading = gate.lock().await;
        let facts = store::remote::facts(&self.pool, at).await?;
        if known(&facts) {
            return Ok((facts.currency, facts.units.unwrap_or(0)));
        }
        let mut query = ListingsQuery::default();
        let mut found = None;
        loop {
            let answer = self.client.list_listings(&job.key.account, &query).await;
            calls.count(&answer);
            let page = answer.map_err(|e| JobError::api(e, json!({"reading": "listings"})))?;
            let reads: Vec<ListingRead> = page.items.iter().map(listing_read).collect();
            store::remote::record_listing_reads(&self.pool, at.account, &reads).await?;
            if let Some(ours) = page.items.iter().find(|l| &l.id == listing) {
                found = Some((ours.currency, ours.units));
            }
            let received = page.items.len();
            if received < query.limit as usize
                || page
                    .count
                    .is_some_and(|count| u64::from(query.offset) + received as u64 >= count)
            {
                break;
            }
            query.offset += query.limit;
        }
        match found {
            Some(facts) => Ok(facts),
            // Not among the account's listings: asked directly, Hostaway says
            // why (a 404 is final, and dead-letters the job).
            None => {
                let answer = self.client.get_listing(&job.key.account, listing).await;
                calls.count(&answer);
                let read = answer.map_err(|e| JobError::api(e, json!({"reading": "listing"})))?;
                store::remote::record_read_listing(
                    &self.pool,
                    at.account,
                    &listing_read(&read),
                    &[],
                )
                .await?;
                Ok((read.currency, read.units))
            }
        }
    }

    /// Reads Hostaway's calendar for the unit's desired horizon (unless read
    /// recently) and records it as what Hostaway has.
    pub(super) async fn read_calendar(
        &self,
        account: &AccountId,
        listing: &ListingId,
        unit: UnitId,
        from: NaiveDate,
        currency: Option<Currency>,
        calls: &mut Calls<'_>,
    ) -> Result<(), JobError> {
        let at = ListingRef::of(account, listing);
        let gate = self
            .calendar_reads
            .gate(&(account.clone(), listing.clone()));
        let _reading = gate.lock().await;
        if store::remote::facts(&self.pool, at)
            .await?
            .calendar_read_within(self.settings.read_freshness)
        {
            return Ok(());
        }
        let mut conn = self.pool.acquire().await?;
        let last = store::desired::last_day(&mut conn, unit, from).await?;
        drop(conn);
        let Some(last) = last else {
            return Ok(());
        };
        let mut start = from;
        while start <= last {
            let end = (start + chrono::Duration::days(READ_CHUNK_DAYS - 1)).min(last);
            let read_started = store::remote::clock(&self.pool).await?;
            let answer = self.client.get_calendar(account, listing, start, end).await;
            calls.count(&answer);
            let days = answer.map_err(|e| JobError::api(e, json!({"reading": "calendar", "from": start.to_string(), "to": end.to_string()})))?;
            let read: Vec<ReadDay> = days
                .iter()
                .map(|d| ReadDay {
                    day: d.date,
                    // A multi-unit night is open when it sells units
                    // (what the connector sets there), whatever isAvailable says.
                    available: d.desired_units_to_sell.map(|n| n > 0).or(d.is_available),
                    min_stay: d.minimum_stay.and_then(|n| i32::try_from(n).ok()),
                    max_stay: d.maximum_stay.and_then(|n| i32::try_from(n).ok()),
                    price_minor: currency
                        .zip(d.price.as_deref())
                        .and_then(|(c, p)| plan::price_to_minor(p, c)),
                    reserved: d.status.as_deref().is_some_and(is_guest_held),
                })
                .collect();
            store::remote::record_read_calendar(&self.pool, at, &read, read_started).await?;
            start = end + chrono::Duration::days(1);
        }
        Ok(())
    }
}

/// How much longer a job should wait for its unit's changes to settle: a
/// push waits until the unit has been quiet for `settle` (`quiet` is the time
/// since its last change), but never after it has waited `max_settle`.
fn settle_delay(
    settings: &WorkerSettings,
    mode: Mode,
    quiet: Option<Duration>,
    waited: Duration,
) -> Option<Duration> {
    let quiet = quiet?;
    (mode == Mode::Push && quiet < settings.settle && waited < settings.max_settle)
        .then(|| settings.settle - quiet)
}

/// Statuses of a night a guest holds (Hostaway's, deprecated ones included).
fn is_guest_held(status: &str) -> bool {
    matches!(status, "reserved" | "pending" | "mreserved" | "conflicted")
}

/// What a listing read says about the listing itself.
pub fn listing_read(listing: &mapping::api::Listing) -> ListingRead {
    ListingRead {
        listing: listing.id.to_string(),
        currency: listing.currency,
        units: listing.units,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_push_waits_for_quiet_but_not_forever() {
        let settings = WorkerSettings {
            settle: ms(2_000),
            max_settle: ms(30_000),
            ..WorkerSettings::default()
        };
        // Changed 500 ms ago, queued 1 s ago: 1.5 s more of quiet wanted.
        assert_eq!(
            settle_delay(&settings, Mode::Push, Some(ms(500)), ms(1_000)),
            Some(ms(1_500))
        );
        // Quiet long enough, or never changed: go.
        assert_eq!(
            settle_delay(&settings, Mode::Push, Some(ms(2_000)), ms(0)),
            None
        );
        assert_eq!(settle_delay(&settings, Mode::Push, None, ms(0)), None);
        // Still changing, but it has waited its maximum: go.
        assert_eq!(
            settle_delay(&settings, Mode::Push, Some(ms(10)), ms(30_000)),
            None
        );
        // Reconciliation never waits.
        assert_eq!(
            settle_delay(&settings, Mode::Reconcile, Some(ms(10)), ms(0)),
            None
        );
    }
}
