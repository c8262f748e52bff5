//! Logging: JSON lines (the default) or human-readable, filtered by `RUST_LOG`.
//! Spans carry the ids that join a webhook's path (`webhook_id`, `request_id`);
//! with JSON output each line includes its span's fields. With
//! `OTEL_EXPORTER_OTLP_ENDPOINT` the same spans are exported as traces (see
//! the `telemetry` crate).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// What [`init`] started; [`Telemetry::shutdown`] sends the last spans.
#[derive(Debug)]
pub struct Telemetry {
    exporting: Option<telemetry::Exporting>,
}

impl Telemetry {
    /// Sends the spans finished so far (tests read them at once).
    pub async fn flush(&self) {
        if let Some(exporting) = self.exporting.clone() {
            let _ = tokio::task::spawn_blocking(move || exporting.flush()).await;
        }
    }

    /// Flushes and stops the span exporter (if any), off the async workers.
    pub async fn shutdown(self) {
        if let Some(exporting) = self.exporting {
            let _ = tokio::task::spawn_blocking(move || exporting.shutdown()).await;
        }
    }
}

/// Installs the global subscriber, exporting spans when the arguments name
/// an OTLP endpoint (call it inside the Tokio runtime). Later calls (tests
/// start several services in one process) leave the first one in place.
pub fn init(
    args: &crate::config::LogArgs,
    service: &str,
) -> Result<Telemetry, telemetry::TelemetryError> {
    // The NATS client may print server URLs at debug level; keep it at info
    // unless the operator asked for it by name.
    let directives = if args.filter.contains("async_nats") {
        args.filter.clone()
    } else {
        format!("{},async_nats=info", args.filter)
    };
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let exporting = match args.traces.endpoint.as_deref().map(str::trim) {
        Some(endpoint) if !endpoint.is_empty() => {
            let mut settings = telemetry::OtlpSettings::new(
                endpoint,
                args.traces.service_name.as_deref().unwrap_or(service),
            );
            settings.sample_ratio = args.traces.sample_ratio;
            Some(telemetry::Exporting::start(&settings)?)
        }
        _ => None,
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match args.format {
        LogFormat::Json => registry
            .with(exporting.as_ref().map(telemetry::Exporting::layer))
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(exporting.as_ref().map(telemetry::Exporting::layer))
            .with(tracing_subscriber::fmt::layer())
            .try_init(),
    };
    if result.is_err() {
        tracing::debug!("a tracing subscriber was already installed");
    }
    if let Some(endpoint) = &args.traces.endpoint {
        tracing::info!(endpoint = %endpoint, "exporting traces over OTLP");
    }
    Ok(Telemetry { exporting })
}
