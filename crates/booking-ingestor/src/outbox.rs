//! Publishing the outbox. Right after a commit the worker publishes the events
//! it just wrote; a sweeper publishes whatever a crash or a NATS outage left
//! behind. Each event's id is its `Nats-Msg-Id`, so publishing twice is
//! harmless within the duplicate window, and consumers deduplicate on
//! `event_id` beyond it.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use futures::future::join_all;
use service_kit::nats::Topology;
use store::PgPool;
use store::outbox::OutboxEvent;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::metrics::IngestorMetrics;

const ACK_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct EventPublisher {
    js: jetstream::Context,
    topology: Topology,
    metrics: IngestorMetrics,
}

impl EventPublisher {
    pub fn new(js: jetstream::Context, topology: Topology, metrics: IngestorMetrics) -> Self {
        Self {
            js,
            topology,
            metrics,
        }
    }

    /// Publishes the events; returns the ids JetStream acknowledged.
    pub async fn publish(&self, events: &[OutboxEvent]) -> Vec<Uuid> {
        let sends = events.iter().map(|event| {
            let subject = self.topology.event_subject(&event.subject_suffix);
            let span = tracing::info_span!(
                "hostaway.event.publish",
                otel.kind = "producer",
                "messaging.destination.name" = %subject,
                event_id = %event.id,
            );
            self.publish_one(event, subject).instrument(span)
        });
        join_all(sends).await.into_iter().flatten().collect()
    }

    async fn publish_one(&self, event: &OutboxEvent, subject: String) -> Option<Uuid> {
        let message = service_kit::publish::traced_message()
            .payload(Bytes::from(event.payload.clone()))
            .message_id(event.id.to_string());
        let result = tokio::time::timeout(ACK_TIMEOUT, async {
            self.js
                .send_publish(subject, message)
                .await?
                .await
                .map_err(async_nats::Error::from)
        })
        .await;
        match result {
            Ok(Ok(_)) => {
                self.metrics
                    .events_published
                    .with_label_values(&[event.subject_suffix.as_str()])
                    .inc();
                Some(event.id)
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, event_id = %event.id, "event not published yet; the outbox sweeper will retry");
                None
            }
            Err(_) => {
                tracing::warn!(event_id = %event.id, "event publish timed out; the outbox sweeper will retry");
                None
            }
        }
    }
}

/// Events published are marked so in bulk: each webhook's events are noted
/// here once JetStream acknowledged them, and written in one UPDATE for all
/// that are waiting (the first at once, the rest as they pile up), instead of
/// a statement and a commit per webhook on its path. A mark lost to a crash
/// costs a republish by the sweeper, which JetStream deduplicates.
#[derive(Debug, Clone)]
pub struct PublishedMarks {
    marks: tokio::sync::mpsc::UnboundedSender<Uuid>,
}

/// Events marked in one statement at most.
const MARKS_AT_ONCE: usize = 512;

impl PublishedMarks {
    /// Starts the writer on `tracker`; it ends when every handle is dropped,
    /// after writing what was noted.
    pub fn start(pool: PgPool, tracker: &tokio_util::task::TaskTracker) -> Self {
        let (marks, mut noted) = tokio::sync::mpsc::unbounded_channel();
        tracker.spawn(async move {
            let mut ids = Vec::with_capacity(MARKS_AT_ONCE);
            while noted.recv_many(&mut ids, MARKS_AT_ONCE).await > 0 {
                if let Err(error) = store::outbox::mark_published(&pool, &ids).await {
                    tracing::debug!(%error, events = ids.len(), "published events not marked; the sweeper will republish them (deduplicated)");
                }
                ids.clear();
            }
        });
        Self { marks }
    }

    pub fn note(&self, published: &[Uuid]) {
        for id in published {
            let _ = self.marks.send(*id);
        }
    }
}

/// Publishes events a crash or outage left unpublished, every `interval`.
pub async fn sweep_loop(
    publisher: Arc<EventPublisher>,
    pool: PgPool,
    interval: Duration,
    min_age: Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match sweep_once(&publisher, &pool, min_age).await {
            Ok(0) => {}
            Ok(published) => {
                tracing::info!(published, "outbox sweeper published events left behind")
            }
            Err(error) => tracing::debug!(%error, "outbox sweep skipped"),
        }
        if let Ok(pending) = store::outbox::count_unpublished(&pool).await {
            publisher.metrics.outbox_pending.set(pending);
        }
    }
}

/// One sweep: claims old unpublished rows (skipping rows another replica holds),
/// publishes them, and marks the acknowledged ones.
pub async fn sweep_once(
    publisher: &EventPublisher,
    pool: &PgPool,
    min_age: Duration,
) -> Result<usize, store::StoreError> {
    let mut tx = pool.begin().await?;
    let claimed = store::outbox::claim_unpublished(&mut tx, min_age, 500).await?;
    if claimed.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let published = publisher.publish(&claimed).await;
    store::outbox::mark_published_in(&mut tx, &published).await?;
    tx.commit().await?;
    Ok(published.len())
}
