//! Releasing parked webhooks: every `interval`, the parked webhooks that are
//! due (their retry came, or what they waited for happened) are claimed and
//! published again on the webhooks stream (`{ns}.webhooks.released.…`: the
//! ingestor may not publish on the gateway's subjects), where the ingestor
//! applies them like any other. Replicas claim disjoint rows; a claim whose publish failed
//! expires and is taken again. Now and then, webhooks whose listing has been
//! linked or whose account enabled since (by whatever path) are woken.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage};
use store::PgPool;
use tokio_util::sync::CancellationToken;

use crate::metrics::IngestorMetrics;

#[derive(Debug, Clone)]
pub struct ReleaseSettings {
    /// How often due webhooks are looked for.
    pub interval: Duration,
    /// How often webhooks waiting for a link or an account are checked
    /// against the links and accounts (writes through `hostaway-admin` wake
    /// them at once; this catches any other path).
    pub sweep_interval: Duration,
    /// How long a released webhook is left to the ingestor before it is
    /// released again (its message lost, or a backlog slower than this: a
    /// second release has the same `Nats-Msg-Id` and is deduplicated inside
    /// JetStream's window, and harmless beyond it).
    pub claim_for: Duration,
    /// Webhooks released per round at most.
    pub batch: i64,
}

impl Default for ReleaseSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            sweep_interval: Duration::from_secs(30),
            claim_for: Duration::from_secs(600),
            batch: 200,
        }
    }
}

const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn run(
    pool: PgPool,
    js: jetstream::Context,
    metrics: IngestorMetrics,
    settings: ReleaseSettings,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(settings.interval);
    let mut last_sweep: Option<Instant> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if last_sweep.is_none_or(|at| at.elapsed() >= settings.sweep_interval) {
            last_sweep = Some(Instant::now());
            match sweep(&pool).await {
                Ok(0) => {}
                Ok(woken) => tracing::info!(woken, "parked webhooks whose wait is over"),
                Err(error) => tracing::warn!(%error, "sweep of parked webhooks failed"),
            }
        }
        loop {
            match release_once(&pool, &js, &settings).await {
                Ok(released) => {
                    metrics.released.inc_by(released as u64);
                    if released < usize::try_from(settings.batch).unwrap_or(usize::MAX) {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "parked webhooks not released this round");
                    break;
                }
            }
        }
    }
}

async fn sweep(pool: &PgPool) -> Result<u64, store::StoreError> {
    let mut tx = pool.begin().await?;
    let woken = store::parked::wake_ready(&mut tx, None, None).await?;
    tx.commit().await?;
    Ok(woken)
}

/// Publishes the webhooks due now (32 at a time); returns how many were
/// published.
pub async fn release_once(
    pool: &PgPool,
    js: &jetstream::Context,
    settings: &ReleaseSettings,
) -> Result<usize, store::StoreError> {
    use futures::StreamExt;
    let due = store::parked::claim_due(pool, settings.batch, settings.claim_for).await?;
    let published = futures::stream::iter(due)
        .map(|release| async move {
            // The gateway's holds are lifted (an account-disabled webhook is
            // released once the account is enabled); the ingestor judges afresh.
            let payload = service_kit::inbound::resent(&release.payload, None)
                .unwrap_or_else(|| release.payload.clone());
            let message = PublishMessage::build()
                .payload(payload.into())
                .message_id(format!(
                    "{}-released-{}",
                    release.webhook_id, release.release_key
                ));
            let sent = tokio::time::timeout(PUBLISH_TIMEOUT, async {
                js.send_publish(
                    service_kit::nats::released_webhook_subject(&release.subject),
                    message,
                )
                    .await?
                    .await
                    .map_err(async_nats::Error::from)
            })
            .await;
            match sent {
                Ok(Ok(_)) => {
                    tracing::debug!(webhook_id = %release.webhook_id, reason = %release.reason, "parked webhook released");
                    true
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, webhook_id = %release.webhook_id, "cannot release a parked webhook; it is released again when its claim expires");
                    false
                }
                Err(_) => {
                    tracing::warn!(webhook_id = %release.webhook_id, "release of a parked webhook timed out; it is released again when its claim expires");
                    false
                }
            }
        })
        .buffer_unordered(32)
        .filter(|sent| std::future::ready(*sent))
        .count()
        .await;
    Ok(published)
}
