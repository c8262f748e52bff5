//! `just bench-scale`: the connector at replica count and at registry size.
//!
//! 1. **Replicas.** The same outbound burst (10,000 changes over ≥ 300
//!    listings in ≥ 10 accounts) converged by 1, 2 and 3 dispatcher replicas,
//!    each sending from its own loopback address (127.0.0.2, .3, .4): to the
//!    simulator, as to Hostaway, distinct egress IPs with 15 requests per 10 s
//!    each. Reported against the time the calls alone must take at the total
//!    egress budget (calls ÷ 1.5 per second per replica), with the 429s (must
//!    be 0) and the speed-up per replica.
//! 2. **Registry.** 10,000 accounts with 10 listings each: the gateway's
//!    memory and credential-reload time with all of them loaded, a webhook's
//!    latency then, beside the same gateway with one account (same run); and
//!    the dispatcher's memory for 10,000 accounts' tokens, circuits and
//!    limiters, measured as the heap its client frees when dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use connector_tests::TestEnv;
use connector_tests::outbound::OutboundWorld;
use connector_tests::payloads::Reservation;
use domain::{AccountId, ListingId};
use futures::StreamExt;
use hdrhistogram::Histogram;
use hostaway_client::{ClientConfig, ClientMetrics, RateLimit};
use hostaway_sim::{Sim, SimConfig};
use reqwest::StatusCode;

use crate::outbound::{converge, days_wrong, publish_burst, start_dispatcher};

/// Every allocation of the benchmark process, counted: what a structure
/// costs is what dropping it frees, whatever the allocator keeps for reuse.
#[global_allocator]
static HEAP: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// The heap this process holds now, in bytes.
fn live_heap() -> isize {
    let stats = HEAP.stats();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize + stats.bytes_reallocated
}

/// This process's resident memory (Linux), in bytes.
fn resident() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

#[derive(Debug, Clone, clap::Args)]
pub struct ScaleArgs {
    #[arg(long, default_value_t = 10_000)]
    pub changes: u64,
    #[arg(long, default_value_t = 10)]
    pub accounts: usize,
    #[arg(long, default_value_t = 30)]
    pub listings_per_account: usize,
    #[arg(long, default_value_t = 180)]
    pub days: i64,
    /// Replica counts to run the burst with.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub replicas: Vec<u8>,
    /// Accounts in the registry part (10 listings each).
    #[arg(long, default_value_t = 10_000)]
    pub registry_accounts: usize,
    /// Webhooks timed against each gateway.
    #[arg(long, default_value_t = 2_000)]
    pub webhooks: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 3600)]
    pub timeout_secs: u64,
}

struct ReplicaRun {
    replicas: u8,
    calls: usize,
    converged: Duration,
    too_many: usize,
    max_ip: usize,
    max_account: usize,
    wrong: usize,
}

pub async fn run(args: &ScaleArgs) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for &replicas in &args.replicas {
        runs.push(replica_run(args, replicas).await?);
    }
    let registry = registry(args).await?;

    println!(
        "\n## bench-scale: the outbound burst by replica count ({} changes, {} listings in {} accounts)\n",
        args.changes,
        args.accounts * args.listings_per_account,
        args.accounts
    );
    println!(
        "| replicas | API calls | time to converge | calls ÷ egress budget | ratio | speed-up | 429s | most in 10 s (IP / account) | days wrong |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let first = runs.first().map(|r| r.converged.as_secs_f64());
    for run in &runs {
        let ideal = run.calls as f64 / (1.5 * f64::from(run.replicas));
        println!(
            "| {} | {} | {:.0} s | {:.0} s | {:.2} | {} | {} | {} / {} | {} |",
            run.replicas,
            run.calls,
            run.converged.as_secs_f64(),
            ideal,
            run.converged.as_secs_f64() / ideal.max(0.001),
            first.map_or("–".into(), |one| format!(
                "{:.2}×",
                one / run.converged.as_secs_f64().max(0.001)
            )),
            run.too_many,
            run.max_ip,
            run.max_account,
            run.wrong
        );
    }
    registry.print(args);
    anyhow::ensure!(
        runs.iter().all(|r| r.too_many == 0 && r.wrong == 0),
        "a run met 429s or left days wrong"
    );
    Ok(())
}

