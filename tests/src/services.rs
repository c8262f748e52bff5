//! The connector's services, started in-process against a [`TestEnv`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use booking_ingestor::{Ingestor, IngestorDeps, IngestorSettings};
use reqwest::StatusCode;
use serde_json::Value;
use service_kit::health::Health;
use service_kit::metrics::Metrics;
use tokio_util::sync::CancellationToken;
use webhook_gateway::{Gateway, GatewayDeps, GatewaySettings};

use crate::{DEADLINE, TestEnv, eventually};

#[derive(Debug)]
pub struct RunningGateway {
    pub addr: SocketAddr,
    pub metrics: Metrics,
    pub health: Health,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    http: reqwest::Client,
}

impl RunningGateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs `body` with extra headers; returns the status and the JSON answer.
    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.expect("gateway answers");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POSTs a JSON webhook with HTTP Basic credentials to `/webhooks/hostaway`.
    pub async fn post_basic(
        &self,
        login: &str,
        password: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        let auth = mapping::signature::basic_authorization(login, password);
        self.post(
            "/webhooks/hostaway",
            &[("authorization", auth)],
            body.to_string(),
        )
        .await
    }

    /// POSTs raw bytes signed with the specification's HMAC at `timestamp`.
    pub async fn post_hmac(
        &self,
        path: &str,
        secret: &str,
        timestamp: i64,
        body: &[u8],
    ) -> (StatusCode, Value) {
        let headers = [
            (
                mapping::signature::SIGNATURE_HEADER,
                mapping::signature::sign(secret.as_bytes(), timestamp, body),
            ),
            (mapping::signature::TIMESTAMP_HEADER, timestamp.to_string()),
        ];
        self.post(path, &headers, body.to_vec()).await
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }

    /// Like SIGTERM; whether the gateway was done within `deadline`.
    pub async fn stop_within(self, deadline: Duration) -> bool {
        self.stop.cancel();
        tokio::time::timeout(deadline, self.task).await.is_ok()
    }
}

impl TestEnv {
    pub async fn start_gateway(&self) -> RunningGateway {
        self.start_gateway_with(|_| {}).await
    }

    /// Starts the gateway (through the proxies) and waits until it is ready.
    pub async fn start_gateway_with(
        &self,
        configure: impl FnOnce(&mut GatewaySettings),
    ) -> RunningGateway {
        let gateway = self.launch_gateway(configure).await;
        let ready = gateway.health.clone();
        eventually("the gateway to be ready", DEADLINE, || {
            let ready = ready.clone();
            async move { ready.is_ready().then_some(()) }
        })
        .await;
        gateway
    }

    /// Starts the gateway without waiting for it to be ready.
    pub async fn launch_gateway(
        &self,
        configure: impl FnOnce(&mut GatewaySettings),
    ) -> RunningGateway {
        let nats = service_kit::nats::connect(
            &self.service_nats_url_as("gateway"),
            None,
            "webhook-gateway",
        )
        .await
        .expect("gateway NATS client");
        let pool = store::connect_lazy(
            &self.service_database_url(),
            &store::PoolSettings {
                max_connections: 2,
                acquire_timeout: Duration::from_secs(2),
                ..Default::default()
            },
        )
        .expect("gateway pool");
        let mut settings =
            GatewaySettings::new("127.0.0.1:0".parse().expect("addr"), self.topology.clone());
        settings.streams = self.streams.clone();
        settings.publish_timeout = Duration::from_secs(2);
        settings.credentials_refresh = Duration::from_secs(2);
        configure(&mut settings);
        let metrics = Metrics::new();
        let health = Health::new();
        let gateway = Gateway::bind(
            settings,
            GatewayDeps {
                nats,
                pool,
                cipher: Arc::clone(&self.cipher),
                metrics: metrics.clone(),
                health: health.clone(),
            },
        )
        .await
        .expect("gateway binds");
        let addr = gateway.local_addr();
        let stop = CancellationToken::new();
        let run_stop = stop.clone();
        let task = tokio::spawn(async move {
            let _ = gateway.run(run_stop).await;
        });
        RunningGateway {
            addr,
            metrics,
            health,
            stop,
            task,
            http: reqwest::Client::builder().build().expect("http client"),
        }
    }

    pub fn ingestor_settings(&self) -> IngestorSettings {
        let mut settings = IngestorSettings::new(self.topology.clone());
        settings.streams = self.streams.clone();
        settings.concurrency = 8;
        settings.consumers.ingest_ack_wait = Duration::from_secs(3);
        settings.retry.max_attempts = 3;
        settings.retry.base = Duration::from_millis(50);
        settings.retry.cap = Duration::from_millis(200);
        settings.outbox_sweep_interval = Duration::from_millis(200);
        settings.outbox_min_age = Duration::from_secs(1);
        settings.migrate = false;
        settings.shutdown_timeout = Duration::from_secs(5);
        settings
    }

    pub fn start_ingestor(&self) -> IsolatedIngestor {
        self.start_ingestor_with(|_| {})
    }

    /// Starts the ingestor on a runtime of its own, so that [`IsolatedIngestor::kill`]
    /// can stop it the way a crash would: mid-transaction, without acks.
    pub fn start_ingestor_with(
        &self,
        configure: impl FnOnce(&mut IngestorSettings),
    ) -> IsolatedIngestor {
        self.start_ingestor_tuned(|settings, _| configure(settings))
    }

