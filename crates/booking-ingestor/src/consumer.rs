//! The JetStream consumer loop.
//!
//! At most `concurrency` webhooks are in flight; each is acknowledged only
//! after its transaction committed (or it was dead-lettered). A database outage
//! closes the [`DbGate`]: the loop stops pulling and probes PostgreSQL until it
//! answers, so an outage never uses up a webhook's attempts. Contention
//! (deadlocks, lock timeouts) is retried soon, also without counting.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures::FutureExt;
use store::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::dead_letter::{DeadLetterer, Failed};
use crate::ingest::{self, Inbound, IngestError};
use crate::metrics::IngestorMetrics;
use crate::outbox::EventPublisher;
use retry::{RetryPolicy, full_jitter};
use service_kit::consume::{DbGate, GateCheck, Stopped, ack, pull_loop};

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
        let gate = GateCheck {
            gate: Arc::clone(&self.gate),
            pool: self.pool.clone(),
            available: Some(self.metrics.database_available.clone()),
        };
        pull_loop(consumer, concurrency, &gate, stop, tracker, |message| {
            let worker = Arc::clone(self);
            async move { worker.handle(message).await }
        })
        .await
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
