//! The W3C trace context across process boundaries: written into the headers
//! of what a span sends, read back into the parent of the span that receives
//! it. Both are no-ops unless [`crate::Exporting::start`] ran.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: std::sync::OnceLock<TraceContextPropagator> = std::sync::OnceLock::new();

pub(crate) fn install() {
    let _ = ENABLED.set(TraceContextPropagator::new());
}

fn propagator() -> Option<&'static TraceContextPropagator> {
    ENABLED.get()
}

/// The current span's context, if it belongs to a sampled or remote trace.
fn current() -> Option<Context> {
    propagator()?;
    let context = tracing::Span::current().context();
    context.span().span_context().is_valid().then_some(context)
}

struct NatsHeaders<'a>(&'a mut async_nats::HeaderMap);

impl Injector for NatsHeaders<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct ReadNatsHeaders<'a>(&'a async_nats::HeaderMap);

impl Extractor for ReadNatsHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|value| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

struct HttpHeaders<'a>(&'a mut http::HeaderMap);

impl Injector for HttpHeaders<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct ReadHttpHeaders<'a>(&'a http::HeaderMap);

impl Extractor for ReadHttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Writes the current span's `traceparent` (and `tracestate`) into `headers`.
pub fn inject_nats(headers: &mut async_nats::HeaderMap) {
    if let (Some(propagator), Some(context)) = (propagator(), current()) {
        propagator.inject_context(&context, &mut NatsHeaders(headers));
    }
}

/// Headers carrying the current span's trace context; `None` when there is
/// none to carry (tracing off), so that a message costs nothing more.
pub fn nats_headers() -> Option<async_nats::HeaderMap> {
    current()?;
    let mut headers = async_nats::HeaderMap::new();
    inject_nats(&mut headers);
    (!headers.is_empty()).then_some(headers)
}

/// Makes `span` continue the trace whose context `headers` carry.
pub fn continue_from_nats(span: &tracing::Span, headers: Option<&async_nats::HeaderMap>) {
    let (Some(propagator), Some(headers)) = (propagator(), headers) else {
        return;
    };
    adopt(span, propagator.extract(&ReadNatsHeaders(headers)));
}

/// Links `span` to the trace `headers` carry: a span serving several
/// messages at once (a batch) belongs to none of their traces alone.
pub fn link_from_nats(span: &tracing::Span, headers: Option<&async_nats::HeaderMap>) {
    let (Some(propagator), Some(headers)) = (propagator(), headers) else {
        return;
    };
    let context = propagator.extract(&ReadNatsHeaders(headers));
    let linked = context.span().span_context().clone();
    if linked.is_valid() {
        span.add_link(linked);
    }
}

/// Writes the current span's trace context into an HTTP request's headers.
pub fn inject_http(headers: &mut http::HeaderMap) {
    if let (Some(propagator), Some(context)) = (propagator(), current()) {
        propagator.inject_context(&context, &mut HttpHeaders(headers));
    }
}

/// Makes `span` continue the trace an HTTP request's `traceparent` names.
pub fn continue_from_http(span: &tracing::Span, headers: &http::HeaderMap) {
    let Some(propagator) = propagator() else {
        return;
    };
    adopt(span, propagator.extract(&ReadHttpHeaders(headers)));
}

fn adopt(span: &tracing::Span, parent: Context) {
    if parent.span().span_context().is_valid()
        && let Err(error) = span.set_parent(parent)
    {
        tracing::debug!(%error, "the span keeps its own trace");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_written_or_read_while_tracing_is_off() {
        let span = tracing::info_span!("off");
        let _entered = span.enter();
        assert!(nats_headers().is_none());
        let mut headers = async_nats::HeaderMap::new();
        inject_nats(&mut headers);
        assert!(headers.is_empty());
        let mut http_headers = http::HeaderMap::new();
        inject_http(&mut http_headers);
        assert!(http_headers.is_empty());
    }
}
