//! Reconciliation schedules. Hostaway sends no webhook for calendar or listing
//! changes, and its reservation webhooks arrive late or not at all, so on the
//! specification's schedules the dispatcher queues, for every linked listing
//! (or every account, for reservations), a job that reads Hostaway back and
//! brings it in line:
//!
//! | schedule | default | job |
//! |---|---|---|
//! | availability | `*/15 * * * *` | read the calendar, push availability drift |
//! | pricing | `0 * * * *` | read the calendar, push price drift |
//! | listings | `0 0 * * *` | read the listing, push detail drift |
//! | reservations | `*/15 * * * *` | page through reservations changed since the cursor, feed them to ingestion |
//!
//! Of many replicas, the one that claims a slot in `reconcile_slots` runs it;
//! the jobs it queues are shared by all. A slot claimed and not completed
//! (its replica died before queueing everything) is taken over after a
//! timeout. Each replica checks, on each schedule's slots and every half
//! timeout, the most recent slot at or before now: so the slot a restart
//! missed, or the last one missed while no replica ran, runs once, as soon
//! as a replica is up. At scale one slot may cover a slice of the listings
//! only (`slices`, per schedule): each listing is then reconciled every
//! `slices` runs. Reservation polling is never sliced: it is the safety net
//! for lost webhooks, one call per account.
//!
//! An account whose configuration (`channel_configs`) gives a kind a schedule
//! other than the specification's default follows its own (or none, `off`)
//! instead of the fleet's: every `account_tick` one replica claims the tick
//! (slot `accounts`) and queues the kinds whose own schedule fell due in it.
//! Accounts on the default pattern stay on the fleet's sliced schedules, so
//! thousands of configured accounts do not all fire at the same minute.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use domain::AccountId;
use domain::SyncKind;
use store::PgPool;
use store::sync_jobs::JobKey;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::metrics::SyncMetrics;
use crate::queue::{Enqueued, JobQueue, Mode};

#[derive(Debug, Clone)]
pub struct Schedule {
    pub kind: SyncKind,
    pub cron: Cron,
    pub pattern: String,
    /// Each run covers 1/`slices` of the listings.
    pub slices: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cron schedule for {kind} ({pattern:?}): {problem}")]
pub struct ScheduleError {
    pub kind: SyncKind,
    pub pattern: String,
    pub problem: String,
}

impl Schedule {
    /// Five fields (minute hour day month weekday), or six with seconds first.
    pub fn parse(kind: SyncKind, pattern: &str) -> Result<Self, ScheduleError> {
        let parser = CronParser::builder().seconds(Seconds::Optional).build();
        let cron = parser.parse(pattern.trim()).map_err(|e| ScheduleError {
            kind,
            pattern: pattern.to_owned(),
            problem: e.to_string(),
        })?;
        Ok(Self {
            kind,
            cron,
            pattern: pattern.trim().to_owned(),
            slices: 1,
        })
    }

    /// Each run covers 1/`slices` of the listings; reservation polling is
    /// never sliced (one poll per account per run is what keeps lost webhooks
    /// from staying lost longer than the schedule's period).
    pub fn with_slices(mut self, slices: u64) -> Self {
        self.slices = if self.kind == SyncKind::Reservations {
            1
        } else {
            slices.max(1)
        };
        self
    }

    pub fn next_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&at, false).ok()
    }

    /// The most recent slot at or before `at`.
    pub fn latest_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_previous_occurrence(&at, true).ok()
    }
}

/// The specification's defaults.
pub fn default_patterns() -> [(SyncKind, &'static str); 4] {
    [
        (SyncKind::Availability, "*/15 * * * *"),
        (SyncKind::Pricing, "0 * * * *"),
        (SyncKind::Listing, "0 0 * * *"),
        (SyncKind::Reservations, "*/15 * * * *"),
    ]
}

/// The next instant after `at` when a schedule is due, and every schedule due
/// then (the defaults coincide: at the top of the hour availability, pricing
/// and reservations are all due, and each must run).
pub fn next_due(schedules: &[Schedule], at: DateTime<Utc>) -> Option<(DateTime<Utc>, Vec<usize>)> {
    let next: Vec<(usize, DateTime<Utc>)> = schedules
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.next_after(at).map(|when| (i, when)))
        .collect();
    let due = next.iter().map(|(_, when)| *when).min()?;
    let indexes = next
        .into_iter()
        .filter(|(_, when)| *when == due)
        .map(|(i, _)| i)
        .collect();
    Some((due, indexes))
}

