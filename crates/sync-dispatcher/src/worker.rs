//! Running one sync job.
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

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use chrono::{NaiveDate, NaiveDateTime, Utc};
use domain::{AccountId, Currency, ListingId, SyncKind, UnitId};
use hostaway_client::{ErrorKind, HostawayClient, HostawayError, ListingsQuery, ReservationsQuery};
use retry::{RetryPolicy, full_jitter};
use serde_json::{Map, Value, json};
use service_kit::consume::{DbGate, ack};
use service_kit::publish::Publisher;
use store::remote::{ListingRef, ReadDay};
use store::sync_jobs::JobEnd;
use store::{PgPool, StoreError};
use tracing::Instrument;
use uuid::Uuid;

use crate::dead_letter::{FailedJob, SyncDeadLetters};
use crate::metrics::SyncMetrics;
use crate::plan;
use crate::queue::{self, Job, JobQueue, Mode};

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
    /// Reservation polling re-reads this far behind its cursor (clock skew,
    /// same-second updates).
    pub poll_overlap: Duration,
    /// How far back the first poll of an account looks.
    pub poll_lookback: Duration,
    pub publish_timeout: Duration,
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
            poll_overlap: Duration::from_secs(600),
            poll_lookback: Duration::from_secs(24 * 3600),
            publish_timeout: Duration::from_secs(5),
        }
    }
}

/// Days longer than this are read back in several calls.
const READ_CHUNK_DAYS: i64 = 365;
/// Reservations per page when polling.
const POLL_PAGE: u32 = 100;
/// Reservations fetched one by one per polling run at most (the rest wait
/// for the next run).
const MAX_FETCHES_PER_RUN: i64 = 20;
/// Hostaway's date-time format.
const HOSTAWAY_TIME: &str = "%Y-%m-%d %H:%M:%S";

#[derive(Debug)]
pub struct JobRunner {
    pub pool: PgPool,
    pub client: HostawayClient,
    pub queue: JobQueue,
    pub dead_letters: SyncDeadLetters,
    /// Where polled reservations go: the webhooks stream, like a webhook.
    pub inbound: Publisher,
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
    /// Cancelled on SIGTERM: running jobs get `shutdown_grace` to finish,
    /// then give their listing's lease back and their message to another
    /// replica at once.
    pub stop: tokio_util::sync::CancellationToken,
    pub shutdown_grace: Duration,
}

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

/// What a finished job did.
#[derive(Debug, Default)]
struct Report {
    ranges: usize,
}

/// What a run used, whatever its outcome.
#[derive(Debug)]
struct Ran {
    /// The lease of this run.
    lease: Uuid,
    calls: u32,
    /// The desired revision the job read, to notice changes made meanwhile.
    revision: Option<(UnitId, i64)>,
}

#[derive(Debug)]
enum JobError {
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

impl From<StoreError> for JobError {
    fn from(error: StoreError) -> Self {
        JobError::Store(error)
    }
}

impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> Self {
        JobError::Store(error.into())
    }
}

impl JobError {
    fn api(error: HostawayError, context: Value) -> Self {
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

    fn business(message: String, context: Value) -> Self {
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
struct Calls<'a> {
    runner: &'a JobRunner,
    kind: SyncKind,
    made: u32,
    revision: Option<(UnitId, i64)>,
    waiting_since: Option<chrono::DateTime<Utc>>,
}

impl Calls<'_> {
    /// Counts a call that reached Hostaway (one refused by the open circuit
    /// never left the process).
    fn count<T>(&mut self, result: &Result<T, HostawayError>) {
        if matches!(result, Err(e) if e.kind == ErrorKind::CircuitOpen) {
            return;
        }
        self.made += 1;
        self.runner
            .metrics
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
            "sync_job",
            job_id = %job.key.id(),
            sync_type = job.key.kind.as_str(),
            account_id = %job.key.account,
            listing_id = job.key.listing.as_ref().map(|l| l.to_string()),
            mode = ?job.mode,
        );
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
            runner: self,
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
        self.settle(message, job, ran, result, started).await;
    }

