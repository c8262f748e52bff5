//! An OTLP trace collector in the test process: the services export to it
//! over gRPC as they would to an OpenTelemetry Collector, and the test reads
//! what arrived.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;

use crate::{DEADLINE, eventually};

/// One span as received.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub service: String,
    pub name: String,
    /// Hex, as in `traceparent`.
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub attributes: HashMap<String, String>,
}

#[derive(Debug, Clone, Default)]
struct Collected(Arc<Mutex<Vec<ReceivedSpan>>>);

#[tonic::async_trait]
impl TraceService for Collected {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent_span_id: hex::encode(&span.parent_span_id),
                    attributes: span
                        .attributes
                        .iter()
                        .filter_map(|kv| {
                            Some((kv.key.clone(), text(kv.value.as_ref()?.value.as_ref()?)?))
                        })
                        .collect(),
                });
            }
        }
        self.0.lock().expect("spans").extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn text(value: &Value) -> Option<String> {
    Some(match value {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        Value::BoolValue(b) => b.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        _ => return None,
    })
}

#[derive(Debug)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    spans: Collected,
    task: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("receiver binds");
        let addr = listener.local_addr().expect("receiver address");
        let spans = Collected::default();
        let service = TraceServiceServer::new(spans.clone());
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await;
        });
        Self { addr, spans, task }
    }

    /// Installs this process's telemetry exporting here, as a service would
    /// with `OTEL_EXPORTER_OTLP_ENDPOINT` (once per process: the subscriber
    /// is global).
    pub fn export_here(&self) -> service_kit::telemetry::Telemetry {
        service_kit::telemetry::init(
            &service_kit::config::LogArgs {
                format: service_kit::telemetry::LogFormat::Json,
                filter: "info".into(),
                traces: service_kit::config::TraceArgs {
                    endpoint: Some(self.endpoint()),
                    service_name: None,
                    sample_ratio: 1.0,
                },
            },
            "connector-tests",
        )
        .expect("telemetry exports to the receiver")
    }

    /// What `OTEL_EXPORTER_OTLP_ENDPOINT` would say.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.0.lock().expect("spans").clone()
    }

    /// Waits for a span named `name` in trace `trace_id`.
    pub async fn span(&self, name: &str, trace_id: &str) -> ReceivedSpan {
        eventually(
            &format!("span {name} in trace {trace_id}"),
            DEADLINE,
            || async {
                self.spans()
                    .into_iter()
                    .find(|s| s.name == name && s.trace_id == trace_id)
            },
        )
        .await
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
