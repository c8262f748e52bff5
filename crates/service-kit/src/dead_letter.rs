//! The dead-letter stream copy every service writes beside its
//! `dead_letter_queue` row: the original payload, with the error in headers,
//! so NATS tooling can see what failed without the database.

use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::PublishMessage};

pub const HEADER_ERROR_KIND: &str = "Hostaway-Error-Kind";
pub const HEADER_ERROR: &str = "Hostaway-Error";
pub const HEADER_ATTEMPTS: &str = "Hostaway-Attempts";
pub const HEADER_JOB_ID: &str = "Hostaway-Job-Id";
pub const HEADER_ORIGINAL_SUBJECT: &str = "Hostaway-Original-Subject";

/// Error texts are cut to this length in headers and rows.
pub const MAX_ERROR_LEN: usize = 1000;

pub fn truncate(text: &str) -> String {
    text.chars().take(MAX_ERROR_LEN).collect()
}

/// A message that exhausted its attempts, or can never succeed.
#[derive(Debug, Clone)]
pub struct StreamCopy<'a> {
    /// A subject of the DLQ stream.
    pub dlq_subject: String,
    pub original_subject: &'a str,
    pub stream_sequence: Option<u64>,
    pub job_id: &'a str,
    pub payload: &'a [u8],
    pub attempts: i32,
    pub error_kind: &'a str,
    pub error: &'a str,
}

/// Publishes the copy and waits for the stream's acknowledgement. Copying the
/// same delivery twice (a crash before the original was acknowledged) is
/// deduplicated by the stream.
pub async fn publish_copy(
    js: &jetstream::Context,
    copy: &StreamCopy<'_>,
) -> Result<(), async_nats::Error> {
    let mut headers = HeaderMap::new();
    headers.insert(HEADER_ERROR_KIND, copy.error_kind);
    headers.insert(
        HEADER_ERROR,
        truncate(copy.error).replace(['\r', '\n'], " ").as_str(),
    );
    headers.insert(HEADER_ATTEMPTS, copy.attempts.to_string().as_str());
    headers.insert(HEADER_JOB_ID, copy.job_id);
    headers.insert(HEADER_ORIGINAL_SUBJECT, copy.original_subject);
    telemetry::propagation::inject_nats(&mut headers);
    let message = PublishMessage::build()
        .payload(copy.payload.to_vec().into())
        .headers(headers)
        .message_id(format!(
            "dlq-{}-{}",
            copy.job_id,
            copy.stream_sequence.unwrap_or_default()
        ));
    js.send_publish(copy.dlq_subject.clone(), message)
        .await?
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayed {
    /// Sent back (the replay's number, 1 for the first).
    Sent(i32),
    /// Already resolved: nothing to do.
    AlreadyResolved,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("dead letter {id} cannot be replayed by this service: {why}")]
    Foreign { id: String, why: String },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("JetStream did not take the replay: {0}")]
    Publish(String),
}

/// Notes a replay of `letter` and publishes `payload` on `subject` with a
/// fresh `Nats-Msg-Id` (the original may still be inside JetStream's duplicate
/// window). Returns the replay's number.
pub async fn republish(
    js: &jetstream::Context,
    pool: &store::PgPool,
    letter: &store::dlq::DeadLetter,
    subject: String,
    payload: Vec<u8>,
) -> Result<i32, ReplayError> {
    let number = store::dlq::mark_replayed(pool, letter.id).await?;
    let message = PublishMessage::build()
        .payload(payload.into())
        .message_id(format!("{}-replay-{}-{number}", letter.job_id, letter.id));
    js.send_publish(subject, message)
        .await
        .map_err(|e| ReplayError::Publish(e.to_string()))?
        .await
        .map_err(|e| ReplayError::Publish(e.to_string()))?;
    Ok(number)
}
