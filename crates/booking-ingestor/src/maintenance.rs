//! Housekeeping: published outbox rows and old processed `webhook_log` entries
//! are deleted; the open dead letters are counted for the alert.

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
    pub interval: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            outbox: Duration::from_secs(24 * 3600),
            webhook_log: Duration::from_secs(30 * 24 * 3600),
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