async fn replica_run(args: &ScaleArgs, replicas: u8) -> anyhow::Result<ReplicaRun> {
    let accounts: Vec<String> = (0..args.accounts)
        .map(|n| format!("{}", 73_001 + n))
        .collect();
    let layout: Vec<(&str, usize)> = accounts
        .iter()
        .map(|a| (a.as_str(), args.listings_per_account))
        .collect();
    eprintln!(
        "[replicas {replicas}] {} accounts × {} listings, {} changes",
        args.accounts, args.listings_per_account, args.changes
    );
    let world =
        OutboundWorld::with_env(TestEnv::new_direct().await, SimConfig::default(), &layout).await;
    let dispatchers: Vec<_> = (0..replicas)
        .map(|n| start_dispatcher(&world, Some(2 + n)))
        .collect();
    for dispatcher in &dispatchers {
        dispatcher.ready().await;
    }
    let started = Instant::now();
    let model = publish_burst(&world, args.changes, args.days, args.seed).await;
    converge(&world, started, Duration::from_secs(args.timeout_secs)).await?;
    let converged = started.elapsed();
    let wrong = days_wrong(&world, &model).await;
    let requests = world.sim.requests(None).await;
    let too_many = requests.iter().filter(|r| r.status == 429).count();
    let mut max_ip = 0;
    for peer in requests
        .iter()
        .map(|r| r.peer)
        .collect::<std::collections::BTreeSet<_>>()
    {
        let mut times: Vec<tokio::time::Instant> = requests
            .iter()
            .filter(|r| r.peer == peer)
            .map(|r| r.at)
            .collect();
        times.sort();
        max_ip = max_ip.max(most_in_window(&times, Duration::from_secs(10)));
    }
    let mut max_account = 0;
    for account in &accounts {
        max_account = max_account.max(world.sim.max_requests_in_window(Some(account)).await);
    }
    for dispatcher in dispatchers {
        dispatcher.stop().await;
    }
    eprintln!(
        "[replicas {replicas}] converged in {:.0} s, {} calls",
        converged.as_secs_f64(),
        requests.len()
    );
    Ok(ReplicaRun {
        replicas,
        calls: requests.len(),
        converged,
        too_many,
        max_ip,
        max_account,
        wrong,
    })
}

/// The most instants of `sorted` within any `window`.
fn most_in_window(sorted: &[tokio::time::Instant], window: Duration) -> usize {
    let mut most = 0;
    let mut first = 0;
    for (last, at) in sorted.iter().enumerate() {
        while *at - sorted[first] >= window {
            first += 1;
        }
        most = most.max(last - first + 1);
    }
    most
}

struct Registry {
    accounts: usize,
    gateway_resident: (u64, u64),
    cache_heap: isize,
    reload: Duration,
    raw_read: Duration,
    latency_one: Histogram<u64>,
    latency_all: Histogram<u64>,
    client: ClientFigures,
}

impl Registry {
    fn print(&self, args: &ScaleArgs) {
        println!(
            "\n## bench-scale: the registry at {} accounts × 10 listings\n",
            self.accounts
        );
        println!(
            "| measure | with {} accounts | baseline (same run) | ratio |",
            self.accounts
        );
        println!("|---|---|---|---|");
        println!(
            "| gateway resident memory, started and loaded | {} | {} (one account) | {:.2} |",
            mib(self.gateway_resident.1 as f64),
            mib(self.gateway_resident.0 as f64),
            self.gateway_resident.1 as f64 / self.gateway_resident.0.max(1) as f64
        );
        println!(
            "| credentials held by the gateway (heap) | {} ({:.0} B an account) | | |",
            mib(self.cache_heap as f64),
            self.cache_heap as f64 / self.accounts.max(1) as f64
        );
        println!(
            "| credential reload (read, decrypt, swap) | {:.0} ms | {:.0} ms (the same rows read raw) | {:.2} |",
            self.reload.as_secs_f64() * 1e3,
            self.raw_read.as_secs_f64() * 1e3,
            self.reload.as_secs_f64() / self.raw_read.as_secs_f64().max(1e-6)
        );
        for (name, q) in [("p50", 50.0), ("p99", 99.0)] {
            let all = self.latency_all.value_at_quantile(q / 100.0) as f64 / 1e3;
            let one = self.latency_one.value_at_quantile(q / 100.0) as f64 / 1e3;
            println!(
                "| webhook latency {name} ({} webhooks, one connection) | {all:.2} ms | {one:.2} ms (one account) | {:.2} |",
                args.webhooks,
                all / one.max(1e-6)
            );
        }
        println!(
            "| dispatcher client: {} accounts' tokens, circuits and limiters (heap) | {} ({:.0} B an account) | | |",
            self.client.tokens,
            mib(self.client.heap as f64),
            self.client.heap as f64 / self.client.tokens.max(1) as f64
        );
        println!(
            "| requests through the shared budget ({CALLS_TIMED}, 16 in flight, limits lifted) | {:.0}/s | {:.0}/s (budget in memory) | {:.2} |",
            self.client.shared_rate,
            self.client.local_rate,
            self.client.shared_rate / self.client.local_rate.max(1e-6)
        );
    }
}

