//! Logging: JSON lines (the default) or human-readable, filtered by `RUST_LOG`.
//! Spans carry the ids that join a webhook's path (`webhook_id`, `request_id`);
//! with JSON output each line includes its span's fields.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Installs the global subscriber. Later calls (tests start several services
/// in one process) leave the first one in place.
pub fn init(args: &crate::config::LogArgs) {
    // The NATS client may print server URLs at debug level; keep it at info
    // unless the operator asked for it by name.
    let directives = if args.filter.contains("async_nats") {
        args.filter.clone()
    } else {
        format!("{},async_nats=info", args.filter)
    };
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match args.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(tracing_subscriber::fmt::layer()).try_init(),
    };
    if result.is_err() {
        tracing::debug!("a tracing subscriber was already installed");
    }
}
