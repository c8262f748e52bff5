//! Configuration fragments shared by the services. Every flag has an
//! environment variable; the README's configuration table lists them all.
//! Values that may carry a secret (URLs with passwords, keys) are hidden from
//! `--help`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;

use crate::nats::{StreamSettings, Topology, TopologyError};

#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated. May carry user:password.
    #[arg(
        id = "nats-url",
        long = "nats-url",
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub url: SecretString,
    /// A NATS credentials file (JWT + nkey), for secured deployments.
    #[arg(
        id = "nats-creds-file",
        long = "nats-creds-file",
        env = "NATS_CREDS_FILE"
    )]
    pub creds_file: Option<std::path::PathBuf>,
    /// Prefix of every subject, stream and consumer the connector owns
    /// (a-z, 0-9, '_'). One deployment per namespace; tests use a fresh one each.
    #[arg(
        id = "nats-namespace",
        long = "nats-namespace",
        env = "NATS_NAMESPACE",
        default_value = "hostaway"
    )]
    pub namespace: String,
    /// JetStream replicas of the connector's streams (3 in production clusters).
    #[arg(
        id = "nats-stream-replicas",
        long = "nats-stream-replicas",
        env = "NATS_STREAM_REPLICAS",
        default_value_t = 1
    )]
    pub stream_replicas: usize,
    /// How long the event and dead-letter copies are kept (unprocessed webhooks never expire).
    #[arg(
        id = "nats-stream-max-age-hours",
        long = "nats-stream-max-age-hours",
        env = "NATS_STREAM_MAX_AGE_HOURS",
        default_value_t = 168
    )]
    pub stream_max_age_hours: u64,
    /// Bytes of unprocessed webhooks the webhooks stream holds before the
    /// gateway answers 503 (-1: bounded only by JetStream's storage).
    #[arg(
        id = "nats-webhooks-max-bytes",
        long = "nats-webhooks-max-bytes",
        env = "NATS_WEBHOOKS_MAX_BYTES",
        default_value_t = -1,
        allow_negative_numbers = true
    )]
    pub webhooks_max_bytes: i64,
    /// Bytes of unapplied TVL changes the changes stream holds before
    /// publishers are refused (-1: bounded only by JetStream's storage).
    #[arg(
        id = "nats-changes-max-bytes",
        long = "nats-changes-max-bytes",
        env = "NATS_CHANGES_MAX_BYTES",
        default_value_t = -1,
        allow_negative_numbers = true
    )]
    pub changes_max_bytes: i64,
    /// JetStream's deduplication window for `Nats-Msg-Id`.
    #[arg(
        id = "nats-duplicate-window-secs",
        long = "nats-duplicate-window-secs",
        env = "NATS_DUPLICATE_WINDOW_SECS",
        default_value_t = 120
    )]
    pub duplicate_window_secs: u64,
    /// The ingestor's consumer: redelivery of a webhook whose ingestor died.
    /// Provisioned by `hostaway-admin streams provision`, verified by the ingestor.
    #[arg(
        id = "ingest-ack-wait-secs",
        long = "ingest-ack-wait-secs",
        env = "INGEST_ACK_WAIT_SECS",
        default_value_t = 30
    )]
    pub ingest_ack_wait_secs: u64,
    /// The dispatcher's change consumer: redelivery of a change whose
    /// dispatcher died.
    #[arg(
        id = "sync-change-ack-wait-secs",
        long = "sync-change-ack-wait-secs",
        env = "SYNC_CHANGE_ACK_WAIT_SECS",
        default_value_t = 30
    )]
    pub sync_change_ack_wait_secs: u64,
    /// The dispatcher's job consumers: redelivery of a job whose dispatcher
    /// died (running jobs extend it).
    #[arg(
        id = "sync-job-ack-wait-secs",
        long = "sync-job-ack-wait-secs",
        env = "SYNC_JOB_ACK_WAIT_SECS",
        default_value_t = 60
    )]
    pub sync_job_ack_wait_secs: u64,
}