const LISTINGS_PER_ACCOUNT: i64 = 10;

async fn registry(args: &ScaleArgs) -> anyhow::Result<Registry> {
    // The baseline first: one account, the same gateway.
    eprintln!("[registry] baseline: a gateway with one account");
    let small = TestEnv::new_direct().await;
    small.add_basic_account("1", "hostaway-1", "pw-1").await;
    let before = resident();
    let gateway = small.start_gateway().await;
    let resident_one = resident().saturating_sub(before);
    let latency_one = time_webhooks(&gateway, 1, args.webhooks).await;
    gateway.stop().await;
    drop(small);

    eprintln!(
        "[registry] {} accounts × {LISTINGS_PER_ACCOUNT} listings registered",
        args.registry_accounts
    );
    let env = Arc::new(TestEnv::new_direct().await);
    crate::preload::registry(&env, args.registry_accounts, LISTINGS_PER_ACCOUNT).await?;

    // The reload the gateway repeats every CREDENTIALS_REFRESH_SECS, beside
    // the same rows read raw.
    let mut reloads = Vec::new();
    let mut raw_reads = Vec::new();
    let mut cache_heap = 0;
    for _ in 0..3 {
        let started = Instant::now();
        let _rows = sqlx::query("SELECT * FROM channels")
            .fetch_all(&env.pool)
            .await?;
        raw_reads.push(started.elapsed());
        drop(_rows);
        let started = Instant::now();
        let (loaded, failed) =
            store::accounts::load_webhook_credentials(&env.pool, &env.cipher).await?;
        let failed: Vec<AccountId> = failed.into_iter().map(|(account, _)| account).collect();
        let cache = webhook_gateway::credentials::CredentialCache::new(None);
        cache.replace(loaded, &failed);
        reloads.push(started.elapsed());
        anyhow::ensure!(
            cache.len() == args.registry_accounts,
            "every account loaded"
        );
        let held = live_heap();
        drop(cache);
        cache_heap = held - live_heap();
    }
    reloads.sort();
    raw_reads.sort();

    eprintln!("[registry] a gateway with every account loaded");
    let before = resident();
    let gateway = env.start_gateway().await;
    let resident_all = resident().saturating_sub(before);
    let latency_all = time_webhooks(&gateway, args.registry_accounts, args.webhooks).await;
    gateway.stop().await;

    eprintln!("[registry] the dispatcher's client holding every account's token");
    let client = client_memory(&env, args.registry_accounts).await?;
    Ok(Registry {
        accounts: args.registry_accounts,
        gateway_resident: (resident_one, resident_all),
        cache_heap,
        reload: reloads[reloads.len() / 2],
        raw_read: raw_reads[raw_reads.len() / 2],
        latency_one,
        latency_all,
        client,
    })
}

/// Posts `count` webhooks one after the other, each for a random one of
/// accounts 1..=`accounts`; the latency of each, in microseconds.
async fn time_webhooks(
    gateway: &connector_tests::services::RunningGateway,
    accounts: usize,
    count: usize,
) -> Histogram<u64> {
    let mut histogram = Histogram::<u64>::new(3).expect("histogram");
    let mut rng = fastrand::Rng::with_seed(7);
    for n in 0..count {
        let account = rng.usize(1..=accounts).to_string();
        let listing = account.parse::<u64>().unwrap_or(1) * 100 + 1;
        let body = Reservation::new(8_000_000 + n as u64, listing)
            .webhook(&account, "reservation.created");
        let started = Instant::now();
        let (status, answer) = gateway
            .post_basic(
                &format!("hostaway-{account}"),
                &format!("pw-{account}"),
                &body,
            )
            .await;
        let elapsed = started.elapsed();
        assert_eq!(status, StatusCode::OK, "{answer}");
        let _ = histogram.record(elapsed.as_micros() as u64);
    }
    histogram
}

