//! The JetStream consumer loop.
//!
//! At most `concurrency` webhooks are in flight; each is acknowledged only
//! after its transaction committed, it was parked, or it was dead-lettered.
//! A database outage closes the [`DbGate`]: the loop stops pulling and probes
//! PostgreSQL until it answers, so an outage never uses up a webhook's
//! attempts. Contention (deadlocks, serialization failures) is retried soon,
//! also without counting; a statement or lock timeout is free the first
//! [`Worker::free_timeouts`] times, then counts as an attempt.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures::FutureExt;
use store::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::batch;
use crate::dead_letter::{DeadLetterer, Failed};
use crate::ingest::{self, Identity, Inbound, IngestError};
use crate::metrics::IngestorMetrics;
use crate::outbox::{EventPublisher, PublishedMarks};
use domain::{AccountId, SyncKind};
use retry::{RetryPolicy, full_jitter};
use service_kit::consume::{DbGate, GateCheck, Stopped, ack, contention_delay, pull_batches};
use service_kit::sync_queue::{JobQueue, Mode};
use store::parked::{NewParked, ParkReason, Parking};
use store::sync_jobs::JobKey;

#[derive(Debug)]
pub struct Worker {
    pub pool: PgPool,
    pub publisher: Arc<EventPublisher>,
    /// Where published events are noted, to be marked in bulk.
    pub marks: PublishedMarks,
    pub dead_letterer: DeadLetterer,
    pub metrics: IngestorMetrics,
    pub retry: RetryPolicy,
    pub gate: Arc<DbGate>,
    /// When a parked webhook is released again: the n-th release comes
    /// `park_schedule[n]` after the n-th parking; then it is dead-lettered.
    pub park_schedule: Vec<Duration>,
    /// Statement or lock timeouts of one webhook that cost no attempt.
    pub free_timeouts: i32,
    /// While a batch is being applied, its messages are reported in
    /// progress this often, so JetStream does not deliver them again.
    pub progress_every: Duration,
    /// Where the fetch of an incomplete reservation is asked for (the
    /// account's reservation polling job, run by the sync dispatcher).
    pub jobs: JobQueue,
}

impl Worker {
    /// Consumes until `stop`, or until pulling keeps failing: at most
    /// `concurrency` batches of up to `batch` webhooks in flight. In-flight
    /// handlers run on `tracker`.
    pub async fn consume(
        self: &Arc<Self>,
        consumer: &PullConsumer,
        concurrency: usize,
        batch: usize,
        stop: &CancellationToken,
        tracker: &TaskTracker,
    ) -> Stopped {
        let gate = GateCheck {
            gate: Arc::clone(&self.gate),
            pool: self.pool.clone(),
            available: Some(self.metrics.database_available.clone()),
        };
        pull_batches(
            consumer,
            concurrency,
            batch,
            &gate,
            stop,
            tracker,
            |messages| {
                let worker = Arc::clone(self);
                async move { worker.handle_batch(messages).await }
            },
        )
        .await
    }

