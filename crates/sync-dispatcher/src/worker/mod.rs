//! Running one sync job: the lease, the run, and the end of its message.
//!
//! A job holds its listing's lease while it runs, so two runs (of any
//! replica, or of one) never push the same listing and kind at once. It reads
//! desired and known state, plans the fewest ranges, pushes them at most 200 a
//! call, and records each call's ranges only after Hostaway accepted them.
//! Then its message is acknowledged, unless the desired state moved while it
//! ran: those changes folded into the message, which is delivered again.
//!
//! | outcome | what happens |
//! |---|---|
//! | in line with TVL | acknowledged; open dead letters of the job resolved |
//! | retryable failure (5xx, network, 429 after the client's own retries) | redelivered with backoff; after `max_attempts`, dead-lettered |
//! | final failure (validation, not found, auth, currency mismatch…) | dead-lettered at once |
//! | circuit open | redelivered when the circuit may close; no attempt counted |
//! | lease busy, database down, desired state still settling | redelivered later; no attempt counted |
//!
//! [`calendar`] pushes and reads back availability and prices, [`listing`]
//! listing details; [`ending`] ends the job's message (every way it can end
//! is drawn in ADR 0009). Reservation polling is not an outbound push: it
//! lives in [`crate::polling`], and runs here only because it shares the
//! queue, the lease and the budget.

mod calendar;
mod ending;
mod listing;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use chrono::Utc;
use domain::{AccountId, ListingId, SyncKind, UnitId};
use hostaway_client::{ErrorKind, HostawayClient, HostawayError};
use retry::{RetryPolicy, full_jitter};
use serde_json::{Value, json};
use service_kit::consume::{DbGate, ack};
use store::{PgPool, StoreError, Trouble};
use tracing::Instrument;
use uuid::Uuid;

pub use calendar::{Gates, listing_read};

use crate::dead_letter::SyncDeadLetters;
use crate::metrics::SyncMetrics;
use crate::polling::ReservationPoller;
use crate::queue::{self, Job, JobQueue};

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// A job's hold on its listing; renewed while it runs.
    pub lease_ttl: Duration,
    /// How often a running job tells JetStream and the lease it is alive.
    pub heartbeat: Duration,
    /// Attempts of a retryable failure before the dead-letter queue, and the
    /// backoff between them (the client already retried each call).
    pub retry: RetryPolicy,
    /// A push waits until its unit's desired state has been still this long…
    pub settle: Duration,
    /// …but never longer than this after it was queued.
    pub max_settle: Duration,
    /// Reconciliation reuses a calendar read younger than this.
    pub read_freshness: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(300),
            heartbeat: Duration::from_secs(20),
            retry: RetryPolicy {
                max_attempts: 5,
                base: Duration::from_secs(10),
                cap: Duration::from_secs(600),
            },
            settle: Duration::from_secs(2),
            max_settle: Duration::from_secs(30),
            read_freshness: Duration::from_secs(300),
        }
    }
}

#[derive(Debug)]
pub struct JobRunner {
    pub pool: PgPool,
    pub client: HostawayClient,
    pub queue: JobQueue,
    pub dead_letters: SyncDeadLetters,
    /// Reservation polling and the fetches the ingestor asks for.
    pub poller: ReservationPoller,
    pub metrics: SyncMetrics,
    pub gate: Arc<DbGate>,
    pub settings: WorkerSettings,
    /// This process's identity in leases.
    pub holder: Uuid,
    /// An account's listings are read once for their currencies.
    pub currency_reads: Gates<AccountId>,
    /// A listing's calendar is read once when its availability and pricing
    /// reconciliations fall due together.
    pub calendar_reads: Gates<(AccountId, ListingId)>,
    /// A listing's availability and pricing jobs push one after the other in
    /// this process: the second finds what the first carried for it.
    pub calendar_pushes: Gates<(AccountId, ListingId)>,
    /// Cancelled on SIGTERM: running jobs get `shutdown_grace` to finish,
    /// then give their listing's lease back and their message to another
    /// replica at once.
    pub stop: tokio_util::sync::CancellationToken,
    pub shutdown_grace: Duration,
}

/// What a finished job did.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) ranges: usize,
}

