//! The booking ingestor.
//!
//! A durable JetStream consumer of the gateway's webhooks. Each webhook is
//! applied in one PostgreSQL transaction ([`ingest`]): the booking is upserted
//! by (`external_source`, `external_id`) keeping the newest version, its block
//! is created, moved or released, overlaps are recorded as double bookings,
//! `webhook_log` records the outcome, and the events for TVL are written to the
//! outbox; they are published after the commit ([`outbox`]). A webhook that
//! waits for something else (its reservation's complete record, its
//! listing's link, its account) is parked and released when due or when the
//! wait is over ([`release`]); one that fails is retried with backoff; one
//! that cannot be used, or runs out of retries, is dead-lettered
//! ([`dead_letter`]); a database outage pauses consumption ([`consumer`]).

pub mod batch;
pub mod consumer;
pub mod dead_letter;
pub mod event_builders;
pub mod ingest;
pub mod maintenance;
pub mod metrics;
pub mod outbox;
pub mod reemit;
pub mod release;
pub mod server;

pub use server::{Ingestor, IngestorDeps, IngestorSettings};
