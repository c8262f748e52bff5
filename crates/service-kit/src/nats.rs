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

/// Parked webhooks the ingestor releases go back to the webhooks stream
/// under this token, so that the ingestor's NATS user needs no permission on
/// the gateway's subjects (deploy/nats/permissions.conf).
const RELEASED_TOKEN: &str = "released.";

/// `{ns}.webhooks.{account}.{event}` → `{ns}.webhooks.released.{account}.{event}`
/// (unchanged when it already is a released subject, or not a webhook subject).
pub fn released_webhook_subject(original: &str) -> String {
    match original.split_once(".webhooks.") {
        Some((namespace, rest)) if !rest.starts_with(RELEASED_TOKEN) => {
            format!("{namespace}.webhooks.{RELEASED_TOKEN}{rest}")
        }
        _ => original.to_owned(),
    }
}

/// The account a webhook subject names: `{ns}.webhooks.{account}.{event}`,
/// or `{ns}.webhooks.released.{account}.{event}` for a parked webhook the
/// ingestor released. `None` for anything else.
pub fn webhook_subject_account(subject: &str) -> Option<&str> {
    let (namespace, rest) = subject.split_once(".webhooks.")?;
    if namespace.is_empty() || namespace.contains('.') {
        return None;
    }
    let rest = rest.strip_prefix(RELEASED_TOKEN).unwrap_or(rest);
    match rest.split('.').collect::<Vec<_>>().as_slice() {
        [account, event] if !account.is_empty() && !event.is_empty() => Some(account),
        _ => None,
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
    // Replies come to an inbox of this service's own: its NATS user may then
    // subscribe to its replies only, never to another service's (a pulled
    // webhook travels to the ingestor's inbox).
    let mut options = ConnectOptions::new()
        .name(name)
        .custom_inbox_prefix(format!("_INBOX_{name}"))
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

/// The streams the connector owns, as this configuration wants them.
pub fn stream_configs(topology: &Topology, settings: &StreamSettings) -> Vec<stream::Config> {
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
    // (applied, parked, or copied to the dead-letter queue), and never by age:
    // nothing unprocessed expires. When the bound is reached the gateway
    // answers 503.
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
    vec![
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
    ]
}

/// Creates the connector's streams, or updates them to this configuration.
/// What `hostaway-admin streams provision` runs; services only verify.
pub async fn provision(
    js: &jetstream::Context,
    topology: &Topology,
    settings: &StreamSettings,
) -> anyhow::Result<()> {
    for config in stream_configs(topology, settings) {
        let name = config.name.clone();
        js.create_or_update_stream(config)
            .await
            .map_err(|e| anyhow::anyhow!("provisioning stream {name}: {e}"))?;
    }
    Ok(())
}

/// How a stream found differs from the configuration wanted, field by field.
pub fn stream_differences(found: &stream::Config, wanted: &stream::Config) -> Vec<String> {
    // 0 and -1 both mean "no limit"; the server answers -1.
    fn limit(v: i64) -> String {
        (if v <= 0 { -1 } else { v }).to_string()
    }
    type Read = fn(&stream::Config) -> String;
    let fields: [(&str, Read); 10] = [
        ("subjects", |c| {
            let mut subjects = c.subjects.clone();
            subjects.sort();
            format!("{subjects:?}")
        }),
        ("retention", |c| format!("{:?}", c.retention)),
        ("storage", |c| format!("{:?}", c.storage)),
        ("discard", |c| format!("{:?}", c.discard)),
        ("num_replicas", |c| c.num_replicas.max(1).to_string()),
        ("max_age", |c| format!("{:?}", c.max_age)),
        ("max_bytes", |c| limit(c.max_bytes)),
        ("duplicate_window", |c| format!("{:?}", c.duplicate_window)),
        ("max_messages_per_subject", |c| {
            limit(c.max_messages_per_subject)
        }),
        ("discard_new_per_subject", |c| {
            c.discard_new_per_subject.to_string()
        }),
    ];
    fields
        .iter()
        .filter_map(|(field, read)| {
            let (have, want) = (read(found), read(wanted));
            (have != want)
                .then(|| format!("stream {}: {field} is {have}, expected {want}", wanted.name))
        })
        .collect()
}

/// Checks the connector's streams against this configuration without
/// changing them: `Err` names every difference (and every missing stream).
pub async fn verify_streams(
    js: &jetstream::Context,
    topology: &Topology,
    settings: &StreamSettings,
) -> Result<(), String> {
    let mut differences = Vec::new();
    for wanted in stream_configs(topology, settings) {
        match js.get_stream(&wanted.name).await {
            Ok(mut found) => match found.info().await {
                Ok(info) => differences.extend(stream_differences(&info.config, &wanted)),
                Err(error) => differences.push(format!("stream {}: {error}", wanted.name)),
            },
            Err(error) => differences.push(format!(
                "stream {} is missing ({error}): run `hostaway-admin streams provision`",
                wanted.name
            )),
        }
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(differences.join("; "))
    }
}

/// The durable consumers' settings, provisioned by `hostaway-admin` and
/// verified by the services (they read the same variables).
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// The ingestor's: redelivery of a webhook a crashed replica held.
    pub ingest_ack_wait: Duration,
    pub ingest_max_ack_pending: i64,
    /// The dispatcher's change consumer.
    pub change_ack_wait: Duration,
    /// The dispatcher's job lines (running jobs extend it).
    pub job_ack_wait: Duration,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            ingest_ack_wait: Duration::from_secs(30),
            ingest_max_ack_pending: 1024,
            change_ack_wait: Duration::from_secs(30),
            job_ack_wait: Duration::from_secs(60),
        }
    }
}

