//! The operations API's metrics.

use booking_ingestor::metrics::IngestorMetrics;
use prometheus::{IntCounterVec, IntGauge, Opts};
use service_kit::metrics::Metrics;

use crate::auth::Method;

/// The API's metrics.
#[derive(Debug, Clone)]
pub struct ApiMetrics {
    calls: IntCounterVec,
    /// Credentials older than the rotation age.
    pub rotation_due: IntGauge,
    /// Age of the oldest credential, in seconds.
    pub oldest_credential: IntGauge,
    /// The publisher of re-emitted events needs ingestor metrics; they are
    /// kept apart from the API's own.
    pub(crate) ingestor: IngestorMetrics,
}

impl ApiMetrics {
    pub fn register(metrics: &Metrics) -> anyhow::Result<Self> {
        Ok(Self {
            calls: metrics.register(IntCounterVec::new(
                Opts::new(
                    "hostaway_admin_api_calls_total",
                    "Operations API calls, by method and outcome (ok, error, denied, unauthenticated)",
                ),
                &["method", "outcome"],
            )?)?,
            rotation_due: metrics.register(IntGauge::new(
                "hostaway_credentials_rotation_due",
                "Account credentials older than the rotation age (90 days)",
            )?)?,
            oldest_credential: metrics.register(IntGauge::new(
                "hostaway_credentials_oldest_age_seconds",
                "Age of the oldest account credential",
            )?)?,
            ingestor: IngestorMetrics::register(&Metrics::new())?,
        })
    }

    pub(crate) fn calls(&self, method: Method, outcome: &str) {
        self.calls
            .with_label_values(&[method.name(), outcome])
            .inc();
    }
}
