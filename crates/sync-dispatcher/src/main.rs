//! The sync dispatcher binary: configuration, telemetry, shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use domain::SyncKind;
use hostaway_client::{ClientMetrics, HostawayApiArgs};
use service_kit::config::{CredentialsKeyArgs, DatabaseArgs, LogArgs, NatsArgs, OpsArgs};
use service_kit::{health::Health, metrics::Metrics};
use sync_dispatcher::reconcile::Schedule;
use sync_dispatcher::{DispatcherDeps, DispatcherSettings, Roles, SyncDispatcher};

/// Pushes TVL's availability, price and listing changes to Hostaway, and
/// reconciles both directions on schedules.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Parts to run here: any of changes, jobs, reconcile.
    #[arg(
        long,
        env = "SYNC_ROLES",
        default_value = "changes,jobs,reconcile",
        value_delimiter = ','
    )]
    roles: Vec<String>,
    /// Transactions of TVL changes projected at once.
    #[arg(long, env = "SYNC_CHANGE_CONCURRENCY", default_value_t = 4)]
    change_concurrency: usize,
    /// TVL changes projected in one transaction at most (a burst is taken
    /// in batches; a trickle goes one by one without waiting).
    #[arg(long, env = "SYNC_CHANGE_BATCH", default_value_t = 128)]
    change_batch: usize,
    /// Sync jobs run at once (they share one rate budget per account and per egress IP).
    #[arg(long, env = "SYNC_JOB_CONCURRENCY", default_value_t = 4)]
    job_concurrency: usize,
    /// Attempts of a failing job before the dead-letter queue.
    #[arg(long, env = "SYNC_MAX_ATTEMPTS", default_value_t = 5)]
    max_attempts: u32,
    /// Base of the backoff between a job's attempts (full jitter).
    #[arg(long, env = "SYNC_RETRY_BASE_MS", default_value_t = 10_000)]
    retry_base_ms: u64,
    /// Cap of that backoff.
    #[arg(long, env = "SYNC_RETRY_MAX_MS", default_value_t = 600_000)]
    retry_max_ms: u64,
    /// A push waits until its unit's changes have been quiet this long (coalescing bursts)…
    #[arg(long, env = "SYNC_SETTLE_MS", default_value_t = 2000)]
    settle_ms: u64,
    /// …but never longer than this after it was queued.
    #[arg(long, env = "SYNC_MAX_SETTLE_MS", default_value_t = 30_000)]
    max_settle_ms: u64,
    /// A job's hold on its listing; renewed while it runs.
    #[arg(long, env = "SYNC_LEASE_SECS", default_value_t = 300)]
    lease_secs: u64,
    /// Cron (5 fields, or 6 with seconds) of availability reconciliation; "off" disables.
    #[arg(
        long,
        env = "SYNC_SCHEDULE_AVAILABILITY",
        default_value = "*/15 * * * *"
    )]
    schedule_availability: String,
    #[arg(long, env = "SYNC_SCHEDULE_PRICING", default_value = "0 * * * *")]
    schedule_pricing: String,
    #[arg(long, env = "SYNC_SCHEDULE_LISTINGS", default_value = "0 0 * * *")]
    schedule_listings: String,
    /// Reservation polling (inbound healing).
    #[arg(
        long,
        env = "SYNC_SCHEDULE_RESERVATIONS",
        default_value = "*/15 * * * *"
    )]
    schedule_reservations: String,
    /// Each run of the availability, pricing and listings schedules reconciles
    /// 1/N of the listings (every listing once per N runs), unless the
    /// schedule's own setting says otherwise. Reservation polling is never sliced.
    #[arg(long, env = "SYNC_RECONCILE_SLICES", default_value_t = 1)]
    reconcile_slices: u64,
    /// Slices of the availability schedule (default: SYNC_RECONCILE_SLICES).
    #[arg(long, env = "SYNC_SLICES_AVAILABILITY")]
    slices_availability: Option<u64>,
    /// Slices of the pricing schedule (default: SYNC_RECONCILE_SLICES).
    #[arg(long, env = "SYNC_SLICES_PRICING")]
    slices_pricing: Option<u64>,
    /// Slices of the listings schedule (default: SYNC_RECONCILE_SLICES).
    #[arg(long, env = "SYNC_SLICES_LISTINGS")]
    slices_listings: Option<u64>,
    /// A reconciliation slot claimed by a replica that did not complete it
    /// (it died) is taken over after this long.
    #[arg(long, env = "SYNC_SLOT_TAKEOVER_SECS", default_value_t = 300)]
    slot_takeover_secs: u64,
    /// A job whose account has spent its request budget (across every
    /// replica) for longer than this is put back, freeing its worker for
    /// another account.
    #[arg(long, env = "SYNC_MAX_ACCOUNT_WAIT_MS", default_value_t = 2000)]
    max_account_wait_ms: u64,
    /// How far back the first reservation poll of an account looks.
    #[arg(long, env = "SYNC_POLL_LOOKBACK_HOURS", default_value_t = 24)]
    poll_lookback_hours: u64,
    #[command(flatten)]
    api: HostawayApiArgs,
    #[command(flatten)]
    ops: OpsArgs,
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    key: CredentialsKeyArgs,
    #[command(flatten)]
    log: LogArgs,
}

