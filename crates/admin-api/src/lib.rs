//! `hostaway-admin-api`: the connector's operations API (gRPC).
//!
//! ```text
//! hostaway-admin (CLI) ─┐                       ┌─▶ PostgreSQL (accounts, links, configs, DLQ, audit)
//! grpcurl / back office ─┼─▶ AdminService ──────┼─▶ NATS (sync jobs, replays, re-emitted events)
//!                        │   bearer token → role└─▶ Hostaway (connect, webhook registration, listings)
//! ```
//!
//! Its own service, not a flag of the dispatcher (ADR 0014): it is the one
//! place that accepts client secrets from people, it answers people rather
//! than queues, and it scales (one or two replicas) apart from the workers.
//!
//! [`auth`] decides who may call what; [`service`] checks it and writes the
//! audit trail around every method; the methods live in [`accounts`],
//! [`listings`], [`config`], [`dead_letters`], [`sync`] and [`inbound`]
//! (what the connector made of Hostaway's webhooks).

pub mod accounts;
pub mod auth;
pub mod client;
pub mod config;
pub mod convert;
pub mod credential_age;
pub mod dead_letters;
pub mod inbound;
pub mod listings;
pub mod metrics;
pub mod server;
pub mod service;
pub mod sync;

/// The generated messages, server and client of `admin.proto`.
#[allow(clippy::all, missing_debug_implementations)]
pub mod proto {
    tonic::include_proto!("hostaway.connector.v1");

    /// For server reflection (`grpcurl list`, `grpcurl describe`).
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("admin_descriptor");
}

pub use server::{AdminApiDeps, AdminApiSettings, serve};
