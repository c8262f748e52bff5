//! NATS connection and the JetStream topology the connector owns.
//!
//! Every subject, stream and consumer name is derived from one namespace, so a
//! deployment (or a test) owns a disjoint set:
//!
//! | stream | subjects | holds |
//! |---|---|---|
//! | `{NS}_WEBHOOKS` | `{ns}.webhooks.{account}.{event}` | authenticated webhooks (protobuf `InboundWebhook`) |
//! | `{NS}_DLQ` | `{ns}.dlq.webhooks.{account}` | webhooks that exhausted their retries |
//! | `{NS}_EVENTS` | `{ns}.events.{kind}` | events for TVL (`booking.created`, …) |
//! | `{NS}_CHANGES` | `{ns}.changes.{kind}.{unit}` | TVL's availability, price and listing changes (protobuf, `outbound.proto`) |
//! | `{NS}_SYNC` | `{ns}.sync.{push\|reconcile}.{kind}.{account}[.{listing}]` | pending sync jobs, at most one per subject (`SyncJob`) |
//!
//! The DLQ stream also takes `{ns}.dlq.sync.{kind}.{account}` (failed sync
//! jobs) and `{ns}.dlq.changes.{kind}` (changes that cannot be applied).

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions};
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("namespace must be 1-32 characters of a-z, 0-9 or '_'")]
pub struct TopologyError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    namespace: String,
}

impl Topology {
    pub fn new(namespace: &str) -> Result<Self, TopologyError> {
        let valid = !namespace.is_empty()
            && namespace.len() <= 32
            && namespace
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if valid {
            Ok(Self {
                namespace: namespace.to_owned(),
            })
        } else {
            Err(TopologyError)
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn stream_name(&self, suffix: &str) -> String {
        format!("{}_{suffix}", self.namespace.to_ascii_uppercase())
    }

    pub fn webhooks_stream(&self) -> String {
        self.stream_name("WEBHOOKS")
    }

    /// `account` and `event_token` are validated identifiers (no dots or wildcards).
    pub fn webhook_subject(&self, account: &str, event_token: &str) -> String {
        format!("{}.webhooks.{account}.{event_token}", self.namespace)
    }

    pub fn webhooks_filter(&self) -> String {
        format!("{}.webhooks.>", self.namespace)
    }

    pub fn dlq_stream(&self) -> String {
        self.stream_name("DLQ")
    }

    pub fn dlq_subject(&self, account: &str) -> String {
        format!("{}.dlq.webhooks.{account}", self.namespace)
    }

    pub fn events_stream(&self) -> String {
        self.stream_name("EVENTS")
    }

    /// `suffix` like `booking.created`.
    pub fn event_subject(&self, suffix: &str) -> String {
        format!("{}.events.{suffix}", self.namespace)
    }

    pub fn ingestor_consumer(&self) -> String {
        format!("{}_booking_ingestor", self.namespace)
    }

    pub fn changes_stream(&self) -> String {
        self.stream_name("CHANGES")
    }

    /// `kind` is `availability`, `pricing` or `listing`; `unit` a UUID.
    pub fn change_subject(&self, kind: &str, unit: &str) -> String {
        format!("{}.changes.{kind}.{unit}", self.namespace)
    }

    pub fn changes_filter(&self) -> String {
        format!("{}.changes.>", self.namespace)
    }

    pub fn changes_consumer(&self) -> String {
        format!("{}_sync_changes", self.namespace)
    }

    pub fn sync_stream(&self) -> String {
        self.stream_name("SYNC")
    }

    /// The subject of one pending job. Ids are validated identifiers. The
    /// mode comes first so that pushes and reconciliations of a kind wait in
    /// lines (consumers) of their own.
    pub fn sync_subject(
        &self,
        kind: &str,
        account: &str,
        listing: Option<&str>,
        reconcile: bool,
    ) -> String {
        let mut subject = format!(
            "{}.sync.{}.{kind}.{account}",
            self.namespace,
            sync_mode(reconcile)
        );
        if let Some(listing) = listing {
            subject.push('.');
            subject.push_str(listing);
        }
        subject
    }

    /// The jobs of one line: a kind in one mode.
    pub fn sync_filter(&self, kind: &str, reconcile: bool) -> String {
        format!("{}.sync.{}.{kind}.>", self.namespace, sync_mode(reconcile))
    }

    pub fn sync_consumer(&self, kind: &str, reconcile: bool) -> String {
        format!("{}_sync_{}_{kind}", self.namespace, sync_mode(reconcile))
    }

    pub fn dlq_sync_subject(&self, kind: &str, account: &str) -> String {
        format!("{}.dlq.sync.{kind}.{account}", self.namespace)
    }

    pub fn dlq_changes_subject(&self, kind: &str) -> String {
        format!("{}.dlq.changes.{kind}", self.namespace)
    }
}

#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub replicas: usize,
    /// Retention of the event and dead-letter copies.
    pub max_age: Duration,
    /// Size bound of the webhooks work queue (-1: none).
    pub webhooks_max_bytes: i64,
    /// Size bound of the TVL changes work queue (-1: none). When reached,
    /// publishers are refused: back-pressure, never loss.
    pub changes_max_bytes: i64,
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            replicas: 1,
            max_age: Duration::from_secs(7 * 24 * 3600),
            webhooks_max_bytes: -1,
            changes_max_bytes: -1,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// Dead letters are kept longer: the table is the record, the stream a copy
/// for NATS tooling.
const DLQ_MAX_AGE: Duration = Duration::from_secs(90 * 24 * 3600);

/// Connects, retrying in the background if the server is down at start: the
/// service comes up, reports not-ready, and recovers when NATS does.
pub async fn connect(
    url: &SecretString,
    creds_file: Option<&std::path::Path>,
    name: &str,
) -> anyhow::Result<Client> {
    let mut options = ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("NATS connected"),
                async_nats::Event::Disconnected => tracing::warn!("NATS disconnected"),
                other => tracing::debug!(event = %other, "NATS event"),
            }
        });
    if let Some(path) = creds_file {
        options = options.credentials_file(path).await?;
    }
    // Credentials travel as options, not inside the URL, which the client may
    // log (at debug level) when it reports the server it connects to.
    let (servers, credentials) = split_credentials(url.expose_secret());
    options = match credentials {
        Some(ServerCredentials::UserPassword(user, password)) => {
            options.user_and_password(user, password)
        }
        Some(ServerCredentials::Token(token)) => options.token(token),
        None => options,
    };
    // A list, not one string: a comma-separated string is one (invalid)
    // address to the client.
    Ok(options.connect(servers.as_slice()).await?)
}

