//! The webhook port's connections, kept from starving Hostaway.
//!
//! Slow and idle clients cost a connection each, so the listener bounds how
//! many are open (`max_connections`) and how long one may sit without
//! finishing its request headers (`header_read_timeout`) or, between
//! requests, without sending anything (`idle_timeout`). When the cap is
//! reached a new connection is still taken: the connection that has been
//! idle longest (not one with a request in progress) is closed to make room,
//! so a flood of idle connections never keeps Hostaway's next delivery out.
//! Requests in progress are bounded by the handler's own body timeout.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::metrics::GatewayMetrics;

#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Open connections at most; past it the longest-idle one is closed.
    pub max_connections: usize,
    /// From a request's first byte to its last header byte.
    pub header_read_timeout: Duration,
    /// Between requests on a kept-alive connection (and before the first).
    pub idle_timeout: Duration,
    /// The request line and headers, at most (hyper answers 431 beyond).
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 16 * 1024,
        }
    }
}

impl ConnectionLimits {
    /// The connection cap this process can hold: each connection is a file
    /// descriptor, and past the process's limit the gateway could not accept
    /// at all (eviction would never engage). Leaves room for NATS,
    /// PostgreSQL, the ops port and the rest.
    pub fn fitted_to_open_file_limit(mut self) -> Self {
        const HEADROOM: u64 = 256;
        if let Some(limit) = open_file_limit() {
            let fits =
                usize::try_from(limit.saturating_sub(HEADROOM).max(64)).unwrap_or(usize::MAX);
            if self.max_connections > fits {
                tracing::warn!(
                    configured = self.max_connections,
                    open_file_limit = limit,
                    max_connections = fits,
                    "GATEWAY_MAX_CONNECTIONS exceeds what the open file limit allows; lowered (raise `ulimit -n`)"
                );
                self.max_connections = fits;
            }
        }
        self
    }
}

/// The soft limit of open files of this process (Linux `/proc`), if known.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Milliseconds on the listener's clock; 0 means "not set".
#[derive(Debug, Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }
}

/// What the reaper and the eviction need to know of one connection.
#[derive(Debug)]
struct ConnState {
    /// Requests being handled (the service was called, no response yet).
    in_request: AtomicU32,
    /// The HTTP layer is done; the socket is being drained before it closes
    /// (its own deadline): the first to go when room is needed.
    lingering: AtomicBool,
    /// When the first byte of the next request arrived (0: none yet).
    request_started: AtomicU64,
    /// When the connection was accepted or last finished a response.
    idle_since: AtomicU64,
    close: CancellationToken,
}

impl ConnState {
    fn idle_for(&self, now: u64) -> Option<(u64, bool)> {
        if self.in_request.load(Ordering::Acquire) > 0 {
            return None;
        }
        if self.lingering.load(Ordering::Acquire) {
            return Some((u64::MAX, false));
        }
        let started = self.request_started.load(Ordering::Acquire);
        if started != 0 {
            return Some((now.saturating_sub(started), true));
        }
        Some((
            now.saturating_sub(self.idle_since.load(Ordering::Acquire)),
            false,
        ))
    }
}

