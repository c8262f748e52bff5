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

/// Sleeps, unless `stop` fires first (then returns true).
pub async fn sleep_or_stop(stop: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

/// Creates (or binds to) a durable pull consumer, retrying with backoff until
/// it works or `stop` fires: NATS, the stream or the database behind `prepare`
/// may come up after this process. `prepare` runs before each attempt
/// (migrations, stream provisioning).
pub async fn bind_until_ready<F, Fut>(
    js: &jetstream::Context,
    stream: &str,
    config: &pull::Config,
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
            let stream = js.get_stream(stream).await?;
            let consumer = stream.get_or_create_consumer(&name, config.clone()).await?;
            anyhow::Ok(consumer)
        }
        .await;
        match result {
            Ok(consumer) => return Some(consumer),
            Err(error) => {
                tracing::warn!(consumer = %name, %error, "consumer not ready; retrying");
                if sleep_or_stop(stop, delay).await {
                    return None;
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// How long a pull request waits on the server, and how often the server
/// proves it is alive while doing so: a lost pull is noticed within seconds.
pub const PULL_EXPIRES: Duration = Duration::from_secs(30);
pub const PULL_HEARTBEAT: Duration = Duration::from_secs(5);
/// Consecutive pull errors after which the consumer is bound afresh (it may
/// have been deleted with its stream).
pub const MAX_PULL_ERRORS: u32 = 5;

/// A consumer's messages, pulled in batches of `batch`, with server
/// heartbeats so a lost pull request is noticed within seconds.
pub async fn messages(
    consumer: &PullConsumer,
    batch: usize,
) -> Result<
    async_nats::jetstream::consumer::pull::Stream,
    async_nats::jetstream::consumer::StreamError,
> {
    consumer
        .stream()
        .max_messages_per_batch(batch.max(1))
        .expires(PULL_EXPIRES)
        .heartbeat(PULL_HEARTBEAT)
        .messages()
        .await
}

/// Shutting down: the messages already pulled and not handled go back at
/// once (another replica takes them now, not after the ack wait).
async fn give_back(messages: &mut async_nats::jetstream::consumer::pull::Stream) {
    use futures::{FutureExt, StreamExt};
    while let Some(Some(Ok(message))) = messages.next().now_or_never() {
        ack(&message, AckKind::Nak(None)).await;
    }
}

/// Why [`pull_loop`] returned.
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
/// runs `handle` on each message with at most `concurrency` in flight (on
/// `tracker`, so shutdown can drain them). While the database gate is closed
/// nothing new is taken.
pub async fn pull_loop<F, Fut>(
    consumer: &PullConsumer,
    concurrency: usize,
    gate: &GateCheck,
    stop: &CancellationToken,
    tracker: &tokio_util::task::TaskTracker,
    handle: F,
) -> Stopped
where
    F: Fn(jetstream::Message) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use futures::StreamExt;
    let concurrency = concurrency.max(1);
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut failed_pulls = 0u32;
    loop {
        let mut messages = match messages(consumer, concurrency * 2).await {
            Ok(messages) => messages,
            Err(error) => {
                failed_pulls += 1;
                tracing::warn!(%error, "cannot pull from the consumer");
                if failed_pulls >= MAX_PULL_ERRORS {
                    return Stopped::Rebind;
                }
                if sleep_or_stop(stop, Duration::from_secs(1)).await {
                    return Stopped::Shutdown;
                }
                continue;
            }
        };
        loop {
            if !gate.gate.is_up() {
                if let Some(available) = &gate.available {
                    available.set(0);
                }
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
                    give_back(&mut messages).await;
                    return Stopped::Shutdown;
                }
                permit = std::sync::Arc::clone(&permits).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return Stopped::Shutdown,
                },
            };
            let next = tokio::select! {
                biased;
                () = stop.cancelled() => {
                    give_back(&mut messages).await;
                    return Stopped::Shutdown;
                }
                next = messages.next() => next,
            };
            match next {
                Some(Ok(message)) => {
                    failed_pulls = 0;
                    let work = handle(message);
                    tracker.spawn(async move {
                        work.await;
                        drop(permit);
                    });
                }
                Some(Err(error)) => {
                    failed_pulls += 1;
                    tracing::warn!(%error, "pull error");
                    if failed_pulls >= MAX_PULL_ERRORS {
                        return Stopped::Rebind;
                    }
                }
                None => break,
            }
        }
    }
}
