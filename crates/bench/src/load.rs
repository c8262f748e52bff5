//! The measurements.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{message::PublishMessage, stream};
use connector_tests::TestEnv;
use connector_tests::services::RunningGateway;
use events::Message as _;
use futures::StreamExt;
use hdrhistogram::Histogram;

const ACCOUNT: &str = "70001";
const LOGIN: &str = "bench";
const PASSWORD: &str = "bench-password";
const LISTINGS: u64 = 50;

#[derive(Debug, Clone, clap::Args)]
pub struct InboundArgs {
    /// Concurrent connections (closed loop).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds measured per throughput run (after the warm-up).
    #[arg(long, default_value_t = 15)]
    pub duration: u64,
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// Webhooks per second of the end-to-end latency run.
    #[arg(long, default_value_t = 200)]
    pub rate: u64,
    /// Seconds of the end-to-end latency run.
    #[arg(long, default_value_t = 15)]
    pub e2e_duration: u64,
    /// Webhooks in the ingestor drain run.
    #[arg(long, default_value_t = 5000)]
    pub backlog: u64,
    /// Ingestor (and baseline) concurrency in the drain run.
    #[arg(long, default_value_t = 8)]
    pub ingest_concurrency: usize,
    /// Webhooks per ingestor transaction at most (`INGEST_BATCH`); the drain
    /// also runs with 1, the one-webhook-per-transaction path, beside it.
    #[arg(long, default_value_t = 16)]
    pub ingest_batch: usize,
    /// Skip the gateway part (1-2): the ingestor and end-to-end parts only.
    #[arg(long)]
    pub skip_gateway: bool,
    /// Run against a database that already holds a connector's data:
    /// `--preload-accounts` accounts with `--preload-listings` linked
    /// listings each, and `--preload-bookings` bookings with their blocks and
    /// log rows.
    #[arg(long)]
    pub preload: bool,
    #[arg(long, default_value_t = 10_000)]
    pub preload_accounts: usize,
    #[arg(long, default_value_t = 10)]
    pub preload_listings: i64,
    #[arg(long, default_value_t = 1_000_000)]
    pub preload_bookings: i64,
}

