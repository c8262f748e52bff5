//! The outbound path under test: a simulator with accounts and listings, the
//! same accounts and links in the connector, the sync dispatcher on a runtime
//! of its own (so a test can kill it), TVL changes published on JetStream, and
//! a model of what TVL wants to compare Hostaway's calendars with.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use chrono::{DateTime, NaiveDate, Utc};
use domain::{AccountId, UnitId};
use events::Message as _;
use events::pb;
use hostaway_client::{ClientConfig, ClientMetrics, RateLimit};
use hostaway_sim::{Sim, SimConfig};
use secrecy::SecretString;
use serde_json::json;
use service_kit::health::Health;
use service_kit::metrics::Metrics;
use store::accounts::NewAccount;
use sync_dispatcher::contract::{dates, header};
use sync_dispatcher::{DispatcherDeps, DispatcherSettings, Roles, SyncDispatcher};

use crate::TestEnv;
use crate::services::Isolated;

/// A Hostaway listing linked to a TVL unit, on both sides.
#[derive(Debug, Clone)]
pub struct Linked {
    pub account: String,
    pub listing: u64,
    pub unit: UnitId,
}

#[derive(Debug)]
pub struct OutboundWorld {
    pub env: TestEnv,
    pub sim: Sim,
    pub listings: Vec<Linked>,
}

/// A dispatcher that only projects TVL's changes (no job runs).
pub const CHANGES_ONLY: Roles = Roles {
    changes: true,
    jobs: false,
    reconcile: false,
};

/// A dispatcher that only runs jobs (no change consumer, no schedules).
pub const JOBS_ONLY: Roles = Roles {
    changes: false,
    jobs: true,
    reconcile: false,
};

pub fn secret_of(account: &str) -> String {
    format!("sim-secret-{account}")
}

impl OutboundWorld {
    /// Publishes a webhook of `account` on the webhooks stream exactly as
    /// the gateway would (Basic, no problem found).
    pub async fn deliver_webhook(&self, account: &str, body: serde_json::Value) {
        let account = AccountId::parse(account).expect("account id");
        let raw = bytes::Bytes::from(body.to_string());
        let mapping::Webhook::Event {
            event,
            data,
            sent_at,
            ..
        } = mapping::parse_webhook(&raw).expect("a webhook")
        else {
            panic!("not an event: {body}");
        };
        let outgoing = service_kit::inbound::Inbound {
            account: &account,
            content: service_kit::inbound::Content::Event {
                event,
                sent_at,
                data: &data,
            },
            raw_body: raw.clone(),
            source: pb::Source::WebhookBasic,
            request_id: "test".into(),
            problem: None,
            account_disabled: false,
        }
        .build(&self.env.topology);
        let message = PublishMessage::build()
            .payload(outgoing.payload)
            .message_id(outgoing.webhook_id);
        self.env
            .js
            .send_publish(outgoing.subject, message)
            .await
            .expect("published")
            .await
            .expect("acknowledged");
    }

    /// `accounts`: each account id with its number of listings.
    pub async fn new(sim_config: SimConfig, accounts: &[(&str, usize)]) -> Self {
        Self::with_env(TestEnv::new().await, sim_config, accounts).await
    }

    /// The same world in `env` (a benchmark's, connected directly).
    pub async fn with_env(env: TestEnv, sim_config: SimConfig, accounts: &[(&str, usize)]) -> Self {
        let sim = Sim::start("127.0.0.1:0".parse().expect("addr"), sim_config)
            .await
            .expect("simulator starts");
        let mut listings = Vec::new();
        for (account, count) in accounts {
            sim.add_account(account, &secret_of(account)).await;
            env.add_account(NewAccount {
                account: AccountId::parse(*account).expect("account id"),
                display_name: None,
                api_key: Some(SecretString::from(secret_of(account))),
                webhook_login: None,
                webhook_password: None,
                webhook_secret: None,
            })
            .await;
            for _ in 0..*count {
                let listing = sim
                    .add_listing(account, serde_json::Map::new())
                    .await
                    .expect("listing added");
                let unit = env.link(account, &listing.to_string()).await;
                listings.push(Linked {
                    account: (*account).to_owned(),
                    listing,
                    unit,
                });
            }
        }
        Self { env, sim, listings }
    }