/// What one reconciliation run queued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Queued {
    pub queued: usize,
    /// Already waiting: folded.
    pub folded: usize,
}

/// Queues a reconciliation job of `kind` for every linked listing (every
/// account with an API key, for reservations), or for the slice
/// `slice.0 of slice.1`.
pub async fn enqueue_all(
    pool: &PgPool,
    queue: &JobQueue,
    kind: SyncKind,
    slice: Option<(u64, u64)>,
) -> anyhow::Result<Queued> {
    let keys: Vec<JobKey> = if kind == SyncKind::Reservations {
        store::sync_jobs::accounts_with_api_key(pool)
            .await?
            .into_iter()
            .map(|account| JobKey {
                account,
                listing: None,
                kind,
            })
            .collect()
    } else {
        // Accounts on a schedule of their own are queued by their own ticks.
        let own: HashSet<AccountId> = own_schedules(pool)
            .await?
            .into_iter()
            .filter(|own| own.kind == kind)
            .map(|own| own.account)
            .collect();
        store::sync_jobs::linked_listings(pool)
            .await?
            .into_iter()
            .filter(|(account, _)| !own.contains(account))
            .map(|(account, listing)| JobKey {
                account,
                listing: Some(listing),
                kind,
            })
            .collect()
    };
    let mut done = Queued::default();
    for key in keys {
        if let Some((index, count)) = slice
            && count > 1
            && slice_of(&key, count) != index % count
        {
            continue;
        }
        match queue.enqueue(&key, Mode::Reconcile).await? {
            Enqueued::Queued => done.queued += 1,
            Enqueued::Folded => done.folded += 1,
        }
    }
    Ok(done)
}

/// An account's own schedule of one kind; `schedule` is `None` for `off`.
#[derive(Debug, Clone)]
pub struct OwnSchedule {
    pub account: AccountId,
    pub kind: SyncKind,
    pub schedule: Option<Schedule>,
}

/// Every account's own schedules (those other than the default pattern).
/// A stored pattern that no longer parses is logged and left out: the
/// account follows the fleet's.
pub async fn own_schedules(pool: &PgPool) -> anyhow::Result<Vec<OwnSchedule>> {
    let mut out = Vec::new();
    for (account, config) in store::channel_config::all_current(pool).await? {
        let Ok(account) = AccountId::parse(account) else {
            continue;
        };
        let Ok(config) = crate::channel_config::ChannelConfig::from_json(config) else {
            continue;
        };
        for kind in [SyncKind::Availability, SyncKind::Pricing, SyncKind::Listing] {
            let Some(pattern) = config.own_schedule(kind) else {
                continue;
            };
            let schedule = if pattern.eq_ignore_ascii_case("off") {
                None
            } else {
                match Schedule::parse(kind, pattern) {
                    Ok(schedule) => Some(schedule),
                    Err(error) => {
                        tracing::warn!(account_id = %account, %error, "an account's schedule does not parse; it follows the fleet's");
                        continue;
                    }
                }
            };
            out.push(OwnSchedule {
                account: account.clone(),
                kind,
                schedule,
            });
        }
    }
    Ok(out)
}

/// The tick boundary at or before `at`.
fn tick_at_or_before(at: DateTime<Utc>, tick: std::time::Duration) -> Option<DateTime<Utc>> {
    let secs = i64::try_from(tick.as_secs().max(1)).unwrap_or(60);
    DateTime::from_timestamp(at.timestamp().div_euclid(secs) * secs, 0)
}

/// Queues, for the tick ending at `end`, every own schedule due in
/// `(start, end]` (`start`: the tick this replica saw before, so a late
/// wake-up misses nothing): claimed by one replica.
async fn run_account_tick(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    takeover_after: std::time::Duration,
    pool: &PgPool,
    queue: &JobQueue,
    holder: Uuid,
) {
    const SLOT: &str = "accounts";
    match store::sync_jobs::claim_slot(pool, SLOT, end, holder, takeover_after).await {
        Ok(Some(_)) => {}
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, "cannot claim the accounts' schedule tick; trying again shortly");
            return;
        }
    }
    let result = async {
        let mut queued = 0;
        let own_schedules = own_schedules(pool).await?;
        if own_schedules.is_empty() {
            return anyhow::Ok(0);
        }
        // Linked listings of enabled accounts only, as the fleet's schedules.
        let mut listings: std::collections::HashMap<AccountId, Vec<domain::ListingId>> =
            std::collections::HashMap::new();
        for (account, listing) in store::sync_jobs::linked_listings(pool).await? {
            listings.entry(account).or_default().push(listing);
        }
        for own in own_schedules {
            let due = own
                .schedule
                .as_ref()
                .and_then(|s| s.latest_at_or_before(end))
                .is_some_and(|at| at > start);
            if !due {
                continue;
            }
            for listing in listings.get(&own.account).into_iter().flatten() {
                let key = JobKey {
                    account: own.account.clone(),
                    listing: Some(listing.clone()),
                    kind: own.kind,
                };
                if let Enqueued::Queued = queue.enqueue(&key, Mode::Reconcile).await? {
                    queued += 1;
                }
            }
        }
        anyhow::Ok(queued)
    }
    .await;
    match result {
        Ok(queued) => {
            if let Err(error) = store::sync_jobs::complete_slot(pool, SLOT, end, holder).await {
                tracing::warn!(%error, "tick run but not marked complete; another replica may run it again (harmless)");
            }
            if queued > 0 {
                tracing::info!(tick = %end, queued, "accounts' own schedules queued");
            }
        }
        Err(error) => {
            tracing::warn!(%error, "accounts' schedule tick failed; taken over after its timeout")
        }
    }
}