    /// The webhooks pulled together: each decoded and checked on its own
    /// (what is refused is dead-lettered alone), the rest applied in one
    /// transaction when there are several, then each concluded in its own
    /// span, their events published and their messages acknowledged at once.
    async fn handle_batch(&self, messages: Vec<jetstream::Message>) {
        let started = Instant::now();
        let mut admitted = Vec::with_capacity(messages.len());
        let mut inbounds = Vec::with_capacity(messages.len());
        for message in messages {
            let stream_sequence = message.info().ok().map(|info| info.stream_sequence);
            if let Some((inbound, span)) = self.admit(&message, stream_sequence).await {
                admitted.push((message, span, stream_sequence));
                inbounds.push(inbound);
            }
        }
        if !inbounds.is_empty() {
            self.metrics.batch_size.observe(inbounds.len() as f64);
        }
        if inbounds.len() == 1
            && let (Some((message, span, stream_sequence)), Some(inbound)) =
                (admitted.pop(), inbounds.pop())
        {
            async {
                let result = catch_panic(ingest::apply(&self.pool, &inbound)).await;
                self.conclude(&message, &inbound, result, stream_sequence, started)
                    .await;
            }
            .instrument(span)
            .await;
            return;
        }
        if inbounds.is_empty() {
            return;
        }
        let span = tracing::info_span!("hostaway.webhook.apply_batch", batch_size = inbounds.len());
        for (message, _, _) in &admitted {
            telemetry::propagation::link_from_nats(&span, message.headers.as_ref());
        }
        let applying = async {
            match AssertUnwindSafe(batch::apply_batch(&self.pool, &inbounds))
                .catch_unwind()
                .instrument(span)
                .await
            {
                Ok(results) => results,
                Err(_) => {
                    // The panic belongs to one of them: each is applied
                    // alone, so only that one is dead-lettered.
                    let mut results = Vec::with_capacity(inbounds.len());
                    for inbound in &inbounds {
                        results.push(catch_panic(ingest::apply(&self.pool, inbound)).await);
                    }
                    results
                }
            }
        };
        let mut results = self
            .in_progress(admitted.iter().map(|(message, _, _)| message), applying)
            .await;
        // The batch's events in the order their webhooks came, on one
        // connection: a booking's `created` reaches the stream before its
        // `updated` from the same batch.
        let events: Vec<_> = results
            .iter_mut()
            .filter_map(|result| result.as_mut().ok())
            .flat_map(|applied| std::mem::take(&mut applied.events))
            .collect();
        if !events.is_empty() {
            let published = self.publisher.publish(&events).await;
            self.marks.note(&published);
        }
        let concluded = admitted.into_iter().zip(&inbounds).zip(results).map(
            |(((message, span, stream_sequence), inbound), result)| async move {
                self.conclude(&message, inbound, result, stream_sequence, started)
                    .instrument(span)
                    .await;
            },
        );
        futures::future::join_all(concluded).await;
    }