    /// Settings with test-sized timings; `roles` picks the parts to run.
    pub fn settings(&self, roles: Roles) -> DispatcherSettings {
        let mut settings = DispatcherSettings::new(self.env.topology.clone());
        settings.streams = self.env.streams.clone();
        settings.roles = roles;
        settings.migrate = false;
        settings.job_concurrency = 4;
        settings.consumers.change_ack_wait = Duration::from_secs(5);
        settings.consumers.job_ack_wait = Duration::from_secs(5);
        settings.schedules = Vec::new();
        settings.queue_gauge_interval = Duration::from_millis(200);
        settings.shutdown_timeout = Duration::from_secs(5);
        let worker = &mut settings.worker;
        worker.lease_ttl = Duration::from_secs(4);
        worker.heartbeat = Duration::from_secs(1);
        worker.retry.max_attempts = 3;
        worker.retry.base = Duration::from_millis(100);
        worker.retry.cap = Duration::from_millis(500);
        worker.settle = Duration::from_millis(200);
        worker.max_settle = Duration::from_secs(2);
        worker.read_freshness = Duration::ZERO;
        settings
    }

    /// The client the dispatcher gets: the simulator, Hostaway's limits,
    /// short retries.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig {
            base_url: self.sim.base_url(),
            timeout: Some(Duration::from_secs(5)),
            account_limit: RateLimit::HOSTAWAY_ACCOUNT,
            ip_limit: RateLimit::HOSTAWAY_IP,
            ..ClientConfig::default()
        };
        config.retry.max_attempts = 3;
        config.retry.base = Duration::from_millis(50);
        config.retry.cap = Duration::from_millis(300);
        config.max_account_wait = Duration::from_secs(2);
        config
    }

    pub fn start_dispatcher(&self, roles: Roles) -> IsolatedDispatcher {
        self.start_dispatcher_with(roles, |_, _| {})
    }

    /// Starts the dispatcher on a runtime of its own, so that
    /// [`IsolatedDispatcher::kill`] can stop it the way a crash would.
    pub fn start_dispatcher_with(
        &self,
        roles: Roles,
        configure: impl FnOnce(&mut DispatcherSettings, &mut ClientConfig),
    ) -> IsolatedDispatcher {
        let mut settings = self.settings(roles);
        let mut client_config = self.client_config();
        configure(&mut settings, &mut client_config);
        self.env.provision_dispatcher_consumers(&settings.consumers);
        let metrics = Metrics::new();
        let health = Health::new();
        let nats_url = self.env.service_nats_url_as("dispatcher");
        let database_url = self.env.service_database_url();
        let cipher = Arc::clone(&self.env.cipher);
        let client_metrics = ClientMetrics::register(metrics.registry()).expect("client metrics");
        let (run_metrics, run_health) = (metrics.clone(), health.clone());
        Isolated::spawn(metrics, health, move |stop| async move {
            let nats = service_kit::nats::connect(&nats_url, None, "sync-dispatcher")
                .await
                .expect("dispatcher NATS client");
            let pool = store::connect_lazy(
                &database_url,
                &store::PoolSettings {
                    max_connections: 16,
                    acquire_timeout: Duration::from_secs(2),
                    lock_timeout: Some(Duration::from_secs(15)),
                    statement_timeout: Some(Duration::from_secs(60)),
                },
            )
            .expect("dispatcher pool");
            let client = sync_dispatcher::shared_api::shared_client(
                client_config,
                sync_dispatcher::credentials::from_database(pool.clone(), Arc::clone(&cipher)),
                client_metrics,
                pool.clone(),
                Arc::clone(&cipher),
            )
            .expect("client");
            let dispatcher = SyncDispatcher::new(
                settings,
                DispatcherDeps {
                    nats,
                    pool,
                    metrics: run_metrics,
                    health: run_health,
                    client,
                    cipher,
                },
            )
            .expect("dispatcher");
            dispatcher.run(stop).await;
        })
    }

    /// Publishes a change as a TVL service would (`Nats-Msg-Id = change_id`).
    pub async fn publish(&self, kind: &str, unit: UnitId, change_id: &str, payload: Vec<u8>) {
        let subject = self.env.topology.change_subject(kind, &unit.to_string());
        self.env
            .js
            .send_publish(
                subject,
                PublishMessage::build()
                    .payload(payload.into())
                    .message_id(change_id),
            )
            .await
            .expect("change published")
            .await
            .expect("change acknowledged");
    }

    pub async fn publish_availability(&self, change: &Availability) {
        self.publish(
            "availability",
            change.unit,
            &change.change_id,
            change.encode(),
        )
        .await;
    }

    pub async fn publish_price(&self, change: &Price) {
        self.publish("pricing", change.unit, &change.change_id, change.encode())
            .await;
    }

    /// Waits until the change consumer has taken every published change.
    pub async fn changes_consumed(&self) {
        let name = self.env.topology.changes_consumer();
        crate::eventually("every change to be projected", crate::DEADLINE, || async {
            let stream = self
                .env
                .js
                .get_stream(self.env.topology.changes_stream())
                .await
                .ok()?;
            let consumer: async_nats::jetstream::consumer::PullConsumer =
                stream.get_consumer(&name).await.ok()?;
            let info = consumer.get_info().await.ok()?;
            (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
        })
        .await;
    }

    /// The job queue, as the admin tool and the reconciliation use it.
    pub fn queue(&self) -> sync_dispatcher::queue::JobQueue {
        sync_dispatcher::queue::JobQueue::new(
            self.env.nats.clone(),
            self.env.topology.clone(),
            Duration::from_secs(5),
        )
    }

    /// Waits until some job holds its listing's lease (is running).
    pub async fn a_job_running(&self) {
        crate::eventually(
            "a job holding its lease",
            Duration::from_secs(30),
            || async {
                (self
                    .env
                    .count("SELECT count(*) FROM sync_jobs WHERE lease_until > now()")
                    .await
                    > 0)
                .then_some(())
            },
        )
        .await;
    }

    /// Job messages the queue ever took (folded ones not counted).
    pub async fn jobs_ever_queued(&self) -> u64 {
        let mut stream = self
            .env
            .js
            .get_stream(self.env.topology.sync_stream())
            .await
            .expect("the job stream exists");
        stream
            .info()
            .await
            .expect("stream info")
            .state
            .last_sequence
    }

    /// Waits until the job queue is empty (every job acknowledged).
    pub async fn queue_drained(&self) {
        crate::eventually(
            "the job queue to drain",
            Duration::from_secs(30),
            || async {
                (self.env.stream_len(&self.env.topology.sync_stream()).await == 0).then_some(())
            },
        )
        .await;
    }

    /// Requests the simulator received for one listing's calendar writes.
    pub async fn calendar_writes(&self, listing: u64) -> usize {
        let path = format!("/v1/listings/{listing}/calendarIntervals");
        self.sim
            .requests(None)
            .await
            .iter()
            .filter(|r| r.method == "PUT" && r.path == path && r.status == 200)
            .count()
    }

    /// Days of a listing where the simulator differs from `model`.
    pub async fn differences(&self, listing: &Linked, model: &Model) -> Vec<String> {
        let Some(days) = model.units.get(&listing.unit) else {
            return Vec::new();
        };
        let (Some(first), Some(last)) = (days.keys().next(), days.keys().last()) else {
            return Vec::new();
        };
        let state = self.sim.state.lock().await;
        let mut out = Vec::new();
        for (date, day) in state.calendar(listing.listing, *first, *last) {
            let Some(want) = days.get(&date) else {
                continue;
            };
            let mismatch = want.available.is_some_and(|a| a.value != day.is_available)
                || want
                    .min_stay
                    .is_some_and(|m| i64::from(m.value) != day.minimum_stay)
                || want
                    .price_minor
                    .is_some_and(|p| (p.value as f64 / 100.0 - day.price).abs() > 1e-9);
            if mismatch {
                out.push(format!("{date}: want {want:?}, Hostaway has {day:?}"));
            }
        }
        out
    }

    /// Waits until every listing's calendar on the simulator matches `model`.
    pub async fn converged(&self, model: &Model, deadline: Duration) {
        crate::eventually("Hostaway's calendars to match TVL", deadline, || async {
            self.matches(model).await.then_some(())
        })
        .await;
    }

    /// Whether every listing's calendar on Hostaway is what TVL wants now.
    pub async fn matches(&self, model: &Model) -> bool {
        for listing in &self.listings {
            if !self.differences(listing, model).await.is_empty() {
                return false;
            }
        }
        true
    }
}

