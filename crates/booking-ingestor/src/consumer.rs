//! The JetStream consumer loop.
//!
//! At most `concurrency` webhooks are in flight; each is acknowledged only
//! after its transaction committed (or it was dead-lettered). A database outage
//! closes the [`DbGate`]: the loop stops pulling and probes PostgreSQL until it
//! answers, so an outage never uses up a webhook's attempts. Contention
//! (deadlocks, lock timeouts) is retried soon, also without counting.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures::{FutureExt, StreamExt};
use store::PgPool;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::dead_letter::{DeadLetterer, Failed};
use crate::ingest::{self, Inbound, IngestError};
use crate::metrics::IngestorMetrics;
use crate::outbox::EventPublisher;
use retry::{RetryPolicy, full_jitter};

/// Whether PostgreSQL is usable, shared by all workers.
#[derive(Debug, Default)]
pub struct DbGate {
    down: AtomicBool,
    failures: AtomicU32,
}

impl DbGate {
    pub fn is_up(&self) -> bool {
        !self.down.load(Ordering::Acquire)
    }

    pub fn mark_down(&self) {
        self.failures.fetch_add(1, Ordering::AcqRel);
        self.down.store(true, Ordering::Release);
    }

    pub fn mark_up(&self) {
        self.failures.store(0, Ordering::Release);
        self.down.store(false, Ordering::Release);
    }

    /// Grows with consecutive failures: 250 ms … 15 s.
    pub fn retry_delay(&self) -> Duration {
        let failures = self.failures.load(Ordering::Acquire).clamp(1, 7);
        (Duration::from_millis(250) * 2u32.pow(failures - 1)).min(Duration::from_secs(15))
    }

    /// Probes the database until it answers. Returns false if stopped first.
    pub async fn wait_until_up(&self, pool: &PgPool, stop: &CancellationToken) -> bool {
        while !self.is_up() {
            match store::ping(pool).await {
                Ok(()) => {
                    tracing::info!("database reachable again; resuming consumption");
                    self.mark_up();
                }
                Err(_) => {
                    self.failures.fetch_add(1, Ordering::AcqRel);
                    tokio::select! {
                        () = stop.cancelled() => return false,
                        () = tokio::time::sleep(self.retry_delay()) => {}
                    }
                }
            }
        }
        true
    }
}

/// How long a pull request waits on the server, and how often the server
/// proves it is alive while doing so: a lost pull is noticed within seconds.
const PULL_EXPIRES: Duration = Duration::from_secs(30);
const PULL_HEARTBEAT: Duration = Duration::from_secs(5);
/// Consecutive pull errors after which the consumer is bound afresh (it may
/// have been deleted with its stream).
const MAX_PULL_ERRORS: u32 = 5;

/// Why [`Worker::consume`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Shutdown was requested.
    Shutdown,
    /// Pulling kept failing: bind the consumer again.
    Rebind,
}

#[derive(Debug)]
pub struct Worker {
    pub pool: PgPool,
    pub publisher: Arc<EventPublisher>,
    pub dead_letterer: DeadLetterer,
    pub metrics: IngestorMetrics,
    pub retry: RetryPolicy,
    pub gate: Arc<DbGate>,
}