impl NatsArgs {
    pub fn consumer_settings(&self) -> crate::nats::ConsumerSettings {
        crate::nats::ConsumerSettings {
            ingest_ack_wait: Duration::from_secs(self.ingest_ack_wait_secs.max(1)),
            ingest_max_ack_pending: 1024,
            change_ack_wait: Duration::from_secs(self.sync_change_ack_wait_secs.max(1)),
            job_ack_wait: Duration::from_secs(self.sync_job_ack_wait_secs.max(5)),
        }
    }

    /// Connects as `client_name` (retrying in the background if NATS is down).
    pub async fn connect(&self, client_name: &str) -> anyhow::Result<async_nats::Client> {
        crate::nats::connect(&self.url, self.creds_file.as_deref(), client_name).await
    }

    pub fn topology(&self) -> Result<Topology, TopologyError> {
        Topology::new(&self.namespace)
    }

    pub fn stream_settings(&self) -> StreamSettings {
        StreamSettings {
            replicas: self.stream_replicas,
            max_age: Duration::from_secs(self.stream_max_age_hours * 3600),
            webhooks_max_bytes: self.webhooks_max_bytes,
            changes_max_bytes: self.changes_max_bytes,
            duplicate_window: Duration::from_secs(self.duplicate_window_secs),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL.
    #[arg(
        id = "database-url",
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/hostaway_connector",
        hide_env_values = true
    )]
    pub url: SecretString,
    /// Connections in this process's pool.
    #[arg(
        id = "database-max-connections",
        long = "database-max-connections",
        env = "DATABASE_MAX_CONNECTIONS",
        default_value_t = 8
    )]
    pub max_connections: u32,
    /// Apply pending migrations at start. Off by default: `hostaway-admin
    /// migrate` (a Kubernetes Job) owns the schema; a service whose schema is
    /// behind its binary reports not ready, naming the versions.
    #[arg(
        id = "database-migrate",
        long = "database-migrate",
        env = "DATABASE_MIGRATE",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub migrate: bool,
}

impl DatabaseArgs {
    /// A pool for commands: no statement limits (migrations may take long).
    pub fn pool(&self) -> Result<store::PgPool, store::StoreError> {
        store::connect_lazy(
            &self.url,
            &store::PoolSettings {
                max_connections: self.max_connections,
                ..store::PoolSettings::default()
            },
        )
    }

    /// A pool for a service: at least `min_connections` (sized to the service's
    /// concurrency, so work never waits on the pool as if the database were
    /// down), with bounded lock waits and statements.
    pub fn service_pool(&self, min_connections: u32) -> Result<store::PgPool, store::StoreError> {
        store::connect_lazy(
            &self.url,
            &store::PoolSettings {
                max_connections: self.max_connections.max(min_connections),
                lock_timeout: Some(Duration::from_secs(15)),
                statement_timeout: Some(Duration::from_secs(60)),
                ..store::PoolSettings::default()
            },
        )
    }
}

/// The master key for credentials at rest.
#[derive(Debug, Clone, Args)]
pub struct CredentialsKeyArgs {
    /// 32 bytes, base64: encrypts account credentials at rest
    /// (`hostaway-admin keys generate` makes one).
    #[arg(
        id = "credentials-key",
        long = "credentials-key",
        env = "CONNECTOR_CREDENTIALS_KEY",
        hide_env_values = true
    )]
    pub key: SecretString,
    /// The previous key during a key rotation (read-only).
    #[arg(
        id = "credentials-key-previous",
        long = "credentials-key-previous",
        env = "CONNECTOR_CREDENTIALS_KEY_PREVIOUS",
        hide_env_values = true
    )]
    pub previous: Option<SecretString>,
}

impl CredentialsKeyArgs {
    pub fn cipher(&self) -> Result<store::crypto::CredentialCipher, store::crypto::CipherError> {
        store::crypto::CredentialCipher::new(&self.key, self.previous.as_ref())
    }
}

