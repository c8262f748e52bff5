//! The service kit: everything a connector binary wires before its own logic.
//!
//! A `main.rs` reads its config (`clap`, environment first), calls
//! [`telemetry::init`], builds its service with a [`metrics::Metrics`] registry and
//! a [`health::Health`], serves [`ops::router`] on its ops port, and runs until
//! [`shutdown::signal`] fires, then drains within its deadline.

pub mod config;
pub mod consume;
pub mod dead_letter;
pub mod health;
pub mod inbound;
pub mod metrics;
pub mod nats;
pub mod ops;
pub mod publish;
pub mod shutdown;
pub mod sync_queue;
pub mod telemetry;

/// Installs the process-wide TLS provider (ring). Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
