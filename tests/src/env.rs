//! One isolated environment per test.

use std::net::SocketAddr;
use std::sync::Arc;

use async_nats::jetstream;
use domain::{AccountId, ListingId, UnitId};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use service_kit::nats::{StreamSettings, Topology};
use store::PgPool;
use store::accounts::NewAccount;
use store::bookings::{BlockView, BookingView};
use store::crypto::CredentialCipher;
use uuid::Uuid;

use crate::proxy::Proxy;

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

#[derive(Debug)]
pub struct TestEnv {
    pub db_name: String,
    /// Direct to PostgreSQL: works while the services' proxy is cut.
    pub pool: PgPool,
    pub pg_proxy: Proxy,
    /// Direct to NATS: works while the services' proxy is cut.
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub nats_proxy: Proxy,
    pub topology: Topology,
    pub credentials_key: SecretString,
    pub cipher: Arc<CredentialCipher>,
    /// The streams as provisioned; every service started here expects them.
    pub streams: StreamSettings,
    database_url: Url,
    nats_url: Url,
    /// Services connect straight to the servers (benchmarks), not through the proxies.
    direct: bool,
    /// The servers services are given instead (a cluster), comma-separated.
    nats_servers: Option<String>,
    /// Each service's NATS user, on a server that enforces permissions.
    nats_users: Option<NatsUsers>,
}

/// The users of deploy/nats/permissions.conf and their passwords.
#[derive(Debug, Clone)]
pub struct NatsUsers {
    pub passwords: std::collections::HashMap<String, String>,
}

impl NatsUsers {
    /// `nats://user:password@host:port` for each server of `servers`.
    pub fn url(&self, servers: &str, user: &str) -> SecretString {
        let password = self
            .passwords
            .get(user)
            .unwrap_or_else(|| panic!("no NATS user {user}"));
        let urls: Vec<String> = servers
            .split(',')
            .map(|server| {
                let host = server.split_once("://").map_or(server, |(_, host)| host);
                format!("nats://{user}:{password}@{host}")
            })
            .collect();
        SecretString::from(urls.join(","))
    }
}

/// How an environment reaches NATS.
#[derive(Debug, Default)]
struct NatsPlan {
    /// Services connect straight to the servers, not through the proxies.
    direct: bool,
    /// A cluster of its own: every server's URL, and the streams' settings.
    cluster: Option<(String, StreamSettings)>,
    /// A server that enforces deploy/nats/permissions.conf, with the
    /// namespace that file is written for.
    secured: Option<(String, NatsUsers, String)>,
}

async fn upstream(url: &Url, default_port: u16) -> SocketAddr {
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port().unwrap_or(default_port);
    tokio::net::lookup_host((host, port))
        .await
        .expect("resolving the test server")
        .next()
        .expect("an address for the test server")
}

impl TestEnv {
    pub async fn new() -> Self {
        Self::create(NatsPlan::default()).await
    }

    /// An environment whose services bypass the cuttable proxies: for
    /// measurements, where a proxy hop would distort the figures.
    pub async fn new_direct() -> Self {
        Self::create(NatsPlan {
            direct: true,
            ..NatsPlan::default()
        })
        .await
    }

    /// An environment on a NATS cluster of its own (services are given every
    /// server's URL), its streams provisioned with `streams`.
    pub async fn on_cluster(servers: &[String], streams: StreamSettings) -> Self {
        Self::create(NatsPlan {
            direct: true,
            cluster: Some((servers.join(","), streams)),
            ..NatsPlan::default()
        })
        .await
    }

    /// An environment on a server of its own that enforces per-service
    /// permissions: the environment acts as `admin`, each service as its user,
    /// in `namespace` (the one the permissions are written for).
    pub async fn on_secured_nats(server: &str, users: NatsUsers, namespace: &str) -> Self {
        Self::create(NatsPlan {
            direct: true,
            secured: Some((server.to_owned(), users, namespace.to_owned())),
            ..NatsPlan::default()
        })
        .await
    }

    async fn create(plan: NatsPlan) -> Self {
        let NatsPlan {
            direct,
            cluster,
            secured,
        } = plan;
        service_kit::install_crypto_provider();
        init_logging();
        let admin: Url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| DEFAULT_DATABASE_URL.into())
            .parse()
            .expect("TEST_DATABASE_URL");
        let (nats_servers, streams) = cluster.unzip();
        let streams = streams.unwrap_or_default();
        let nats_url: Url = match (&nats_servers, &secured) {
            (Some(servers), _) => servers.split(',').next().unwrap_or_default().to_owned(),
            (None, Some((server, _, _))) => server.clone(),
            (None, None) => {
                std::env::var("TEST_NATS_URL").unwrap_or_else(|_| DEFAULT_NATS_URL.into())
            }
        }
        .parse()
        .expect("TEST_NATS_URL");
        let id = Uuid::new_v4().simple().to_string();
        let db_name = format!("hwc_t_{}", &id[..16]);

