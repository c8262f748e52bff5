//! The change consumer: TVL's changes into the desired-state projection, and
//! a pending sync job for every Hostaway listing whose desired state moved.
//!
//! A change is acknowledged only after its projection committed and its jobs
//! are queued (or folded into jobs already waiting). A redelivered change
//! finds nothing to project (its stamp is already there) but queues its jobs
//! again: a crash between the commit and the queueing loses nothing.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use chrono::Utc;
use domain::{AccountId, ListingId, UnitId};
use futures::StreamExt;
use retry::full_jitter;
use service_kit::consume::{DbGate, ack, contention_delay};
use store::sync_jobs::JobKey;
use store::{PgPool, StoreError, Trouble};
use tracing::Instrument;

use crate::contract::{self, Change, ReceivedChange};
use crate::dead_letter::SyncDeadLetters;
use crate::metrics::SyncMetrics;
use crate::queue::{JobQueue, Mode};

/// Deliveries after which a change the database keeps refusing (not an
/// outage: an error) is dead-lettered.
const MAX_DATABASE_ATTEMPTS: u64 = 5;

/// Jobs of one batch queued at once.
const ENQUEUE_AT_ONCE: usize = 64;

#[derive(Debug)]
pub struct ChangeConsumer {
    pub pool: PgPool,
    pub queue: JobQueue,
    pub dead_letters: SyncDeadLetters,
    pub metrics: SyncMetrics,
    pub gate: Arc<DbGate>,
}

impl ChangeConsumer {
    /// One change (a batch of one).
    pub async fn handle(&self, message: jetstream::Message) {
        self.handle_batch(vec![message]).await;
    }

    /// Changes pulled together: those that break the contract are
    /// dead-lettered one by one; the others are projected in one transaction,
    /// each job they call for is queued once, and then every message is
    /// acknowledged. A batch the database refuses for another reason than an
    /// outage or contention is applied change by change, so that one
    /// poisoned change is dead-lettered alone and never holds the others.
    pub async fn handle_batch(&self, messages: Vec<jetstream::Message>) {
        let namespace = self.queue.topology().namespace().to_owned();
        let mut valid = Vec::with_capacity(messages.len());
        for message in messages {
            let delivered = message.info().map(|i| i.delivered).unwrap_or(1).max(1) as u64;
            match contract::decode(&namespace, &message.subject, &message.payload, Utc::now()) {
                Ok(received) => valid.push(Decoded {
                    message,
                    received,
                    delivered,
                }),
                Err(error) => self.refuse(&message, &error.to_string()).await,
            }
        }
        match valid.len() {
            0 => {}
            1 => {
                if let Some(one) = valid.pop() {
                    let span = one.span();
                    self.apply_batch(vec![one]).instrument(span).await;
                }
            }
            changes => {
                let span =
                    tracing::info_span!("hostaway.sync.changes", otel.kind = "consumer", changes,);
                for one in &valid {
                    telemetry::propagation::link_from_nats(&span, one.message.headers.as_ref());
                }
                self.apply_batch(valid).instrument(span).await;
            }
        }
    }

    /// A change that breaks the contract: dead-lettered, never projected.
    async fn refuse(&self, message: &jetstream::Message, error: &str) {
        let kind = message
            .subject
            .split('.')
            .nth(2)
            .filter(|k| matches!(*k, "availability" | "pricing" | "listing"))
            .unwrap_or("unknown");
        self.metrics
            .changes
            .with_label_values(&[kind, "invalid"])
            .inc();
        self.dead_letter(message, kind, "contract", error).await;
    }