/// A stable slice number of a job's target (FNV-1a of its id).
fn slice_of(key: &JobKey, count: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in format!("{}:{}", key.account, key.listing_str()).bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash % count
}

/// Runs the schedules until `stop`. Wakes at each schedule's next slot, and
/// at least every half `takeover_after`; each time, tries to claim each
/// schedule's most recent slot (at or before now). The claim succeeds for
/// one replica per new slot, and for any replica once a claimed slot has
/// gone `takeover_after` without completing.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    schedules: Vec<Schedule>,
    account_tick: std::time::Duration,
    takeover_after: std::time::Duration,
    pool: PgPool,
    queue: JobQueue,
    holder: Uuid,
    metrics: SyncMetrics,
    stop: CancellationToken,
) {
    let check_every = (takeover_after / 2).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
    );
    let mut last_tick: Option<DateTime<Utc>> = None;
    loop {
        let now = Utc::now();
        if let Some(tick) = tick_at_or_before(now, account_tick)
            && last_tick.is_none_or(|last| tick > last)
        {
            // From the tick seen before (ten ticks at most after a long
            // pause), else one tick back.
            let step =
                chrono::Duration::from_std(account_tick).unwrap_or(chrono::Duration::seconds(60));
            let start = last_tick.map_or(tick - step, |last| last.max(tick - step * 10));
            run_account_tick(start, tick, takeover_after, &pool, &queue, holder).await;
            last_tick = Some(tick);
        }
        for schedule in &schedules {
            if let Some(slot) = schedule.latest_at_or_before(now) {
                run_slot(
                    schedule,
                    slot,
                    takeover_after,
                    &pool,
                    &queue,
                    holder,
                    &metrics,
                )
                .await;
            }
        }
        let next_tick = last_tick
            .map(|last| last + chrono::Duration::from_std(account_tick).unwrap_or_default())
            .and_then(|at| (at - Utc::now()).to_std().ok())
            .unwrap_or(account_tick);
        let wait = next_due(&schedules, now)
            .and_then(|(due, _)| (due - Utc::now()).to_std().ok())
            .unwrap_or(check_every)
            .min(check_every)
            .min(next_tick);
        if service_kit::consume::sleep_or_stop(&stop, wait).await {
            return;
        }
    }
}

