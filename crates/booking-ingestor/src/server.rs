//! Wiring: migrations, stream provisioning, the durable consumer, the outbox
//! sweeper, readiness, and draining on shutdown.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use service_kit::health::Condition;
use service_kit::health::Health;
use service_kit::metrics::Metrics;
use service_kit::nats::{ConsumerSettings, StreamSettings, Topology};
use store::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::consumer::Worker;
use crate::dead_letter::DeadLetterer;
use crate::metrics::IngestorMetrics;
use crate::outbox::{EventPublisher, PublishedMarks, sweep_loop};
use retry::RetryPolicy;
use service_kit::consume::{DbGate, Stopped};
use service_kit::sync_queue::JobQueue;

#[derive(Debug, Clone)]
pub struct IngestorSettings {
    pub topology: Topology,
    pub streams: StreamSettings,
    /// The durable consumers as provisioned (the ingestor's ack wait and
    /// ack-pending bound are verified against the one found).
    pub consumers: ConsumerSettings,
    /// Batches of webhooks processed at once.
    pub concurrency: usize,
    /// Webhooks applied in one transaction at most (a burst fills batches;
    /// a trickle is applied one by one, never waiting for company).
    pub batch: usize,
    pub retry: RetryPolicy,
    pub outbox_sweep_interval: Duration,
    /// Unpublished events younger than this are left to their worker.
    pub outbox_min_age: Duration,
    pub migrate: bool,
    pub retention: crate::maintenance::Retention,
    /// When parked webhooks are released again (see [`default_park_schedule`]).
    pub park_schedule: Vec<Duration>,
    pub release: crate::release::ReleaseSettings,
    /// Statement or lock timeouts of one webhook that cost no attempt.
    pub free_timeouts: i32,
    pub shutdown_timeout: Duration,
}

/// The retries of a parked webhook: 10 s, 30 s, 1, 2, 5, 10, 15 and 30 min,
/// 1 h twice, 2 h twice and 3 h: thirteen releases over 10 h 04 min after it
/// was first parked, then the dead-letter queue. Hostaway's first webhook of
/// a reservation can lag its updates by minutes; a waiting webhook is also
/// released at once when its reservation's booking is created, its listing
/// linked or its account enabled.
pub fn default_park_schedule() -> Vec<Duration> {
    [
        10, 30, 60, 120, 300, 600, 900, 1800, 3600, 3600, 7200, 7200, 10800,
    ]
    .into_iter()
    .map(Duration::from_secs)
    .collect()
}

impl IngestorSettings {
    pub fn new(topology: Topology) -> Self {
        Self {
            topology,
            streams: StreamSettings::default(),
            consumers: ConsumerSettings::default(),
            concurrency: 8,
            batch: 16,
            retry: RetryPolicy {
                max_attempts: 5,
                base: Duration::from_millis(1000),
                cap: Duration::from_millis(32_000),
            },
            outbox_sweep_interval: Duration::from_secs(2),
            outbox_min_age: Duration::from_secs(5),
            migrate: true,
            retention: crate::maintenance::Retention::default(),
            park_schedule: default_park_schedule(),
            release: crate::release::ReleaseSettings::default(),
            free_timeouts: 3,
            shutdown_timeout: Duration::from_secs(25),
        }
    }
}

#[derive(Debug, Clone)]
pub struct IngestorDeps {
    pub nats: async_nats::Client,
    pub pool: PgPool,
    pub metrics: Metrics,
    pub health: Health,
}

#[derive(Debug)]
pub struct Ingestor {
    settings: IngestorSettings,
    deps: IngestorDeps,
    metrics: IngestorMetrics,
    consuming: Condition,
}

impl Ingestor {
    pub fn new(settings: IngestorSettings, deps: IngestorDeps) -> anyhow::Result<Self> {
        let metrics = IngestorMetrics::register(&deps.metrics)?;
        let consuming = deps.health.condition("consumer", "starting");
        let nats = deps.nats.clone();
        deps.health
            .add("nats", move || service_kit::nats::is_connected(&nats));
        Ok(Self {
            settings,
            deps,
            metrics,
            consuming,
        })
    }

