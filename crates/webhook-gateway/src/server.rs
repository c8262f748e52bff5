//! Wiring: routes, background credential reload, stream verification,
//! readiness, graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use service_kit::health::{Condition, Health};
use service_kit::metrics::Metrics;
use service_kit::nats::{StreamSettings, Topology};
use store::PgPool;
use store::crypto::CredentialCipher;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::catch_panic::CatchPanicLayer;

use crate::credentials::{AccountAuth, CredentialCache, refresh_loop};
use crate::handler::{AppState, BodyLimits, webhook_with_account, webhook_without_account};
use crate::listener::ConnectionLimits;
use crate::log_limit::LogLimiter;
use crate::metrics::GatewayMetrics;
use service_kit::publish::Publisher;

#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub listen: SocketAddr,
    pub topology: Topology,
    pub streams: StreamSettings,
    /// Larger bodies are answered 413. Real reservation payloads are ~6 KiB.
    pub max_body_bytes: usize,
    /// The limit of a body read before its sender is known, where the URL
    /// does not name the account (HMAC, or a login the gateway does not know).
    pub preauth_max_body_bytes: usize,
    /// How long a request may take to send its body (503 after).
    pub body_timeout: Duration,
    /// How long to wait for JetStream's ack before answering 503.
    pub publish_timeout: Duration,
    /// Safety-net reload period (changes are also pushed by NOTIFY).
    pub credentials_refresh: Duration,
    pub bootstrap: Option<AccountAuth>,
    /// Requests of authenticated senders handled at once; beyond it the
    /// gateway answers 503 at once (each may hold up to `max_body_bytes`).
    pub max_concurrent_requests: usize,
    /// Requests whose body must be read before the sender is known, at once
    /// (each may hold up to `preauth_max_body_bytes`, or `max_body_bytes`
    /// when the URL names the account).
    pub max_preauth_requests: usize,
    /// Open connections, header and idle timeouts.
    pub connections: ConnectionLimits,
    /// Refused requests logged per second at most (the rest are counted).
    pub refusal_logs_per_second: u32,
    /// How often the streams are checked against `streams` (the gateway
    /// never changes them: it reports a difference and stays unready).
    pub topology_check_interval: Duration,
    pub shutdown_timeout: Duration,
    /// Continue the trace a request's `traceparent` names. Off by default:
    /// anyone can send one, and a forged one would choose trace ids and
    /// force sampling; on behind a proxy that sets it (and strips clients').
    pub trust_traceparent: bool,
}

impl GatewaySettings {
    pub fn new(listen: SocketAddr, topology: Topology) -> Self {
        Self {
            listen,
            topology,
            streams: StreamSettings::default(),
            max_body_bytes: 512 * 1024,
            preauth_max_body_bytes: 64 * 1024,
            body_timeout: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(5),
            credentials_refresh: Duration::from_secs(30),
            bootstrap: None,
            max_concurrent_requests: 1024,
            max_preauth_requests: 256,
            connections: ConnectionLimits::default(),
            refusal_logs_per_second: 10,
            topology_check_interval: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(25),
            trust_traceparent: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GatewayDeps {
    pub nats: async_nats::Client,
    pub pool: PgPool,
    pub cipher: Arc<CredentialCipher>,
    pub metrics: Metrics,
    pub health: Health,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("metrics: {0}")]
    Metrics(String),
}

#[derive(Debug)]
pub struct Gateway {
    listener: TcpListener,
    router: Router,
    settings: GatewaySettings,
    deps: GatewayDeps,
    cache: Arc<CredentialCache>,
    metrics: GatewayMetrics,
    streams_verified: Condition,
}

impl Gateway {
    pub async fn bind(settings: GatewaySettings, deps: GatewayDeps) -> Result<Self, StartError> {
        let metrics = GatewayMetrics::register(&deps.metrics)
            .map_err(|e| StartError::Metrics(e.to_string()))?;
        let cache = Arc::new(CredentialCache::new(settings.bootstrap.clone()));
        let state = AppState {
            cache: Arc::clone(&cache),
            publisher: Publisher::new(deps.nats.clone(), settings.publish_timeout),
            topology: settings.topology.clone(),
            metrics: metrics.clone(),
            body: BodyLimits {
                max_bytes: settings.max_body_bytes,
                preauth_max_bytes: settings.preauth_max_body_bytes,
                timeout: settings.body_timeout,
            },
            authenticated: Arc::new(Semaphore::new(settings.max_concurrent_requests.max(1))),
            preauth: Arc::new(Semaphore::new(settings.max_preauth_requests.max(1))),
            refusal_log: Arc::new(LogLimiter::new(settings.refusal_logs_per_second)),
            trust_traceparent: settings.trust_traceparent,
        };
        let router = Router::new()
            .route("/webhooks/hostaway", post(webhook_without_account))
            .route(
                "/webhooks/hostaway/{account_id}",
                post(webhook_with_account),
            )
            .with_state(state)
            // A bug answers 500 (Hostaway retries) instead of a dropped
            // connection.
            .layer(CatchPanicLayer::custom(crate::handler::panicked));
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: settings.listen,
                    source,
                })?;
        let nats = deps.nats.clone();
        deps.health
            .add("nats", move || service_kit::nats::is_connected(&nats));
        let streams_verified = deps.health.condition("streams", "not verified yet");
        let ready_cache = Arc::clone(&cache);
        deps.health
            .add("credentials", move || ready_cache.is_usable());
        Ok(Self {
            listener,
            router,
            settings,
            deps,
            cache,
            metrics,
            streams_verified,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.settings.listen)
    }

    /// Serves until `stop`, then lets in-flight requests finish (each is bounded
    /// by the publish timeout) within the shutdown deadline.
    pub async fn run(self, stop: CancellationToken) -> Result<(), StartError> {
        let background = TaskTracker::new();
        background.spawn(service_kit::nats::watch_streams(
            async_nats::jetstream::new(self.deps.nats.clone()),
            self.settings.topology.clone(),
            self.settings.streams.clone(),
            self.streams_verified.clone(),
            self.settings.topology_check_interval,
            stop.clone(),
        ));
        background.spawn(refresh_loop(
            Arc::clone(&self.cache),
            self.deps.pool.clone(),
            Arc::clone(&self.deps.cipher),
            self.settings.credentials_refresh,
            self.metrics.clone(),
            stop.clone(),
        ));
        background.close();

        tracing::info!(addr = %self.local_addr(), namespace = self.settings.topology.namespace(), "webhook gateway listening");
        let server = tokio::spawn(crate::listener::serve(
            self.listener,
            self.router,
            self.settings.connections.clone(),
            self.metrics.clone(),
            stop.clone(),
        ));
        stop.cancelled().await;
        let deadline = self.settings.shutdown_timeout;
        let drained = service_kit::shutdown::drain_within(deadline, async {
            if let Err(error) = server.await {
                tracing::error!(%error, "gateway server task failed");
            }
            background.wait().await;
        })
        .await;
        service_kit::shutdown::flush_nats(&self.deps.nats).await;
        tracing::info!(drained, "webhook gateway stopped");
        Ok(())
    }
}
