//! The operations API binary: configuration, telemetry, shutdown.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use hostaway_client::HostawayApiArgs;
use service_kit::config::{CredentialsKeyArgs, DatabaseArgs, LogArgs, NatsArgs, OpsArgs};
use service_kit::{health::Health, metrics::Metrics};

/// The connector's operations API (gRPC): accounts, links, configuration,
/// dead letters, sync status and triggers, with roles and an audit trail.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Where the gRPC API listens.
    #[arg(long, env = "ADMIN_API_LISTEN", default_value = "0.0.0.0:50051")]
    listen: std::net::SocketAddr,
    /// The gateway's public webhook URL, registered at Hostaway by
    /// ConnectAccount (https; plain http only for a local gateway).
    #[arg(long, env = "ADMIN_WEBHOOK_URL")]
    webhook_url: String,
    /// Credentials older than this many days are due for rotation (metric, alert).
    #[arg(long, env = "ADMIN_ROTATION_DAYS", default_value_t = 90)]
    rotation_days: i64,
    /// Serve TLS with this certificate (PEM; with ADMIN_API_TLS_KEY_FILE).
    /// Unset: h2c, for a mesh or gateway that terminates TLS in front.
    #[arg(long, env = "ADMIN_API_TLS_CERT_FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    #[arg(long, env = "ADMIN_API_TLS_KEY_FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Require client certificates signed by this CA (mTLS; PEM).
    #[arg(long, env = "ADMIN_API_TLS_CLIENT_CA_FILE", requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    key: CredentialsKeyArgs,
    #[command(flatten)]
    api: HostawayApiArgs,
    #[command(flatten)]
    ops: OpsArgs,
    #[command(flatten)]
    log: LogArgs,
}

const DEFAULT_OPS_LISTEN: &str = "0.0.0.0:9104";

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::install_crypto_provider();
    let args = Args::parse();
    let telemetry = service_kit::telemetry::init(&args.log, "admin-api")?;
    let mut settings = admin_api::AdminApiSettings::new(args.webhook_url.trim().to_owned());
    settings.rotation_age = chrono::Duration::days(args.rotation_days.clamp(1, 3650));
    settings.tls = args
        .tls_cert
        .clone()
        .zip(args.tls_key.clone())
        .map(|(certificate, key)| admin_api::server::TlsFiles {
            certificate,
            key,
            client_ca: args.tls_client_ca.clone(),
        });
    admin_api::server::check_webhook_url(&settings.webhook_url).map_err(anyhow::Error::msg)?;
    let cipher = Arc::new(args.key.cipher().context("CONNECTOR_CREDENTIALS_KEY")?);
    let pool = args.database.service_pool(4)?;
    if args.database.migrate {
        store::migrate(&pool).await?;
    }
    let nats = args.nats.connect("admin-api").await?;
    let metrics = Metrics::new();
    let health = Health::new();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("ADMIN_API_LISTEN {}", args.listen))?;
    let stop = service_kit::ops::start(
        &args.ops,
        DEFAULT_OPS_LISTEN.parse()?,
        metrics.clone(),
        health.clone(),
    )
    .await
    .context("ops server")?;
    let deps = admin_api::AdminApiDeps {
        pool,
        nats,
        cipher,
        client: args.api.config(),
        metrics,
        health,
        topology: args.nats.topology()?,
    };
    admin_api::serve(listener, settings, deps, stop).await?;
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
}