        let admin_pool = store::connect_lazy(
            &SecretString::from(admin.to_string()),
            &store::PoolSettings::default(),
        )
        .expect("admin pool");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&admin_pool)
            .await
            .expect("PostgreSQL must be running (see README: just services)");
        admin_pool.close().await;

        let mut database_url = admin.clone();
        database_url.set_path(&db_name);
        let pool = store::connect_lazy(
            &SecretString::from(database_url.to_string()),
            &store::PoolSettings {
                max_connections: 4,
                ..Default::default()
            },
        )
        .expect("test pool");
        store::migrate(&pool).await.expect("migrations apply");

        let servers: Vec<&str> = nats_servers
            .as_deref()
            .unwrap_or(nats_url.as_str())
            .split(',')
            .collect();
        let nats = match &secured {
            Some((server, users, _)) => {
                service_kit::nats::connect(&users.url(server, "admin"), None, "hostaway-admin")
                    .await
                    .expect("the admin user connects")
            }
            None => async_nats::connect(servers.as_slice())
                .await
                .expect("NATS must be running (see README: just services)"),
        };
        let js = jetstream::new(nats.clone());
        let topology = match &secured {
            Some((_, _, namespace)) => Topology::new(namespace),
            None => Topology::new(&format!("t{}", &id[..12])),
        }
        .expect("namespace");
        service_kit::nats::provision(&js, &topology, &streams)
            .await
            .expect("streams provisioned");

        let credentials_key = CredentialCipher::generate_key();
        let cipher = Arc::new(CredentialCipher::new(&credentials_key, None).expect("cipher"));
        let pg_proxy = Proxy::start(upstream(&admin, 5432).await).await;
        let nats_proxy = Proxy::start(upstream(&nats_url, 4222).await).await;
        Self {
            db_name,
            pool,
            pg_proxy,
            nats,
            js,
            nats_proxy,
            topology,
            credentials_key,
            cipher,
            streams,
            database_url,
            nats_url,
            direct,
            nats_servers,
            nats_users: secured.map(|(_, users, _)| users),
        }
    }

    /// The database URL services use: through the cuttable proxy.
    pub fn service_database_url(&self) -> SecretString {
        if self.direct {
            return SecretString::from(self.database_url.to_string());
        }
        let mut url = self.database_url.clone();
        let _ = url.set_host(Some("127.0.0.1"));
        let _ = url.set_port(Some(self.pg_proxy.addr().port()));
        SecretString::from(url.to_string())
    }

    /// The NATS URL services use: through the cuttable proxy.
    pub fn service_nats_url(&self) -> SecretString {
        self.service_nats_url_as("admin")
    }

    /// The NATS URL of one service, with its own user where the server
    /// enforces permissions (`gateway`, `ingestor`, `dispatcher`, `admin`).
    pub fn service_nats_url_as(&self, user: &str) -> SecretString {
        if let Some(users) = &self.nats_users {
            return users.url(self.nats_url.as_str(), user);
        }
        if let Some(servers) = &self.nats_servers {
            return SecretString::from(servers.clone());
        }
        if self.direct {
            return SecretString::from(self.nats_url.to_string());
        }
        SecretString::from(format!("nats://{}", self.nats_proxy.addr()))
    }

    pub async fn add_account(&self, account: NewAccount) {
        store::accounts::add_account(&self.pool, &self.cipher, account)
            .await
            .expect("account added");
    }

    /// An account whose webhooks authenticate with Basic `login:password`.
    pub async fn add_basic_account(&self, account: &str, login: &str, password: &str) {
        self.add_account(NewAccount {
            account: AccountId::parse(account).expect("account id"),
            display_name: None,
            api_key: None,
            webhook_login: Some(login.into()),
            webhook_password: Some(SecretString::from(password.to_owned())),
            webhook_secret: None,
        })
        .await;
    }

    /// Links a listing to a fresh unit and returns the unit.
    pub async fn link(&self, account: &str, listing: &str) -> UnitId {
        let unit = UnitId::from_uuid(Uuid::now_v7());
        self.link_to(account, listing, unit).await;
        unit
    }

    pub async fn link_to(&self, account: &str, listing: &str, unit: UnitId) {
        store::links::link(
            &self.pool,
            &AccountId::parse(account).expect("account id"),
            &ListingId::parse(listing).expect("listing id"),
            unit,
        )
        .await
        .expect("listing linked");
    }

    pub async fn bookings(&self) -> Vec<BookingView> {
        store::bookings::list(&self.pool, None, None)
            .await
            .expect("bookings")
    }

    /// Takes a reservation's lock (the ingestor's) in a transaction of its
    /// own and holds it until the transaction is rolled back: whatever
    /// applies that reservation waits, and times out.
    pub async fn hold_reservation_lock(
        &self,
        account: &str,
        reservation: &str,
    ) -> sqlx::Transaction<'static, sqlx::Postgres> {
        let mut holder = self.pool.begin().await.expect("a transaction");
        store::bookings::lock_reservation_key(&mut holder, account, reservation)
            .await
            .expect("the reservation's lock");
        holder
    }

    /// Waits (30 s at most) for the first dead letter; its attempts and the
    /// kind of its error.
    pub async fn dead_lettered(&self, what: &str) -> (i32, String) {
        crate::eventually(what, std::time::Duration::from_secs(30), || async {
            sqlx::query_as("SELECT attempts, error->>'kind' FROM dead_letter_queue")
                .fetch_optional(&self.pool)
                .await
                .expect("dead letters")
        })
        .await
    }

    pub async fn blocks(&self) -> Vec<BlockView> {
        store::bookings::list_blocks(&self.pool, None)
            .await
            .expect("blocks")
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect(sql)
    }

    /// Waits (30 s at most) until the count `sql` returns is `expected`.
    pub async fn count_reaches(&self, what: &str, sql: &'static str, expected: i64) {
        crate::eventually(what, std::time::Duration::from_secs(30), || async {
            (self.count(sql).await == expected).then_some(())
        })
        .await;
    }

    /// A stream's configuration as the server holds it.
    pub async fn stream_config(&self, stream: &str) -> jetstream::stream::Config {
        let mut stream = self.js.get_stream(stream).await.expect("stream exists");
        stream.info().await.expect("stream info").config.clone()
    }

    /// Messages currently on a stream of this namespace.
    pub async fn stream_len(&self, stream: &str) -> u64 {
        let mut stream = self.js.get_stream(stream).await.expect("stream exists");
        stream.info().await.expect("stream info").state.messages
    }

    /// Every message on a stream, in order: (subject, payload).
    pub async fn stream_messages(&self, stream: &str) -> Vec<(String, bytes::Bytes)> {
        let mut handle = self.js.get_stream(stream).await.expect("stream exists");
        let state = handle.info().await.expect("stream info").state.clone();
        let mut out = Vec::new();
        if state.messages == 0 {
            return out;
        }
        for sequence in state.first_sequence..=state.last_sequence {
            if let Ok(message) = handle.get_raw_message(sequence).await {
                out.push((message.subject.to_string(), message.payload));
            }
        }
        out
    }
}