#[derive(Debug, PartialEq, Eq)]
enum ServerCredentials {
    UserPassword(String, String),
    Token(String),
}

/// `nats://user:pass@a:4222,nats://user:pass@b:4222` → the URLs without user
/// info, and the (first) credentials found.
fn split_credentials(urls: &str) -> (Vec<String>, Option<ServerCredentials>) {
    let mut credentials = None;
    let servers: Vec<String> = urls
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| {
            let (scheme, rest) = url.split_once("://").unwrap_or(("nats", url));
            match rest.rsplit_once('@') {
                Some((userinfo, host)) => {
                    if credentials.is_none() {
                        credentials = Some(match userinfo.split_once(':') {
                            Some((user, password)) => ServerCredentials::UserPassword(
                                user.to_owned(),
                                password.to_owned(),
                            ),
                            None => ServerCredentials::Token(userinfo.to_owned()),
                        });
                    }
                    format!("{scheme}://{host}")
                }
                None => format!("{scheme}://{rest}"),
            }
        })
        .collect();
    (servers, credentials)
}

pub fn is_connected(client: &Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

/// Creates the connector's streams, or updates them to this configuration.
pub async fn provision(
    js: &jetstream::Context,
    topology: &Topology,
    settings: &StreamSettings,
) -> anyhow::Result<()> {
    let base = |name: String, subject: String, max_age: Duration| stream::Config {
        name,
        subjects: vec![subject],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        // A full stream refuses new messages rather than dropping old ones.
        discard: stream::DiscardPolicy::New,
        max_age,
        duplicate_window: settings.duplicate_window,
        num_replicas: settings.replicas,
        ..Default::default()
    };
    // Webhooks are a work queue: a message leaves when the ingestor acked it
    // (applied, or copied to the dead-letter queue), and never by age: nothing
    // unprocessed expires. When the bound is reached the gateway answers 503.
    let webhooks = stream::Config {
        retention: stream::RetentionPolicy::WorkQueue,
        max_bytes: settings.webhooks_max_bytes,
        ..base(
            topology.webhooks_stream(),
            topology.webhooks_filter(),
            Duration::ZERO,
        )
    };
    let changes = stream::Config {
        retention: stream::RetentionPolicy::WorkQueue,
        max_bytes: settings.changes_max_bytes,
        ..base(
            topology.changes_stream(),
            topology.changes_filter(),
            Duration::ZERO,
        )
    };
    // Sync jobs: at most one pending message per subject (per listing and
    // kind). A second publish is refused while the first waits: that is how
    // changes fold into the job already queued, which keeps its place in line.
    let sync = stream::Config {
        retention: stream::RetentionPolicy::WorkQueue,
        max_messages_per_subject: 1,
        discard_new_per_subject: true,
        ..base(
            topology.sync_stream(),
            format!("{}.sync.>", topology.namespace()),
            Duration::ZERO,
        )
    };
    for config in [
        webhooks,
        changes,
        sync,
        base(
            topology.dlq_stream(),
            format!("{}.dlq.>", topology.namespace()),
            DLQ_MAX_AGE,
        ),
        base(
            topology.events_stream(),
            format!("{}.events.>", topology.namespace()),
            settings.max_age,
        ),
    ] {
        let name = config.name.clone();
        js.create_or_update_stream(config)
            .await
            .map_err(|e| anyhow::anyhow!("provisioning stream {name}: {e}"))?;
    }
    Ok(())
}

/// Provisions the streams, retrying until it succeeds or `stop` fires; sets
/// `done` once the streams exist. Services start serving before NATS is up and
/// report not-ready until then.
pub async fn provision_until_done(
    js: jetstream::Context,
    topology: Topology,
    settings: StreamSettings,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        match provision(&js, &topology, &settings).await {
            Ok(()) => {
                done.store(true, std::sync::atomic::Ordering::Release);
                tracing::info!(
                    namespace = topology.namespace(),
                    "JetStream streams provisioned"
                );
                return;
            }
            Err(error) => tracing::warn!(%error, "cannot provision JetStream streams yet"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Deletes the namespace's streams (tests and `hostaway-admin` teardown).
pub async fn delete_streams(js: &jetstream::Context, topology: &Topology) {
    for name in [
        topology.webhooks_stream(),
        topology.dlq_stream(),
        topology.events_stream(),
        topology.changes_stream(),
        topology.sync_stream(),
    ] {
        let _ = js.delete_stream(&name).await;
    }
}

fn sync_mode(reconcile: bool) -> &'static str {
    if reconcile { "reconcile" } else { "push" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derive_from_the_namespace() {
        let t = Topology::new("t_1a").unwrap();
        assert_eq!(t.webhooks_stream(), "T_1A_WEBHOOKS");
        assert_eq!(
            t.webhook_subject("59808", "reservation_created"),
            "t_1a.webhooks.59808.reservation_created"
        );
        assert_eq!(
            t.event_subject("booking.created"),
            "t_1a.events.booking.created"
        );
        assert_eq!(t.dlq_subject("59808"), "t_1a.dlq.webhooks.59808");
        assert_eq!(t.ingestor_consumer(), "t_1a_booking_ingestor");
    }

    #[test]
    fn credentials_are_taken_out_of_the_url() {
        assert_eq!(
            split_credentials("nats://app:s3cret@a:4222, nats://app:s3cret@b:4222"),
            (
                vec!["nats://a:4222".to_owned(), "nats://b:4222".to_owned()],
                Some(ServerCredentials::UserPassword(
                    "app".into(),
                    "s3cret".into()
                ))
            )
        );
        assert_eq!(
            split_credentials("tls://tok@x:4222"),
            (
                vec!["tls://x:4222".to_owned()],
                Some(ServerCredentials::Token("tok".into()))
            )
        );
        assert_eq!(
            split_credentials("127.0.0.1:4222"),
            (vec!["nats://127.0.0.1:4222".to_owned()], None)
        );
        assert_eq!(
            split_credentials("nats://a:4222, nats://b:4223,nats://c:4224,").0,
            vec!["nats://a:4222", "nats://b:4223", "nats://c:4224"],
            "a list of servers, as NATS clients take it"
        );
    }

    #[test]
    fn namespaces_cannot_inject_subject_tokens() {
        for bad in ["", "a.b", "a*", ">", "A", "a b", "a-b", &"a".repeat(33)] {
            assert!(Topology::new(bad).is_err(), "{bad:?}");
        }
    }
}
