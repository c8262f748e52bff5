//! The dispatcher's metrics, named after the specification's
//! (`hostaway.sync.jobs`, `hostaway.sync.job_duration`,
//! `hostaway.sync.queue_length`).

use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};
use service_kit::metrics::{LATENCY_BUCKETS, Metrics};

#[derive(Debug, Clone)]
pub struct SyncMetrics {
    /// `status`: `success` (in line with TVL), `failure` (retried or dead-lettered).
    pub jobs: IntCounterVec,
    pub job_duration: HistogramVec,
    /// Jobs waiting or running, by kind.
    pub queue_length: IntGaugeVec,
    /// Jobs put back without an attempt: `lease_busy`, `circuit_open`,
    /// `database`, `settling`, `shutdown`.
    pub deferred: IntCounterVec,
    pub dead_lettered: IntCounterVec,
    /// Jobs that ran without touching Hostaway because the account's
    /// configuration turns their sync type off.
    pub skipped: IntCounterVec,
    /// Changes consumed: `applied`, `unchanged` (older or repeated), `invalid`.
    pub changes: IntCounterVec,
    /// Calendar ranges (or listing updates) Hostaway accepted.
    pub ranges_pushed: IntCounterVec,
    /// Hostaway API calls the jobs made (reads included).
    pub api_calls: IntCounterVec,
    /// Days (or fields) found different from TVL by reconciliation.
    pub drift: IntCounterVec,
    pub reconcile_runs: IntCounterVec,
    pub reservations_polled: IntCounter,
    /// Reservations fetched one by one because a webhook of theirs was incomplete.
    pub reservations_fetched: IntCounter,
    /// Age of the oldest successful reservation poll among enabled accounts:
    /// a cursor that stops moving.
    pub poll_oldest_seconds: Gauge,
    pub database_available: IntGauge,
}

impl SyncMetrics {
    pub fn register(metrics: &Metrics) -> anyhow::Result<Self> {
        let counter = |name: &str, help: &str, labels: &[&str]| -> anyhow::Result<IntCounterVec> {
            metrics.register(IntCounterVec::new(Opts::new(name, help), labels)?)
        };
        Ok(Self {
            jobs: counter(
                "hostaway_sync_jobs_total",
                "Sync jobs run, by sync type and status",
                &["sync_type", "status"],
            )?,
            job_duration: metrics.register(HistogramVec::new(
                HistogramOpts::new(
                    "hostaway_sync_job_duration_seconds",
                    "Time to run one sync job, API calls and rate-limit waits included",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["sync_type"],
            )?)?,
            queue_length: metrics.register(IntGaugeVec::new(
                Opts::new(
                    "hostaway_sync_queue_length",
                    "Sync jobs waiting or running, by sync type",
                ),
                &["sync_type"],
            )?)?,
            deferred: counter(
                "hostaway_sync_jobs_deferred_total",
                "Sync jobs put back without counting an attempt, by reason",
                &["sync_type", "reason"],
            )?,
            dead_lettered: counter(
                "hostaway_sync_dead_lettered_total",
                "Sync jobs and changes moved to the dead-letter queue",
                &["sync_type", "reason"],
            )?,
            skipped: counter(
                "hostaway_sync_jobs_skipped_total",
                "Sync jobs not run because the account's configuration turns their sync type off",
                &["sync_type"],
            )?,
            changes: counter(
                "hostaway_sync_changes_total",
                "TVL changes consumed, by kind and outcome",
                &["kind", "outcome"],
            )?,
            ranges_pushed: counter(
                "hostaway_sync_ranges_pushed_total",
                "Calendar ranges or listing updates Hostaway accepted",
                &["sync_type"],
            )?,
            api_calls: counter(
                "hostaway_sync_api_calls_total",
                "Hostaway API calls made by sync jobs, reads included",
                &["sync_type"],
            )?,
            drift: counter(
                "hostaway_reconcile_drift_total",
                "Days or fields reconciliation found Hostaway to differ from TVL",
                &["sync_type"],
            )?,
            reconcile_runs: counter(
                "hostaway_reconcile_runs_total",
                "Reconciliation schedule slots run by this replica",
                &["schedule"],
            )?,
            reservations_polled: metrics.register(IntCounter::new(
                "hostaway_reservations_polled_total",
                "Reservations fetched by polling and fed to ingestion",
            )?)?,
            reservations_fetched: metrics.register(IntCounter::new(
                "hostaway_reservations_fetched_total",
                "Reservations fetched from the API because a webhook of theirs was incomplete",
            )?)?,
            poll_oldest_seconds: metrics.register(Gauge::new(
                "hostaway_reservation_poll_oldest_seconds",
                "Seconds since the enabled account polled least recently had its reservations polled successfully",
            )?)?,
            database_available: metrics.register(IntGauge::new(
                "hostaway_sync_database_available",
                "1 while PostgreSQL answers, 0 while consumption waits on it",
            )?)?,
        })
    }
}
