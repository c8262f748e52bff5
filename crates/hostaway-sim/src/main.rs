//! `hostaway-sim`: the simulator as a server (`just sim`).

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use hostaway_sim::{Sim, SimConfig};
use serde_json::{Map, Value, json};

/// A simulated Hostaway API (and webhook sender) for local runs and demos.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[arg(long, env = "SIM_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Seed accounts and listings: `demo` adds account 70001 (secret
    /// `SIM_DEMO_SECRET`, default `sim-secret`) with listings 300101-300103
    /// and 300199.
    #[arg(long, env = "SIM_SEED")]
    seed: Option<String>,
    #[arg(
        long,
        env = "SIM_DEMO_SECRET",
        default_value = "sim-secret",
        hide_env_values = true
    )]
    demo_secret: String,
    /// Requests per 10 s per account (Hostaway: 20).
    #[arg(long, env = "SIM_ACCOUNT_LIMIT", default_value_t = 20)]
    account_limit: usize,
    /// Requests per 10 s per client address (Hostaway: 15).
    #[arg(long, env = "SIM_IP_LIMIT", default_value_t = 15)]
    ip_limit: usize,
    /// Answer tokens wrapped in {status, result}.
    #[arg(long)]
    wrapped_tokens: bool,
    #[command(flatten)]
    log: service_kit::config::LogArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::install_crypto_provider();
    let args = Args::parse();
    let telemetry = service_kit::telemetry::init(&args.log, "hostaway-sim")?;
    let config = SimConfig {
        account_limit: args.account_limit,
        ip_limit: args.ip_limit,
        wrapped_token_response: args.wrapped_tokens,
        ..SimConfig::default()
    };
    let sim = Sim::start(args.listen, config)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    if args.seed.as_deref() == Some("demo") {
        sim.add_account("70001", &args.demo_secret).await;
        for (id, name) in [
            (300_101, "Harbour flat"),
            (300_102, "Garden cottage"),
            (300_103, "Harbour flat (Vrbo copy)"),
            (300_199, "Garden cottage (Booking.com copy)"),
        ] {
            let mut fields = Map::new();
            fields.insert("id".into(), json!(id));
            fields.insert("name".into(), Value::from(name));
            sim.add_listing("70001", fields).await;
        }
    }
    tracing::info!(base_url = %sim.base_url(), "Hostaway simulator listening; control endpoints under /_sim");
    service_kit::shutdown::signal().await;
    telemetry.shutdown().await;
    Ok(())
}