#[derive(Debug)]
struct Registry {
    clock: Clock,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self) -> (u64, Arc<ConnState>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState {
            in_request: AtomicU32::new(0),
            lingering: AtomicBool::new(false),
            request_started: AtomicU64::new(0),
            idle_since: AtomicU64::new(self.clock.now()),
            close: CancellationToken::new(),
        });
        self.lock().insert(id, Arc::clone(&state));
        (id, state)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Closes the connection idle longest; false when every open connection
    /// has a request in progress.
    fn evict_one(&self) -> bool {
        let now = self.clock.now();
        let open = self.lock();
        let victim = open
            .iter()
            .filter(|(_, state)| !state.close.is_cancelled())
            .filter_map(|(id, state)| state.idle_for(now).map(|(idle, _)| (idle, *id)))
            .max();
        match victim.and_then(|(_, id)| open.get(&id)) {
            Some(state) => {
                state.close.cancel();
                true
            }
            None => false,
        }
    }

    /// Closes connections past their header or idle timeout; returns how many
    /// of each.
    fn reap(&self, limits: &ConnectionLimits) -> (u64, u64) {
        let now = self.clock.now();
        let header = u64::try_from(limits.header_read_timeout.as_millis()).unwrap_or(u64::MAX);
        let idle = u64::try_from(limits.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let (mut headers, mut idles) = (0, 0);
        for state in self.lock().values() {
            if state.close.is_cancelled() || state.lingering.load(Ordering::Acquire) {
                continue;
            }
            match state.idle_for(now) {
                Some((waited, true)) if waited > header => {
                    state.close.cancel();
                    headers += 1;
                }
                Some((waited, false)) if waited > idle => {
                    state.close.cancel();
                    idles += 1;
                }
                _ => {}
            }
        }
        (headers, idles)
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Shutting down: closes every connection without a request in
    /// progress (idle, half-sent headers, lingering).
    fn close_idle(&self) {
        for state in self.lock().values() {
            if state.in_request.load(Ordering::Acquire) == 0 {
                state.close.cancel();
            }
        }
    }
}

/// The socket, noting when a request's first byte arrives.
struct Tracked {
    inner: TcpStream,
    state: Arc<ConnState>,
    clock: Clock,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before && this.state.in_request.load(Ordering::Acquire) == 0 {
            let _ = this.state.request_started.compare_exchange(
                0,
                this.clock.now(),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Marks a request in progress for as long as it lives.
struct InRequest {
    state: Arc<ConnState>,
    clock: Clock,
}

impl InRequest {
    fn begin(state: Arc<ConnState>, clock: Clock) -> Self {
        state.in_request.fetch_add(1, Ordering::AcqRel);
        Self { state, clock }
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        self.state
            .idle_since
            .store(self.clock.now(), Ordering::Release);
        self.state.request_started.store(0, Ordering::Release);
        self.state.in_request.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How often connections are checked against their timeouts.
const REAP_EVERY: Duration = Duration::from_millis(200);
/// After the last answer on a connection, what the client still sends is
/// read and dropped for this long (and this much) before the socket closes:
/// closing with unread bytes would reset the connection, and the client
/// might lose the answer (a 401 or 413 given before its body was read).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

enum Step {
    Ended(Result<(), hyper::Error>),
    Closed,
    Stopping,
}

/// Closes a connection the HTTP layer is done with, politely: end the
/// writes, then drain what the client is still sending for a bounded time
/// (less if room is needed, or the gateway stops).
async fn linger(mut stream: TcpStream, state: &ConnState) {
    use tokio::io::AsyncReadExt;
    state.lingering.store(true, Ordering::Release);
    let _ = stream.shutdown().await;
    let mut buf = [0u8; 8192];
    let mut left = LINGER_BYTES;
    let drain = tokio::time::timeout(LINGER_TIME, async {
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    });
    tokio::select! {
        _ = drain => {}
        () = state.close.cancelled() => {}
    }
}

/// Serves `router` on `listener` until `stop`; then closes idle connections,
/// lets requests in progress finish, and returns once every connection is
/// gone (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: GatewayMetrics,
    stop: CancellationToken,
) {
    let registry = Arc::new(Registry {
        clock: Clock(Instant::now()),
        next_id: AtomicU64::new(1),
        open: Mutex::new(HashMap::new()),
    });
    let connections = TaskTracker::new();
    // The reaper outlives `stop`: connections keep their timeouts while the
    // gateway drains.
    let reaper_stop = CancellationToken::new();
    let reaping = tokio::spawn(reaper(
        Arc::clone(&registry),
        limits.clone(),
        metrics.clone(),
        reaper_stop.clone(),
    ));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        // The reaper times headers and idleness (hyper's single timer would
        // make both the same).
        .header_read_timeout(None)
        .keep_alive(true)
        .max_buf_size(limits.max_header_bytes.max(8192));
    let limits = limits.fitted_to_open_file_limit();
    let max_connections = limits.max_connections.max(1);
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(error) => {
                // Out of file descriptors, most likely: let some close.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if registry.len() >= max_connections {
            if registry.evict_one() {
                metrics
                    .connections_closed
                    .with_label_values(&["evicted"])
                    .inc();
            } else {
                // Every connection has a request in progress: this one waits
                // for nothing; Hostaway retries a refused connection.
                metrics
                    .connections_closed
                    .with_label_values(&["refused"])
                    .inc();
                drop(tcp);
                continue;
            }
        }
        let _ = tcp.set_nodelay(true);
        let (id, state) = registry.insert();
        metrics.connections_open.set(registry.len() as i64);
        let io = TokioIo::new(Tracked {
            inner: tcp,
            state: Arc::clone(&state),
            clock: registry.clock,
        });
        let clock = registry.clock;
        let request_state = Arc::clone(&state);
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let marker = InRequest::begin(Arc::clone(&request_state), clock);
            let router = router.clone();
            Box::pin(async move {
                let response = router.oneshot(request.map(Body::new)).await;
                drop(marker);
                response
            })
        });
        let mut connection = http.serve_connection(io, service);
        let registry = Arc::clone(&registry);
        let metrics = metrics.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let mut stopping = false;
            let ended = loop {
                let step = tokio::select! {
                    result = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)) => Step::Ended(result),
                    () = state.close.cancelled() => Step::Closed,
                    () = stop.cancelled(), if !stopping => Step::Stopping,
                };
                match step {
                    Step::Ended(result) => break result.map_err(Some),
                    // Evicted or timed out: dropping the connection closes it.
                    Step::Closed => break Err(None),
                    Step::Stopping => {
                        stopping = true;
                        Pin::new(&mut connection).graceful_shutdown();
                    }
                }
            };
            match ended {
                Err(None) => {}
                Ok(()) | Err(Some(_)) => {
                    if let Err(Some(error)) = &ended {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    // hyper may have answered (a 400, a 431) before the error.
                    linger(connection.into_parts().io.into_inner().inner, &state).await;
                }
            }
            registry.remove(id);
            metrics.connections_open.set(registry.len() as i64);
        });
    }
    // Stop accepting at once; close what has no request in progress; let
    // the requests in progress finish.
    drop(listener);
    registry.close_idle();
    connections.close();
    connections.wait().await;
    reaper_stop.cancel();
    let _ = reaping.await;
}