/// What a run used, whatever its outcome.
#[derive(Debug)]
pub(crate) struct Ran {
    /// The lease of this run.
    lease: Uuid,
    calls: u32,
    /// The desired revision the job read, to notice changes made meanwhile.
    revision: Option<(UnitId, i64)>,
}

#[derive(Debug)]
pub(crate) enum JobError {
    /// Try later; not an attempt.
    Defer {
        reason: &'static str,
        delay: Duration,
    },
    /// An attempt failed.
    Failed {
        reason: String,
        message: String,
        retryable: bool,
        context: Value,
    },
    Store(StoreError),
}

/// The one reading of database errors ([`store::Trouble`]): an outage or
/// contention waits without counting; a timeout or a failure is an attempt
/// (work that always fails ends in the dead-letter queue, not in a loop).
impl From<StoreError> for JobError {
    fn from(error: StoreError) -> Self {
        match error.trouble() {
            Trouble::Outage | Trouble::Contention => JobError::Store(error),
            Trouble::Timeout | Trouble::Failure => JobError::Failed {
                reason: "database".into(),
                message: error.to_string(),
                retryable: true,
                context: Value::Null,
            },
        }
    }
}

impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::from(error).into()
    }
}

impl JobError {
    pub(crate) fn api(error: HostawayError, context: Value) -> Self {
        if error.kind == ErrorKind::Throttled {
            // The account's budget is spent (by this or another replica):
            // this worker serves another account meanwhile.
            let wait = error.retry_after.unwrap_or(Duration::from_secs(1));
            return JobError::Defer {
                reason: "throttled",
                delay: wait + full_jitter(Duration::from_millis(100), Duration::from_secs(2), 3),
            };
        }
        if error.kind == ErrorKind::CircuitOpen {
            // Parked until the circuit may let a trial through.
            let wait = error.retry_after.unwrap_or(Duration::from_secs(30));
            return JobError::Defer {
                reason: "circuit_open",
                delay: wait + full_jitter(Duration::from_millis(250), Duration::from_secs(5), 3),
            };
        }
        JobError::Failed {
            reason: error.kind.as_str().to_owned(),
            retryable: error.retryable,
            message: error.to_string(),
            context: json!({"status": error.status, "detail": context}),
        }
    }

    pub(crate) fn business(message: String, context: Value) -> Self {
        JobError::Failed {
            reason: ErrorKind::BusinessRule.as_str().to_owned(),
            message,
            retryable: false,
            context,
        }
    }
}

/// The Hostaway calls of one job, the desired revision it read, and since
/// when it has waited for its unit to settle.
pub(crate) struct Calls<'a> {
    metrics: &'a SyncMetrics,
    kind: SyncKind,
    made: u32,
    revision: Option<(UnitId, i64)>,
    waiting_since: Option<chrono::DateTime<Utc>>,
}

impl Calls<'_> {
    /// Counts a call that reached Hostaway (one refused by the open circuit
    /// never left the process).
    pub(crate) fn count<T>(&mut self, result: &Result<T, HostawayError>) {
        if matches!(result, Err(e) if e.kind == ErrorKind::CircuitOpen) {
            return;
        }
        self.made += 1;
        self.metrics
            .api_calls
            .with_label_values(&[self.kind.as_str()])
            .inc();
    }
}

impl JobRunner {
    /// Runs one job message to its end (acknowledged, redelivered later, or
    /// dead-lettered).
    pub async fn run(&self, message: jetstream::Message) {
        let started = Instant::now();
        let job = match queue::decode(self.queue.topology(), &message.subject, &message.payload) {
            Ok(job) => job,
            Err(error) => {
                // Nothing the connector publishes: kept for a human.
                match self
                    .dead_letters
                    .malformed_job(&message, &error.to_string())
                    .await
                {
                    Ok(()) => {
                        self.metrics
                            .dead_lettered
                            .with_label_values(&["unknown", "malformed"])
                            .inc();
                        ack(&message, AckKind::Ack).await
                    }
                    Err(dlq_error) => {
                        tracing::warn!(error = %dlq_error, "cannot dead-letter the malformed job yet");
                        ack(&message, AckKind::Nak(Some(Duration::from_secs(5)))).await;
                    }
                }
                return;
            }
        };
        let span = tracing::info_span!(
            "hostaway.sync.job",
            otel.kind = "consumer",
            job_id = %job.key.id(),
            sync_type = job.key.kind.as_str(),
            account_id = %job.key.account,
            listing_id = job.key.listing.as_ref().map(|l| l.to_string()),
            mode = ?job.mode,
            otel.status_code = tracing::field::Empty,
        );
        // The trace of the change (or schedule) that queued the job.
        telemetry::propagation::continue_from_nats(&span, message.headers.as_ref());
        self.run_job(&message, &job, started).instrument(span).await;
    }

