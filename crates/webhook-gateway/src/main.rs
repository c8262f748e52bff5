//! The webhook gateway binary: configuration, telemetry, shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use domain::AccountId;
use service_kit::config::{
    BootstrapAccountArgs, CredentialsKeyArgs, DatabaseArgs, LogArgs, NatsArgs, OpsArgs,
};
use service_kit::{health::Health, metrics::Metrics};
use webhook_gateway::credentials::AccountAuth;
use webhook_gateway::listener::ConnectionLimits;
use webhook_gateway::{Gateway, GatewayDeps, GatewaySettings};

// Every request allocates its body, the parsed record and the message: the
// profile under load spent a sixth of the gateway's CPU in glibc's
// malloc/free (docs/benchmarks.md, ADR 0013).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Authenticates Hostaway webhooks and makes them durable on JetStream.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Where webhooks are received.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Requests with a larger body are answered 413.
    #[arg(long, env = "WEBHOOK_MAX_BODY_BYTES", default_value_t = 512 * 1024)]
    max_body_bytes: usize,
    /// Limit of a body read before its sender is known, where the URL names no
    /// account (HMAC, or a Basic login the gateway does not know).
    #[arg(long, env = "WEBHOOK_PREAUTH_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    preauth_max_body_bytes: usize,
    /// How long a body may take to arrive; a slower one is answered 503.
    #[arg(long, env = "GATEWAY_BODY_TIMEOUT_MS", default_value_t = 10_000)]
    body_timeout_ms: u64,
    /// From a request's first byte to its last header byte; the connection is
    /// closed after.
    #[arg(long, env = "GATEWAY_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    header_read_timeout_ms: u64,
    /// How long a connection may sit idle between requests.
    #[arg(long, env = "GATEWAY_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    idle_timeout_ms: u64,
    /// Open connections at most; a new one past it closes the longest-idle one.
    #[arg(long, env = "GATEWAY_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: usize,
    /// JetStream ack wait before answering 503 (the specification's webhook timeout).
    #[arg(long, env = "HOSTAWAY_WEBHOOK_TIMEOUT_MS", default_value_t = 5000)]
    publish_timeout_ms: u64,
    /// Requests of authenticated senders handled at once; beyond it the
    /// gateway sheds load with 503.
    #[arg(long, env = "GATEWAY_MAX_CONCURRENT_REQUESTS", default_value_t = 1024)]
    max_concurrent_requests: usize,
    /// Requests whose body must be read before the sender is known, at once;
    /// beyond it 503.
    #[arg(long, env = "GATEWAY_MAX_PREAUTH_REQUESTS", default_value_t = 256)]
    max_preauth_requests: usize,
    /// Safety-net period of the credential reload (changes are pushed at once).
    #[arg(long, env = "CREDENTIALS_REFRESH_SECS", default_value_t = 30)]
    credentials_refresh_secs: u64,
    /// Continue the trace named by a request's `traceparent` header: only
    /// behind a proxy that sets it (any client can send one).
    #[arg(long, env = "GATEWAY_TRUST_TRACEPARENT", default_value_t = false, action = clap::ArgAction::Set)]
    trust_traceparent: bool,
    #[command(flatten)]
    ops: OpsArgs,
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    key: CredentialsKeyArgs,
    #[command(flatten)]
    bootstrap: BootstrapAccountArgs,
    #[command(flatten)]
    log: LogArgs,
}

const DEFAULT_OPS_LISTEN: &str = "0.0.0.0:9101";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::install_crypto_provider();
    let args = Args::parse();
    let telemetry = service_kit::telemetry::init(&args.log, "webhook-gateway")?;

    let topology = args.nats.topology()?;
    let nats = args.nats.connect("webhook-gateway").await?;
    let pool = args.database.service_pool(2)?;
    let cipher = Arc::new(args.key.cipher().context("CONNECTOR_CREDENTIALS_KEY")?);
    let metrics = Metrics::new();
    let health = Health::new();

    let mut settings = GatewaySettings::new(args.listen, topology);
    settings.streams = args.nats.stream_settings();
    settings.max_body_bytes = args.max_body_bytes;
    settings.preauth_max_body_bytes = args.preauth_max_body_bytes;
    settings.body_timeout = Duration::from_millis(args.body_timeout_ms);
    settings.max_preauth_requests = args.max_preauth_requests;
    settings.connections = ConnectionLimits {
        max_connections: args.max_connections,
        header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
        idle_timeout: Duration::from_millis(args.idle_timeout_ms),
        ..ConnectionLimits::default()
    };
    settings.publish_timeout = Duration::from_millis(args.publish_timeout_ms);
    settings.credentials_refresh = Duration::from_secs(args.credentials_refresh_secs);
    settings.shutdown_timeout = args.ops.shutdown_timeout();
    settings.bootstrap = bootstrap_account(&args.bootstrap)?;
    settings.max_concurrent_requests = args.max_concurrent_requests;
    settings.trust_traceparent = args.trust_traceparent;

    let gateway = Gateway::bind(
        settings,
        GatewayDeps {
            nats,
            pool,
            cipher,
            metrics: metrics.clone(),
            health: health.clone(),
        },
    )
    .await?;
    let stop = service_kit::ops::start(&args.ops, DEFAULT_OPS_LISTEN.parse()?, metrics, health)
        .await
        .context("ops server")?;
    gateway.run(stop).await?;
    telemetry.shutdown().await;
    Ok(())
}

fn bootstrap_account(args: &BootstrapAccountArgs) -> anyhow::Result<Option<AccountAuth>> {
    if !args.is_set() {
        return Ok(None);
    }
    let account = AccountId::parse(args.account_id.as_deref().unwrap_or_default().trim())
        .context("HOSTAWAY_ACCOUNT_ID")?;
    let auth = AccountAuth {
        account,
        login: args.webhook_login.clone(),
        passwords: args.webhook_password.iter().cloned().collect(),
        hmac_secrets: args.webhook_secret.iter().cloned().collect(),
        enabled: true,
    };
    if auth.passwords.is_empty() && auth.hmac_secrets.is_empty() {
        tracing::warn!(account_id = %auth.account, "HOSTAWAY_ACCOUNT_ID is set without HOSTAWAY_WEBHOOK_PASSWORD or HOSTAWAY_WEBHOOK_SECRET: its webhooks cannot authenticate");
    }
    Ok(Some(auth))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Args::command().debug_assert();
    }
}