#[derive(Debug)]
pub struct Throughput {
    pub ops: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

impl Throughput {
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

#[derive(Debug)]
pub struct Results {
    pub body_bytes: usize,
    pub gateway: Option<GatewayResults>,
    pub e2e_sent: u64,
    pub e2e: Histogram<u64>,
    /// The drain with `--ingest-batch` webhooks per transaction.
    pub drain: Throughput,
    /// The same drain, one webhook per transaction.
    pub drain_single: Throughput,
    pub raw_upsert: Throughput,
}

#[derive(Debug)]
pub struct GatewayResults {
    pub raw_publish: Throughput,
    pub plain_http: Throughput,
    pub gateway: Throughput,
    /// One webhook at a time on one connection.
    pub idle: Throughput,
}

/// A realistic `reservation.created` body of about 2 KiB (the baselines' size),
/// unique per `id` so nothing is deduplicated.
pub fn body(id: u64) -> Vec<u8> {
    let listing = 600_000 + id % LISTINGS;
    // Stays 3 nights apart per listing: no double bookings in the measurement.
    let start = 20_000 + (id / LISTINGS) * 3;
    let arrival = day(start);
    let departure = day(start + 3);
    let mut value = connector_tests::payloads::Reservation::new(10_000_000 + id, listing)
        .dates(&arrival, &departure)
        .webhook(ACCOUNT, "reservation.created");
    let data = value["data"].as_object_mut().expect("data");
    data.insert("hostNote".into(), "".into());
    let base = serde_json::to_vec(&value).expect("json").len();
    let note = "Late check-in agreed with the guest; towels for four. ".repeat(40);
    value["data"]["hostNote"] = note[..2048usize.saturating_sub(base)].into();
    serde_json::to_vec(&value).expect("json")
}

fn day(days_since_epoch: u64) -> String {
    let epoch = chrono_free_date(days_since_epoch);
    format!("{:04}-{:02}-{:02}", epoch.0, epoch.1, epoch.2)
}

/// Civil date of a day count (Howard Hinnant's algorithm): keeps the bench free
/// of a date dependency.
fn chrono_free_date(days: u64) -> (i64, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// Runs `op` in a closed loop on `concurrency` tasks; only ops that start after
/// the warm-up are counted.
pub async fn closed_loop<F, Fut>(
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    op: F,
) -> Throughput
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + warmup;
    let stop_at = measure_from + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let op = op.clone();
        let next = Arc::clone(&next);
        tasks.push(tokio::spawn(async move {
            let mut latency = histogram();
            let (mut ops, mut errors) = (0u64, 0u64);
            loop {
                let begun = Instant::now();
                if begun >= stop_at {
                    break;
                }
                let id = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let ok = op(id).await;
                if begun >= measure_from {
                    if ok {
                        ops += 1;
                        let _ = latency.record(begun.elapsed().as_micros() as u64);
                    } else {
                        errors += 1;
                    }
                }
            }
            (ops, errors, latency)
        }));
    }
    let mut total = Throughput {
        ops: 0,
        errors: 0,
        elapsed: duration,
        latency: histogram(),
    };
    for task in tasks {
        let (ops, errors, latency) = task.await.expect("load task");
        total.ops += ops;
        total.errors += errors;
        let _ = total.latency.add(latency);
    }
    total
}

pub async fn inbound(args: &InboundArgs) -> anyhow::Result<Results> {
    let env = Arc::new(TestEnv::new_direct().await);
    env.add_basic_account(ACCOUNT, LOGIN, PASSWORD).await;
    for listing in 0..LISTINGS {
        env.link(ACCOUNT, &(600_000 + listing).to_string()).await;
    }
    if args.preload {
        eprintln!(
            "[preload] {} accounts × {} listings, {} bookings",
            args.preload_accounts, args.preload_listings, args.preload_bookings
        );
        crate::preload::registry(&env, args.preload_accounts, args.preload_listings).await?;
        crate::preload::bookings(&env, args.preload_bookings).await?;
    }
    let gateway = Arc::new(env.start_gateway().await);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let gateway_results = if args.skip_gateway {
        None
    } else {
        Some(gateway_part(&env, &gateway, &client, args).await?)
    };

    eprintln!(
        "[3/4] webhook → committed booking at {} webhooks/s",
        args.rate
    );
    let ingestor = env.start_ingestor_with(|s| {
        s.concurrency = args.ingest_concurrency;
        s.batch = args.ingest_batch;
        s.migrate = false;
    });
    let (e2e_sent, e2e) = end_to_end(&env, &gateway, &client, args, 100_000).await?;
    report_batches("end to end", &ingestor.metrics);
    ingestor.stop().await;

    eprintln!(
        "[4/4] ingestor drain of {} webhooks (one per transaction, then {} per transaction at most), beside raw PostgreSQL transactions",
        args.backlog, args.ingest_batch
    );
    let drain_single = drain(&env, &gateway, &client, args, 1, 200_000).await?;
    let drain = drain(&env, &gateway, &client, args, args.ingest_batch, 300_000).await?;
    let raw_upsert = raw_upsert(&env, args.ingest_concurrency, args.backlog).await?;

    Ok(Results {
        body_bytes: body(0).len(),
        gateway: gateway_results,
        e2e_sent,
        e2e,
        drain,
        drain_single,
        raw_upsert,
    })
}

async fn gateway_part(
    env: &TestEnv,
    gateway: &RunningGateway,
    client: &reqwest::Client,
    args: &InboundArgs,
) -> anyhow::Result<GatewayResults> {
    let warmup = Duration::from_secs(args.warmup);
    let duration = Duration::from_secs(args.duration);
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..20_000).map(body).collect());
    eprintln!(
        "[1/4] raw JetStream publish+ack, {} in flight",
        args.concurrency
    );
    let raw_publish =
        raw_publish(env, args.concurrency, warmup, duration, Arc::clone(&bodies)).await?;
    eprintln!(
        "[1/4] plain HTTP POST (read the body, answer 200), {} connections",
        args.concurrency
    );
    let plain_http = plain_http(args.concurrency, warmup, duration, Arc::clone(&bodies)).await?;

    eprintln!("[2/4] gateway, {} connections", args.concurrency);
    let auth = connector_tests::payloads::basic_auth(LOGIN, PASSWORD);
    let url = gateway.url("/webhooks/hostaway");
    let gateway_run = {
        let (client, url, bodies, auth) = (
            client.clone(),
            url.clone(),
            Arc::clone(&bodies),
            auth.clone(),
        );
        closed_loop(args.concurrency, warmup, duration, move |id| {
            let (client, url, auth, bodies) = (client.clone(), url.clone(), auth.clone(), Arc::clone(&bodies));
            async move {
                let body = bodies[(id as usize) % bodies.len()].clone();
                // Reuse of bodies past the first 20k would be deduplicated by
                // JetStream: still a full request, but a cheaper publish.
                matches!(
                    client.post(&url).header("authorization", &auth).header("content-type", "application/json").body(body).send().await,
                    Ok(r) if r.status().is_success()
                )
            }
        })
        .await
    };
    eprintln!("[2/4] gateway, one webhook at a time (an idle gateway)");
    let idle = {
        let mut latency = histogram();
        let started = Instant::now();
        let count = 2_000u64;
        let mut errors = 0;
        for n in 0..count {
            let begun = Instant::now();
            let ok = matches!(
                client.post(&url).header("authorization", &auth).header("content-type", "application/json").body(body(50_000 + n)).send().await,
                Ok(r) if r.status().is_success()
            );
            if ok {
                let _ = latency.record(begun.elapsed().as_micros() as u64);
            } else {
                errors += 1;
            }
        }
        Throughput {
            ops: count - errors,
            errors,
            elapsed: started.elapsed(),
            latency,
        }
    };
    env.js
        .get_stream(env.topology.webhooks_stream())
        .await?
        .purge()
        .await?;
    Ok(GatewayResults {
        raw_publish,
        plain_http,
        gateway: gateway_run,
        idle,
    })
}