const DEFAULT_OPS_LISTEN: &str = "0.0.0.0:9103";

fn roles(names: &[String]) -> anyhow::Result<Roles> {
    let mut roles = Roles {
        changes: false,
        jobs: false,
        reconcile: false,
    };
    for name in names {
        match name.trim() {
            "changes" => roles.changes = true,
            "jobs" => roles.jobs = true,
            "reconcile" => roles.reconcile = true,
            "" => {}
            other => anyhow::bail!("SYNC_ROLES: unknown role {other:?} (changes, jobs, reconcile)"),
        }
    }
    Ok(roles)
}

fn schedules(args: &Args) -> anyhow::Result<Vec<Schedule>> {
    let slices = |own: Option<u64>| own.unwrap_or(args.reconcile_slices).max(1);
    [
        (
            SyncKind::Availability,
            &args.schedule_availability,
            slices(args.slices_availability),
        ),
        (
            SyncKind::Pricing,
            &args.schedule_pricing,
            slices(args.slices_pricing),
        ),
        (
            SyncKind::Listing,
            &args.schedule_listings,
            slices(args.slices_listings),
        ),
        (SyncKind::Reservations, &args.schedule_reservations, 1),
    ]
    .into_iter()
    .filter(|(_, pattern, _)| !pattern.trim().eq_ignore_ascii_case("off"))
    .map(|(kind, pattern, slices)| {
        Schedule::parse(kind, pattern)
            .map(|schedule| schedule.with_slices(slices))
            .map_err(anyhow::Error::from)
    })
    .collect()
}

// The product's one allocator (ADR 0013): glibc's malloc/free were a sixth
// of the gateway's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::install_crypto_provider();
    let args = Args::parse();
    let telemetry = service_kit::telemetry::init(&args.log, "sync-dispatcher")?;

    let mut settings = DispatcherSettings::new(args.nats.topology()?);
    settings.streams = args.nats.stream_settings();
    settings.roles = roles(&args.roles)?;
    settings.migrate = args.database.migrate;
    settings.change_concurrency = args.change_concurrency.max(1);
    settings.change_batch = args.change_batch.clamp(1, 512);
    settings.job_concurrency = args.job_concurrency.max(1);
    settings.consumers = args.nats.consumer_settings();
    settings.schedules = schedules(&args)?;
    settings.slot_takeover = Duration::from_secs(args.slot_takeover_secs.max(1));
    settings.shutdown_timeout = args.ops.shutdown_timeout();
    let worker = &mut settings.worker;
    worker.retry.max_attempts = args.max_attempts.max(1);
    worker.retry.base = Duration::from_millis(args.retry_base_ms);
    worker.retry.cap = Duration::from_millis(args.retry_max_ms);
    worker.settle = Duration::from_millis(args.settle_ms);
    worker.max_settle = Duration::from_millis(args.max_settle_ms);
    worker.lease_ttl = Duration::from_secs(args.lease_secs.max(10));
    worker.heartbeat = (settings.consumers.job_ack_wait / 3).min(worker.lease_ttl / 3);
    settings.poll.lookback = Duration::from_secs(args.poll_lookback_hours * 3600);

    let cipher = Arc::new(args.key.cipher().context("CONNECTOR_CREDENTIALS_KEY")?);
    let nats = args.nats.connect("sync-dispatcher").await?;
    let connections = u32::try_from(settings.change_concurrency + settings.job_concurrency)
        .unwrap_or(u32::MAX)
        .saturating_add(2);
    let pool = args.database.service_pool(connections)?;
    let metrics = Metrics::new();
    let health = Health::new();
    let mut client_config = args.api.config();
    client_config.max_account_wait = Duration::from_millis(args.max_account_wait_ms);
    let client = sync_dispatcher::shared_api::shared_client(
        client_config,
        sync_dispatcher::credentials::from_database(pool.clone(), Arc::clone(&cipher)),
        ClientMetrics::register(metrics.registry())?,
        pool.clone(),
        Arc::clone(&cipher),
    )?;
    let dispatcher = SyncDispatcher::new(
        settings,
        DispatcherDeps {
            nats,
            pool,
            metrics: metrics.clone(),
            health: health.clone(),
            client,
            cipher,
        },
    )?;
    let stop = service_kit::ops::start(&args.ops, DEFAULT_OPS_LISTEN.parse()?, metrics, health)
        .await
        .context("ops server")?;
    dispatcher.run(stop).await;
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
    fn roles_are_checked() {
        let all = super::roles(&["changes".into(), "jobs".into(), "reconcile".into()]).unwrap();
        assert_eq!(all, super::Roles::ALL);
        assert!(super::roles(&["jobz".into()]).is_err());
    }
}
