//! The booking ingestor binary: configuration, telemetry, shutdown.

use std::time::Duration;

use anyhow::Context;
use booking_ingestor::{Ingestor, IngestorDeps, IngestorSettings};
use clap::Parser;
use service_kit::config::{DatabaseArgs, LogArgs, NatsArgs, OpsArgs};
use service_kit::{health::Health, metrics::Metrics};

/// Turns webhooks on JetStream into TVL bookings and calendar blocks.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Webhooks processed at once.
    #[arg(long, env = "INGEST_CONCURRENCY", default_value_t = 8)]
    concurrency: usize,
    /// Attempts before a webhook that cannot be applied goes to the dead-letter queue.
    #[arg(long, env = "INGEST_MAX_ATTEMPTS", default_value_t = 5)]
    max_attempts: u32,
    /// Base of the exponential backoff between attempts (full jitter).
    #[arg(long, env = "INGEST_RETRY_BASE_MS", default_value_t = 1000)]
    retry_base_ms: u64,
    /// Cap of that backoff.
    #[arg(long, env = "INGEST_RETRY_MAX_MS", default_value_t = 32_000)]
    retry_max_ms: u64,
    /// Redelivery delay of an unacknowledged webhook (a crashed replica's work).
    #[arg(long, env = "INGEST_ACK_WAIT_SECS", default_value_t = 30)]
    ack_wait_secs: u64,
    /// Days processed webhooks stay in webhook_log.
    #[arg(long, env = "INGEST_LOG_RETENTION_DAYS", default_value_t = 30)]
    log_retention_days: u64,
    #[command(flatten)]
    ops: OpsArgs,
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    log: LogArgs,
}

const DEFAULT_OPS_LISTEN: &str = "0.0.0.0:9102";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::install_crypto_provider();
    let args = Args::parse();
    service_kit::telemetry::init(&args.log);

    let mut settings = IngestorSettings::new(args.nats.topology()?);
    settings.streams = args.nats.stream_settings();
    settings.concurrency = args.concurrency;
    settings.retry.max_attempts = args.max_attempts.max(1);
    settings.retry.base = Duration::from_millis(args.retry_base_ms);
    settings.retry.cap = Duration::from_millis(args.retry_max_ms);
    settings.ack_wait = Duration::from_secs(args.ack_wait_secs);
    settings.migrate = args.database.migrate;
    settings.retention.webhook_log =
        Duration::from_secs(args.log_retention_days.max(1) * 24 * 3600);
    settings.shutdown_timeout = args.ops.shutdown_timeout();

    let nats = args.nats.connect("booking-ingestor").await?;
    // One connection per worker, one for the outbox sweeper, one for probes.
    let pool = args.database.service_pool(
        u32::try_from(settings.concurrency)
            .unwrap_or(u32::MAX)
            .saturating_add(2),
    )?;
    let metrics = Metrics::new();
    let health = Health::new();
    let ingestor = Ingestor::new(
        settings,
        IngestorDeps {
            nats,
            pool,
            metrics: metrics.clone(),
            health: health.clone(),
        },
    )?;
    let stop = service_kit::ops::start(&args.ops, DEFAULT_OPS_LISTEN.parse()?, metrics, health)
        .await
        .context("ops server")?;
    ingestor.run(stop).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Args::command().debug_assert();
    }
}