/// One schedule's slot: claimed by one replica (or taken over from one that
/// died), which queues its jobs and marks it complete.
async fn run_slot(
    schedule: &Schedule,
    due: DateTime<Utc>,
    takeover_after: std::time::Duration,
    pool: &PgPool,
    queue: &JobQueue,
    holder: Uuid,
    metrics: &SyncMetrics,
) {
    let name = schedule.kind.as_str();
    let runs = match store::sync_jobs::claim_slot(pool, name, due, holder, takeover_after).await {
        Ok(Some(runs)) => runs,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, schedule = name, "cannot claim the reconciliation slot; trying again shortly");
            return;
        }
    };
    let slice = Some((u64::try_from(runs).unwrap_or(0), schedule.slices));
    match enqueue_all(pool, queue, schedule.kind, slice).await {
        Ok(done) => {
            if let Err(error) = store::sync_jobs::complete_slot(pool, name, due, holder).await {
                tracing::warn!(%error, schedule = name, "slot run but not marked complete; another replica may run it again (harmless)");
            }
            metrics.reconcile_runs.with_label_values(&[name]).inc();
            tracing::info!(schedule = name, slot = %due, queued = done.queued, folded = done.folded, "reconciliation queued");
        }
        Err(error) => {
            tracing::warn!(%error, schedule = name, "reconciliation run failed; the slot is taken over after its timeout")
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use domain::{AccountId, ListingId};

    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, h, m, s)
            .single()
            .unwrap()
    }

    #[test]
    fn the_specification_schedules_fire_when_it_says() {
        let schedules: Vec<Schedule> = default_patterns()
            .iter()
            .map(|(kind, pattern)| Schedule::parse(*kind, pattern).unwrap())
            .collect();
        let next = |kind: SyncKind, from| {
            schedules
                .iter()
                .find(|s| s.kind == kind)
                .unwrap()
                .next_after(from)
                .unwrap()
        };
        assert_eq!(next(SyncKind::Availability, at(10, 7, 0)), at(10, 15, 0));
        assert_eq!(
            next(SyncKind::Availability, at(10, 15, 0)),
            at(10, 30, 0),
            "strictly after"
        );
        assert_eq!(next(SyncKind::Pricing, at(10, 7, 0)), at(11, 0, 0));
        assert_eq!(
            next(SyncKind::Listing, at(10, 7, 0)),
            Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0)
                .single()
                .unwrap()
        );
    }

    #[test]
    fn schedules_due_at_the_same_instant_all_run() {
        let schedules: Vec<Schedule> = default_patterns()
            .iter()
            .map(|(kind, pattern)| Schedule::parse(*kind, pattern).unwrap())
            .collect();
        let kinds = |indexes: Vec<usize>| -> Vec<SyncKind> {
            indexes.into_iter().map(|i| schedules[i].kind).collect()
        };
        let (when, due) = next_due(&schedules, at(10, 59, 0)).unwrap();
        assert_eq!(when, at(11, 0, 0));
        assert_eq!(
            kinds(due),
            [
                SyncKind::Availability,
                SyncKind::Pricing,
                SyncKind::Reservations
            ]
        );
        let (when, due) = next_due(&schedules, at(11, 0, 0)).unwrap();
        assert_eq!(when, at(11, 15, 0));
        assert_eq!(kinds(due), [SyncKind::Availability, SyncKind::Reservations]);
        let (_, due) = next_due(&schedules, at(23, 59, 0)).unwrap();
        assert_eq!(due.len(), 4, "at midnight every schedule runs");
    }

    #[test]
    fn seconds_are_optional_and_bad_patterns_are_refused() {
        let fast = Schedule::parse(SyncKind::Availability, "*/5 * * * * *").unwrap();
        assert_eq!(fast.next_after(at(10, 0, 1)).unwrap(), at(10, 0, 5));
        for bad in ["", "every 15 minutes", "61 * * * *", "* * *"] {
            let error = Schedule::parse(SyncKind::Pricing, bad).unwrap_err();
            assert_eq!(error.kind, SyncKind::Pricing, "{bad}");
        }
    }

    #[test]
    fn reservation_polling_is_never_sliced() {
        let polling = Schedule::parse(SyncKind::Reservations, "*/15 * * * *")
            .unwrap()
            .with_slices(96);
        assert_eq!(polling.slices, 1);
        let availability = Schedule::parse(SyncKind::Availability, "*/15 * * * *")
            .unwrap()
            .with_slices(96);
        assert_eq!(availability.slices, 96);
    }

    #[test]
    fn the_latest_slot_is_the_one_at_or_before_now() {
        let every_quarter = Schedule::parse(SyncKind::Availability, "*/15 * * * *").unwrap();
        assert_eq!(
            every_quarter.latest_at_or_before(at(10, 7, 0)).unwrap(),
            at(10, 0, 0)
        );
        assert_eq!(
            every_quarter.latest_at_or_before(at(10, 15, 0)).unwrap(),
            at(10, 15, 0),
            "a slot due now is the latest"
        );
    }

    #[test]
    fn slices_cover_every_listing_once_per_round() {
        let keys: Vec<JobKey> = (0..200)
            .map(|n| JobKey {
                account: AccountId::parse("70001").unwrap(),
                listing: Some(ListingId::parse(format!("{}", 300_000 + n)).unwrap()),
                kind: SyncKind::Availability,
            })
            .collect();
        let count = 4;
        let per_slice: Vec<usize> = (0..count)
            .map(|s| keys.iter().filter(|k| slice_of(k, count) == s).count())
            .collect();
        assert_eq!(per_slice.iter().sum::<usize>(), 200);
        assert!(
            per_slice.iter().all(|n| *n > 20),
            "roughly even: {per_slice:?}"
        );
    }
}
