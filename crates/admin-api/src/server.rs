//! Wiring: the service with its health and reflection services, its
//! metrics, and the background watch of credential ages.

use std::sync::Arc;
use std::time::Duration;

use hostaway_client::{ClientConfig, ClientMetrics, CredentialSource};
use service_kit::health::{Condition, Health};
use service_kit::metrics::Metrics;
use service_kit::nats::Topology;
use store::PgPool;
use store::crypto::CredentialCipher;
use sync_dispatcher::queue::JobQueue;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accounts::PendingSecrets;
use crate::metrics::ApiMetrics;
use crate::proto::admin_service_server::AdminServiceServer;
use crate::service::{AdminApi, Context};

#[derive(Debug, Clone)]
pub struct AdminApiSettings {
    /// The gateway's public URL, where Hostaway is told to send webhooks.
    pub webhook_url: String,
    /// The specification rotates credentials every 90 days.
    pub rotation_age: chrono::Duration,
    /// How long a rotation's previous webhook password stays accepted when
    /// the caller does not say.
    pub default_overlap: chrono::Duration,
    /// How often credential ages are measured for the metrics.
    pub age_check_every: Duration,
    /// TLS, and client certificates (mTLS) when it names a CA. Without it the
    /// API speaks h2c, for a mesh or a gateway that terminates TLS in front.
    pub tls: Option<TlsFiles>,
}

/// PEM files of the server's TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: std::path::PathBuf,
    pub key: std::path::PathBuf,
    /// Clients must present a certificate this CA signed (mTLS).
    pub client_ca: Option<std::path::PathBuf>,
}

impl TlsFiles {
    fn read(path: &std::path::Path, what: &str) -> anyhow::Result<Vec<u8>> {
        std::fs::read(path).map_err(|e| anyhow::anyhow!("{what} {}: {e}", path.display()))
    }

    fn config(&self) -> anyhow::Result<tonic::transport::ServerTlsConfig> {
        let identity = tonic::transport::Identity::from_pem(
            Self::read(&self.certificate, "ADMIN_API_TLS_CERT_FILE")?,
            Self::read(&self.key, "ADMIN_API_TLS_KEY_FILE")?,
        );
        let mut config = tonic::transport::ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(tonic::transport::Certificate::from_pem(Self::read(
                ca,
                "ADMIN_API_TLS_CLIENT_CA_FILE",
            )?));
        }
        Ok(config)
    }
}

impl AdminApiSettings {
    pub fn new(webhook_url: String) -> Self {
        Self {
            webhook_url,
            rotation_age: chrono::Duration::days(90),
            default_overlap: chrono::Duration::hours(24),
            age_check_every: Duration::from_secs(60),
            tls: None,
        }
    }
}

/// Validates the webhook URL: Hostaway must reach it, so https (plain http
/// only for a gateway on this machine).
pub fn check_webhook_url(url: &str) -> Result<(), String> {
    let local = ["http://127.0.0.1", "http://localhost", "http://[::1]"];
    if url.starts_with("https://") || local.iter().any(|l| url.starts_with(l)) {
        Ok(())
    } else {
        Err(format!(
            "ADMIN_WEBHOOK_URL {url:?} must be https (plain http only for a local gateway)"
        ))
    }
}

#[derive(Debug)]
pub struct AdminApiDeps {
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub cipher: Arc<CredentialCipher>,
    pub client: ClientConfig,
    pub metrics: Metrics,
    pub health: Health,
    pub topology: Topology,
}

/// Serves the API on `listener` until `stop`: the admin service, gRPC
/// health (`grpc.health.v1`) and server reflection.
pub async fn serve(
    listener: TcpListener,
    settings: AdminApiSettings,
    deps: AdminApiDeps,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    check_webhook_url(&settings.webhook_url).map_err(anyhow::Error::msg)?;
    let tls = settings.tls.as_ref().map(TlsFiles::config).transpose()?;
    let metrics = ApiMetrics::register(&deps.metrics)?;
    // What GetSyncStatus shows as an unconfigured account's budget: the one
    // the client is given (HOSTAWAY_RATE_LIMIT_RPM), not a constant.
    let account_budget = deps.client.account_limit.limit;
    let stored =
        sync_dispatcher::credentials::from_database(deps.pool.clone(), Arc::clone(&deps.cipher));
    let pending = PendingSecrets::over(stored);
    let hostaway = sync_dispatcher::shared_api::shared_client(
        deps.client,
        Arc::new(pending.clone()) as Arc<dyn CredentialSource>,
        ClientMetrics::register(deps.metrics.registry())?,
        deps.pool.clone(),
        Arc::clone(&deps.cipher),
    )?;
    let nats = deps.nats.clone();
    deps.health
        .add("nats", move || service_kit::nats::is_connected(&nats));
    tokio::spawn(wait_for_schema(
        deps.pool.clone(),
        deps.health.condition("schema", "not checked yet"),
        stop.clone(),
    ));
    let queue = JobQueue::new(
        deps.nats.clone(),
        deps.topology.clone(),
        Duration::from_secs(5),
    );
    let age_check_every = settings.age_check_every;
    let rotation_age = settings.rotation_age;
    let ctx = Context {
        pool: deps.pool.clone(),
        cipher: deps.cipher,
        hostaway,
        pending,
        js: async_nats::jetstream::new(deps.nats),
        queue,
        topology: deps.topology,
        settings,
        account_budget,
        metrics: metrics.clone(),
    };
    tokio::spawn(crate::credential_age::watch(
        deps.pool,
        metrics,
        rotation_age,
        age_check_every,
        stop.clone(),
    ));

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AdminServiceServer<AdminApi>>().await;
    // v1, and v1alpha for older grpcurl and IDE clients.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, tls = tls.is_some(), "operations API serving (gRPC, with health and reflection)");
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls)?;
    }
    server
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(AdminServiceServer::new(AdminApi::new(ctx)))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            stop.cancelled_owned(),
        )
        .await?;
    Ok(())
}

/// Ready once the database answers with the schema this binary needs; the
/// condition names what is missing until then.
async fn wait_for_schema(pool: PgPool, condition: Condition, stop: CancellationToken) {
    loop {
        match store::verify_schema(&pool).await {
            Ok(()) => {
                condition.ok();
                return;
            }
            Err(error) => condition.fail(error.to_string()),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}
