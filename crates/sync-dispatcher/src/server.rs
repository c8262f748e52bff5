//! Wiring: migrations, stream provisioning, the change consumer, the job
//! lanes, the reconciliation schedules, readiness, and draining on shutdown.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer};
use domain::SyncKind;
use hostaway_client::HostawayClient;
use service_kit::consume::{DbGate, GateCheck, Stopped, bind_until_ready, pull_batches};
use service_kit::health::Condition;
use service_kit::health::Health;
use service_kit::metrics::Metrics;
use service_kit::nats::{ConsumerSettings, StreamSettings, Topology};
use service_kit::publish::Publisher;
use store::PgPool;
use store::crypto::CredentialCipher;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::changes::ChangeConsumer;
use crate::dead_letter::SyncDeadLetters;
use crate::metrics::SyncMetrics;
use crate::polling::{PollSettings, ReservationPoller};
use crate::queue::{JobLane, JobQueue};
use crate::reconcile::Schedule;
use crate::worker::{JobRunner, WorkerSettings};

/// Which parts run in this process (all by default; a deployment may split
/// them, and tests start them one by one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub changes: bool,
    pub jobs: bool,
    pub reconcile: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        changes: true,
        jobs: true,
        reconcile: true,
    };
}

#[derive(Debug, Clone)]
pub struct DispatcherSettings {
    pub topology: Topology,
    pub streams: StreamSettings,
    pub roles: Roles,
    pub migrate: bool,
    /// Changes projected at once.
    pub change_concurrency: usize,
    /// TVL changes projected in one transaction at most.
    pub change_batch: usize,
    /// Jobs run at once (they share the client's rate budget).
    pub job_concurrency: usize,
    pub weights: Vec<(JobLane, u32)>,
    /// The durable consumers as provisioned: redelivery of a change or a job
    /// a crashed replica held (running jobs extend theirs).
    pub consumers: ConsumerSettings,
    pub worker: WorkerSettings,
    pub poll: PollSettings,
    pub schedules: Vec<Schedule>,
    /// A claimed reconciliation slot not completed for this long (its
    /// replica died) is taken over by another replica.
    pub slot_takeover: Duration,
    /// How often accounts' own reconciliation schedules are checked (their
    /// cron patterns are honoured to this precision).
    pub account_schedule_tick: Duration,
    pub queue_timeout: Duration,
    pub queue_gauge_interval: Duration,
    pub shutdown_timeout: Duration,
}