#[derive(Debug, Clone, Args)]
pub struct OpsArgs {
    /// Where /healthz, /readyz and /metrics are served.
    #[arg(id = "ops-listen", long = "ops-listen", env = "OPS_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// How long a SIGTERM may take to drain in-flight work.
    #[arg(
        id = "shutdown-timeout-secs",
        long = "shutdown-timeout-secs",
        env = "SHUTDOWN_TIMEOUT_SECS",
        default_value_t = 25
    )]
    pub shutdown_timeout_secs: u64,
}

impl OpsArgs {
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// `json` (one object per line) or `pretty`.
    #[arg(
        id = "log-format",
        long = "log-format",
        env = "LOG_FORMAT",
        default_value = "json"
    )]
    pub format: crate::telemetry::LogFormat,
    /// Filter in `tracing` syntax, e.g. `info,booking_ingestor=debug`.
    #[arg(
        id = "log-filter",
        long = "log-filter",
        env = "RUST_LOG",
        default_value = "info"
    )]
    pub filter: String,
    #[command(flatten)]
    pub traces: TraceArgs,
}

/// OpenTelemetry: spans exported over OTLP (gRPC) when an endpoint is set.
#[derive(Debug, Clone, Args)]
pub struct TraceArgs {
    /// The OTLP collector's gRPC endpoint, e.g. `http://otel-collector:4317`;
    /// unset, no span leaves the process and none costs anything.
    #[arg(
        id = "otel-exporter-otlp-endpoint",
        long = "otel-exporter-otlp-endpoint",
        env = "OTEL_EXPORTER_OTLP_ENDPOINT"
    )]
    pub endpoint: Option<String>,
    /// `service.name` of the spans (the binary's name by default).
    #[arg(
        id = "otel-service-name",
        long = "otel-service-name",
        env = "OTEL_SERVICE_NAME"
    )]
    pub service_name: Option<String>,
    /// Share of new traces exported (0 to 1); a trace begun by a sampled
    /// sender is always continued.
    #[arg(
        id = "otel-traces-sampler-arg",
        long = "otel-traces-sampler-arg",
        env = "OTEL_TRACES_SAMPLER_ARG",
        default_value_t = 1.0
    )]
    pub sample_ratio: f64,
}

/// A single account configured through the specification's environment
/// variables, for single-account deployments and the demo.
#[derive(Debug, Clone, Args)]
pub struct BootstrapAccountArgs {
    /// Hostaway account id (also the API client id).
    #[arg(
        id = "hostaway-account-id",
        long = "hostaway-account-id",
        env = "HOSTAWAY_ACCOUNT_ID"
    )]
    pub account_id: Option<String>,
    /// API client secret (the specification's API key).
    #[arg(
        id = "hostaway-api-key",
        long = "hostaway-api-key",
        env = "HOSTAWAY_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<SecretString>,
    /// The specification's HMAC webhook secret.
    #[arg(
        id = "hostaway-webhook-secret",
        long = "hostaway-webhook-secret",
        env = "HOSTAWAY_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub webhook_secret: Option<SecretString>,
    /// The unified webhook's Basic login.
    #[arg(
        id = "hostaway-webhook-login",
        long = "hostaway-webhook-login",
        env = "HOSTAWAY_WEBHOOK_LOGIN"
    )]
    pub webhook_login: Option<String>,
    /// The unified webhook's Basic password.
    #[arg(
        id = "hostaway-webhook-password",
        long = "hostaway-webhook-password",
        env = "HOSTAWAY_WEBHOOK_PASSWORD",
        hide_env_values = true
    )]
    pub webhook_password: Option<SecretString>,
}

impl BootstrapAccountArgs {
    pub fn is_set(&self) -> bool {
        self.account_id
            .as_deref()
            .is_some_and(|a| !a.trim().is_empty())
    }
}