async fn reaper(
    registry: Arc<Registry>,
    limits: ConnectionLimits,
    metrics: GatewayMetrics,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(REAP_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let (headers, idle) = registry.reap(&limits);
        if headers > 0 {
            metrics
                .connections_closed
                .with_label_values(&["header_timeout"])
                .inc_by(headers);
        }
        if idle > 0 {
            metrics
                .connections_closed
                .with_label_values(&["idle_timeout"])
                .inc_by(idle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry {
            clock: Clock(Instant::now() - Duration::from_secs(100)),
            next_id: AtomicU64::new(1),
            open: Mutex::new(HashMap::new()),
        }
    }

    #[test]
    fn eviction_takes_the_longest_idle_and_never_a_request_in_progress() {
        let registry = registry();
        let (_, busy) = registry.insert();
        busy.in_request.store(1, Ordering::Release);
        busy.idle_since.store(1, Ordering::Release);
        let (_, old) = registry.insert();
        old.idle_since.store(10, Ordering::Release);
        let (_, young) = registry.insert();
        assert!(registry.evict_one());
        assert!(old.close.is_cancelled());
        assert!(!busy.close.is_cancelled() && !young.close.is_cancelled());
        assert!(registry.evict_one());
        assert!(young.close.is_cancelled());
        assert!(!registry.evict_one(), "only a request in progress is left");
        assert!(!busy.close.is_cancelled());
    }

    #[test]
    fn the_cap_fits_under_the_open_file_limit() {
        let limits = ConnectionLimits {
            max_connections: usize::MAX,
            ..ConnectionLimits::default()
        }
        .fitted_to_open_file_limit();
        if let Some(limit) = open_file_limit() {
            assert!((limits.max_connections as u64) < limit);
        }
        let small = ConnectionLimits {
            max_connections: 10,
            ..ConnectionLimits::default()
        }
        .fitted_to_open_file_limit();
        assert_eq!(small.max_connections, 10, "a cap that fits is kept");
    }

    #[test]
    fn headers_and_idleness_have_their_own_deadlines() {
        let registry = registry();
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            ..ConnectionLimits::default()
        };
        let now = registry.clock.now();
        let (_, slow_headers) = registry.insert();
        slow_headers
            .request_started
            .store(now - 6_000, Ordering::Release);
        let (_, idle_a_while) = registry.insert();
        idle_a_while
            .idle_since
            .store(now - 6_000, Ordering::Release);
        let (_, idle_too_long) = registry.insert();
        idle_too_long
            .idle_since
            .store(now - 31_000, Ordering::Release);
        let (_, busy) = registry.insert();
        busy.in_request.store(1, Ordering::Release);
        busy.request_started.store(now - 99_000, Ordering::Release);
        assert_eq!(registry.reap(&limits), (1, 1));
        assert!(slow_headers.close.is_cancelled());
        assert!(idle_too_long.close.is_cancelled());
        assert!(!idle_a_while.close.is_cancelled());
        assert!(!busy.close.is_cancelled());
    }
}