    /// As [`Self::start_ingestor_with`], with the ingestor's pool settings too.
    pub fn start_ingestor_tuned(
        &self,
        configure: impl FnOnce(&mut IngestorSettings, &mut store::PoolSettings),
    ) -> IsolatedIngestor {
        let mut settings = self.ingestor_settings();
        let mut pool_settings = store::PoolSettings {
            max_connections: u32::try_from(settings.concurrency).unwrap_or(64) + 2,
            acquire_timeout: Duration::from_secs(2),
            lock_timeout: Some(Duration::from_secs(15)),
            statement_timeout: Some(Duration::from_secs(60)),
        };
        configure(&mut settings, &mut pool_settings);
        // What `hostaway-admin streams provision` does before the pods start.
        self.provision_consumer(
            &self.topology.webhooks_stream(),
            service_kit::nats::ingestor_consumer_config(&self.topology, &settings.consumers),
        );
        let metrics = Metrics::new();
        let health = Health::new();
        let nats_url = self.service_nats_url_as("ingestor");
        let database_url = self.service_database_url();
        let (run_metrics, run_health) = (metrics.clone(), health.clone());
        Isolated::spawn(metrics, health, move |stop| async move {
            let nats = service_kit::nats::connect(&nats_url, None, "booking-ingestor")
                .await
                .expect("ingestor NATS client");
            let pool = store::connect_lazy(&database_url, &pool_settings).expect("ingestor pool");
            let ingestor = Ingestor::new(
                settings,
                IngestorDeps {
                    nats,
                    pool,
                    metrics: run_metrics,
                    health: run_health,
                },
            )
            .expect("ingestor");
            ingestor.run(stop).await;
        })
    }
}

impl TestEnv {
    /// Provisions one durable consumer as the admin tool would (blocking:
    /// called from synchronous set-up).
    pub fn provision_consumer(
        &self,
        stream: &str,
        config: async_nats::jetstream::consumer::pull::Config,
    ) {
        let (js, stream) = (self.js.clone(), stream.to_owned());
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(service_kit::nats::provision_consumer(&js, &stream, config))
        })
        .join()
        .expect("provisioning thread")
        .expect("consumer provisioned");
    }

    /// The sync dispatcher's consumers (changes and every job line).
    pub fn provision_dispatcher_consumers(&self, settings: &service_kit::nats::ConsumerSettings) {
        for (stream, config) in service_kit::nats::consumer_configs(&self.topology, settings)
            .into_iter()
            .filter(|(stream, _)| *stream != self.topology.webhooks_stream())
        {
            self.provision_consumer(&stream, config);
        }
    }
}

/// A service on a tokio runtime of its own, so that [`Isolated::kill`] can
/// stop it the way a crash would: mid-transaction, mid-call, without acks.
#[derive(Debug)]
pub struct Isolated {
    runtime: Option<tokio::runtime::Runtime>,
    stop: CancellationToken,
    done: Option<tokio::sync::oneshot::Receiver<()>>,
    pub metrics: Metrics,
    pub health: Health,
}

pub type IsolatedIngestor = Isolated;

impl Isolated {
    /// Runs `run(stop)` on a fresh two-thread runtime.
    pub fn spawn<F, Fut>(metrics: Metrics, health: Health, run: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("service runtime");
        let stop = CancellationToken::new();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let run_stop = stop.clone();
        runtime.spawn(async move {
            run(run_stop).await;
            let _ = done_tx.send(());
        });
        Self {
            runtime: Some(runtime),
            stop,
            done: Some(done_rx),
            metrics,
            health,
        }
    }

    /// Like `kill -9`: every task is dropped where it stands.
    pub fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// Like SIGTERM: stop taking work, drain, exit.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(done) = self.done.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), done).await;
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    pub fn metric(&self, name: &str) -> f64 {
        metric_value(&self.metrics, name)
    }

    pub async fn ready(&self) {
        eventually("the service to be ready", DEADLINE, || async {
            self.health.is_ready().then_some(())
        })
        .await;
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The sum of every series of a metric family (0 when absent).
pub fn metric_value(metrics: &Metrics, name: &str) -> f64 {
    metric_sum(metrics.registry(), name, None)
}

/// The sum of what a histogram observed (its `_sum`), over its series.
pub fn histogram_sum(metrics: &Metrics, name: &str) -> f64 {
    metrics
        .registry()
        .gather()
        .iter()
        .filter(|family| family.name() == name)
        .flat_map(|family| family.get_metric().iter())
        .map(|m| m.get_histogram().get_sample_sum())
        .sum()
}

/// The sum of the series of a metric family carrying `label`.
pub fn metric_labelled(metrics: &Metrics, name: &str, label: (&str, &str)) -> f64 {
    metric_sum(metrics.registry(), name, Some(label))
}

/// The sum of a metric family's series (those with `label`, if given); a
/// histogram counts its samples. 0 when absent.
pub fn metric_sum(registry: &prometheus::Registry, name: &str, label: Option<(&str, &str)>) -> f64 {
    use prometheus::proto::MetricType;
    registry
        .gather()
        .iter()
        .filter(|family| family.name() == name)
        .flat_map(|family| {
            let kind = family.get_field_type();
            family.get_metric().iter().filter_map(move |m| {
                let matches = label.is_none_or(|(key, value)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == key && l.value() == value)
                });
                matches.then(|| match kind {
                    MetricType::COUNTER => m.get_counter().get_value(),
                    MetricType::GAUGE => m.get_gauge().get_value(),
                    _ => m.get_histogram().get_sample_count() as f64,
                })
            })
        })
        .sum()
}