pub type IsolatedDispatcher = Isolated;

/// A value with the stamp that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamped<T> {
    pub value: T,
    pub stamp: (i64, u64, u64),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WantedDay {
    pub available: Option<Stamped<bool>>,
    pub min_stay: Option<Stamped<u32>>,
    pub price_minor: Option<Stamped<i64>>,
}

/// What TVL wants, computed the way the contract says: per unit, day and
/// field, the change with the greatest (occurred_at, version, change_id).
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub units: BTreeMap<UnitId, BTreeMap<NaiveDate, WantedDay>>,
}

fn newer<T>(slot: &mut Option<Stamped<T>>, candidate: Stamped<T>) {
    if slot.as_ref().is_none_or(|s| s.stamp < candidate.stamp) {
        *slot = Some(candidate);
    }
}

impl Model {
    /// The fewest calendar writes that bring a Hostaway knowing nothing of
    /// TVL's calendar to this one: maximal runs of equal wanted values per
    /// kind, 200 a call.
    pub fn minimum_writes(&self, unit: UnitId) -> usize {
        use sync_dispatcher::plan::{self, PlannedDay};
        let Some(days) = self.units.get(&unit) else {
            return 0;
        };
        let availability: Vec<PlannedDay<(Option<bool>, Option<u32>)>> = days
            .iter()
            .filter(|(_, d)| d.available.is_some() || d.min_stay.is_some())
            .map(|(date, d)| PlannedDay {
                day: *date,
                want: (d.available.map(|a| a.value), d.min_stay.map(|m| m.value)),
                dirty: true,
            })
            .collect();
        let pricing: Vec<PlannedDay<i64>> = days
            .iter()
            .filter_map(|(date, d)| {
                d.price_minor.map(|p| PlannedDay {
                    day: *date,
                    want: p.value,
                    dirty: true,
                })
            })
            .collect();
        plan::calls_for(plan::runs(&availability).len())
            + plan::calls_for(plan::runs(&pricing).len())
    }

