//! What every JetStream consumer loop of the connector shares: the database
//! gate that pauses consumption during a PostgreSQL outage, acknowledgements
//! that never fail a handler, and binding a durable consumer once the streams
//! exist.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer, consumer::pull};
use store::PgPool;
use tokio_util::sync::CancellationToken;

/// Whether PostgreSQL is usable, shared by all workers of a process.
#[derive(Debug, Default)]
pub struct DbGate {
    down: AtomicBool,
    failures: AtomicU32,
}

impl DbGate {
    pub fn is_up(&self) -> bool {
        !self.down.load(Ordering::Acquire)
    }

    pub fn mark_down(&self) {
        self.failures.fetch_add(1, Ordering::AcqRel);
        self.down.store(true, Ordering::Release);
    }

    pub fn mark_up(&self) {
        self.failures.store(0, Ordering::Release);
        self.down.store(false, Ordering::Release);
    }

    /// Reads a database error for a consumer: an outage closes the gate
    /// (consumption waits for the database); the rest is the work's.
    pub fn note(&self, error: &store::StoreError) -> store::Trouble {
        let trouble = error.trouble();
        if trouble == store::Trouble::Outage {
            self.mark_down();
        }
        trouble
    }

    /// Grows with consecutive failures: 250 ms … 15 s.
    pub fn retry_delay(&self) -> Duration {
        let failures = self.failures.load(Ordering::Acquire).clamp(1, 7);
        (Duration::from_millis(250) * 2u32.pow(failures - 1)).min(Duration::from_secs(15))
    }

    /// Probes the database until it answers. Returns false if stopped first.
    pub async fn wait_until_up(&self, pool: &PgPool, stop: &CancellationToken) -> bool {
        while !self.is_up() {
            match store::ping(pool).await {
                Ok(()) => {
                    tracing::info!("database reachable again; resuming consumption");
                    self.mark_up();
                }
                Err(_) => {
                    self.failures.fetch_add(1, Ordering::AcqRel);
                    if sleep_or_stop(stop, self.retry_delay()).await {
                        return false;
                    }
                }
            }
        }
        true
    }
}

/// Acknowledges (or naks, or extends) a message. A lost acknowledgement is
/// only logged: the server redelivers after `ack_wait`, and every handler of
/// the connector is idempotent.
pub async fn ack(message: &jetstream::Message, kind: AckKind) {
    if let Err(error) = message.ack_with(kind).await {
        tracing::warn!(%error, "acknowledgement not sent");
    }
}

/// How long work that met contention (another transaction in the way)
/// waits before it runs again: soon, spread so the rivals do not meet again.
pub fn contention_delay() -> Duration {
    Duration::from_millis(50)
        + retry::full_jitter(Duration::from_millis(100), Duration::from_secs(1), 3)
}

