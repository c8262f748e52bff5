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
use domain::{AccountId, ListingId};
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

#[derive(Debug)]
pub struct ChangeConsumer {
    pub pool: PgPool,
    pub queue: JobQueue,
    pub dead_letters: SyncDeadLetters,
    pub metrics: SyncMetrics,
    pub gate: Arc<DbGate>,
}

impl ChangeConsumer {
    pub async fn handle(&self, message: jetstream::Message) {
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1).max(1) as u64;
        let namespace = self.queue.topology().namespace().to_owned();
        let received =
            match contract::decode(&namespace, &message.subject, &message.payload, Utc::now()) {
                Ok(received) => received,
                Err(error) => {
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
                    self.dead_letter(&message, kind, "contract", &error.to_string())
                        .await;
                    return;
                }
            };
        let span = tracing::info_span!(
            "hostaway.sync.change",
            otel.kind = "consumer",
            change_id = %received.change_id,
            unit_id = %received.change.unit(),
            kind = received.change.kind().as_str(),
            source = %received.source,
            delivered,
        );
        // TVL's trace, when its publisher sent one.
        telemetry::propagation::continue_from_nats(&span, message.headers.as_ref());
        self.apply(&message, &received, delivered)
            .instrument(span)
            .await;
    }

    async fn apply(&self, message: &jetstream::Message, received: &ReceivedChange, delivered: u64) {
        let kind = received.change.kind();
        let (changed, listings) = match project(&self.pool, &received.change).await {
            Ok(projected) => {
                self.gate.mark_up();
                projected
            }
            Err(error) if self.gate.note(&error) == Trouble::Outage => {
                tracing::warn!(%error, "database unavailable; the change waits");
                ack(message, AckKind::Nak(Some(self.gate.retry_delay()))).await;
                return;
            }
            Err(error) if error.trouble() == Trouble::Contention => {
                tracing::debug!(%error, "contention; retrying the change soon");
                ack(message, AckKind::Nak(Some(contention_delay()))).await;
                return;
            }
            // A timeout or a failure: an attempt, counted by its deliveries.
            Err(error) if delivered >= MAX_DATABASE_ATTEMPTS => {
                self.dead_letter(message, kind.as_str(), "database", &error.to_string())
                    .await;
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "change not projected; will retry");
                let delay = full_jitter(
                    Duration::from_millis(500),
                    Duration::from_secs(30),
                    delivered as u32,
                );
                ack(message, AckKind::Nak(Some(delay))).await;
                return;
            }
        };
        let outcome = if changed > 0 { "applied" } else { "unchanged" };
        self.metrics
            .changes
            .with_label_values(&[kind.as_str(), outcome])
            .inc();
        // A repeat must still queue: the first delivery may have committed and
        // then died before queueing.
        if changed > 0 || delivered > 1 {
            for (account, listing) in &listings {
                let key = JobKey {
                    account: account.clone(),
                    listing: Some(listing.clone()),
                    kind,
                };
                if let Err(error) = self.queue.enqueue(&key, Mode::Push).await {
                    tracing::warn!(%error, account_id = %account, listing_id = %listing, "cannot queue the sync job; the change will be redelivered");
                    ack(message, AckKind::Nak(Some(Duration::from_secs(1)))).await;
                    return;
                }
            }
        }
        tracing::debug!(
            outcome,
            days_or_fields = changed,
            listings = listings.len(),
            "change projected"
        );
        ack(message, AckKind::Ack).await;
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

/// Applies the change in one transaction; returns what moved and the Hostaway
/// listings of the unit.
async fn project(
    pool: &PgPool,
    change: &Change,
) -> Result<(u64, Vec<(AccountId, ListingId)>), StoreError> {
    let mut tx = pool.begin().await?;
    let changed = match change {
        Change::Availability(c) => store::desired::apply_availability(&mut tx, c).await?,
        Change::Price(c) => store::desired::apply_price(&mut tx, c).await?,
        Change::Listing(c) => store::desired::apply_listing(&mut tx, c).await?,
    };
    let listings = store::sync_jobs::listings_of_unit(&mut tx, change.unit()).await?;
    tx.commit().await?;
    Ok((changed, listings))
}
