//! Publishing to JetStream, answered only by the server's acknowledgement.

use std::time::{Duration, Instant};

use async_nats::Client;
use async_nats::jetstream::{self, context::PublishAckFuture};
use bytes::Bytes;

/// A JetStream message that carries the current span's trace context (no
/// header at all while tracing is off).
pub fn traced_message() -> jetstream::message::PublishMessage {
    let message = jetstream::message::PublishMessage::build();
    match telemetry::propagation::nats_headers() {
        Some(headers) => message.headers(headers),
        None => message,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishFailure {
    #[error("not connected to NATS")]
    Disconnected,
    #[error("JetStream did not acknowledge within {0:?}")]
    Timeout(Duration),
    #[error("JetStream refused the message: {0}")]
    Refused(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    pub sequence: u64,
    /// JetStream already had a message with this id (inside its window).
    pub duplicate: bool,
    pub elapsed: Duration,
}

#[derive(Debug, Clone)]
pub struct Publisher {
    client: Client,
    js: jetstream::Context,
    timeout: Duration,
}

impl Publisher {
    pub fn new(client: Client, timeout: Duration) -> Self {
        let js = jetstream::new(client.clone());
        Self {
            client,
            js,
            timeout,
        }
    }

    /// Publishes with `Nats-Msg-Id = msg_id` and waits for the stream's ack.
    pub async fn publish(
        &self,
        subject: String,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<Acked, PublishFailure> {
        // While disconnected the client would buffer the message and the ack
        // would never come in time: answer at once instead.
        if !crate::nats::is_connected(&self.client) {
            return Err(PublishFailure::Disconnected);
        }
        let started = Instant::now();
        let message = traced_message().payload(payload).message_id(msg_id);
        let send_and_ack = async {
            let ack: PublishAckFuture = self
                .js
                .send_publish(subject, message)
                .await
                .map_err(|e| PublishFailure::Refused(e.to_string()))?;
            ack.await
                .map_err(|e| PublishFailure::Refused(e.to_string()))
        };
        let ack = tokio::time::timeout(self.timeout, send_and_ack)
            .await
            .map_err(|_| PublishFailure::Timeout(self.timeout))??;
        Ok(Acked {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
            elapsed: started.elapsed(),
        })
    }
}
