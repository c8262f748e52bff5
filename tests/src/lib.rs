//! The test harness: real PostgreSQL and real NATS JetStream, isolated per test.
//!
//! Each [`TestEnv`] owns a fresh database (migrated) and a fresh NATS namespace
//! (its own streams and consumers), and removes both when dropped, even after a
//! failure. Services run in-process and reach PostgreSQL and NATS through
//! [`proxy::Proxy`]s the test can cut, so outages are real connection losses
//! against the real servers. The test itself talks to both directly.
//!
//! `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! and `TEST_NATS_URL` (default `nats://127.0.0.1:4222`) point elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

pub mod admin_api;
pub mod cluster;
pub mod env;
pub mod fixtures;
pub mod otlp;
pub mod outbound;
pub mod payloads;
pub mod proxy;
pub mod services;
pub mod sim;

use std::future::Future;
use std::time::{Duration, Instant};

pub use env::TestEnv;

/// Polls `check` until it yields a value or `timeout` passes (then panics
/// naming `what`). For waiting on a condition, never for pacing.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The default deadline for something asynchronous to happen.
pub const DEADLINE: Duration = Duration::from_secs(30);
