//! Dead letters of the outbound path: changes that break the contract, and
//! sync jobs that exhausted their attempts or can never succeed. Each is
//! copied to the DLQ stream and recorded in `dead_letter_queue`, with enough
//! context to replay: a job is queued again (it reads the newest desired
//! state then), a change is published again on its subject.

use async_nats::jetstream;
use serde_json::{Value, json};
pub use service_kit::dead_letter::{ReplayError, Replayed};
use service_kit::dead_letter::{StreamCopy, publish_copy, republish, truncate};
use service_kit::nats::Topology;
use store::PgPool;
use store::dlq::{DeadLetter, NewDeadLetter};
use store::sync_jobs::JobKey;

use crate::queue::{self, JobQueue, Mode};

/// `job_name` prefixes in `dead_letter_queue`.
pub const JOB_PREFIX: &str = "sync:";
pub const CHANGE_PREFIX: &str = "change:";

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("DLQ stream publish failed: {0}")]
    Nats(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

#[derive(Debug, Clone)]
pub struct SyncDeadLetters {
    js: jetstream::Context,
    pool: PgPool,
    topology: Topology,
}

/// Where a refused message goes, and why.
struct Refused<'a> {
    job_id_prefix: &'static str,
    job_name: String,
    dlq_subject: String,
    reason: &'a str,
    error: &'a str,
}

/// A failed sync job, with what an operator needs to read.
#[derive(Debug)]
pub struct FailedJob<'a> {
    pub key: &'a JobKey,
    pub mode: Mode,
    pub message: &'a jetstream::Message,
    pub attempts: i32,
    pub reason: &'a str,
    pub error: &'a str,
    /// The unit, the ranges that could not be pushed, the HTTP status…
    pub context: Value,
}

impl SyncDeadLetters {
    pub fn new(js: jetstream::Context, pool: PgPool, topology: Topology) -> Self {
        Self { js, pool, topology }
    }

    pub async fn job(&self, failed: FailedJob<'_>) -> Result<(), DeadLetterError> {
        let job_id = failed.key.id();
        let error = truncate(failed.error);
        let stream_sequence = failed.message.info().ok().map(|i| i.stream_sequence);
        let subject = failed.message.subject.as_str();
        self.copy(StreamCopy {
            dlq_subject: self
                .topology
                .dlq_sync_subject(failed.key.kind.as_str(), failed.key.account.as_str()),
            original_subject: subject,
            stream_sequence,
            job_id: &job_id,
            payload: &failed.message.payload,
            attempts: failed.attempts,
            error_kind: failed.reason,
            error: &error,
        })
        .await?;
        let letter = NewDeadLetter {
            job_id: job_id.clone(),
            job_name: format!("{JOB_PREFIX}{}", failed.key.kind),
            data: json!({
                "accountId": failed.key.account.as_str(),
                "listingId": failed.key.listing.as_ref().map(|l| l.as_str()),
                "kind": failed.key.kind.as_str(),
                "mode": match failed.mode { Mode::Push => "push", Mode::Reconcile => "reconcile" },
                "subject": subject,
                "streamSequence": stream_sequence,
                "context": failed.context,
            }),
            payload: failed.message.payload.to_vec(),
            attempts: failed.attempts,
            error_kind: failed.reason.to_owned(),
            error_message: error.clone(),
            stream_sequence,
        };
        let mut conn = self.pool.acquire().await.map_err(store::StoreError::from)?;
        store::dlq::insert_or_refresh(&mut conn, &letter).await?;
        tracing::error!(
            job_id = %job_id,
            reason = failed.reason,
            attempts = failed.attempts,
            error = %error,
            "sync job moved to the dead-letter queue"
        );
        Ok(())
    }

    /// A change that cannot be applied (it breaks the contract).
    pub async fn change(
        &self,
        message: &jetstream::Message,
        kind: &str,
        reason: &str,
        error: &str,
    ) -> Result<(), DeadLetterError> {
        let letter = Refused {
            job_id_prefix: "change-seq",
            job_name: format!("{CHANGE_PREFIX}{kind}"),
            dlq_subject: self.topology.dlq_changes_subject(kind),
            reason,
            error,
        };
        self.refused(message, letter).await?;
        tracing::warn!(error, subject = %message.subject, "change refused; moved to the dead-letter queue");
        Ok(())
    }

