//! The webhook gateway.
//!
//! `POST /webhooks/hostaway[/{accountId}]`: authenticate (HTTP Basic or the
//! specification's HMAC) against credentials held in memory, publish to
//! JetStream with a stable `Nats-Msg-Id`, and answer 200 only once the server
//! acknowledged the publish. Authenticated means kept: a webhook the connector
//! cannot use is published too, marked, and dead-lettered by the ingestor
//! ([`handler`]). The [`listener`] keeps slow and idle clients from starving
//! Hostaway. PostgreSQL is never on this path: credentials are
//! reloaded in the background ([`credentials`]), so webhooks keep flowing while
//! the database is down.

pub mod auth;
pub mod credentials;
pub mod handler;
pub mod listener;
pub mod log_limit;
pub mod metrics;
pub mod server;

pub use server::{Gateway, GatewayDeps, GatewaySettings, StartError};