fn durable(
    name: String,
    filter: String,
    ack_wait: Duration,
    max_ack_pending: i64,
) -> jetstream::consumer::pull::Config {
    jetstream::consumer::pull::Config {
        durable_name: Some(name),
        filter_subject: filter,
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait,
        // Attempts are counted in PostgreSQL (webhook_log, sync_jobs), where
        // an outage does not use them up: JetStream never gives up.
        max_deliver: -1,
        max_ack_pending,
        deliver_policy: jetstream::consumer::DeliverPolicy::All,
        ..Default::default()
    }
}

/// The ingestor's durable consumer (on the webhooks stream).
pub fn ingestor_consumer_config(
    topology: &Topology,
    settings: &ConsumerSettings,
) -> jetstream::consumer::pull::Config {
    durable(
        topology.ingestor_consumer(),
        topology.webhooks_filter(),
        settings.ingest_ack_wait,
        settings.ingest_max_ack_pending,
    )
}

/// The dispatcher's change consumer (on the changes stream).
pub fn changes_consumer_config(
    topology: &Topology,
    settings: &ConsumerSettings,
) -> jetstream::consumer::pull::Config {
    durable(
        topology.changes_consumer(),
        topology.changes_filter(),
        settings.change_ack_wait,
        1024,
    )
}

/// A job line's consumer (on the sync stream).
pub fn job_consumer_config(
    topology: &Topology,
    lane: crate::sync_queue::JobLane,
    settings: &ConsumerSettings,
) -> jetstream::consumer::pull::Config {
    let reconcile = lane.mode == crate::sync_queue::Mode::Reconcile;
    durable(
        topology.sync_consumer(lane.kind.as_str(), reconcile),
        topology.sync_filter(lane.kind.as_str(), reconcile),
        settings.job_ack_wait,
        1024,
    )
}

/// Every durable consumer the connector owns, with its stream.
pub fn consumer_configs(
    topology: &Topology,
    settings: &ConsumerSettings,
) -> Vec<(String, jetstream::consumer::pull::Config)> {
    let mut configs = vec![
        (
            topology.webhooks_stream(),
            ingestor_consumer_config(topology, settings),
        ),
        (
            topology.changes_stream(),
            changes_consumer_config(topology, settings),
        ),
    ];
    configs.extend(crate::sync_queue::JobLane::all().into_iter().map(|lane| {
        (
            topology.sync_stream(),
            job_consumer_config(topology, lane, settings),
        )
    }));
    configs
}

/// Creates the durable consumers, or updates them to this configuration.
pub async fn provision_consumers(
    js: &jetstream::Context,
    topology: &Topology,
    settings: &ConsumerSettings,
) -> anyhow::Result<()> {
    for (stream, config) in consumer_configs(topology, settings) {
        provision_consumer(js, &stream, config).await?;
    }
    Ok(())
}

/// Creates one durable consumer, or updates it to `config`.
pub async fn provision_consumer(
    js: &jetstream::Context,
    stream: &str,
    config: jetstream::consumer::pull::Config,
) -> anyhow::Result<()> {
    let name = config.durable_name.clone().unwrap_or_default();
    let stream = js
        .get_stream(stream)
        .await
        .map_err(|e| anyhow::anyhow!("stream {stream} for consumer {name}: {e}"))?;
    stream
        .create_consumer(config)
        .await
        .map_err(|e| anyhow::anyhow!("provisioning consumer {name}: {e}"))?;
    Ok(())
}

/// Binds an existing durable consumer and checks what correctness depends
/// on; `Err` names what is missing or different.
pub async fn bind_consumer(
    js: &jetstream::Context,
    stream: &str,
    wanted: &jetstream::consumer::pull::Config,
) -> Result<jetstream::consumer::PullConsumer, String> {
    let name = wanted.durable_name.clone().unwrap_or_default();
    let stream = js.get_stream(stream).await.map_err(|e| {
        format!("stream {stream} is missing ({e}): run `hostaway-admin streams provision`")
    })?;
    let mut consumer: jetstream::consumer::PullConsumer =
        stream.get_consumer(&name).await.map_err(|e| {
            format!("consumer {name} is missing ({e}): run `hostaway-admin streams provision`")
        })?;
    let info = consumer
        .info()
        .await
        .map_err(|e| format!("consumer {name}: {e}"))?;
    let found = &info.config;
    let mut differences = Vec::new();
    if found.filter_subject != wanted.filter_subject {
        differences.push(format!(
            "filter_subject is {:?}, expected {:?}",
            found.filter_subject, wanted.filter_subject
        ));
    }
    if found.ack_policy != wanted.ack_policy {
        differences.push(format!(
            "ack_policy is {:?}, expected {:?}",
            found.ack_policy, wanted.ack_policy
        ));
    }
    if found.max_deliver != wanted.max_deliver
        && !(found.max_deliver <= 0 && wanted.max_deliver <= 0)
    {
        differences.push(format!(
            "max_deliver is {}, expected {}",
            found.max_deliver, wanted.max_deliver
        ));
    }
    if found.ack_wait != wanted.ack_wait {
        differences.push(format!(
            "ack_wait is {:?}, expected {:?}",
            found.ack_wait, wanted.ack_wait
        ));
    }
    if differences.is_empty() {
        Ok(consumer)
    } else {
        Err(format!("consumer {name}: {}", differences.join(", ")))
    }
}