/// The HTTP floor: the same client, bodies and concurrency against a server
/// that only reads the body and answers 200.
async fn plain_http(
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    bodies: Arc<Vec<Vec<u8>>>,
) -> anyhow::Result<Throughput> {
    let app = axum::Router::new().route(
        "/plain",
        axum::routing::post(|body: bytes::Bytes| async move {
            if body.is_empty() { "empty" } else { "ok" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/plain", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let run = closed_loop(concurrency, warmup, duration, move |id| {
        let (client, url, bodies) = (client.clone(), url.clone(), Arc::clone(&bodies));
        async move {
            let body = bodies[(id as usize) % bodies.len()].clone();
            matches!(client.post(&url).body(body).send().await, Ok(r) if r.status().is_success())
        }
    })
    .await;
    server.abort();
    Ok(run)
}

async fn raw_publish(
    env: &TestEnv,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    bodies: Arc<Vec<Vec<u8>>>,
) -> anyhow::Result<Throughput> {
    let name = format!("{}_RAWBENCH", env.topology.namespace().to_ascii_uppercase());
    let subject = format!("{}.rawbench", env.topology.namespace());
    env.js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let js = env.js.clone();
    let run = closed_loop(concurrency, warmup, duration, move |id| {
        let (js, subject, bodies) = (js.clone(), subject.clone(), Arc::clone(&bodies));
        async move {
            let message = PublishMessage::build()
                .payload(bodies[(id as usize) % bodies.len()].clone().into())
                .message_id(format!("raw-{id}"));
            match js.send_publish(subject, message).await {
                Ok(ack) => ack.await.is_ok(),
                Err(_) => false,
            }
        }
    })
    .await;
    let _ = env.js.delete_stream(&name).await;
    Ok(run)
}

async fn end_to_end(
    env: &TestEnv,
    gateway: &RunningGateway,
    client: &reqwest::Client,
    args: &InboundArgs,
    first_id: u64,
) -> anyhow::Result<(u64, Histogram<u64>)> {
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut created = env
        .nats
        .subscribe(env.topology.event_subject("booking.created"))
        .await?;
    let total = args.rate * args.e2e_duration;
    let receiver = {
        let sent_at = Arc::clone(&sent_at);
        tokio::spawn(async move {
            let mut latency = histogram();
            while let Ok(Some(message)) =
                tokio::time::timeout(Duration::from_secs(30), created.next()).await
            {
                let Ok(event) = events::pb::BookingEvent::decode(message.payload) else {
                    continue;
                };
                let Some(booking) = event.booking else {
                    continue;
                };
                if let Some(at) = sent_at.lock().expect("lock").remove(&booking.external_id) {
                    let _ = latency.record(at.elapsed().as_micros() as u64);
                }
                if latency.len() >= total {
                    break;
                }
            }
            latency
        })
    };
    let auth = connector_tests::payloads::basic_auth(LOGIN, PASSWORD);
    let url = gateway.url("/webhooks/hostaway");
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut inflight = Vec::new();
    for n in 0..total {
        ticker.tick().await;
        let id = first_id + n;
        let payload = body(id);
        sent_at
            .lock()
            .expect("lock")
            .insert((10_000_000 + id).to_string(), Instant::now());
        let (client, url, auth) = (client.clone(), url.clone(), auth.clone());
        inflight.push(tokio::spawn(async move {
            let _ = client
                .post(&url)
                .header("authorization", &auth)
                .body(payload)
                .send()
                .await;
        }));
    }
    for request in inflight {
        let _ = request.await;
    }
    let latency = receiver.await?;
    Ok((total, latency))
}

async fn drain(
    env: &TestEnv,
    gateway: &RunningGateway,
    client: &reqwest::Client,
    args: &InboundArgs,
    batch: usize,
    first_id: u64,
) -> anyhow::Result<Throughput> {
    let auth = connector_tests::payloads::basic_auth(LOGIN, PASSWORD);
    let url = gateway.url("/webhooks/hostaway");
    let bodies: Vec<Vec<u8>> = (0..args.backlog).map(|n| body(first_id + n)).collect();
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    futures::stream::iter(bodies)
        .for_each_concurrent(64, |payload| {
            let (client, url, auth, refused) = (
                client.clone(),
                url.clone(),
                auth.clone(),
                Arc::clone(&refused),
            );
            async move {
                let ok = matches!(
                    client.post(&url).header("authorization", &auth).body(payload).send().await,
                    Ok(r) if r.status().is_success()
                );
                if !ok {
                    refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        })
        .await;
    let refused = refused.load(std::sync::atomic::Ordering::Relaxed);
    anyhow::ensure!(
        refused == 0,
        "the gateway refused {refused} of the backlog's webhooks"
    );
    let started = Instant::now();
    let ingestor = env.start_ingestor_with(|s| {
        s.concurrency = args.ingest_concurrency;
        s.batch = batch;
        s.migrate = false;
    });
    // The ingestor's own count, not a count of the log: a query over a
    // growing (or preloaded) table every few milliseconds would load the
    // database it measures.
    loop {
        let processed = connector_tests::services::metric_labelled(
            &ingestor.metrics,
            "hostaway_webhooks_processed_total",
            ("status", "success"),
        );
        if processed >= args.backlog as f64 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "drain did not finish in 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    report_batches("drain", &ingestor.metrics);
    ingestor.stop().await;
    Ok(Throughput {
        ops: args.backlog,
        errors: 0,
        elapsed,
        latency: histogram(),
    })
}

/// How the ingestor grouped the webhooks it applied.
fn report_batches(part: &str, metrics: &service_kit::metrics::Metrics) {
    let batches =
        connector_tests::services::metric_value(metrics, "hostaway_ingest_batch_webhooks");
    let applied =
        connector_tests::services::histogram_sum(metrics, "hostaway_ingest_batch_webhooks");
    let retried = connector_tests::services::metric_value(metrics, "hostaway_ingest_retries_total");
    eprintln!(
        "[{part}] {applied} webhooks in {batches} batches ({:.1} a batch), {retried} sent back to retry",
        applied / batches.max(1.0)
    );
}

/// The baselines' PostgreSQL measurement: one upsert + one log insert per
/// transaction, at the ingestor's concurrency, on a scratch table.
async fn raw_upsert(env: &TestEnv, concurrency: usize, count: u64) -> anyhow::Result<Throughput> {
    sqlx::query(
        "CREATE TABLE bench_bookings (id uuid PRIMARY KEY, external_id text UNIQUE NOT NULL, status text NOT NULL,
           arrival date NOT NULL, departure date NOT NULL, total bigint, raw jsonb NOT NULL, updated_at timestamptz NOT NULL)",
    )
    .execute(&env.pool)
    .await?;
    sqlx::query("CREATE TABLE bench_log (id bigserial PRIMARY KEY, msg_id text UNIQUE NOT NULL, applied boolean NOT NULL)")
        .execute(&env.pool)
        .await?;
    let pool = store::connect_lazy(
        &env.service_database_url(),
        &store::PoolSettings {
            max_connections: concurrency as u32,
            acquire_timeout: Duration::from_secs(10),
            ..Default::default()
        },
    )?;
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (pool, next) = (pool.clone(), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut latency = histogram();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= count {
                    break;
                }
                let begun = Instant::now();
                let raw = serde_json::from_slice::<serde_json::Value>(&body(n)).expect("json");
                let result: Result<(), sqlx::Error> = async {
                    let mut tx = pool.begin().await?;
                    sqlx::query(
                        "INSERT INTO bench_bookings (id, external_id, status, arrival, departure, total, raw, updated_at)
                         VALUES ($1, $2, 'new', '2026-01-01', '2026-01-04', 91235, $3, now())
                         ON CONFLICT (external_id) DO UPDATE SET status = EXCLUDED.status, raw = EXCLUDED.raw,
                             updated_at = EXCLUDED.updated_at WHERE EXCLUDED.updated_at > bench_bookings.updated_at",
                    )
                    .bind(uuid::Uuid::now_v7())
                    .bind(n.to_string())
                    .bind(raw)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("INSERT INTO bench_log (msg_id, applied) VALUES ($1, true)")
                        .bind(n.to_string())
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await
                }
                .await;
                if result.is_ok() {
                    let _ = latency.record(begun.elapsed().as_micros() as u64);
                }
            }
            latency
        }));
    }
    let mut latency = histogram();
    for task in tasks {
        let _ = latency.add(task.await?);
    }
    Ok(Throughput {
        ops: latency.len(),
        errors: count - latency.len(),
        elapsed: started.elapsed(),
        latency,
    })
}