    async fn settle(
        &self,
        message: &jetstream::Message,
        job: &Job,
        ran: Ran,
        result: Result<Report, JobError>,
        started: Instant,
    ) {
        let kind = job.key.kind;
        let kind_label = kind.as_str();
        match result {
            Ok(report) => {
                self.gate.mark_up();
                self.release(job, &ran, JobEnd::Succeeded).await;
                if let Ok(mut conn) = self.pool.acquire().await
                    && let Err(error) = store::dlq::resolve_for_job(&mut conn, &job.key.id()).await
                {
                    tracing::warn!(%error, "cannot resolve the job's dead letters");
                }
                self.metrics
                    .jobs
                    .with_label_values(&[kind_label, "success"])
                    .inc();
                self.metrics
                    .job_duration
                    .with_label_values(&[kind_label])
                    .observe(started.elapsed().as_secs_f64());
                tracing::info!(
                    calls = ran.calls,
                    ranges = report.ranges,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "sync job completed"
                );
                self.let_go(message, job, ran.revision).await;
            }
            Err(JobError::Defer { reason, delay }) => {
                self.release(job, &ran, JobEnd::Released).await;
                self.defer(message, kind, reason, delay).await;
            }
            Err(JobError::Store(error)) => {
                self.release(job, &ran, JobEnd::Released).await;
                self.store_trouble(message, kind, &error).await;
            }
            Err(JobError::Failed {
                reason,
                message: text,
                retryable,
                context,
            }) => {
                self.metrics
                    .jobs
                    .with_label_values(&[kind_label, "failure"])
                    .inc();
                let attempts = self.release(job, &ran, JobEnd::Failed(&text)).await;
                let exhausted =
                    attempts >= i32::try_from(self.settings.retry.max_attempts).unwrap_or(i32::MAX);
                if retryable && !exhausted {
                    let delay = self.settings.retry.delay(attempts.max(1) as u32);
                    tracing::warn!(reason, error = %text, attempts, retry_in_ms = delay.as_millis() as u64, "sync job failed; will retry");
                    ack(message, AckKind::Nak(Some(delay))).await;
                    return;
                }
                let failed = FailedJob {
                    key: &job.key,
                    mode: job.mode,
                    message,
                    attempts,
                    reason: &reason,
                    error: &text,
                    context,
                };
                match self.dead_letters.job(failed).await {
                    Ok(()) => {
                        self.metrics
                            .dead_lettered
                            .with_label_values(&[kind_label, &reason])
                            .inc();
                        // The letter holds this failure; the next change
                        // starts with every attempt again.
                        if let Err(error) =
                            store::sync_jobs::reset_attempts(&self.pool, &job.key).await
                        {
                            tracing::warn!(%error, "cannot reset the job's attempts");
                        }
                        ack(message, AckKind::Ack).await;
                        // A correction published while it failed folded
                        // into this job: it gets a job of its own.
                        self.requeue_if_moved(job, ran.revision).await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot dead-letter the job yet; it stays queued");
                        ack(message, AckKind::Nak(Some(Duration::from_secs(5)))).await;
                    }
                }
            }
        }
    }

    async fn release(&self, job: &Job, ran: &Ran, end: JobEnd<'_>) -> i32 {
        match store::sync_jobs::release(&self.pool, &job.key, ran.lease, end, ran.calls).await {
            Ok(attempts) => attempts,
            Err(error) => {
                tracing::warn!(%error, "cannot release the lease; it expires by itself");
                0
            }
        }
    }