/// The heap a shared client frees when dropped after it has minted, stored
/// and cached a token for each of `accounts` accounts (and made one call
/// with each: circuits, budget entries).
async fn client_memory(env: &TestEnv, accounts: usize) -> anyhow::Result<ClientFigures> {
    anyhow::ensure!(accounts > 0, "--registry-accounts: at least 1");
    let sim = Sim::start(
        "127.0.0.1:0".parse().expect("addr"),
        SimConfig {
            // Memory, not limits, is measured here.
            account_limit: usize::MAX,
            ip_limit: usize::MAX,
            token_activation: Duration::ZERO,
            ..SimConfig::default()
        },
    )
    .await?;
    let mut listing_ids = Vec::with_capacity(accounts);
    for n in 1..=accounts {
        let account = n.to_string();
        sim.add_account(&account, &format!("api-{account}")).await;
        listing_ids.push(
            sim.add_listing(&account, serde_json::Map::new())
                .await
                .ok_or_else(|| anyhow::anyhow!("the simulator refused a listing"))?,
        );
    }
    // Far above any rate reached here, and small enough for the in-memory
    // limiter's arithmetic (nanoseconds per request × burst).
    let unlimited = RateLimit {
        limit: 1_000_000,
        window: Duration::from_secs(10),
        burst: 1_000_000,
    };
    let config = ClientConfig {
        base_url: sim.base_url(),
        timeout: Some(Duration::from_secs(30)),
        account_limit: unlimited,
        ip_limit: unlimited,
        // The simulator's tokens are usable at once; waiting a second per
        // mint would time 10,000 mints, not memory.
        token_activation_delay: Duration::ZERO,
        ..ClientConfig::default()
    };
    let local_config = config.clone();
    let registry = prometheus::Registry::new();
    let metrics = ClientMetrics::register(&registry)?;
    // As the dispatcher's own pool: a connection per request in flight.
    let pool = store::connect_lazy(
        &env.service_database_url(),
        &store::PoolSettings {
            max_connections: 20,
            ..store::PoolSettings::default()
        },
    )?;
    let credentials =
        sync_dispatcher::credentials::from_database(pool.clone(), Arc::clone(&env.cipher));
    let client = sync_dispatcher::shared_api::shared_client(
        config,
        credentials,
        metrics,
        pool,
        Arc::clone(&env.cipher),
    )?;
    let client = Arc::new(client);
    // One call for each account: a token minted and stored for each.
    let each_account: Vec<(AccountId, ListingId)> = listing_ids
        .iter()
        .enumerate()
        .map(|(n, listing)| {
            (
                AccountId::parse((n + 1).to_string()).expect("account id"),
                ListingId::parse(listing.to_string()).expect("listing id"),
            )
        })
        .collect();
    calls_per_second(&client, &each_account).await?;
    let tokens = client.known_accounts().len();

    // What sharing costs a request: the same calls (tokens cached) through
    // the shared client, then through a client that keeps its budget in
    // memory (the baseline), to the same simulator.
    let calls: Vec<(AccountId, ListingId)> = (0..CALLS_TIMED)
        .map(|n| each_account[n % each_account.len()].clone())
        .collect();
    let shared_rate = calls_per_second(&client, &calls).await?;
    let local = Arc::new(hostaway_client::HostawayClient::new(
        local_config,
        sync_dispatcher::credentials::from_database(env.pool.clone(), Arc::clone(&env.cipher)),
        ClientMetrics::register(&prometheus::Registry::new())?,
    )?);
    // Its tokens minted first, outside the timing.
    calls_per_second(&local, &calls[..accounts.min(CALLS_TIMED)]).await?;
    let local_rate = calls_per_second(&local, &calls).await?;

    let before_drop = live_heap();
    drop(client);
    let freed = before_drop - live_heap();
    sim.stop();
    Ok(ClientFigures {
        heap: freed,
        tokens,
        shared_rate,
        local_rate,
    })
}

/// Requests timed through each client for the cost of sharing.
const CALLS_TIMED: usize = 5_000;

struct ClientFigures {
    heap: isize,
    tokens: usize,
    shared_rate: f64,
    local_rate: f64,
}

/// `GET /listings/{id}` for each pair, 16 in flight; calls a second.
async fn calls_per_second(
    client: &Arc<hostaway_client::HostawayClient>,
    calls: &[(AccountId, ListingId)],
) -> anyhow::Result<f64> {
    let started = Instant::now();
    futures::stream::iter(calls.iter().cloned())
        .map(|(account, listing)| {
            let client = Arc::clone(client);
            async move { client.get_listing(&account, &listing).await.map(|_| ()) }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(calls.len() as f64 / started.elapsed().as_secs_f64().max(1e-6))
}
