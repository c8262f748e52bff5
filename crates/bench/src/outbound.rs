//! `just bench-outbound`: a burst of TVL changes over many listings in several
//! accounts, pushed to the simulator at Hostaway's real limits (20 requests
//! per 10 s per account, 15 per 10 s per egress IP). Reported beside the
//! lower bounds measured from the same burst:
//!
//! - calendar writes made, against the fewest possible: maximal runs of the
//!   combined wanted values per listing (availability, stay rules and price in
//!   one range), 200 ranges a call; and, for comparison, the bound of one push
//!   per kind;
//! - all API calls, against that plus the reads that cannot be avoided (a
//!   token per account, a page of listings per account for the currencies);
//! - time to converge, against all calls ÷ the egress IP's budget (1.5 calls
//!   a second): the time the calls alone must take;
//! - 429s received, and the most requests in any 10 s window.

use std::time::{Duration, Instant};

use chrono::Utc;
use connector_tests::TestEnv;
use connector_tests::outbound::{
    Availability, CHANGES_ONLY, JOBS_ONLY, Model, OutboundWorld, Price, change_id, day,
};
use connector_tests::services::Isolated;
use hostaway_client::ClientConfig;
use hostaway_sim::SimConfig;
use sync_dispatcher::Roles;
use sync_dispatcher::worker::WorkerSettings;

#[derive(Debug, Clone, clap::Args)]
pub struct OutboundArgs {
    #[arg(long, default_value_t = 10_000)]
    pub changes: u64,
    #[arg(long, default_value_t = 3)]
    pub accounts: usize,
    #[arg(long, default_value_t = 34)]
    pub listings_per_account: usize,
    /// Days ahead the changes cover.
    #[arg(long, default_value_t = 180)]
    pub days: i64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Give up waiting for convergence after this long.
    #[arg(long, default_value_t = 1800)]
    pub timeout_secs: u64,
    /// Time the projection only, on a database that already holds 10,000
    /// accounts with 10 linked listings each and 1,000,000 bookings (no
    /// job runs: the preloaded accounts have no simulator behind them).
    #[arg(long)]
    pub preload: bool,
}