    /// Lets a finished job's message go. Changes made while the job ran found
    /// its message waiting and folded into it; while the message is on the
    /// queue they are safe, so it is acknowledged only once it is known that
    /// none came, and otherwise delivered again (a push) or followed by a push
    /// (a reconciliation, whose subject is another).
    async fn let_go(&self, message: &jetstream::Message, job: &Job, read: Option<(UnitId, i64)>) {
        match self.moved_since(job, read).await {
            Ok(false) => {
                if let Err(error) = message.double_ack().await {
                    tracing::warn!(%error, "job acknowledgement not confirmed; it may run again (harmlessly)");
                }
                // A change committed between the check and the acknowledgement.
                self.requeue_if_moved(job, read).await;
            }
            Ok(true) if job.mode == Mode::Push => {
                tracing::info!("desired state moved while the job ran; it runs again");
                ack(message, AckKind::Nak(None)).await;
            }
            Ok(true) => match self.queue.enqueue(&job.key, Mode::Push).await {
                Ok(_) => ack(message, AckKind::Ack).await,
                Err(error) => {
                    tracing::warn!(%error, "cannot queue the follow-up push; the reconciliation runs again");
                    ack(message, AckKind::Nak(Some(Duration::from_secs(5)))).await;
                }
            },
            Err(error) => {
                // Running again pushes only what is still missing.
                tracing::warn!(%error, "cannot check for changes made meanwhile; the job runs again");
                ack(message, AckKind::Nak(Some(Duration::from_secs(5)))).await;
            }
        }
    }

    /// Whether the unit's desired state moved after the job read revision `read`.
    async fn moved_since(
        &self,
        job: &Job,
        read: Option<(UnitId, i64)>,
    ) -> Result<bool, StoreError> {
        let Some((unit, revision)) = read else {
            return Ok(false);
        };
        let mut conn = self.pool.acquire().await?;
        let (current, _) = store::desired::revision(&mut conn, unit, job.key.kind).await?;
        Ok(current != revision)
    }

    async fn defer(
        &self,
        message: &jetstream::Message,
        kind: SyncKind,
        reason: &'static str,
        delay: Duration,
    ) {
        self.metrics
            .deferred
            .with_label_values(&[kind.as_str(), reason])
            .inc();
        tracing::debug!(
            reason,
            delay_ms = delay.as_millis() as u64,
            "sync job deferred"
        );
        let delay = (!delay.is_zero()).then_some(delay);
        ack(message, AckKind::Nak(delay)).await;
    }

    async fn store_trouble(
        &self,
        message: &jetstream::Message,
        kind: SyncKind,
        error: &StoreError,
    ) {
        let delay = if error.is_transient() {
            self.gate.mark_down();
            self.gate.retry_delay()
        } else {
            full_jitter(Duration::from_millis(200), Duration::from_secs(5), 3)
        };
        tracing::warn!(%error, "database trouble; the job waits");
        self.defer(message, kind, "database", delay).await;
    }

    /// Queues a push if the unit's desired state moved after the job read it
    /// and its message is already gone.
    async fn requeue_if_moved(&self, job: &Job, read: Option<(UnitId, i64)>) {
        match self.moved_since(job, read).await {
            Ok(true) => {
                if let Err(error) = self.queue.enqueue(&job.key, Mode::Push).await {
                    tracing::warn!(%error, "cannot queue the follow-up job; reconciliation will catch up");
                }
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "cannot check for changes made meanwhile"),
        }
    }

    async fn execute(&self, job: &Job, calls: &mut Calls<'_>) -> Result<Report, JobError> {
        match (&job.key.listing, job.key.kind) {
            (None, SyncKind::Reservations) => self.poll_reservations(&job.key.account, calls).await,
            (Some(listing), SyncKind::Availability | SyncKind::Pricing) => {
                self.calendar(job, listing, calls).await
            }
            (Some(listing), SyncKind::Listing) => self.listing(job, listing, calls).await,
            _ => Err(JobError::business(
                "a job of this kind cannot name that target".into(),
                Value::Null,
            )),
        }
    }

