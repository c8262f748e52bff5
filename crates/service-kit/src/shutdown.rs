//! Shutdown: SIGTERM or SIGINT cancels a token; services stop taking work,
//! drain what is in flight, and give up at their deadline.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Resolves on SIGTERM (Kubernetes) or SIGINT (a terminal).
pub async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// A token cancelled by the first signal.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        signal().await;
        trigger.cancel();
    });
    token
}

/// Awaits `drain`, but no longer than `deadline`. Returns whether it finished.
pub async fn drain_within(deadline: Duration, drain: impl Future<Output = ()>) -> bool {
    match tokio::time::timeout(deadline, drain).await {
        Ok(()) => true,
        Err(_) => {
            tracing::warn!(
                deadline_secs = deadline.as_secs(),
                "shutdown deadline passed with work in flight"
            );
            false
        }
    }
}

/// How long the last acknowledgements may take to leave.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Sends what the client still buffers (the acknowledgements and naks of the
/// drain, the messages given back) before the process exits: a nak lost here
/// would leave its message waiting out the ack wait instead of going to
/// another replica at once.
pub async fn flush_nats(client: &async_nats::Client) {
    match tokio::time::timeout(FLUSH_TIMEOUT, client.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(%error, "last acknowledgements not flushed; their messages are redelivered after the ack wait")
        }
        Err(_) => tracing::warn!(
            "last acknowledgements not flushed in time; their messages are redelivered after the ack wait"
        ),
    }
}
