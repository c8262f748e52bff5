//! The client's metrics, with the specification's names
//! (`hostaway.api.requests`, `hostaway.api.request_duration`,
//! `hostaway.circuit_breaker.state`, `hostaway.rate_limiter.available_tokens`).
//! Labels carry endpoint templates and states, never ids.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use crate::breaker::{CircuitState, Transition};

#[derive(Debug, Clone)]
pub struct ClientMetrics {
    /// `status_code` is the HTTP status, or `network` when there was none.
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    /// The specification's `api.errors{type, retryable}`.
    pub errors: IntCounterVec,
    /// Accounts whose circuit is in each state.
    pub circuit_state: IntGaugeVec,
    /// Burst left after the last request, per scope (`account`, `ip`).
    pub available_tokens: IntGaugeVec,
    pub token_fetches: IntCounter,
    /// Cached tokens dropped, by reason: `token_rejected` (a 403 about it),
    /// `unauthorized` (a 401), `key_changed` (the stored key was rotated).
    pub token_drops: IntCounterVec,
    /// Requests refused because the account's circuit was open.
    pub short_circuited: IntCounter,
    /// Requests not sent because the account's budget was spent for longer
    /// than the caller waits (the job is deferred, its worker freed).
    pub throttled: IntCounter,
}

const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl ClientMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "hostaway_api_requests_total",
                    "Requests sent to the Hostaway API",
                ),
                &["method", "endpoint", "status_code"],
            )?,
            request_duration: HistogramVec::new(
                HistogramOpts::new(
                    "hostaway_api_request_duration_seconds",
                    "Hostaway API request duration",
                )
                .buckets(BUCKETS.to_vec()),
                &["method", "endpoint"],
            )?,
            errors: IntCounterVec::new(
                Opts::new("hostaway_api_errors_total", "Hostaway API errors by class"),
                &["type", "retryable"],
            )?,
            circuit_state: IntGaugeVec::new(
                Opts::new(
                    "hostaway_circuit_breaker_state",
                    "Accounts whose circuit is in each state",
                ),
                &["state"],
            )?,
            available_tokens: IntGaugeVec::new(
                Opts::new(
                    "hostaway_rate_limiter_available_tokens",
                    "Requests left in the current burst",
                ),
                &["scope"],
            )?,
            token_fetches: IntCounter::new(
                "hostaway_api_token_fetches_total",
                "Access tokens fetched",
            )?,
            token_drops: IntCounterVec::new(
                Opts::new(
                    "hostaway_api_token_drops_total",
                    "Cached access tokens dropped, by reason",
                ),
                &["reason"],
            )?,
            throttled: IntCounter::new(
                "hostaway_api_throttled_total",
                "Requests not sent because the account's request budget was spent (deferred)",
            )?,
            short_circuited: IntCounter::new(
                "hostaway_api_short_circuited_total",
                "Requests refused without sending because the account's circuit was open",
            )?,
        };
        registry.register(Box::new(metrics.requests.clone()))?;
        registry.register(Box::new(metrics.request_duration.clone()))?;
        registry.register(Box::new(metrics.errors.clone()))?;
        registry.register(Box::new(metrics.circuit_state.clone()))?;
        registry.register(Box::new(metrics.available_tokens.clone()))?;
        registry.register(Box::new(metrics.token_fetches.clone()))?;
        registry.register(Box::new(metrics.token_drops.clone()))?;
        registry.register(Box::new(metrics.short_circuited.clone()))?;
        registry.register(Box::new(metrics.throttled.clone()))?;
        for state in [
            CircuitState::Closed,
            CircuitState::Open,
            CircuitState::HalfOpen,
        ] {
            metrics
                .circuit_state
                .with_label_values(&[state.as_str()])
                .set(0);
        }
        Ok(metrics)
    }

    pub(crate) fn account_added(&self) {
        self.circuit_state
            .with_label_values(&[CircuitState::Closed.as_str()])
            .inc();
    }

    pub(crate) fn transition(&self, transition: Transition) {
        self.circuit_state
            .with_label_values(&[transition.from.as_str()])
            .dec();
        self.circuit_state
            .with_label_values(&[transition.to.as_str()])
            .inc();
    }
}
