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
    /// Batches of webhooks processed at once.
    #[arg(long, env = "INGEST_CONCURRENCY", default_value_t = 8)]
    concurrency: usize,
    /// Webhooks applied in one transaction at most.
    #[arg(long, env = "INGEST_BATCH", default_value_t = 16)]
    batch: usize,
    /// Attempts before a webhook that cannot be applied goes to the dead-letter queue.
    #[arg(long, env = "INGEST_MAX_ATTEMPTS", default_value_t = 5)]
    max_attempts: u32,
    /// Base of the exponential backoff between attempts (full jitter).
    #[arg(long, env = "INGEST_RETRY_BASE_MS", default_value_t = 1000)]
    retry_base_ms: u64,
    /// Cap of that backoff.
    #[arg(long, env = "INGEST_RETRY_MAX_MS", default_value_t = 32_000)]
    retry_max_ms: u64,
    /// Days processed webhooks stay in webhook_log.
    #[arg(long, env = "INGEST_LOG_RETENTION_DAYS", default_value_t = 30)]
    log_retention_days: u64,
    /// Days a resolved dead letter is kept (it may hold guest data).
    #[arg(long, env = "INGEST_DLQ_RESOLVED_RETENTION_DAYS", default_value_t = 30)]
    dlq_resolved_retention_days: u64,
    /// Seconds between the releases of a parked webhook (one per retry, then
    /// the dead-letter queue), comma-separated.
    #[arg(
        long,
        env = "INGEST_PARK_SCHEDULE_SECS",
        default_value = "10,30,60,120,300,600,900,1800,3600,3600,7200,7200,10800",
        value_delimiter = ','
    )]
    park_schedule_secs: Vec<u64>,
    /// Statement or lock timeouts of one webhook that cost no attempt.
    #[arg(long, env = "INGEST_FREE_TIMEOUTS", default_value_t = 3)]
    free_timeouts: u16,
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

// The product's one allocator (ADR 0013): glibc's malloc/free were a sixth
// of the gateway's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::install_crypto_provider();
    let args = Args::parse();
    let telemetry = service_kit::telemetry::init(&args.log, "booking-ingestor")?;

    let mut settings = IngestorSettings::new(args.nats.topology()?);
    settings.streams = args.nats.stream_settings();
    settings.concurrency = args.concurrency;
    settings.batch = args.batch.clamp(1, 256);
    settings.retry.max_attempts = args.max_attempts.max(1);
    settings.retry.base = Duration::from_millis(args.retry_base_ms);
    settings.retry.cap = Duration::from_millis(args.retry_max_ms);
    settings.consumers = args.nats.consumer_settings();
    settings.migrate = args.database.migrate;
    settings.retention.webhook_log =
        Duration::from_secs(args.log_retention_days.max(1) * 24 * 3600);
    settings.retention.resolved_dead_letters =
        Duration::from_secs(args.dlq_resolved_retention_days.max(1) * 24 * 3600);
    settings.park_schedule = args
        .park_schedule_secs
        .iter()
        .map(|secs| Duration::from_secs(*secs))
        .collect();
    settings.free_timeouts = i32::from(args.free_timeouts);
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
    telemetry.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Args::command().debug_assert();
    }

    #[test]
    fn the_default_park_schedule_is_the_documented_one() {
        use clap::Parser;
        let args =
            super::Args::try_parse_from(["booking-ingestor"]).unwrap_or_else(|e| panic!("{e}"));
        let schedule: Vec<_> = args
            .park_schedule_secs
            .iter()
            .map(|s| std::time::Duration::from_secs(*s))
            .collect();
        assert_eq!(schedule, booking_ingestor::server::default_park_schedule());
        let total: u64 = args.park_schedule_secs.iter().sum();
        // Hours, not seconds: Hostaway's first webhook of a reservation can lag minutes.
        assert_eq!(total, 36_220, "10 h 3 min 40 s");
        assert!(
            args.park_schedule_secs[..3].iter().sum::<u64>() >= 60,
            "a minute of reordering is covered within three releases"
        );
    }
}