/// Verifies the streams against this configuration now and every `every`
/// until `stop`, keeping `condition` (a readiness check) in step: a service
/// never changes the topology (`hostaway-admin` owns it), it reports what
/// differs and stays unready until it is fixed.
pub async fn watch_streams(
    js: jetstream::Context,
    topology: Topology,
    settings: StreamSettings,
    condition: crate::health::Condition,
    every: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        match verify_streams(&js, &topology, &settings).await {
            Ok(()) => {
                if !condition.is_ok() {
                    tracing::info!(
                        namespace = topology.namespace(),
                        "JetStream streams verified"
                    );
                }
                condition.ok();
                delay = every;
            }
            Err(problem) => {
                if condition.reason().as_deref() != Some(problem.as_str()) {
                    tracing::warn!(%problem, "JetStream streams are not as this service expects; not ready");
                }
                condition.fail(problem);
                delay = (delay * 2).min(every.min(Duration::from_secs(5)));
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
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
    fn a_webhook_subject_names_its_account_whoever_published_it() {
        let t = Topology::new("t_1a").unwrap();
        let gateway = t.webhook_subject("59808", "reservation_created");
        let released = released_webhook_subject(&gateway);
        assert_eq!(released, "t_1a.webhooks.released.59808.reservation_created");
        assert_eq!(released_webhook_subject(&released), released);
        assert_eq!(webhook_subject_account(&gateway), Some("59808"));
        assert_eq!(webhook_subject_account(&released), Some("59808"));
        for other in [
            "t_1a.webhooks.59808",
            "t_1a.webhooks.59808.a.b",
            "x.t_1a.webhooks.59808.reservation_created",
            "t_1a.changes.availability.1",
            "t_1a.webhooks..reservation_created",
        ] {
            assert_eq!(webhook_subject_account(other), None, "{other}");
        }
    }

    #[test]
    fn a_stream_is_compared_field_by_field_with_what_the_server_normalises() {
        let wanted = stream_configs(&Topology::new("t_1a").unwrap(), &StreamSettings::default());
        let sync = wanted
            .iter()
            .find(|c| c.name == "T_1A_SYNC")
            .expect("the sync stream")
            .clone();
        // The server answers -1 for "no limit" and may list subjects in any order.
        let mut found = sync.clone();
        found.max_bytes = if sync.max_bytes <= 0 {
            -1
        } else {
            sync.max_bytes
        };
        found.subjects.reverse();
        assert!(stream_differences(&found, &sync).is_empty());
        found.num_replicas = 3;
        found.discard_new_per_subject = !sync.discard_new_per_subject;
        let differences = stream_differences(&found, &sync);
        assert_eq!(differences.len(), 2, "{differences:?}");
        assert!(
            differences[0].starts_with("stream T_1A_SYNC: num_replicas is 3, expected"),
            "{differences:?}"
        );
        assert!(differences[1].contains("discard_new_per_subject"));
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
    fn a_stream_configured_otherwise_is_told_field_by_field() {
        let topology = Topology::new("t").unwrap_or_else(|_| unreachable!());
        let wanted = stream_configs(&topology, &StreamSettings::default());
        let mut found = wanted[0].clone();
        assert!(stream_differences(&found, &wanted[0]).is_empty());
        found.num_replicas = 3;
        found.max_bytes = 1024;
        let differences = stream_differences(&found, &wanted[0]);
        assert_eq!(differences.len(), 2, "{differences:?}");
        assert!(differences[0].contains("num_replicas is 3, expected 1"));
        assert!(differences[1].contains("max_bytes is 1024, expected -1"));
    }

    #[test]
    fn every_job_line_has_its_consumer() {
        let topology = Topology::new("t").unwrap_or_else(|_| unreachable!());
        let configs = consumer_configs(&topology, &ConsumerSettings::default());
        assert_eq!(configs.len(), 2 + crate::sync_queue::JobLane::all().len());
        let mut names: Vec<_> = configs
            .iter()
            .filter_map(|(_, c)| c.durable_name.clone())
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), configs.len(), "distinct durable names");
    }

    #[test]
    fn namespaces_cannot_inject_subject_tokens() {
        for bad in ["", "a.b", "a*", ">", "A", "a b", "a-b", &"a".repeat(33)] {
            assert!(Topology::new(bad).is_err(), "{bad:?}");
        }
    }
}
