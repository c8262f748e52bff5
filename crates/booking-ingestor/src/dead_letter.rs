//! The dead-letter queue: a webhook that exhausted its attempts (or can never
//! succeed) is copied to the DLQ stream with its error in headers, and recorded
//! in the `dead_letter_queue` table, from where `hostaway-admin dlq replay`
//! sends it back. Only then is the original acknowledged: nothing is dropped.

use async_nats::jetstream;
use serde_json::json;
pub use service_kit::dead_letter::{ReplayError, Replayed};
use service_kit::dead_letter::{StreamCopy, publish_copy, republish, truncate};
use service_kit::nats::Topology;
use store::PgPool;
use store::dlq::NewDeadLetter;

use crate::ingest::{Identity, IngestError};

#[derive(Debug, Clone)]
pub struct DeadLetterer {
    js: jetstream::Context,
    pool: PgPool,
    topology: Topology,
}

/// The message being dead-lettered.
#[derive(Debug)]
pub struct Failed<'a> {
    pub payload: &'a [u8],
    pub subject: &'a str,
    pub stream_sequence: Option<u64>,
    /// `None` when the message is not an `InboundWebhook` at all.
    pub identity: Option<&'a Identity>,
    pub error: &'a IngestError,
    pub attempts: i32,
}

impl DeadLetterer {
    pub fn new(js: jetstream::Context, pool: PgPool, topology: Topology) -> Self {
        Self { js, pool, topology }
    }

    pub async fn send(&self, failed: Failed<'_>) -> Result<(), IngestError> {
        let error = truncate(&failed.error.to_string());
        let identity = failed.identity;
        let job_id = match identity {
            Some(identity) => identity.webhook_id.clone(),
            None => format!("stream-seq-{}", failed.stream_sequence.unwrap_or_default()),
        };
        let account = identity.map_or("unknown", |i| i.account.as_str());

        let copy = StreamCopy {
            dlq_subject: self.topology.dlq_subject(account),
            original_subject: failed.subject,
            stream_sequence: failed.stream_sequence,
            job_id: &job_id,
            payload: failed.payload,
            attempts: failed.attempts,
            error_kind: failed.error.reason(),
            error: &error,
        };
        if let Err(e) = publish_copy(&self.js, &copy).await {
            return Err(IngestError::Nats(format!("DLQ stream publish failed: {e}")));
        }

        let letter = NewDeadLetter {
            job_id: job_id.clone(),
            job_name: format!(
                "webhook:{}",
                identity.map_or("unknown", |i| i.event.as_str())
            ),
            data: json!({
                "webhookId": job_id,
                "accountId": account,
                "event": identity.map(|i| i.event.as_str()),
                "objectId": identity.and_then(|i| i.object_id.as_deref()),
                "listingId": identity.and_then(|i| i.listing_id.as_deref()),
                "subject": failed.subject,
                "streamSequence": failed.stream_sequence,
                "receivedAt": identity.map(|i| i.received_at.to_rfc3339()),
            }),
            payload: failed.payload.to_vec(),
            attempts: failed.attempts,
            error_kind: failed.error.reason().to_owned(),
            error_message: error.clone(),
            stream_sequence: failed.stream_sequence,
        };
        let mut tx = self.pool.begin().await?;
        // A webhook dead-lettered again for the same reason (a replay before
        // the fix) refreshes its open letter: one letter per webhook and problem.
        store::dlq::insert_or_refresh(&mut tx, &letter).await?;
        if let Some(identity) = identity {
            store::webhook_log::mark_dead_lettered(&mut tx, &identity.meta(), &error).await?;
            store::parked::remove(&mut tx, &identity.webhook_id).await?;
        }
        tx.commit().await?;
        tracing::error!(
            webhook_id = %job_id,
            account_id = account,
            reason = failed.error.reason(),
            attempts = failed.attempts,
            error = %error,
            "webhook moved to the dead-letter queue"
        );
        Ok(())
    }
}

/// Sends a dead letter back to its webhooks subject, marked as a replay, with a
/// fresh `Nats-Msg-Id` (the original may still be inside JetStream's duplicate
/// window). Replaying something already applied is harmless: the ingestor's
/// version rule makes it a no-op.
pub async fn replay(
    js: &jetstream::Context,
    topology: &Topology,
    pool: &PgPool,
    letter: &store::dlq::DeadLetter,
) -> Result<Replayed, ReplayError> {
    if letter.resolved_at.is_some() {
        return Ok(Replayed::AlreadyResolved);
    }
    let webhooks_prefix = format!("{}.webhooks.", topology.namespace());
    let subject = letter
        .data
        .get("subject")
        .and_then(|s| s.as_str())
        .filter(|s| s.starts_with(&webhooks_prefix))
        .map(str::to_owned)
        .ok_or_else(|| ReplayError::Foreign {
            id: letter.id.to_string(),
            why: format!("no webhooks subject of namespace {}", topology.namespace()),
        })?;
    // Undecodable: sent back as it was; it will be dead-lettered again.
    let payload =
        service_kit::inbound::resent(&letter.payload, Some(events::pb::Source::DlqReplay))
            .unwrap_or_else(|| letter.payload.clone());
    let number = republish(js, pool, letter, subject, payload).await?;
    Ok(Replayed::Sent(number))
}
