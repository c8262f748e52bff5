//! Housekeeping: published outbox rows, old processed `webhook_log` entries
//! and dead letters resolved long ago (they may hold guest data) are deleted;
//! open dead letters and parked webhooks are counted for the alerts.

use std::time::Duration;

use store::PgPool;
use tokio_util::sync::CancellationToken;

use crate::metrics::IngestorMetrics;

#[derive(Debug, Clone)]
pub struct Retention {
    /// How long published events stay in the outbox table.
    pub outbox: Duration,
    /// How long processed webhooks stay in `webhook_log` (a repeat older than
    /// this is still harmless: the version rule makes it stale).
    pub webhook_log: Duration,
    /// How long a resolved dead letter is kept (it may hold guest data).
    pub resolved_dead_letters: Duration,
    pub interval: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            outbox: Duration::from_secs(24 * 3600),
            webhook_log: Duration::from_secs(30 * 24 * 3600),
            resolved_dead_letters: Duration::from_secs(30 * 24 * 3600),
            interval: Duration::from_secs(300),
        }
    }
}

pub async fn run(
    pool: PgPool,
    metrics: IngestorMetrics,
    retention: Retention,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(retention.interval);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Ok(open) = store::dlq::count_open(&pool).await {
            metrics.dlq_open.set(open);
        }
        if let Ok(kinds) = store::dlq::count_open_by_kind(&pool).await {
            metrics.dlq_open_by_kind.reset();
            for (kind, open) in kinds {
                metrics
                    .dlq_open_by_kind
                    .with_label_values(&[&kind])
                    .set(open);
            }
        }
        if let Ok(reasons) = store::parked::count_by_reason(&pool).await {
            metrics.parked_now.reset();
            for (reason, parked) in reasons {
                metrics.parked_now.with_label_values(&[&reason]).set(parked);
            }
        }
        match store::dlq::purge_resolved(&pool, retention.resolved_dead_letters).await {
            Ok(0) | Err(_) => {}
            Ok(deleted) => tracing::info!(deleted, "resolved dead letters purged"),
        }
        match store::outbox::purge_published(&pool, retention.outbox).await {
            Ok(0) | Err(_) => {}
            Ok(deleted) => tracing::info!(deleted, "published outbox events purged"),
        }
        match store::webhook_log::purge_processed(&pool, retention.webhook_log).await {
            Ok(0) | Err(_) => {}
            Ok(deleted) => tracing::info!(deleted, "old webhook log entries purged"),
        }
    }
}