    /// The fewest calendar writes when a listing's availability, stay rules
    /// and prices go out together: maximal runs of the combined wanted
    /// values, 200 a call.
    pub fn minimum_writes_combined(&self, unit: UnitId) -> usize {
        use sync_dispatcher::plan::{self, PlannedDay};
        type Wanted = (Option<bool>, Option<u32>, Option<i64>);
        let Some(days) = self.units.get(&unit) else {
            return 0;
        };
        let combined: Vec<PlannedDay<Wanted>> = days
            .iter()
            .filter(|(_, d)| {
                d.available.is_some() || d.min_stay.is_some() || d.price_minor.is_some()
            })
            .map(|(date, d)| PlannedDay {
                day: *date,
                want: (
                    d.available.map(|a| a.value),
                    d.min_stay.map(|m| m.value),
                    d.price_minor.map(|p| p.value),
                ),
                dirty: true,
            })
            .collect();
        plan::calls_for(plan::runs(&combined).len())
    }

    pub fn apply_availability(&mut self, change: &Availability) {
        let days = self.units.entry(change.unit).or_default();
        for date in change.start.iter_days().take_while(|d| *d <= change.end) {
            let day = days.entry(date).or_default();
            if let Some(value) = change.available {
                newer(
                    &mut day.available,
                    Stamped {
                        value,
                        stamp: change.stamp(),
                    },
                );
            }
            if let Some(value) = change.min_stay {
                newer(
                    &mut day.min_stay,
                    Stamped {
                        value,
                        stamp: change.stamp(),
                    },
                );
            }
        }
    }

