//! The operations API, started in-process against a [`TestEnv`], and clients
//! of it holding a token of each role.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use admin_api::auth::Role;
use admin_api::{AdminApiDeps, AdminApiSettings};
use hostaway_client::{ClientConfig, RateLimit};
use secrecy::SecretString;
use service_kit::metrics::Metrics;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::TestEnv;

pub use admin_api::client::AdminClient;

#[derive(Debug)]
pub struct RunningAdminApi {
    pub addr: SocketAddr,
    /// Serving TLS.
    pub tls: bool,
    pub metrics: Metrics,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningAdminApi {
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .expect("endpoint")
            .connect()
            .await
            .expect("connected to the admin API")
    }

    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// A client sending `token` (or none).
    pub async fn client(&self, token: Option<&SecretString>) -> AdminClient {
        admin_api::client::connect(&self.url(), token)
            .await
            .expect("connected to the admin API")
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

impl TestEnv {
    /// Starts the operations API against Hostaway at `hostaway_url` (the
    /// simulator), telling Hostaway to send webhooks to `webhook_url`.
    pub async fn start_admin_api(&self, hostaway_url: &str, webhook_url: &str) -> RunningAdminApi {
        self.start_admin_api_with(hostaway_url, webhook_url, |_| {})
            .await
    }

    /// As [`Self::start_admin_api`], with settings changed by `configure`.
    pub async fn start_admin_api_with(
        &self,
        hostaway_url: &str,
        webhook_url: &str,
        configure: impl FnOnce(&mut AdminApiSettings),
    ) -> RunningAdminApi {
        let nats =
            service_kit::nats::connect(&self.service_nats_url_as("admin-api"), None, "admin-api")
                .await
                .expect("admin API NATS client");
        let pool = store::connect_lazy(
            &self.service_database_url(),
            &store::PoolSettings {
                max_connections: 4,
                acquire_timeout: Duration::from_secs(2),
                ..Default::default()
            },
        )
        .expect("admin API pool");
        let mut client = ClientConfig {
            base_url: hostaway_url.to_owned(),
            timeout: Some(Duration::from_secs(5)),
            account_limit: RateLimit::HOSTAWAY_ACCOUNT,
            ip_limit: RateLimit::HOSTAWAY_IP,
            ..ClientConfig::default()
        };
        client.retry.max_attempts = 2;
        client.retry.base = Duration::from_millis(50);
        client.retry.cap = Duration::from_millis(200);
        let metrics = Metrics::new();
        let deps = AdminApiDeps {
            pool,
            nats,
            cipher: Arc::clone(&self.cipher),
            client,
            metrics: metrics.clone(),
            health: service_kit::health::Health::new(),
            topology: self.topology.clone(),
        };
        let mut settings = AdminApiSettings::new(webhook_url.to_owned());
        settings.age_check_every = Duration::from_millis(200);
        configure(&mut settings);
        let tls = settings.tls.is_some();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("admin API binds");
        let addr = listener.local_addr().expect("address");
        let stop = CancellationToken::new();
        let run_stop = stop.clone();
        let task = tokio::spawn(async move {
            if let Err(error) = admin_api::serve(listener, settings, deps, run_stop).await {
                panic!("admin API failed: {error:#}");
            }
        });
        RunningAdminApi {
            addr,
            tls,
            metrics,
            stop,
            task,
        }
    }

    /// Issues a token of `role` (what `hostaway-admin tokens issue` does).
    pub async fn admin_token(&self, role: Role) -> SecretString {
        admin_api::auth::issue_token(&self.pool, &format!("test-{role}"), role)
            .await
            .expect("token issued")
            .1
    }
}