/// Sleeps, unless `stop` fires first (then returns true).
pub async fn sleep_or_stop(stop: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

/// Binds a durable pull consumer `hostaway-admin` provisioned, retrying with
/// backoff until it works or `stop` fires. `prepare` runs before each
/// attempt (the streams and the schema verified, or migrated where a service
/// is told to). What fails is reported on `condition` (a readiness check),
/// so `/readyz` names it; the service never changes the topology itself.
pub async fn bind_until_ready<F, Fut>(
    js: &jetstream::Context,
    stream: &str,
    config: &pull::Config,
    condition: &crate::health::Condition,
    stop: &CancellationToken,
    mut prepare: F,
) -> Option<PullConsumer>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let name = config.durable_name.clone().unwrap_or_default();
    let mut delay = Duration::from_millis(200);
    loop {
        let result = async {
            prepare().await?;
            crate::nats::bind_consumer(js, stream, config)
                .await
                .map_err(anyhow::Error::msg)
        }
        .await;
        match result {
            Ok(consumer) => return Some(consumer),
            Err(error) => {
                let reason = format!("{error:#}");
                if condition.reason().as_deref() != Some(reason.as_str()) {
                    tracing::warn!(consumer = %name, problem = %reason, "consumer not ready; retrying");
                }
                condition.fail(reason);
                if sleep_or_stop(stop, delay).await {
                    return None;
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// How long one pull request waits on the server. Requests are one-shot and
/// short so that a replica shutting down can read its last request to the end
/// (the server answers 408 when it expires): nothing the server sent it is
/// left waiting out the ack wait. A lost request is noticed by the client
/// within this window plus five seconds.
pub const PULL_WINDOW: Duration = Duration::from_secs(2);
/// Consecutive pull errors after which the consumer is bound afresh (it may
/// have been deleted with its stream).
pub const MAX_PULL_ERRORS: u32 = 5;

/// What [`Pull::next`] brings.
// Returned by value and consumed at once, never stored: boxing the message
// would cost an allocation per message for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Pulled {
    Message(jetstream::Message),
    /// The pull failed (the consumer deleted, the server unreachable).
    Error(String),
    /// `stop` fired: call [`Pull::give_back`].
    Stopped,
}

/// A consumer's messages, pulled in one-shot requests of `batch` messages
/// lasting at most [`PULL_WINDOW`]. Unlike a continuous pull, the request in
/// flight when the replica stops can be read to its end: every message the
/// server delivered to this replica is either handled or given back.
pub struct Pull {
    consumer: PullConsumer,
    batch: usize,
    current: Option<pull::Batch>,
}

impl std::fmt::Debug for Pull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pull")
            .field("consumer", &self.consumer.cached_info().name)
            .field("batch", &self.batch)
            .field("requesting", &self.current.is_some())
            .finish()
    }
}

impl Pull {
    pub fn new(consumer: PullConsumer, batch: usize) -> Self {
        Self {
            consumer,
            batch: batch.max(1),
            current: None,
        }
    }

    /// The next message; waits for one until `stop` fires. Cancel-safe only
    /// through `stop`: dropping the future while a request is being sent may
    /// leave a message to its ack wait.
    pub async fn next(&mut self, stop: &CancellationToken) -> Pulled {
        use futures::StreamExt;
        loop {
            if stop.is_cancelled() {
                return Pulled::Stopped;
            }
            let current = match self.current.as_mut() {
                Some(current) => current,
                None => {
                    let request = self
                        .consumer
                        .batch()
                        .max_messages(self.batch)
                        .expires(PULL_WINDOW)
                        .messages()
                        .await;
                    match request {
                        Ok(batch) => self.current.insert(batch),
                        Err(error) => return Pulled::Error(error.to_string()),
                    }
                }
            };
            // Polling the request is cancel-safe: a message is either
            // returned or stays in the request for `give_back`.
            let item = tokio::select! {
                biased;
                () = stop.cancelled() => return Pulled::Stopped,
                item = current.next() => item,
            };
            match item {
                Some(Ok(message)) => return Pulled::Message(message),
                Some(Err(error)) => {
                    self.current = None;
                    return Pulled::Error(error.to_string());
                }
                // The request is fulfilled or expired: the next one.
                None => self.current = None,
            }
        }
    }

    /// A message the request in flight has already brought, if any: never
    /// waits and never sends a request (what [`Pull::next`] may do), so a
    /// batch takes what is there and goes.
    pub fn ready(&mut self) -> Option<jetstream::Message> {
        use futures::{FutureExt, StreamExt};
        let current = self.current.as_mut()?;
        match current.next().now_or_never()? {
            Some(Ok(message)) => Some(message),
            Some(Err(error)) => {
                tracing::debug!(%error, "pull request ended");
                self.current = None;
                None
            }
            None => {
                self.current = None;
                None
            }
        }
    }

    /// Shutting down: reads the request in flight to its end (at most
    /// [`PULL_WINDOW`]) and gives back whatever it still brings, at once:
    /// another replica takes it now, not after the ack wait.
    pub async fn give_back(&mut self) {
        use futures::StreamExt;
        let Some(mut current) = self.current.take() else {
            return;
        };
        while let Some(item) = current.next().await {
            if let Ok(message) = item {
                ack(&message, AckKind::Nak(None)).await;
            }
        }
    }
}

/// Why [`pull_batches`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Shutdown was requested.
    Shutdown,
    /// Pulling kept failing: bind the consumer again.
    Rebind,
}

/// Where a consumer loop checks the database before taking more work.
#[derive(Debug, Clone)]
pub struct GateCheck {
    pub gate: std::sync::Arc<DbGate>,
    pub pool: PgPool,
    /// Set to 1 while the database is usable, 0 while consumption waits on it.
    pub available: Option<prometheus::IntGauge>,
}

/// Pulls from `consumer` until `stop`, or until pulling keeps failing, and
/// runs `handle` on batches (on `tracker`, so shutdown can drain them): each
/// the first message waited for, then every message already pulled, up to
/// `max_batch` (a burst fills batches, a trickle sends them one by one
/// without waiting). At most `concurrency` batches at once; while the
/// database gate is closed nothing new is taken.
pub async fn pull_batches<F, Fut>(
    consumer: &PullConsumer,
    concurrency: usize,
    max_batch: usize,
    gate: &GateCheck,
    stop: &CancellationToken,
    tracker: &tokio_util::task::TaskTracker,
    handle: F,
) -> Stopped
where
    F: Fn(Vec<jetstream::Message>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let concurrency = concurrency.max(1);
    let max_batch = max_batch.max(1);
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut pull = Pull::new(consumer.clone(), (concurrency * 2).max(max_batch * 2));
    let mut failed_pulls = 0u32;
    loop {
        if !gate.gate.is_up() {
            if let Some(available) = &gate.available {
                available.set(0);
            }
            // What was pulled goes back rather than waiting on this replica.
            pull.give_back().await;
            if !gate.gate.wait_until_up(&gate.pool, stop).await {
                return Stopped::Shutdown;
            }
            if let Some(available) = &gate.available {
                available.set(1);
            }
        }
        let permit = tokio::select! {
            biased;
            () = stop.cancelled() => {
                pull.give_back().await;
                return Stopped::Shutdown;
            }
            permit = std::sync::Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return Stopped::Shutdown,
            },
        };
        match pull.next(stop).await {
            Pulled::Message(first) => {
                failed_pulls = 0;
                let mut batch = Vec::with_capacity(max_batch);
                batch.push(first);
                while batch.len() < max_batch {
                    match pull.ready() {
                        Some(message) => batch.push(message),
                        None => break,
                    }
                }
                let work = handle(batch);
                tracker.spawn(async move {
                    work.await;
                    drop(permit);
                });
            }
            Pulled::Error(error) => {
                failed_pulls += 1;
                tracing::warn!(%error, "pull error");
                if failed_pulls >= MAX_PULL_ERRORS {
                    return Stopped::Rebind;
                }
                if sleep_or_stop(stop, Duration::from_millis(200) * failed_pulls).await {
                    return Stopped::Shutdown;
                }
            }
            Pulled::Stopped => {
                pull.give_back().await;
                return Stopped::Shutdown;
            }
        }
    }
}