    /// What TVL wants after the changes of both models.
    pub fn merge(&mut self, other: Model) {
        for (unit, days) in other.units {
            let into = self.units.entry(unit).or_default();
            for (date, wanted) in days {
                let slot = into.entry(date).or_default();
                if let Some(v) = wanted.available {
                    newer(&mut slot.available, v);
                }
                if let Some(v) = wanted.min_stay {
                    newer(&mut slot.min_stay, v);
                }
                if let Some(v) = wanted.price_minor {
                    newer(&mut slot.price_minor, v);
                }
            }
        }
    }

    pub fn apply_price(&mut self, change: &Price) {
        let days = self.units.entry(change.unit).or_default();
        for date in change.start.iter_days().take_while(|d| *d <= change.end) {
            newer(
                &mut days.entry(date).or_default().price_minor,
                Stamped {
                    value: change.price_minor,
                    stamp: change.stamp(),
                },
            );
        }
    }
}

/// An availability change as a test writes it.
#[derive(Debug, Clone)]
pub struct Availability {
    pub change_id: String,
    /// Numeric part of the id: the model's tie-breaker (ids are zero-padded).
    pub seq: u64,
    pub unit: UnitId,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub available: Option<bool>,
    pub min_stay: Option<u32>,
    pub occurred_at: DateTime<Utc>,
    pub version: u64,
}

impl Availability {
    pub fn stamp(&self) -> (i64, u64, u64) {
        (self.occurred_at.timestamp_micros(), self.version, self.seq)
    }

    pub fn encode(&self) -> Vec<u8> {
        pb::AvailabilityChange {
            header: Some(header(
                &self.change_id,
                self.unit,
                self.occurred_at,
                self.version,
                "test",
            )),
            dates: dates(self.start, self.end),
            available: self.available,
            min_stay: self.min_stay,
            max_stay: None,
        }
        .encode_to_vec()
    }
}

#[derive(Debug, Clone)]
pub struct Price {
    pub change_id: String,
    pub seq: u64,
    pub unit: UnitId,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub price_minor: i64,
    pub currency: String,
    pub occurred_at: DateTime<Utc>,
}

impl Price {
    pub fn stamp(&self) -> (i64, u64, u64) {
        (self.occurred_at.timestamp_micros(), 0, self.seq)
    }

    pub fn encode(&self) -> Vec<u8> {
        pb::PriceChange {
            header: Some(header(
                &self.change_id,
                self.unit,
                self.occurred_at,
                0,
                "test",
            )),
            dates: dates(self.start, self.end),
            nightly_price: Some(pb::Money {
                minor_units: self.price_minor,
                currency: self.currency.clone(),
            }),
        }
        .encode_to_vec()
    }
}

/// A change id whose byte order is its number's order (the model relies on it).
pub fn change_id(seq: u64) -> String {
    format!("chg-{seq:012}")
}

/// Days from today, as dates the connector pushes (it skips the past).
pub fn day(offset: i64) -> NaiveDate {
    Utc::now().date_naive() + chrono::Duration::days(offset)
}

/// A calendarIntervals item, for editing the simulator by hand.
pub fn interval(
    start: NaiveDate,
    end: NaiveDate,
    fields: serde_json::Value,
) -> serde_json::Map<String, serde_json::Value> {
    let mut map = json!({"startDate": start.to_string(), "endDate": end.to_string()});
    if let (Some(map), serde_json::Value::Object(extra)) = (map.as_object_mut(), fields) {
        map.extend(extra);
    }
    match map {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}