impl DispatcherSettings {
    pub fn new(topology: Topology) -> Self {
        Self {
            topology,
            streams: StreamSettings::default(),
            roles: Roles::ALL,
            migrate: true,
            change_concurrency: 4,
            change_batch: 128,
            job_concurrency: 4,
            weights: crate::lanes::DEFAULT_WEIGHTS.to_vec(),
            consumers: ConsumerSettings::default(),
            worker: WorkerSettings::default(),
            poll: PollSettings::default(),
            schedules: crate::reconcile::default_patterns()
                .iter()
                .filter_map(|(kind, pattern)| Schedule::parse(*kind, pattern).ok())
                .collect(),
            slot_takeover: Duration::from_secs(300),
            account_schedule_tick: Duration::from_secs(60),
            queue_timeout: Duration::from_secs(5),
            queue_gauge_interval: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(25),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DispatcherDeps {
    pub nats: async_nats::Client,
    pub pool: PgPool,
    pub metrics: Metrics,
    pub health: Health,
    pub client: HostawayClient,
    /// Decrypts the stored API keys (to tell a rotation from a rewrap).
    pub cipher: Arc<CredentialCipher>,
}

#[derive(Debug)]
pub struct SyncDispatcher {
    settings: DispatcherSettings,
    deps: DispatcherDeps,
    metrics: SyncMetrics,
    changes_ready: Option<Condition>,
    jobs_ready: Option<Condition>,
}

impl SyncDispatcher {
    pub fn new(settings: DispatcherSettings, deps: DispatcherDeps) -> anyhow::Result<Self> {
        let metrics = SyncMetrics::register(&deps.metrics)?;
        let nats = deps.nats.clone();
        deps.health
            .add("nats", move || service_kit::nats::is_connected(&nats));
        let changes_ready = settings
            .roles
            .changes
            .then(|| deps.health.condition("changes_consumer", "starting"));
        let jobs_ready = settings
            .roles
            .jobs
            .then(|| deps.health.condition("job_consumers", "starting"));
        Ok(Self {
            settings,
            deps,
            metrics,
            changes_ready,
            jobs_ready,
        })
    }

    pub fn metrics(&self) -> &SyncMetrics {
        &self.metrics
    }

    /// Runs until `stop`, then drains in-flight work within the deadline.
    pub async fn run(self, stop: CancellationToken) {
        let settings = Arc::new(self.settings);
        let deps = self.deps;
        let js = jetstream::new(deps.nats.clone());
        let queue = JobQueue::new(
            deps.nats.clone(),
            settings.topology.clone(),
            settings.queue_timeout,
        );
        let dead_letters =
            SyncDeadLetters::new(js.clone(), deps.pool.clone(), settings.topology.clone());
        let gate = Arc::new(DbGate::default());
        let holder = Uuid::new_v4();
        self.metrics.database_available.set(1);
        let in_flight = TaskTracker::new();
        let background = TaskTracker::new();

        if settings.roles.changes {
            let consumer = Arc::new(ChangeConsumer {
                pool: deps.pool.clone(),
                queue: queue.clone(),
                dead_letters: dead_letters.clone(),
                metrics: self.metrics.clone(),
                gate: Arc::clone(&gate),
            });
            let gate = GateCheck {
                gate: Arc::clone(&gate),
                pool: deps.pool.clone(),
                available: Some(self.metrics.database_available.clone()),
            };
            let config =
                service_kit::nats::changes_consumer_config(&settings.topology, &settings.consumers);
            let (settings, js, pool, stop, tracker) = (
                Arc::clone(&settings),
                js.clone(),
                deps.pool.clone(),
                stop.clone(),
                in_flight.clone(),
            );
            let ready = self
                .changes_ready
                .clone()
                .unwrap_or_else(|| Health::new().condition("unused", ""));
            background.spawn(async move {
                loop {
                    let Some(bound) = bind_until_ready(
                        &js,
                        &settings.topology.changes_stream(),
                        &config,
                        &ready,
                        &stop,
                        || prepare(&settings, &pool, &js),
                    )
                    .await
                    else {
                        return;
                    };
                    ready.ok();
                    tracing::info!(consumer = %settings.topology.changes_consumer(), "consuming TVL changes");
                    let stopped = pull_batches(
                        &bound,
                        settings.change_concurrency,
                        settings.change_batch,
                        &gate,
                        &stop,
                        &tracker,
                        |messages| {
                            let consumer = Arc::clone(&consumer);
                            async move { consumer.handle_batch(messages).await }
                        },
                    )
                    .await;
                    ready.fail("the consumers are being bound again");
                    if stopped == Stopped::Shutdown {
                        return;
                    }
                }
            });
        }

        if settings.roles.jobs {
            background.spawn(crate::credentials::watch_api_keys(
                deps.pool.clone(),
                Arc::clone(&deps.cipher),
                deps.client.clone(),
                stop.clone(),
            ));
            let runner = Arc::new(JobRunner {
                pool: deps.pool.clone(),
                client: deps.client.clone(),
                queue: queue.clone(),
                dead_letters: dead_letters.clone(),
                poller: ReservationPoller {
                    pool: deps.pool.clone(),
                    client: deps.client.clone(),
                    inbound: Publisher::new(deps.nats.clone(), settings.poll.publish_timeout),
                    topology: settings.topology.clone(),
                    metrics: self.metrics.clone(),
                    settings: settings.poll.clone(),
                    holder,
                },
                metrics: self.metrics.clone(),
                gate: Arc::clone(&gate),
                settings: settings.worker.clone(),
                holder,
                currency_reads: Default::default(),
                calendar_reads: Default::default(),
                calendar_pushes: Default::default(),
                stop: stop.clone(),
                // Room to release leases and give messages back before the
                // deadline.
                shutdown_grace: settings
                    .shutdown_timeout
                    .saturating_sub(Duration::from_secs(5)),
            });
            let (settings, js, pool, stop, tracker, ready, metrics, background_tasks) = (
                Arc::clone(&settings),
                js.clone(),
                deps.pool.clone(),
                stop.clone(),
                in_flight.clone(),
                self.jobs_ready
                    .clone()
                    .unwrap_or_else(|| Health::new().condition("unused", "")),
                self.metrics.clone(),
                background.clone(),
            );
            background.spawn(async move {
                loop {
                    let Some(consumers) =
                        bind_job_consumers(&settings, &pool, &js, &ready, &stop).await
                    else {
                        return;
                    };
                    ready.ok();
                    let gauge_stop = stop.child_token();
                    background_tasks.spawn(queue_gauge(
                        consumers.clone(),
                        pool.clone(),
                        metrics.clone(),
                        settings.queue_gauge_interval,
                        gauge_stop.clone(),
                    ));
                    tracing::info!(concurrency = settings.job_concurrency, "running sync jobs");
                    let stopped = crate::lanes::run(
                        &runner,
                        &consumers,
                        &settings.weights,
                        settings.job_concurrency,
                        &stop,
                        &tracker,
                    )
                    .await;
                    gauge_stop.cancel();
                    ready.fail("the consumers are being bound again");
                    if stopped == Stopped::Shutdown {
                        return;
                    }
                    tracing::warn!("pulling sync jobs keeps failing; binding again");
                }
            });
        }

        if settings.roles.reconcile {
            background.spawn(crate::reconcile::run(
                settings.schedules.clone(),
                settings.account_schedule_tick,
                settings.slot_takeover,
                deps.pool.clone(),
                queue.clone(),
                holder,
                self.metrics.clone(),
                stop.clone(),
            ));
        }

        stop.cancelled().await;
        tracing::info!("sync dispatcher draining");
        let drained = service_kit::shutdown::drain_within(settings.shutdown_timeout, async {
            background.close();
            background.wait().await;
            in_flight.close();
            in_flight.wait().await;
        })
        .await;
        service_kit::shutdown::flush_nats(&deps.nats).await;
        tracing::info!(drained, "sync dispatcher stopped");
    }
}

/// Before binding a consumer: the schema is this binary's (or migrated, where
/// the service is told to) and the streams are as configured; nothing is
/// changed (`hostaway-admin` owns the topology).
async fn prepare(
    settings: &DispatcherSettings,
    pool: &PgPool,
    js: &jetstream::Context,
) -> anyhow::Result<()> {
    if settings.migrate {
        store::migrate(pool).await?;
    } else {
        store::verify_schema(pool).await?;
    }
    service_kit::nats::verify_streams(js, &settings.topology, &settings.streams)
        .await
        .map_err(anyhow::Error::msg)
}

/// One durable consumer per line, in the order of the weights (the round
/// robin's order, as unit-tested).
async fn bind_job_consumers(
    settings: &DispatcherSettings,
    pool: &PgPool,
    js: &jetstream::Context,
    condition: &Condition,
    stop: &CancellationToken,
) -> Option<Vec<(JobLane, PullConsumer)>> {
    let mut lanes: Vec<JobLane> = settings.weights.iter().map(|(lane, _)| *lane).collect();
    for lane in JobLane::all() {
        if !lanes.contains(&lane) {
            lanes.push(lane);
        }
    }
    let mut consumers = Vec::new();
    for lane in lanes {
        let config =
            service_kit::nats::job_consumer_config(&settings.topology, lane, &settings.consumers);
        let consumer = bind_until_ready(
            js,
            &settings.topology.sync_stream(),
            &config,
            condition,
            stop,
            || prepare(settings, pool, js),
        )
        .await?;
        consumers.push((lane, consumer));
    }
    Some(consumers)
}

/// Keeps `hostaway_sync_queue_length` current (jobs of each kind waiting or
/// running, in both modes), and `hostaway_reservation_poll_oldest_seconds`.
async fn queue_gauge(
    consumers: Vec<(JobLane, PullConsumer)>,
    pool: store::PgPool,
    metrics: SyncMetrics,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        for kind in SyncKind::ALL {
            let mut length = 0u64;
            let mut known = false;
            for (_, consumer) in consumers.iter().filter(|(lane, _)| lane.kind == kind) {
                if let Ok(info) = consumer.get_info().await {
                    known = true;
                    length = length
                        .saturating_add(info.num_pending)
                        .saturating_add(info.num_ack_pending as u64);
                }
            }
            if known {
                metrics
                    .queue_length
                    .with_label_values(&[kind.as_str()])
                    .set(i64::try_from(length).unwrap_or(i64::MAX));
            }
        }
        if let Ok(Some(age)) = store::sync_jobs::oldest_poll_age_secs(&pool).await {
            metrics.poll_oldest_seconds.set(age);
        }
        if service_kit::consume::sleep_or_stop(&stop, every).await {
            return;
        }
    }
}
