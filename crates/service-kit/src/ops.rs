//! The ops endpoints: `/healthz` (the process runs), `/readyz` (its checks
//! pass), `/metrics` (Prometheus text).

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::health::Health;
use crate::metrics::Metrics;

#[derive(Debug, Clone)]
struct OpsState {
    metrics: Metrics,
    health: Health,
}

pub fn router(metrics: Metrics, health: Health) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(OpsState { metrics, health })
}

async fn readyz(State(state): State<OpsState>) -> impl IntoResponse {
    let report = state.health.report();
    let ready = state.health.is_ready();
    let problems = state.health.problems();
    let body =
        serde_json::json!({ "ready": ready, "checks": report, "problems": problems }).to_string();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

async fn render_metrics(State(state): State<OpsState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// What every service binary does before its own work: install the signal
/// handler and serve the ops endpoints on `args.listen` (else `default_listen`).
/// Returns the token the first SIGTERM/SIGINT cancels.
pub async fn start(
    args: &crate::config::OpsArgs,
    default_listen: SocketAddr,
    metrics: Metrics,
    health: Health,
) -> std::io::Result<CancellationToken> {
    let stop = crate::shutdown::on_signal();
    let addr = args.listen.unwrap_or(default_listen);
    serve(addr, router(metrics, health), stop.clone()).await?;
    tracing::info!(%addr, "ops endpoints serving /healthz /readyz /metrics");
    Ok(stop)
}

/// Binds `addr` and serves `router` until `stop` is cancelled. Returns the bound
/// address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "ops server failed");
        }
    });
    Ok((local, handle))
}
