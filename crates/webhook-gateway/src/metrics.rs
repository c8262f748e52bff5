//! The gateway's metrics. Names follow the specification (`hostaway.webhooks.*`)
//! in Prometheus form; `event_type` is one of the known events, `ping` or
//! `unknown`, never a raw value from a request.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts};
use service_kit::metrics::{LATENCY_BUCKETS, Metrics};

#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    /// Authenticated webhooks by event: `hostaway_webhooks_received_total`.
    pub received: IntCounterVec,
    /// Requests refused, by reason.
    pub rejected: IntCounterVec,
    /// Webhooks made durable on JetStream (`duplicate="true"` when JetStream had it already).
    pub published: IntCounterVec,
    pub publish_duration: Histogram,
    pub accounts_loaded: IntGauge,
    pub credentials_reloaded_at: IntGauge,
    /// Authenticated webhooks kept although they cannot be used, by reason
    /// (the ingestor dead-letters them).
    pub kept_unusable: IntCounterVec,
    pub connections_open: IntGauge,
    /// Connections the gateway closed, by reason: `header_timeout`,
    /// `idle_timeout`, `evicted` (the cap was reached), `refused`.
    pub connections_closed: IntCounterVec,
    /// 401 log lines left out by the log rate limit.
    pub unauthorized_logs_suppressed: prometheus::IntCounter,
}

impl GatewayMetrics {
    pub fn register(metrics: &Metrics) -> anyhow::Result<Self> {
        Ok(Self {
            received: metrics.register(IntCounterVec::new(
                Opts::new(
                    "hostaway_webhooks_received_total",
                    "Authenticated Hostaway webhooks, by event type",
                ),
                &["event_type"],
            )?)?,
            rejected: metrics.register(IntCounterVec::new(
                Opts::new(
                    "hostaway_webhooks_rejected_total",
                    "Webhook requests refused, by reason",
                ),
                &["reason"],
            )?)?,
            published: metrics.register(IntCounterVec::new(
                Opts::new(
                    "hostaway_webhooks_published_total",
                    "Webhooks acknowledged by JetStream",
                ),
                &["event_type", "duplicate"],
            )?)?,
            publish_duration: metrics.register(Histogram::with_opts(
                HistogramOpts::new(
                    "hostaway_webhook_publish_duration_seconds",
                    "JetStream publish until server acknowledgement",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?)?,
            accounts_loaded: metrics.register(IntGauge::new(
                "hostaway_gateway_accounts_loaded",
                "Accounts whose webhook credentials are in memory",
            )?)?,
            credentials_reloaded_at: metrics.register(IntGauge::new(
                "hostaway_gateway_credentials_reloaded_timestamp_seconds",
                "Unix time of the last successful credential reload from PostgreSQL",
            )?)?,
            kept_unusable: metrics.register(IntCounterVec::new(
                Opts::new(
                    "hostaway_webhooks_kept_unusable_total",
                    "Authenticated webhooks kept for the dead-letter queue because they cannot be used, by reason",
                ),
                &["reason"],
            )?)?,
            connections_open: metrics.register(IntGauge::new(
                "hostaway_gateway_connections_open",
                "Connections open on the webhook port",
            )?)?,
            connections_closed: metrics.register(IntCounterVec::new(
                Opts::new(
                    "hostaway_gateway_connections_closed_total",
                    "Connections the gateway closed, by reason",
                ),
                &["reason"],
            )?)?,
            unauthorized_logs_suppressed: metrics.register(prometheus::IntCounter::new(
                "hostaway_gateway_unauthorized_logs_suppressed_total",
                "Refused-request log lines left out by the log rate limit",
            )?)?,
        })
    }
}