impl TestEnv {
    /// Waits until every committed event has been published.
    pub async fn outbox_drained(&self) {
        crate::eventually(
            "every committed event to be published",
            crate::DEADLINE,
            || async {
                (self
                    .count("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    .await
                    == 0)
                    .then_some(())
            },
        )
        .await;
    }

    /// The booking events published for TVL, decoded, in order.
    pub async fn booking_events(&self) -> Vec<events::pb::BookingEvent> {
        use events::Message as _;
        let prefix = format!("{}.events.booking.", self.topology.namespace());
        self.stream_messages(&self.topology.events_stream())
            .await
            .into_iter()
            .filter(|(subject, _)| {
                subject.starts_with(&prefix) && !subject.ends_with("double_booked")
            })
            .map(|(_, payload)| events::pb::BookingEvent::decode(payload).expect("a BookingEvent"))
            .collect()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Runs after failures too. Drop is not async and the test's runtime may be
        // blocked here, so the cleanup uses a thread, a runtime and connections of
        // its own.
        let db_name = self.db_name.clone();
        let admin =
            std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.into());
        let nats_url = self
            .nats_servers
            .clone()
            .unwrap_or_else(|| self.nats_url.to_string());
        let topology = self.topology.clone();
        let admin_nats = self
            .nats_users
            .as_ref()
            .map(|users| users.url(&nats_url, "admin"));
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let servers: Vec<&str> = nats_url.split(',').collect();
                let client = match &admin_nats {
                    Some(url) => service_kit::nats::connect(url, None, "hostaway-admin")
                        .await
                        .ok(),
                    None => async_nats::connect(servers.as_slice()).await.ok(),
                };
                if let Some(client) = client {
                    service_kit::nats::delete_streams(&jetstream::new(client), &topology).await;
                }
                if let Ok(admin) =
                    store::connect_lazy(&SecretString::from(admin), &store::PoolSettings::default())
                {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"
                    )))
                    .execute(&admin)
                    .await;
                    admin.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// `TEST_LOG=debug` (any `tracing` filter) shows the services' logs.
fn init_logging() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Exposes a secret for assertions about leaks.
pub fn reveal(secret: &SecretString) -> &str {
    secret.expose_secret()
}