    /// Runs `work`, telling JetStream every [`Worker::progress_every`] that
    /// `messages` are still being worked on.
    async fn in_progress<'m, T>(
        &self,
        messages: impl Iterator<Item = &'m jetstream::Message> + Clone,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        tokio::pin!(work);
        let mut ticker = tokio::time::interval(self.progress_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                done = &mut work => return done,
                _ = ticker.tick() => {
                    for message in messages.clone() {
                        ack(message, AckKind::Progress).await;
                    }
                }
            }
        }
    }

    /// Decodes a webhook message and checks it was published for the account
    /// it claims; returns it with its `hostaway.webhook.process` span, or
    /// dead-letters it (authenticated means kept) and returns `None`.
    async fn admit(
        &self,
        message: &jetstream::Message,
        stream_sequence: Option<u64>,
    ) -> Option<(Inbound, tracing::Span)> {
        let inbound = match Inbound::decode(&message.payload) {
            Ok(inbound) => inbound,
            Err(refused) => {
                // Authenticated means kept: what cannot be understood is
                // dead-lettered with its reason, never dropped.
                let span = tracing::info_span!(
                    "hostaway.webhook.process",
                    otel.kind = "consumer",
                    webhook_id = refused.identity.as_ref().map(|i| i.webhook_id.clone()),
                    account_id = refused.identity.as_ref().map(|i| i.account.clone()),
                    stream_sequence,
                    otel.status_code = tracing::field::Empty,
                );
                telemetry::propagation::continue_from_nats(&span, message.headers.as_ref());
                self.dead_letter(
                    message,
                    refused.identity.as_ref(),
                    &refused.error,
                    1,
                    stream_sequence,
                )
                .instrument(span)
                .await;
                return None;
            }
        };
        // The specification's span, continuing the gateway's trace.
        let span = tracing::info_span!(
            "hostaway.webhook.process",
            otel.kind = "consumer",
            webhook_id = %inbound.webhook_id,
            account_id = %inbound.account,
            event = inbound.event.as_str(),
            "webhook.id" = %inbound.webhook_id,
            "webhook.event" = inbound.event.as_str(),
            stream_sequence,
            otel.status_code = tracing::field::Empty,
        );
        telemetry::propagation::continue_from_nats(&span, message.headers.as_ref());
        if let Some(error) = subject_mismatch(message.subject.as_str(), &inbound) {
            // Kept, never applied: whoever published it may publish for one
            // account and claimed another.
            self.dead_letter(
                message,
                Some(&inbound.identity()),
                &error,
                1,
                stream_sequence,
            )
            .instrument(span)
            .await;
            return None;
        }
        Some((inbound, span))
    }

    /// Ends the webhook's message the way the outcome says (acknowledged,
    /// retried, parked or dead-lettered).
    async fn conclude(
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
                for adjustment in &applied.adjustments {
                    self.metrics
                        .adjustments
                        .with_label_values(&[adjustment.field, adjustment.action.label()])
                        .inc();
                }
                if !applied.adjustments.is_empty() {
                    let adjusted: Vec<String> = applied
                        .adjustments
                        .iter()
                        .map(ToString::to_string)
                        .collect();
                    tracing::warn!(adjustments = ?adjusted, "record applied with fields cut or left out");
                }
                if !applied.events.is_empty() {
                    let published = self.publisher.publish(&applied.events).await;
                    self.marks.note(&published);
                }
                for key in &applied.reconcile {
                    self.ask_for_reconciliation(key).await;
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
                self.retry_later(message, &error, contention_delay()).await;
            }
            IngestError::Park { .. } => {
                self.park(message, inbound, &error, stream_sequence).await;
            }
            IngestError::Timeout(_) => {
                let identity = inbound.identity();
                match store::webhook_log::record_timeout(&self.pool, &identity.meta()).await {
                    Ok(Some(timeouts)) if timeouts <= self.free_timeouts => {
                        let delay =
                            full_jitter(Duration::from_millis(200), Duration::from_secs(5), 3);
                        self.retry_later(message, &error, delay).await;
                    }
                    Ok(Some(_)) => self.failed(message, inbound, &error, stream_sequence).await,
                    Ok(None) => ack(message, AckKind::Ack).await,
                    Err(store_error) => {
                        tracing::warn!(error = %store_error, "cannot count the timeout; retrying later");
                        self.retry_later(message, &error, self.gate.retry_delay())
                            .await;
                    }
                }
            }
            IngestError::Database(_) | IngestError::Permanent { .. } => {
                self.failed(message, inbound, &error, stream_sequence).await;
            }
        }
    }

    /// An attempt that failed: counted, then retried with backoff or, when
    /// permanent or out of attempts, dead-lettered.
    async fn failed(
        &self,
        message: &jetstream::Message,
        inbound: &Inbound,
        error: &IngestError,
        stream_sequence: Option<u64>,
    ) {
        self.metrics
            .processed
            .with_label_values(&[inbound.event.as_str(), "failure"])
            .inc();
        let identity = inbound.identity();
        let attempts = match store::webhook_log::record_failure(
            &self.pool,
            &identity.meta(),
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
                self.gate.note(&store_error);
                tracing::warn!(error = %store_error, "cannot record the failed attempt; retrying later");
                self.retry_later(message, error, self.gate.retry_delay())
                    .await;
                return;
            }
        };
        let permanent = matches!(error, IngestError::Permanent { .. });
        if permanent || attempts >= i32::try_from(self.retry.max_attempts).unwrap_or(i32::MAX) {
            self.dead_letter(message, Some(&identity), error, attempts, stream_sequence)
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
            self.retry_later(message, error, delay).await;
        }
    }

    /// A webhook that waits for something else to happen: parked in
    /// PostgreSQL (released when due, or at once when what it waits for
    /// happens) and acknowledged; once its schedule is spent, dead-lettered.
    async fn park(
        &self,
        message: &jetstream::Message,
        inbound: &Inbound,
        error: &IngestError,
        stream_sequence: Option<u64>,
    ) {
        let IngestError::Park {
            reason,
            message: why,
            reservation,
            listing,
        } = error
        else {
            return;
        };
        let identity = Identity {
            object_id: reservation.clone(),
            listing_id: listing.clone(),
            ..inbound.identity()
        };
        let parked = NewParked {
            webhook_id: &identity.webhook_id,
            account: &identity.account,
            reason: *reason,
            reservation_id: reservation.as_deref(),
            listing_id: listing.as_deref(),
            event: &identity.event,
            subject: message.subject.as_str(),
            payload: &message.payload,
            error: why,
        };
        let parked = async {
            let mut tx = self.pool.begin().await?;
            let parking = store::parked::park(&mut tx, &parked, &self.park_schedule).await?;
            let mut fetch = false;
            if let Parking::Parked { retries, .. } = parking {
                store::webhook_log::mark_parked(&mut tx, &identity.meta(), why).await?;
                if retries == 0
                    && *reason == ParkReason::IncompletePayload
                    && let Some(reservation) = reservation
                {
                    fetch = store::sync_jobs::request_fetch(&mut tx, &inbound.account, reservation)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok::<_, store::StoreError>((parking, fetch))
        }
        .await;
        match parked {
            Ok((Parking::Parked { retries, due_in }, fetch)) => {
                self.metrics
                    .parked
                    .with_label_values(&[reason.as_str()])
                    .inc();
                tracing::info!(
                    reason = reason.as_str(),
                    retries,
                    release_in_secs = due_in.map(|d| d.as_secs()),
                    error = %why,
                    "webhook parked until it can be applied"
                );
                if fetch {
                    self.ask_for_fetch(&inbound.account).await;
                }
                ack(message, AckKind::Ack).await;
            }
            Ok((Parking::AlreadyParked, _)) => {
                tracing::debug!("a repeat of a parked webhook; it keeps its place");
                ack(message, AckKind::Ack).await;
            }
            Ok((Parking::AlreadyApplied, _)) => {
                tracing::debug!("another copy of the webhook was applied meanwhile");
                ack(message, AckKind::Ack).await;
            }
            Ok((Parking::Exhausted { retries }, _)) => {
                self.dead_letter(message, Some(&identity), error, retries, stream_sequence)
                    .await;
            }
            Err(store_error) => {
                let store_error = IngestError::from(store_error);
                if matches!(store_error, IngestError::Unavailable(_)) {
                    self.gate.mark_down();
                }
                tracing::warn!(error = %store_error, "cannot park the webhook yet; it stays on its stream");
                self.retry_later(message, &store_error, self.gate.retry_delay())
                    .await;
            }
        }
    }

    /// Queues the account's reservation polling job, which fetches the
    /// reservations asked for. Best effort: the request is in PostgreSQL,
    /// and the next scheduled poll serves it anyway.
    async fn ask_for_fetch(&self, account: &AccountId) {
        self.metrics.fetches_requested.inc();
        let key = JobKey {
            account: account.clone(),
            listing: None,
            kind: SyncKind::Reservations,
        };
        if let Err(error) = self.jobs.enqueue(&key, Mode::Reconcile).await {
            tracing::warn!(%error, "cannot queue the reservation fetch now; the next reservation poll serves it");
        }
    }

    /// Queues the reconciliation of a listing Hostaway says changed. Best
    /// effort once committed: the event is out, and the scheduled
    /// reconciliation reads the listing back anyway.
    async fn ask_for_reconciliation(&self, key: &JobKey) {
        self.metrics
            .reconciliations_requested
            .with_label_values(&[key.kind.as_str()])
            .inc();
        if let Err(error) = self.jobs.enqueue(key, Mode::Reconcile).await {
            tracing::warn!(%error, kind = key.kind.as_str(), listing_id = ?key.listing.as_ref().map(|l| l.to_string()), "cannot queue the listing's reconciliation now; the scheduled one covers it");
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
            IngestError::Unavailable(_)
                | IngestError::Busy(_)
                | IngestError::Nats(_)
                | IngestError::Timeout(_)
        ) {
            tracing::warn!(reason = error.reason(), %error, retry_in_ms = delay.as_millis() as u64, "webhook waits on JetStream; no attempt counted");
        }
        ack(message, AckKind::Nak(Some(delay))).await;
    }

    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        identity: Option<&Identity>,
        error: &IngestError,
        attempts: i32,
        stream_sequence: Option<u64>,
    ) {
        tracing::Span::current().record("otel.status_code", "ERROR");
        let failed = Failed {
            payload: &message.payload,
            subject: message.subject.as_str(),
            stream_sequence,
            identity,
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

/// A panic is a bug; it must not leave the message to be redelivered (and
/// panic again) forever: it becomes a permanent failure, dead-lettered, to
/// be replayed once fixed.
async fn catch_panic(
    apply: impl std::future::Future<Output = Result<ingest::Applied, IngestError>>,
) -> Result<ingest::Applied, IngestError> {
    AssertUnwindSafe(apply)
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            Err(IngestError::Permanent {
                reason: "panic",
                message: "the ingestor panicked applying this webhook".into(),
            })
        })
}

/// A webhook's subject names the account its publisher was allowed to
/// publish for; a payload that claims another account is refused (and kept).
fn subject_mismatch(subject: &str, inbound: &Inbound) -> Option<IngestError> {
    let named = service_kit::nats::webhook_subject_account(subject);
    if named == Some(inbound.account.as_str()) {
        return None;
    }
    Some(IngestError::Permanent {
        reason: "subject_account_mismatch",
        message: format!(
            "the subject {subject} names account {}, the webhook account {}",
            named.unwrap_or("none"),
            inbound.account
        ),
    })
}
