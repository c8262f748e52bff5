//! The webhook gateway.
//!
//! `POST /webhooks/hostaway[/{accountId}]`: authenticate (HTTP Basic or the
//! specification's HMAC) against credentials held in memory, validate, publish
//! to JetStream with a stable `Nats-Msg-Id`, and answer 200 only once the server
//! acknowledged the publish. PostgreSQL is never on this path: credentials are
//! reloaded in the background ([`credentials`]), so webhooks keep flowing while
//! the database is down.

pub mod auth;
pub mod credentials;
pub mod handler;
pub mod metrics;
pub mod server;

pub use server::{Gateway, GatewayDeps, GatewaySettings, StartError};