pub async fn run(args: &OutboundArgs) -> anyhow::Result<()> {
    let accounts: Vec<String> = (0..args.accounts)
        .map(|n| format!("{}", 72_001 + n))
        .collect();
    let layout: Vec<(&str, usize)> = accounts
        .iter()
        .map(|a| (a.as_str(), args.listings_per_account))
        .collect();
    eprintln!(
        "[1/4] {} accounts × {} listings on the simulator (Hostaway's limits), linked in a fresh database",
        args.accounts, args.listings_per_account
    );
    let world =
        OutboundWorld::with_env(TestEnv::new_direct().await, SimConfig::default(), &layout).await;
    if args.preload {
        return projection_on_preloaded(&world, args).await;
    }
    // The job workers run from the start; the change consumer only once the
    // burst waits on the stream, so that projection is timed on its own.
    let dispatcher = start_dispatcher_with_roles(&world, None, JOBS_ONLY);
    dispatcher.ready().await;

    eprintln!(
        "[2/4] publishing {} changes, then projecting them",
        args.changes
    );
    let started = Instant::now();
    let model = publish_burst(&world, args.changes, args.days, args.seed).await;
    let published = started.elapsed();
    let changes = start_dispatcher_with_roles(&world, None, CHANGES_ONLY);
    changes.ready().await;
    let projecting = Instant::now();
    world.changes_consumed().await;
    let projected = projecting.elapsed();

    eprintln!("[3/4] waiting for Hostaway's calendars to match TVL (calls at 1.5 a second)");
    converge(&world, started, Duration::from_secs(args.timeout_secs)).await?;
    let converged = started.elapsed();

    eprintln!("[4/4] checking every calendar against TVL's");
    let wrong = days_wrong(&world, &model).await;
    let requests = world.sim.requests(None).await;
    let count =
        |f: &dyn Fn(&hostaway_sim::RequestRecord) -> bool| requests.iter().filter(|r| f(r)).count();
    let writes =
        count(&|r| r.method == "PUT" && r.path.ends_with("/calendarIntervals") && r.status == 200);
    let too_many = count(&|r| r.status == 429);
    let tokens = count(&|r| r.path.ends_with("/accessTokens"));
    let listing_pages = count(&|r| r.method == "GET" && r.path == "/v1/listings");
    let total = requests.len();
    let per_kind_writes: usize = world
        .listings
        .iter()
        .map(|l| model.minimum_writes(l.unit))
        .sum();
    let minimum_writes: usize = world
        .listings
        .iter()
        .map(|l| model.minimum_writes_combined(l.unit))
        .sum();
    let pages_needed = args.accounts * args.listings_per_account.div_ceil(100);
    let minimum_calls = minimum_writes + args.accounts + pages_needed;
    let budget_per_sec = 15.0 / 10.0;
    let ideal = Duration::from_secs_f64(total as f64 / budget_per_sec);
    let max_ip = world.sim.max_requests_in_window(None).await;
    let mut max_account = 0;
    for account in &accounts {
        max_account = max_account.max(world.sim.max_requests_in_window(Some(account)).await);
    }
    dispatcher.stop().await;
    changes.stop().await;

    println!(
        "\n## bench-outbound ({} changes, {} listings in {} accounts, {} days)\n",
        args.changes,
        world.listings.len(),
        args.accounts,
        args.days
    );
    println!("| measure | value | lower bound | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| calendar writes (`calendarIntervals`) | {writes} | {minimum_writes} (maximal runs of the combined values, 200 a call) | {:.2} |",
        writes as f64 / minimum_writes.max(1) as f64
    );
    println!(
        "| the same, against one push per kind | {writes} | {per_kind_writes} (maximal runs per kind, 200 a call) | {:.2} |",
        writes as f64 / per_kind_writes.max(1) as f64
    );
    println!(
        "| API calls in all | {total} ({tokens} token, {listing_pages} listing pages) | {minimum_calls} (+ {} tokens, {pages_needed} pages) | {:.2} |",
        args.accounts,
        total as f64 / minimum_calls.max(1) as f64
    );
    println!(
        "| time to converge | {:.1} s | {:.1} s (calls ÷ 1.5/s) | {:.2} |",
        converged.as_secs_f64(),
        ideal.as_secs_f64(),
        converged.as_secs_f64() / ideal.as_secs_f64().max(0.001)
    );
    println!("| 429 answers | {too_many} | 0 | |");
    println!(
        "| most requests in 10 s | IP {max_ip} (limit 15), account {max_account} (limit 20) | | |"
    );
    let publish_rate = args.changes as f64 / published.as_secs_f64().max(0.001);
    let projection_rate = args.changes as f64 / projected.as_secs_f64().max(0.001);
    println!(
        "| TVL changes projected by one replica (the burst waiting on the stream) | {projection_rate:.0}/s ({:.1} s) | {publish_rate:.0}/s (the same changes published one by one with ack, same run) | {:.2} |",
        projected.as_secs_f64(),
        projection_rate / publish_rate.max(0.001)
    );
    println!("| days differing from TVL at the end | {wrong} | 0 | |");
    anyhow::ensure!(wrong == 0, "{wrong} days differ from TVL");
    Ok(())
}