    async fn run_job(&self, message: &jetstream::Message, job: &Job, started: Instant) {
        let kind = job.key.kind;
        // A lease of this run only: a duplicate delivery, or the job's
        // reconciliation twin, waits for it even in the same process.
        let lease = Uuid::now_v7();
        let leased = match store::sync_jobs::acquire_lease(
            &self.pool,
            &job.key,
            lease,
            self.settings.lease_ttl,
        )
        .await
        {
            Ok(Some(leased)) => leased,
            Ok(None) => {
                self.defer(message, kind, "lease_busy", Duration::from_secs(2))
                    .await;
                return;
            }
            Err(error) => {
                self.store_trouble(message, kind, &error).await;
                return;
            }
        };
        tracing::info!(attempts_before = leased.attempts, "sync job started");
        let mut calls = Calls {
            metrics: &self.metrics,
            kind,
            made: 0,
            revision: None,
            // A push delivered again because changes came while it ran waits
            // for quiet again from its last run, not from when it was queued:
            // a listing that never stops changing is pushed once per
            // `max_settle`, not as fast as the budget allows.
            waiting_since: job.requested_at.max(leased.last_success_at),
        };
        let mut work = Box::pin(self.execute(job, &mut calls));
        let mut heartbeat = tokio::time::interval(self.settings.heartbeat);
        heartbeat.tick().await;
        let grace = self.shutdown_grace;
        let shutdown = async {
            self.stop.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::pin!(shutdown);
        let result = loop {
            tokio::select! {
                result = &mut work => break result,
                // Shutting down and out of grace: what was pushed is recorded
                // (a call in flight is pushed again by the next run, harmlessly).
                () = &mut shutdown => break Err(JobError::Defer { reason: "shutdown", delay: Duration::ZERO }),
                _ = heartbeat.tick() => {
                    ack(message, AckKind::Progress).await;
                    match store::sync_jobs::renew_lease(&self.pool, &job.key, lease, self.settings.lease_ttl).await {
                        Ok(true) => {}
                        // Another run holds the listing now: stop pushing
                        // beside it (what was pushed and not recorded is
                        // pushed again, harmlessly).
                        Ok(false) => break Err(JobError::Defer { reason: "lease_lost", delay: Duration::from_secs(2) }),
                        Err(error) => tracing::warn!(%error, "cannot renew the lease"),
                    }
                }
            }
        };
        drop(work);
        let ran = Ran {
            lease,
            calls: calls.made,
            revision: calls.revision,
        };
        self.conclude(message, job, ran, result, started).await;
    }

    async fn execute(&self, job: &Job, calls: &mut Calls<'_>) -> Result<Report, JobError> {
        // Read when the job runs: a configuration change reaches the next
        // job of every replica, without a restart.
        let (version, config) =
            crate::channel_config::in_force(&self.pool, &job.key.account).await?;
        if !config.syncs(job.key.kind) {
            tracing::info!(
                config_version = version,
                "the account's configuration turns this sync type off; nothing pushed or read"
            );
            self.metrics
                .skipped
                .with_label_values(&[job.key.kind.as_str()])
                .inc();
            return Ok(Report::default());
        }
        let listing = match (&job.key.listing, job.key.kind) {
            (None, SyncKind::Reservations) => {
                return self.poller.poll(&job.key.account, calls).await;
            }
            (Some(listing), SyncKind::Availability | SyncKind::Pricing | SyncKind::Listing) => {
                listing
            }
            _ => {
                return Err(JobError::business(
                    "a job of this kind cannot name that target".into(),
                    Value::Null,
                ));
            }
        };
        let Some(unit) = self.target(job, listing, calls).await? else {
            return Ok(Report::default());
        };
        if job.key.kind == SyncKind::Listing {
            self.listing(job, listing, unit, calls).await
        } else {
            self.calendar(job, listing, unit, calls, &config).await
        }
    }
}
