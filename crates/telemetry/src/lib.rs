//! Traces of every connector process.
//!
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, `tracing` spans are exported over
//! OTLP (gRPC) by a batch exporter, and the W3C trace context (`traceparent`)
//! travels with every message the connector publishes on NATS and every
//! request it makes to Hostaway; a receiving span continues the sender's
//! trace. Without it nothing is installed: no exporter, no propagator, no
//! header written, and the spans are only the logs' context.

pub mod otlp;
pub mod propagation;

pub use otlp::{Exporting, OtlpSettings, TelemetryError};
