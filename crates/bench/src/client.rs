//! `just bench-client`: calls per second through the whole client stack
//! (token cache, both rate limiters, circuit breaker, retry loop, envelope
//! parsing, typed mapping) against the simulator with its limits lifted,
//! beside plain reqwest calls to the same endpoint of the same simulator, in the
//! same run, at the same concurrency.

use std::sync::Arc;
use std::time::Duration;

use domain::{AccountId, ListingId};
use hostaway_client::{ClientConfig, ClientMetrics, HostawayClient, RateLimit, StaticCredentials};
use hostaway_sim::{Sim, SimConfig};
use secrecy::SecretString;
use serde_json::Map;

use crate::load::{Throughput, closed_loop};

#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
}

const ACCOUNT: &str = "70001";
const SECRET: &str = "bench-secret";

pub async fn run(args: &ClientArgs) -> anyhow::Result<()> {
    service_kit::install_crypto_provider();
    let unlimited = SimConfig {
        account_limit: usize::MAX,
        ip_limit: usize::MAX,
        token_activation: Duration::ZERO,
        ..SimConfig::default()
    };
    let sim = Sim::start("127.0.0.1:0".parse()?, unlimited).await?;
    sim.add_account(ACCOUNT, SECRET).await;
    let listing = sim
        .add_listing(ACCOUNT, Map::new())
        .await
        .ok_or_else(|| anyhow::anyhow!("listing"))?;
    let warmup = Duration::from_secs(args.warmup);
    let duration = Duration::from_secs(args.duration);

    eprintln!(
        "[1/2] plain reqwest GET /listings/{{id}}, {} in flight",
        args.concurrency
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let token = http
        .post(format!("{}/accessTokens", sim.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ACCOUNT),
            ("client_secret", SECRET),
            ("scope", "general"),
        ])
        .send()
        .await?
        .json::<serde_json::Value>()
        .await?["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let url = format!("{}/listings/{listing}", sim.base_url());
    let plain = {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        closed_loop(args.concurrency, warmup, duration, move |_| {
            let (http, url, token) = (http.clone(), url.clone(), token.clone());
            async move {
                match http.get(&url).bearer_auth(&token).send().await {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    _ => false,
                }
            }
        })
        .await
    };

    eprintln!(
        "[2/2] HostawayClient::get_listing, {} in flight",
        args.concurrency
    );
    let open = RateLimit {
        limit: 1_000_000,
        window: Duration::from_secs(1),
        burst: 1_000_000,
    };
    let config = ClientConfig {
        base_url: sim.base_url(),
        account_limit: open,
        ip_limit: open,
        token_activation_delay: Duration::ZERO,
        ..ClientConfig::default()
    };
    let account = AccountId::parse(ACCOUNT)?;
    let credentials =
        StaticCredentials::new().with(account.clone(), SecretString::from(SECRET.to_owned()));
    let metrics = ClientMetrics::register(&prometheus::Registry::new())?;
    let client = HostawayClient::new(config, Arc::new(credentials), metrics)?;
    let listing_id = ListingId::parse(listing.to_string())?;
    let stack = {
        let (client, account, listing_id) = (client.clone(), account.clone(), listing_id.clone());
        closed_loop(args.concurrency, warmup, duration, move |_| {
            let (client, account, listing_id) =
                (client.clone(), account.clone(), listing_id.clone());
            async move { client.get_listing(&account, &listing_id).await.is_ok() }
        })
        .await
    };
    sim.stop();
    print(args, &plain, &stack);
    Ok(())
}

fn print(args: &ClientArgs, plain: &Throughput, stack: &Throughput) {
    let ms = |us: u64| format!("{:.2}", us as f64 / 1000.0);
    println!("\n## Client benchmark\n");
    println!(
        "`GET /listings/{{id}}` against hostaway-sim (limits lifted), {} in flight, {} s after {} s warm-up.\n",
        args.concurrency, args.duration, args.warmup
    );
    println!("| measurement | calls/s | p50 ms | p99 ms | errors | ratio |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, t, ratio) in [
        ("plain reqwest (baseline)", plain, 1.0),
        (
            "HostawayClient: token, limits, breaker, retries, parsing",
            stack,
            stack.rate() / plain.rate(),
        ),
    ] {
        println!(
            "| {name} | {:.0} | {} | {} | {} | {ratio:.2} |",
            t.rate(),
            ms(t.latency.value_at_quantile(0.5)),
            ms(t.latency.value_at_quantile(0.99)),
            t.errors
        );
    }
}