    /// The unit a listing job pushes, and the revision of its desired state;
    /// `None` when the listing is not linked (nothing to push). A push whose
    /// unit is still changing waits (see [`WorkerSettings::settle`]).
    async fn target(
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

    async fn calendar(
        &self,
        job: &Job,
        listing: &ListingId,
        calls: &mut Calls<'_>,
    ) -> Result<Report, JobError> {
        let account = &job.key.account;
        let Some(unit) = self.target(job, listing, calls).await? else {
            return Ok(Report::default());
        };
        let at = ListingRef::of(account, listing);
        let from = Utc::now().date_naive() - chrono::Duration::days(1);
        let currency = self.currency(job, listing, calls).await?;
        if job.mode == Mode::Reconcile {
            self.read_calendar(account, listing, unit, from, currency, calls)
                .await?;
        }
        let mut conn = self.pool.acquire().await?;
        let days = store::desired::calendar(&mut conn, unit, at.account, at.listing, from).await?;
        drop(conn);
        let mut refused = None;
        let (intervals, pushed, dirty): (Vec<_>, Vec<_>, usize) = match job.key.kind {
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
        if job.mode == Mode::Reconcile && dirty > 0 {
            self.metrics
                .drift
                .with_label_values(&[job.key.kind.as_str()])
                .inc_by(dirty as u64);
            tracing::info!(days = dirty, "reconciliation found drift");
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

    /// The listing's currency: known, or read once (pricing needs it; a
    /// calendar read converts prices with it).
    async fn currency(
        &self,
        job: &Job,
        listing: &ListingId,
        calls: &mut Calls<'_>,
    ) -> Result<Option<Currency>, JobError> {
        let at = ListingRef::of(&job.key.account, listing);
        let facts = store::remote::facts(&self.pool, at).await?;
        if facts.currency.is_some()
            || (job.key.kind == SyncKind::Availability && job.mode == Mode::Push)
        {
            return Ok(facts.currency);
        }
        // One pass over the account's listings (a hundred a page) learns the
        // currency of all of them; concurrent jobs of the account wait for it
        // rather than repeat it.
        let gate = self.currency_reads.gate(&job.key.account);
        let _reading = gate.lock().await;
        let facts = store::remote::facts(&self.pool, at).await?;
        if facts.currency.is_some() {
            return Ok(facts.currency);
        }
        let mut query = ListingsQuery::default();
        let mut found = None;
        loop {
            let answer = self.client.list_listings(&job.key.account, &query).await;
            calls.count(&answer);
            let page = answer.map_err(|e| JobError::api(e, json!({"reading": "listings"})))?;
            let currencies: Vec<(String, Currency)> = page
                .items
                .iter()
                .filter_map(|l| l.currency.map(|c| (l.id.to_string(), c)))
                .collect();
            store::remote::record_currencies(&self.pool, at.account, &currencies).await?;
            if let Some(ours) = page.items.iter().find(|l| &l.id == listing) {
                found = Some(ours.currency);
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
            Some(currency) => Ok(currency),
            // Not among the account's listings: asked directly, Hostaway says
            // why (a 404 is final, and dead-letters the job).
            None => {
                let answer = self.client.get_listing(&job.key.account, listing).await;
                calls.count(&answer);
                let read = answer.map_err(|e| JobError::api(e, json!({"reading": "listing"})))?;
                store::remote::record_read_listing(&self.pool, at, read.currency, &[]).await?;
                Ok(read.currency)
            }
        }
    }

    /// Reads Hostaway's calendar for the unit's desired horizon (unless read
    /// recently) and records it as what Hostaway has.
    async fn read_calendar(
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
                    available: d.is_available,
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

    async fn listing(
        &self,
        job: &Job,
        listing: &ListingId,
        calls: &mut Calls<'_>,
    ) -> Result<Report, JobError> {
        let account = &job.key.account;
        let Some(unit) = self.target(job, listing, calls).await? else {
            return Ok(Report::default());
        };
        let at = ListingRef::of(account, listing);
        let mut conn = self.pool.acquire().await?;
        let desired = store::desired::listing(&mut conn, unit, at.account, at.listing).await?;
        drop(conn);
        if job.mode == Mode::Reconcile {
            let answer = self.client.get_listing(account, listing).await;
            calls.count(&answer);
            let read = answer.map_err(|e| JobError::api(e, json!({"reading": "listing"})))?;
            let shown: Vec<(String, Option<Value>)> = desired
                .iter()
                .map(|f| (f.field.clone(), read.raw.get(&f.field).cloned()))
                .collect();
            store::remote::record_read_listing(&self.pool, at, read.currency, &shown).await?;
        }
        let mut conn = self.pool.acquire().await?;
        let fields = store::desired::listing(&mut conn, unit, at.account, at.listing).await?;
        drop(conn);
        let drift = plan::listing_drift(&fields);
        if drift.is_empty() {
            return Ok(Report::default());
        }
        if job.mode == Mode::Reconcile {
            self.metrics
                .drift
                .with_label_values(&["listing"])
                .inc_by(drift.len() as u64);
        }
        let body: Map<String, Value> = drift.iter().cloned().collect();
        let answer = self.client.update_listing(account, listing, &body).await;
        calls.count(&answer);
        answer.map_err(|e| JobError::api(e, json!({"unitId": unit.to_string(), "fields": drift.iter().map(|(f, _)| f).collect::<Vec<_>>()})))?;
        store::remote::record_pushed_listing(&self.pool, at, &drift).await?;
        self.metrics
            .ranges_pushed
            .with_label_values(&["listing"])
            .inc();
        Ok(Report { ranges: 1 })
    }

    /// Fetches the reservations the ingestor asked for (a webhook of theirs
    /// was incomplete), then pages through the account's reservations
    /// changed since the cursor; each goes to the ingestor exactly as a
    /// webhook would: the same stream, the same deduplication, the same
    /// ordering rule (an API read wins a tie).
    async fn poll_reservations(
        &self,
        account: &AccountId,
        calls: &mut Calls<'_>,
    ) -> Result<Report, JobError> {
        self.fetch_requested(account, calls).await?;
        let cursor = store::sync_jobs::poll_cursor(&self.pool, account).await?;
        let started = Utc::now().naive_utc();
        // A cursor ahead of this clock (a stamp from the future, stored before
        // such stamps were refused) is read as now, so it cannot skip what
        // happens until the clock catches up.
        let since = cursor
            .as_deref()
            .and_then(|c| NaiveDateTime::parse_from_str(c, HOSTAWAY_TIME).ok())
            .map(|c| {
                c.min(started)
                    - chrono::Duration::from_std(self.settings.poll_overlap).unwrap_or_default()
            })
            .unwrap_or_else(|| {
                started
                    - chrono::Duration::from_std(self.settings.poll_lookback).unwrap_or_default()
            });
        let mut query = ReservationsQuery {
            limit: Some(POLL_PAGE),
            latest_activity_start: Some(since.format(HOSTAWAY_TIME).to_string()),
            sort_order: Some("updatedOn".into()),
            ..ReservationsQuery::default()
        };
        let mut newest = cursor.clone();
        let mut seen = 0u64;
        // The cursor never passes this poll's own start: activity stamped later
        // (clock skew, bad data) is read again next time rather than skipped.
        let horizon = started.format(HOSTAWAY_TIME).to_string();
        loop {
            let answer = self.client.list_reservations(account, &query).await;
            calls.count(&answer);
            let page = answer.map_err(|e| {
                JobError::api(
                    e,
                    json!({"reading": "reservations", "since": query.latest_activity_start}),
                )
            })?;
            // A record without an id can be neither fed nor paged after; it
            // must not stall the account's polling either.
            let Some(last_id) = page.iter().rev().find_map(|r| text(r.get("id"))) else {
                break;
            };
            for reservation in &page {
                if text(reservation.get("id")).is_none() {
                    tracing::warn!("polled reservation without an id; skipped");
                    continue;
                }
                self.feed(account, reservation, events::pb::Source::Reconciliation)
                    .await?;
                seen += 1;
                if let Some(activity) = poll_mark(reservation, &horizon)
                    && newest.as_deref().is_none_or(|n| activity.as_str() > n)
                {
                    newest = Some(activity);
                }
            }
            if query.after_id.as_deref() == Some(last_id.as_str())
                || page.len() < POLL_PAGE as usize
            {
                break;
            }
            query.after_id = Some(last_id);
        }
        self.metrics.reservations_polled.inc_by(seen);
        if let Some(newest) = newest {
            store::sync_jobs::advance_poll_cursor(&self.pool, account, &newest, seen).await?;
        }
        tracing::info!(reservations = seen, "reservations polled");
        Ok(Report { ranges: 0 })
    }

    /// Fetches each reservation the ingestor asked for and feeds it. A
    /// request Hostaway refuses for good (not found, forbidden, invalid) is
    /// dropped, and said; a transient failure leaves the rest for the next
    /// run, and polling goes on (one bad request must not stop it).
    async fn fetch_requested(
        &self,
        account: &AccountId,
        calls: &mut Calls<'_>,
    ) -> Result<(), JobError> {
        let requested =
            store::sync_jobs::pending_fetches(&self.pool, account, MAX_FETCHES_PER_RUN).await?;
        for id in requested {
            let Ok(reservation) = domain::ReservationId::parse(id.as_str()) else {
                store::sync_jobs::fetch_done(&self.pool, account, &id).await?;
                continue;
            };
            let answer = self.client.get_reservation(account, &reservation).await;
            calls.count(&answer);
            match answer {
                Ok(record) => {
                    self.feed(account, &record, events::pb::Source::ApiFetch)
                        .await?;
                    self.metrics.reservations_fetched.inc();
                    tracing::info!(reservation_id = %id, "incomplete reservation fetched from the API");
                }
                Err(error) if error.kind == ErrorKind::CircuitOpen || error.retryable => {
                    tracing::warn!(reservation_id = %id, %error, "reservation not fetched now; the next poll tries again");
                    return Ok(());
                }
                Err(error) => {
                    tracing::warn!(reservation_id = %id, %error, "Hostaway refuses the reservation an incomplete webhook named; the request is dropped (the webhook waits for its reservation's next webhook or poll)");
                }
            }
            store::sync_jobs::fetch_done(&self.pool, account, &id).await?;
        }
        Ok(())
    }

    async fn feed(
        &self,
        account: &AccountId,
        reservation: &Map<String, Value>,
        source: events::pb::Source,
    ) -> Result<(), JobError> {
        let outgoing = service_kit::inbound::api_read(
            self.queue.topology(),
            account,
            reservation,
            source,
            format!("poll-{}", self.holder),
        );
        self.inbound
            .publish(outgoing.subject, &outgoing.webhook_id, outgoing.payload)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "cannot feed a reservation read from the API; the poll runs again later");
                JobError::Defer {
                    reason: "nats",
                    delay: Duration::from_secs(5),
                }
            })?;
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

/// Where a polled reservation puts the cursor: the field the poll filters on
/// (`latestActivityOn`), else `updatedOn`; never a stamp past `horizon` (the
/// poll's start), which would pin the cursor ahead of activity yet to come.
fn poll_mark(reservation: &Map<String, Value>, horizon: &str) -> Option<String> {
    ["latestActivityOn", "updatedOn"]
        .iter()
        .find_map(|field| text(reservation.get(*field)))
        .filter(|stamp| {
            NaiveDateTime::parse_from_str(stamp, HOSTAWAY_TIME).is_ok() && stamp.as_str() <= horizon
        })
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
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

    fn reservation(fields: Value) -> Map<String, Value> {
        match fields {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn the_poll_cursor_follows_latest_activity_and_ignores_the_future() {
        let horizon = "2026-11-28 12:00:00";
        let both = reservation(json!({
            "id": 1, "latestActivityOn": "2026-11-28 10:00:00", "updatedOn": "2026-11-28 09:00:00"
        }));
        assert_eq!(
            poll_mark(&both, horizon).as_deref(),
            Some("2026-11-28 10:00:00")
        );
        let updated_only = reservation(json!({"id": 2, "updatedOn": "2026-11-28 09:00:00"}));
        assert_eq!(
            poll_mark(&updated_only, horizon).as_deref(),
            Some("2026-11-28 09:00:00")
        );
        let future = reservation(json!({"id": 3, "latestActivityOn": "2031-01-01 00:00:00"}));
        assert_eq!(poll_mark(&future, horizon), None, "would pin the cursor");
        let ahead = reservation(json!({"id": 5, "latestActivityOn": "2026-11-28 12:00:01"}));
        assert_eq!(
            poll_mark(&ahead, horizon),
            None,
            "a second past the poll's start"
        );
        let garbage = reservation(json!({"id": 4, "latestActivityOn": "yesterday"}));
        assert_eq!(poll_mark(&garbage, horizon), None);
    }
}
