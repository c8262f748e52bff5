//! The OTLP exporter and the `tracing` layer that feeds it.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OTEL_EXPORTER_OTLP_ENDPOINT {endpoint:?} is not an http(s) URL")]
    Endpoint { endpoint: String },
    #[error("OTEL_TRACES_SAMPLER_ARG must be a ratio between 0 and 1, not {0}")]
    Ratio(f64),
    #[error("the OTLP exporter cannot be built: {0}")]
    Exporter(String),
}

/// Where and how spans are exported.
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    /// The collector's gRPC endpoint, e.g. `http://otel-collector:4317`.
    pub endpoint: String,
    /// `service.name` of every span (the binary's name unless configured).
    pub service_name: String,
    /// The share of new traces kept; a trace started elsewhere keeps its
    /// sender's decision.
    pub sample_ratio: f64,
    /// How long one export may take.
    pub timeout: Duration,
}

impl OtlpSettings {
    pub fn new(endpoint: impl Into<String>, service_name: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            service_name: service_name.into(),
            sample_ratio: 1.0,
            timeout: Duration::from_secs(5),
        }
    }
}

/// The running exporter. [`Exporting::shutdown`] sends what is buffered.
#[derive(Debug, Clone)]
pub struct Exporting {
    provider: SdkTracerProvider,
}

impl Exporting {
    /// Builds the exporter (inside a Tokio runtime: the gRPC channel runs on
    /// it) and installs the W3C propagator for the whole process.
    pub fn start(settings: &OtlpSettings) -> Result<Self, TelemetryError> {
        let endpoint = settings.endpoint.trim();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(TelemetryError::Endpoint {
                endpoint: endpoint.to_owned(),
            });
        }
        if !(0.0..=1.0).contains(&settings.sample_ratio) {
            return Err(TelemetryError::Ratio(settings.sample_ratio));
        }
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(settings.timeout);
        if endpoint.starts_with("https://") {
            // A collector behind TLS, verified against the Mozilla roots
            // compiled in (the image has no other trust store to rely on).
            builder = builder.with_tls_config(
                opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new()
                    .with_webpki_roots(),
            );
        }
        let exporter = builder
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let resource = Resource::builder()
            .with_service_name(settings.service_name.clone())
            .with_attribute(KeyValue::new("service.namespace", "hostaway-connector"))
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                settings.sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        crate::propagation::install();
        Ok(Self { provider })
    }

    /// The `tracing` layer that turns spans into exported ones.
    pub fn layer<S>(&self) -> OpenTelemetryLayer<S, SdkTracer>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("hostaway-connector"))
            .with_tracked_inactivity(false)
    }

    /// Sends every finished span still buffered. Blocking, like
    /// [`Exporting::shutdown`].
    pub fn flush(&self) {
        if let Err(error) = self.provider.force_flush() {
            tracing::debug!(%error, "spans not flushed");
        }
    }

    /// Sends every finished span still buffered (within two seconds: it
    /// counts against the pod's termination grace), then stops the exporter.
    /// Blocking: call it off the async workers (`spawn_blocking`).
    pub fn shutdown(&self) {
        if let Err(error) = self.provider.shutdown_with_timeout(SHUTDOWN_WITHIN) {
            tracing::debug!(%error, "span exporter did not stop cleanly");
        }
    }
}

/// What the last export may take at shutdown.
const SHUTDOWN_WITHIN: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_endpoint_or_ratio_is_refused_before_anything_starts() {
        let mut settings = OtlpSettings::new("otel-collector:4317", "svc");
        assert!(matches!(
            Exporting::start(&settings),
            Err(TelemetryError::Endpoint { .. })
        ));
        settings.endpoint = "http://otel-collector:4317".into();
        settings.sample_ratio = 1.5;
        assert!(matches!(
            Exporting::start(&settings),
            Err(TelemetryError::Ratio(_))
        ));
        assert!(crate::propagation::nats_headers().is_none());
    }
}