    /// A message on the sync subjects that is not a job the connector wrote.
    pub async fn malformed_job(
        &self,
        message: &jetstream::Message,
        error: &str,
    ) -> Result<(), DeadLetterError> {
        let letter = Refused {
            job_id_prefix: "sync-seq",
            job_name: format!("{JOB_PREFIX}malformed"),
            dlq_subject: self.topology.dlq_sync_subject("malformed", "unknown"),
            reason: "malformed",
            error,
        };
        self.refused(message, letter).await?;
        tracing::error!(error, subject = %message.subject, "malformed sync job moved to the dead-letter queue");
        Ok(())
    }

    /// A message refused as it stands (nothing to retry).
    async fn refused(
        &self,
        message: &jetstream::Message,
        refused: Refused<'_>,
    ) -> Result<(), DeadLetterError> {
        let stream_sequence = message.info().ok().map(|i| i.stream_sequence);
        let job_id = format!(
            "{}-{}",
            refused.job_id_prefix,
            stream_sequence.unwrap_or_default()
        );
        let error = truncate(refused.error);
        let reason = refused.reason;
        let subject = message.subject.as_str();
        self.copy(StreamCopy {
            dlq_subject: refused.dlq_subject,
            original_subject: subject,
            stream_sequence,
            job_id: &job_id,
            payload: &message.payload,
            attempts: 1,
            error_kind: reason,
            error: &error,
        })
        .await?;
        let letter = NewDeadLetter {
            job_id: job_id.clone(),
            job_name: refused.job_name,
            data: json!({
                "subject": subject,
                "streamSequence": stream_sequence,
                "msgId": message.headers.as_ref()
                    .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                    .map(|v| truncate(v.as_str())),
            }),
            payload: message.payload.to_vec(),
            attempts: 1,
            error_kind: reason.to_owned(),
            error_message: error.clone(),
            stream_sequence,
        };
        let mut conn = self.pool.acquire().await.map_err(store::StoreError::from)?;
        store::dlq::insert(&mut conn, &letter).await?;
        Ok(())
    }

    async fn copy(&self, copy: StreamCopy<'_>) -> Result<(), DeadLetterError> {
        publish_copy(&self.js, &copy)
            .await
            .map_err(|e| DeadLetterError::Nats(e.to_string()))
    }
}

/// Whether this module replays `letter` (the ingestor replays webhooks).
pub fn owns(letter: &DeadLetter) -> bool {
    letter.job_name.starts_with(JOB_PREFIX) || letter.job_name.starts_with(CHANGE_PREFIX)
}

/// Replays a sync job (queued again with its attempts reset: it reads the
/// newest desired state when it runs; its letter is resolved when a job of
/// that listing and kind next succeeds) or a change (published again on its
/// subject with a fresh `Nats-Msg-Id`; its letter is resolved at once).
pub async fn replay(
    queue: &JobQueue,
    js: &jetstream::Context,
    pool: &PgPool,
    letter: &DeadLetter,
) -> Result<Replayed, ReplayError> {
    if letter.resolved_at.is_some() {
        return Ok(Replayed::AlreadyResolved);
    }
    let topology = queue.topology();
    let foreign = || ReplayError::Foreign {
        id: letter.id.to_string(),
        why: format!(
            "not a sync job or change of namespace {}",
            topology.namespace()
        ),
    };
    let subject = letter
        .data
        .get("subject")
        .and_then(Value::as_str)
        .ok_or_else(foreign)?;
    if letter.job_name.starts_with(JOB_PREFIX) {
        let job = queue::decode(topology, subject, &letter.payload).map_err(|_| foreign())?;
        store::sync_jobs::reset_attempts(pool, &job.key).await?;
        let number = store::dlq::mark_replayed(pool, letter.id).await?;
        queue
            .enqueue(&job.key, job.mode)
            .await
            .map_err(|e| ReplayError::Publish(e.to_string()))?;
        return Ok(Replayed::Sent(number));
    }
    let changes_prefix = format!("{}.changes.", topology.namespace());
    if !letter.job_name.starts_with(CHANGE_PREFIX) || !subject.starts_with(&changes_prefix) {
        return Err(foreign());
    }
    let number = republish(js, pool, letter, subject.to_owned(), letter.payload.clone()).await?;
    // The change is back on its stream: if it fails again it is a new letter.
    let mut conn = pool.acquire().await.map_err(store::StoreError::from)?;
    store::dlq::resolve_for_job(&mut conn, &letter.job_id).await?;
    Ok(Replayed::Sent(number))
}