    /// Runs until `stop`, then drains in-flight webhooks within the deadline.
    pub async fn run(self, stop: CancellationToken) {
        let js = jetstream::new(self.deps.nats.clone());
        let publisher = Arc::new(EventPublisher::new(
            js.clone(),
            self.settings.topology.clone(),
            self.metrics.clone(),
        ));
        let in_flight = TaskTracker::new();
        let background = TaskTracker::new();
        let worker = Arc::new(Worker {
            pool: self.deps.pool.clone(),
            publisher: Arc::clone(&publisher),
            marks: PublishedMarks::start(self.deps.pool.clone(), &background),
            dead_letterer: DeadLetterer::new(
                js.clone(),
                self.deps.pool.clone(),
                self.settings.topology.clone(),
            ),
            metrics: self.metrics.clone(),
            retry: self.settings.retry.clone(),
            gate: Arc::new(DbGate::default()),
            park_schedule: self.settings.park_schedule.clone(),
            free_timeouts: self.settings.free_timeouts,
            // Well inside the ack wait: a batch held up by a lock is never
            // redelivered while it is still being applied.
            progress_every: (self.settings.consumers.ingest_ack_wait / 3)
                .max(Duration::from_secs(1)),
            jobs: JobQueue::new(
                self.deps.nats.clone(),
                self.settings.topology.clone(),
                Duration::from_secs(5),
            ),
        });

        let consuming = self.consuming.clone();
        self.metrics.database_available.set(1);

        background.spawn(sweep_loop(
            publisher,
            self.deps.pool.clone(),
            self.settings.outbox_sweep_interval,
            self.settings.outbox_min_age,
            stop.clone(),
        ));
        background.spawn(crate::release::run(
            self.deps.pool.clone(),
            js.clone(),
            self.metrics.clone(),
            self.settings.release.clone(),
            stop.clone(),
        ));
        background.spawn(crate::maintenance::run(
            self.deps.pool.clone(),
            self.metrics.clone(),
            self.settings.retention.clone(),
            stop.clone(),
        ));
        let settings = self.settings.clone();
        let pool = self.deps.pool.clone();
        let consumer_stop = stop.clone();
        let tracker = in_flight.clone();
        background.spawn(async move {
            loop {
                let Some(consumer) =
                    prepare(&settings, &pool, &js, &consuming, &consumer_stop).await
                else {
                    return;
                };
                consuming.ok();
                tracing::info!(
                    consumer = settings.topology.ingestor_consumer(),
                    concurrency = settings.concurrency,
                    "booking ingestor consuming"
                );
                let stopped = worker
                    .consume(
                        &consumer,
                        settings.concurrency,
                        settings.batch,
                        &consumer_stop,
                        &tracker,
                    )
                    .await;
                consuming.fail("the consumer is being bound again");
                if stopped == Stopped::Shutdown {
                    return;
                }
                tracing::warn!("pulling keeps failing; binding the consumer again");
            }
        });
        background.close();

        stop.cancelled().await;
        tracing::info!("booking ingestor draining");
        let drained = service_kit::shutdown::drain_within(self.settings.shutdown_timeout, async {
            background.wait().await;
            in_flight.close();
            in_flight.wait().await;
        })
        .await;
        service_kit::shutdown::flush_nats(&self.deps.nats).await;
        tracing::info!(drained, "booking ingestor stopped");
    }
}

/// Migrates, provisions and binds the durable consumer, retrying each until it
/// works (the database or NATS may come up after this process).
async fn prepare(
    settings: &IngestorSettings,
    pool: &PgPool,
    js: &jetstream::Context,
    condition: &Condition,
    stop: &CancellationToken,
) -> Option<jetstream::consumer::PullConsumer> {
    let config =
        service_kit::nats::ingestor_consumer_config(&settings.topology, &settings.consumers);
    service_kit::consume::bind_until_ready(
        js,
        &settings.topology.webhooks_stream(),
        &config,
        condition,
        stop,
        || async {
            if settings.migrate {
                store::migrate(pool).await?;
            } else {
                store::verify_schema(pool).await?;
            }
            service_kit::nats::verify_streams(js, &settings.topology, &settings.streams)
                .await
                .map_err(anyhow::Error::msg)
        },
    )
    .await
}