    async fn apply_batch(&self, mut batch: Vec<Decoded>) {
        // One lock order for every batch: by unit, then by when it happened.
        batch.sort_by_key(|one| {
            (
                one.received.change.unit(),
                one.message
                    .info()
                    .map(|i| i.stream_sequence)
                    .unwrap_or_default(),
            )
        });
        let changes: Vec<&Change> = batch.iter().map(|one| &one.received.change).collect();
        let projected = match project_batch(&self.pool, &changes).await {
            Ok(projected) => {
                self.gate.mark_up();
                projected
            }
            Err(error) if self.gate.note(&error) == Trouble::Outage => {
                tracing::warn!(%error, changes = batch.len(), "database unavailable; the changes wait");
                for one in &batch {
                    ack(&one.message, AckKind::Nak(Some(self.gate.retry_delay()))).await;
                }
                return;
            }
            Err(error) if error.trouble() == Trouble::Contention => {
                tracing::debug!(%error, changes = batch.len(), "contention; retrying the batch soon");
                for one in &batch {
                    ack(&one.message, AckKind::Nak(Some(contention_delay()))).await;
                }
                return;
            }
            Err(error) if batch.len() > 1 => {
                tracing::debug!(%error, changes = batch.len(), "the batch was refused; applying its changes one by one");
                for one in batch {
                    let span = one.span();
                    Box::pin(self.apply_batch(vec![one])).instrument(span).await;
                }
                return;
            }
            // One change refused (a timeout or a failure): an attempt,
            // counted by its deliveries.
            Err(error) => {
                for one in &batch {
                    self.retry_or_dead_letter(one, &error).await;
                }
                return;
            }
        };
        let mut jobs: Vec<JobKey> = Vec::new();
        for (one, (changed, listings)) in batch.iter().zip(&projected) {
            let kind = one.received.change.kind();
            let outcome = if *changed > 0 { "applied" } else { "unchanged" };
            self.metrics
                .changes
                .with_label_values(&[kind.as_str(), outcome])
                .inc();
            // A repeat must still queue: its first delivery may have
            // committed and then died before queueing.
            if *changed > 0 || one.delivered > 1 {
                for (account, listing) in listings {
                    let key = JobKey {
                        account: account.clone(),
                        listing: Some(listing.clone()),
                        kind,
                    };
                    if !jobs.contains(&key) {
                        jobs.push(key);
                    }
                }
            }
        }
        // Published together, acknowledged together: a burst's jobs cost
        // one round trip to JetStream, not one each.
        let queue = &self.queue;
        let queued: Vec<_> = futures::stream::iter(jobs.iter().cloned())
            .map(|key| async move { queue.enqueue(&key, Mode::Push).await })
            .buffer_unordered(ENQUEUE_AT_ONCE)
            .collect()
            .await;
        if let Some(Err(error)) = queued.into_iter().find(Result::is_err) {
            tracing::warn!(%error, "cannot queue a sync job; the batch's changes will be redelivered");
            for one in &batch {
                ack(&one.message, AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
            return;
        }
        tracing::debug!(
            changes = batch.len(),
            jobs = jobs.len(),
            "changes projected"
        );
        for one in &batch {
            ack(&one.message, AckKind::Ack).await;
        }
    }

    async fn retry_or_dead_letter(&self, one: &Decoded, error: &StoreError) {
        if one.delivered >= MAX_DATABASE_ATTEMPTS {
            let kind = one.received.change.kind();
            self.dead_letter(&one.message, kind.as_str(), "database", &error.to_string())
                .await;
            return;
        }
        tracing::warn!(%error, "change not projected; will retry");
        let delay = full_jitter(
            Duration::from_millis(500),
            Duration::from_secs(30),
            one.delivered as u32,
        );
        ack(&one.message, AckKind::Nak(Some(delay))).await;
    }

    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        kind: &str,
        reason: &str,
        error: &str,
    ) {
        match self.dead_letters.change(message, kind, reason, error).await {
            Ok(()) => {
                self.metrics
                    .dead_lettered
                    .with_label_values(&[kind, reason])
                    .inc();
                ack(message, AckKind::Ack).await;
            }
            Err(dlq_error) => {
                tracing::warn!(error = %dlq_error, "cannot dead-letter the change yet; it stays on its stream");
                ack(message, AckKind::Nak(Some(Duration::from_secs(2)))).await;
            }
        }
    }
}

/// A change that keeps the contract, with its message.
#[derive(Debug)]
struct Decoded {
    message: jetstream::Message,
    received: ReceivedChange,
    delivered: u64,
}

impl Decoded {
    /// The change's own span, continuing TVL's trace.
    fn span(&self) -> tracing::Span {
        let span = tracing::info_span!(
            "hostaway.sync.change",
            otel.kind = "consumer",
            change_id = %self.received.change_id,
            unit_id = %self.received.change.unit(),
            kind = self.received.change.kind().as_str(),
            source = %self.received.source,
            delivered = self.delivered,
        );
        telemetry::propagation::continue_from_nats(&span, self.message.headers.as_ref());
        span
    }
}

/// Applies the changes in one transaction (the calendar ones in one
/// statement per kind, newest per day and field first); returns for each
/// what moved (the days of its unit and kind that moved in this batch) and
/// the Hostaway listings of its unit.
async fn project_batch(
    pool: &PgPool,
    changes: &[&Change],
) -> Result<Vec<(u64, Vec<(AccountId, ListingId)>)>, StoreError> {
    let mut tx = pool.begin().await?;
    let availability: Vec<_> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Availability(c) => Some(c),
            _ => None,
        })
        .collect();
    let prices: Vec<_> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Price(c) => Some(c),
            _ => None,
        })
        .collect();
    let moved = store::desired::apply_calendar_batch(&mut tx, &availability, &prices).await?;
    let mut units: Vec<UnitId> = changes.iter().map(|c| c.unit()).collect();
    units.sort();
    units.dedup();
    let links = store::sync_jobs::listings_of_units(&mut tx, &units).await?;
    let mut projected: Vec<(u64, Vec<(AccountId, ListingId)>)> = Vec::with_capacity(changes.len());
    for change in changes {
        let unit = change.unit();
        let changed = match change {
            Change::Listing(c) => store::desired::apply_listing(&mut tx, c).await?,
            _ => moved
                .iter()
                .find(|(u, kind, _)| *u == unit && *kind == change.kind())
                .map_or(0, |(_, _, n)| *n),
        };
        let listings = links
            .iter()
            .filter(|(u, _, _)| *u == unit)
            .map(|(_, account, listing)| (account.clone(), listing.clone()))
            .collect();
        projected.push((changed, listings));
    }
    tx.commit().await?;
    Ok(projected)
}