impl Worker {
    /// Consumes until `stop`, or until pulling keeps failing. In-flight
    /// handlers run on `tracker`.
    pub async fn consume(
        self: &Arc<Self>,
        consumer: &PullConsumer,
        concurrency: usize,
        stop: &CancellationToken,
        tracker: &TaskTracker,
    ) -> Stopped {
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut failed_pulls = 0u32;
        loop {
            let mut messages = match consumer
                .stream()
                .max_messages_per_batch(concurrency.max(1) * 2)
                .expires(PULL_EXPIRES)
                .heartbeat(PULL_HEARTBEAT)
                .messages()
                .await
            {
                Ok(messages) => messages,
                Err(error) => {
                    failed_pulls += 1;
                    tracing::warn!(%error, "cannot pull from the webhooks consumer");
                    if failed_pulls >= MAX_PULL_ERRORS {
                        return Stopped::Rebind;
                    }
                    if sleep_or_stop(stop, Duration::from_secs(1)).await {
                        return Stopped::Shutdown;
                    }
                    continue;
                }
            };
            loop {
                if !self.gate.is_up() {
                    self.metrics.database_available.set(0);
                    if !self.gate.wait_until_up(&self.pool, stop).await {
                        return Stopped::Shutdown;
                    }
                    self.metrics.database_available.set(1);
                }
                let permit = tokio::select! {
                    biased;
                    () = stop.cancelled() => return Stopped::Shutdown,
                    permit = Arc::clone(&permits).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => return Stopped::Shutdown,
                    },
                };
                let next = tokio::select! {
                    biased;
                    () = stop.cancelled() => return Stopped::Shutdown,
                    next = messages.next() => next,
                };
                match next {
                    Some(Ok(message)) => {
                        failed_pulls = 0;
                        let worker = Arc::clone(self);
                        tracker.spawn(async move {
                            worker.handle(message).await;
                            drop(permit);
                        });
                    }
                    Some(Err(error)) => {
                        failed_pulls += 1;
                        tracing::warn!(%error, "pull error");
                        if failed_pulls >= MAX_PULL_ERRORS {
                            return Stopped::Rebind;
                        }
                    }
                    None => break,
                }
            }
        }
    }

    async fn handle(&self, message: jetstream::Message) {
        let started = Instant::now();
        let stream_sequence = message.info().ok().map(|info| info.stream_sequence);
        let inbound = match Inbound::decode(&message.payload) {
            Ok(inbound) => inbound,
            Err(error) => {
                self.dead_letter(&message, None, &error, 1, stream_sequence)
                    .await;
                return;
            }
        };
        let span = tracing::info_span!(
            "ingest",
            webhook_id = %inbound.webhook_id,
            account_id = %inbound.account,
            event = inbound.event.as_str(),
            stream_sequence,
        );
        async {
            // A panic is a bug; it must not leave the message to be redelivered
            // (and panic again) forever: it is dead-lettered, to be replayed
            // once fixed.
            let result = AssertUnwindSafe(ingest::apply(&self.pool, &inbound))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Err(IngestError::Permanent {
                        reason: "panic",
                        message: "the ingestor panicked applying this webhook".into(),
                    })
                });
            self.settle(&message, &inbound, result, stream_sequence, started)
                .await;
        }
        .instrument(span)
        .await;
    }

    async fn settle(
        &self,
        message: &jetstream::Message,
        inbound: &Inbound,
        result: Result<ingest::Applied, IngestError>,
        stream_sequence: Option<u64>,
        started: Instant,
    ) {
        let event_type = inbound.event.as_str();
        let error = match result {
            Ok(applied) => {
                self.gate.mark_up();
                self.metrics
                    .processed
                    .with_label_values(&[event_type, "success"])
                    .inc();
                self.metrics
                    .outcomes
                    .with_label_values(&[applied.outcome])
                    .inc();
                self.metrics
                    .processing_duration
                    .with_label_values(&[event_type])
                    .observe(started.elapsed().as_secs_f64());
                if let Ok(age) = (chrono::Utc::now() - inbound.received_at).to_std() {
                    self.metrics.end_to_end.observe(age.as_secs_f64());
                }
                if applied.double_bookings > 0 {
                    self.metrics
                        .double_bookings
                        .inc_by(applied.double_bookings as u64);
                }
                if let Some(change) = applied.block_change {
                    self.metrics
                        .blocks_changed
                        .with_label_values(&[change])
                        .inc();
                }
                if !applied.events.is_empty() {
                    let published = self.publisher.publish(&applied.events).await;
                    if let Err(error) = store::outbox::mark_published(&self.pool, &published).await
                    {
                        tracing::debug!(%error, "published events not marked; the sweeper will republish them (deduplicated)");
                    }
                }
                ack(message, AckKind::Ack).await;
                tracing::info!(
                    outcome = applied.outcome,
                    booking_id = applied.booking.map(|b| b.to_string()),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "webhook processed"
                );
                return;
            }
            Err(error) => error,
        };
        match &error {
            IngestError::Unavailable(_) => {
                self.gate.mark_down();
                self.retry_later(message, &error, self.gate.retry_delay())
                    .await;
            }
            IngestError::Busy(_) | IngestError::Nats(_) => {
                let delay = full_jitter(Duration::from_millis(100), Duration::from_secs(2), 3);
                self.retry_later(message, &error, delay).await;
            }
            IngestError::Retryable { .. }
            | IngestError::Database(_)
            | IngestError::Permanent { .. } => {
                self.metrics
                    .processed
                    .with_label_values(&[event_type, "failure"])
                    .inc();
                let meta = ingest::meta(inbound, None);
                let attempts = match store::webhook_log::record_failure(
                    &self.pool,
                    &meta,
                    &error.to_string(),
                )
                .await
                {
                    Ok(Some(attempts)) => attempts,
                    Ok(None) => {
                        // A redelivery applied it meanwhile.
                        ack(message, AckKind::Ack).await;
                        return;
                    }
                    Err(store_error) => {
                        if store_error.is_transient() {
                            self.gate.mark_down();
                        }
                        tracing::warn!(error = %store_error, "cannot record the failed attempt; retrying later");
                        self.retry_later(message, &error, self.gate.retry_delay())
                            .await;
                        return;
                    }
                };
                let permanent = matches!(error, IngestError::Permanent { .. });
                if permanent
                    || attempts >= i32::try_from(self.retry.max_attempts).unwrap_or(i32::MAX)
                {
                    self.dead_letter(message, Some(inbound), &error, attempts, stream_sequence)
                        .await;
                } else {
                    let delay = self.retry.delay(attempts.max(1) as u32);
                    tracing::warn!(
                        reason = error.reason(),
                        %error,
                        attempts,
                        max_attempts = self.retry.max_attempts,
                        retry_in_ms = delay.as_millis() as u64,
                        "webhook not applied yet; will retry"
                    );
                    self.retry_later(message, &error, delay).await;
                }
            }
        }
    }

    async fn retry_later(
        &self,
        message: &jetstream::Message,
        error: &IngestError,
        delay: Duration,
    ) {
        self.metrics
            .retries
            .with_label_values(&[error.reason()])
            .inc();
        if matches!(
            error,
            IngestError::Unavailable(_) | IngestError::Busy(_) | IngestError::Nats(_)
        ) {
            tracing::warn!(reason = error.reason(), %error, retry_in_ms = delay.as_millis() as u64, "webhook waits on JetStream; no attempt counted");
        }
        ack(message, AckKind::Nak(Some(delay))).await;
    }

    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        inbound: Option<&Inbound>,
        error: &IngestError,
        attempts: i32,
        stream_sequence: Option<u64>,
    ) {
        let failed = Failed {
            payload: &message.payload,
            subject: message.subject.as_str(),
            stream_sequence,
            inbound,
            error,
            attempts,
        };
        match self.dead_letterer.send(failed).await {
            Ok(()) => {
                self.metrics
                    .dead_lettered
                    .with_label_values(&[error.reason()])
                    .inc();
                ack(message, AckKind::Ack).await;
            }
            Err(dlq_error) => {
                if matches!(dlq_error, IngestError::Unavailable(_)) {
                    self.gate.mark_down();
                }
                tracing::warn!(error = %dlq_error, "cannot dead-letter yet; the webhook stays on its stream");
                ack(message, AckKind::Nak(Some(self.gate.retry_delay()))).await;
            }
        }
    }
}

async fn ack(message: &jetstream::Message, kind: AckKind) {
    if let Err(error) = message.ack_with(kind).await {
        // The server redelivers after ack_wait; webhook_log makes that a no-op.
        tracing::warn!(%error, "acknowledgement not sent");
    }
}

async fn sleep_or_stop(stop: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}