/// The burst projected by one change consumer on a database that already
/// holds a registry and bookings the size of production's.
async fn projection_on_preloaded(world: &OutboundWorld, args: &OutboundArgs) -> anyhow::Result<()> {
    eprintln!("[preload] 10000 accounts × 10 listings, 1000000 bookings");
    crate::preload::registry(&world.env, 10_000, 10).await?;
    crate::preload::bookings(&world.env, 1_000_000).await?;
    eprintln!(
        "[2/2] publishing {} changes, then projecting them",
        args.changes
    );
    let started = Instant::now();
    publish_burst(world, args.changes, args.days, args.seed).await;
    let published = started.elapsed();
    let changes = start_dispatcher_with_roles(world, None, CHANGES_ONLY);
    changes.ready().await;
    let projecting = Instant::now();
    world.changes_consumed().await;
    let projected = projecting.elapsed();
    println!(
        "| TVL changes projected by one replica, preloaded database | {:.0}/s ({:.1} s) | {:.0}/s published with ack | {:.2} |",
        args.changes as f64 / projected.as_secs_f64().max(0.001),
        projected.as_secs_f64(),
        args.changes as f64 / published.as_secs_f64().max(0.001),
        published.as_secs_f64() / projected.as_secs_f64().max(0.001)
    );
    changes.stop().await;
    Ok(())
}

/// A dispatcher with production timings (no reconciliation schedules); with
/// `egress` it sends from 127.0.0.`egress` as an egress identity of its own.
pub fn start_dispatcher(world: &OutboundWorld, egress: Option<u8>) -> Isolated {
    start_dispatcher_with_roles(
        world,
        egress,
        Roles {
            reconcile: false,
            ..Roles::ALL
        },
    )
}

fn start_dispatcher_with_roles(
    world: &OutboundWorld,
    egress: Option<u8>,
    roles: Roles,
) -> Isolated {
    world.start_dispatcher_with(roles, |settings, client| {
        settings.worker = WorkerSettings::default();
        settings.consumers.change_ack_wait = Duration::from_secs(30);
        settings.consumers.job_ack_wait = Duration::from_secs(60);
        client.retry = ClientConfig::default().retry;
        if let Some(last) = egress {
            client.local_address = Some(std::net::IpAddr::from([127, 0, 0, last]));
            client.egress_id = format!("egress-{last}");
        }
    })
}

/// Publishes `changes` random changes (two availability to one price) over
/// the world's listings, `days` ahead; returns what TVL then wants.
pub async fn publish_burst(world: &OutboundWorld, changes: u64, days: i64, seed: u64) -> Model {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut model = Model::default();
    let base = Utc::now() - chrono::Duration::minutes(10);
    for seq in 0..changes {
        let listing = &world.listings[rng.usize(0..world.listings.len())];
        let start = rng.i64(1..=days);
        let end = (start + rng.i64(0..14)).min(days);
        let occurred_at = base + chrono::Duration::milliseconds(rng.i64(0..600_000));
        if seq % 3 == 2 {
            let change = Price {
                change_id: change_id(seq),
                seq,
                unit: listing.unit,
                start: day(start),
                end: day(end),
                price_minor: rng.i64(80..=260) * 100,
                currency: "USD".into(),
                occurred_at,
            };
            model.apply_price(&change);
            world.publish_price(&change).await;
        } else {
            let change = Availability {
                change_id: change_id(seq),
                seq,
                unit: listing.unit,
                start: day(start),
                end: day(end),
                available: Some(rng.u8(0..4) != 0),
                min_stay: Some(rng.u32(1..=3)),
                occurred_at,
                version: 0,
            };
            model.apply_availability(&change);
            world.publish_availability(&change).await;
        }
    }
    model
}

/// Waits until every listing is in line with TVL (the dispatcher's own
/// report), at most `deadline` after `started`.
pub async fn converge(
    world: &OutboundWorld,
    started: Instant,
    deadline: Duration,
) -> anyhow::Result<()> {
    loop {
        let status = sync_dispatcher::report::status(&world.env.pool, None).await?;
        if status.iter().all(|s| s.in_line()) {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < deadline,
            "no convergence within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Days on the simulator that differ from what TVL wants.
pub async fn days_wrong(world: &OutboundWorld, model: &Model) -> usize {
    let mut wrong = 0;
    for listing in &world.listings {
        wrong += world.differences(listing, model).await.len();
    }
    wrong
}
