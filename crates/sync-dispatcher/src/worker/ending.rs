//! How a job's message ends: acknowledged once nothing moved while it ran,
//! delivered again (at once, or later), or dead-lettered. The lease is given
//! back first in every case.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use domain::{SyncKind, UnitId};
use retry::full_jitter;
use service_kit::consume::{ack, contention_delay};
use store::sync_jobs::JobEnd;
use store::{StoreError, Trouble};

use super::{JobError, JobRunner, Ran, Report};
use crate::dead_letter::FailedJob;
use crate::queue::{Job, Mode};

impl JobRunner {
    /// Ends the job's message the way the run's outcome says: every ending
    /// (ack, nak, delayed nak, dead letter) is drawn in ADR 0009.
    pub(super) async fn conclude(
        &self,
        message: &jetstream::Message,
        job: &Job,
        ran: Ran,
        result: Result<Report, JobError>,
        started: Instant,
    ) {
        let kind = job.key.kind;
        let kind_label = kind.as_str();
        match result {
            Ok(report) => {
                self.gate.mark_up();
                self.release(job, &ran, JobEnd::Succeeded).await;
                if let Ok(mut conn) = self.pool.acquire().await
                    && let Err(error) = store::dlq::resolve_for_job(&mut conn, &job.key.id()).await
                {
                    tracing::warn!(%error, "cannot resolve the job's dead letters");
                }
                self.metrics
                    .jobs
                    .with_label_values(&[kind_label, "success"])
                    .inc();
                self.metrics
                    .job_duration
                    .with_label_values(&[kind_label])
                    .observe(started.elapsed().as_secs_f64());
                tracing::info!(
                    calls = ran.calls,
                    ranges = report.ranges,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "sync job completed"
                );
                self.let_go(message, job, ran.revision).await;
            }
            Err(JobError::Defer { reason, delay }) => {
                self.release(job, &ran, JobEnd::Released).await;
                self.defer(message, kind, reason, delay).await;
            }
            Err(JobError::Store(error)) => {
                self.release(job, &ran, JobEnd::Released).await;
                self.store_trouble(message, kind, &error).await;
            }
            Err(JobError::Failed {
                reason,
                message: text,
                retryable,
                context,
            }) => {
                tracing::Span::current().record("otel.status_code", "ERROR");
                self.metrics
                    .jobs
                    .with_label_values(&[kind_label, "failure"])
                    .inc();
                let attempts = self.release(job, &ran, JobEnd::Failed(&text)).await;
                let exhausted =
                    attempts >= i32::try_from(self.settings.retry.max_attempts).unwrap_or(i32::MAX);
                if retryable && !exhausted {
                    let delay = self.settings.retry.delay(attempts.max(1) as u32);
                    tracing::warn!(reason, error = %text, attempts, retry_in_ms = delay.as_millis() as u64, "sync job failed; will retry");
                    ack(message, AckKind::Nak(Some(delay))).await;
                    return;
                }
                let failed = FailedJob {
                    key: &job.key,
                    mode: job.mode,
                    message,
                    attempts,
                    reason: &reason,
                    error: &text,
                    context,
                };
                match self.dead_letters.job(failed).await {
                    Ok(()) => {
                        self.metrics
                            .dead_lettered
                            .with_label_values(&[kind_label, &reason])
                            .inc();
                        // The letter holds this failure; the next change
                        // starts with every attempt again.
                        if let Err(error) =
                            store::sync_jobs::reset_attempts(&self.pool, &job.key).await
                        {
                            tracing::warn!(%error, "cannot reset the job's attempts");
                        }
                        ack(message, AckKind::Ack).await;
                        // A correction published while it failed folded
                        // into this job: it gets a job of its own.
                        self.requeue_if_moved(job, ran.revision).await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot dead-letter the job yet; it stays queued");
                        ack(message, AckKind::Nak(Some(Duration::from_secs(5)))).await;
                    }
                }
            }
        }
    }

    pub(super) async fn release(&self, job: &Job, ran: &Ran, end: JobEnd<'_>) -> i32 {
        match store::sync_jobs::release(&self.pool, &job.key, ran.lease, end, ran.calls).await {
            Ok(attempts) => attempts,
            Err(error) => {
                tracing::warn!(%error, "cannot release the lease; it expires by itself");
                0
            }
        }
    }

    /// Lets a finished job's message go. Changes made while the job ran found
    /// its message waiting and folded into it; while the message is on the
    /// queue they are safe, so it is acknowledged only once it is known that
    /// none came, and otherwise delivered again (a push) or followed by a push
    /// (a reconciliation, whose subject is another).
    pub(super) async fn let_go(
        &self,
        message: &jetstream::Message,
        job: &Job,
        read: Option<(UnitId, i64)>,
    ) {
        match self.moved_since(job, read).await {
            Ok(false) => {
                if let Err(error) = message.double_ack().await {
                    tracing::warn!(%error, "job acknowledgement not confirmed; it may run again (harmlessly)");
                }
                // A change committed between the check and the acknowledgement.
                self.requeue_if_moved(job, read).await;
            }
            Ok(true) if job.mode == Mode::Push => {
                tracing::info!("desired state moved while the job ran; it runs again");
                ack(message, AckKind::Nak(None)).await;
            }
            Ok(true) => match self.queue.enqueue(&job.key, Mode::Push).await {
                Ok(_) => ack(message, AckKind::Ack).await,
                Err(error) => {
                    tracing::warn!(%error, "cannot queue the follow-up push; the reconciliation runs again");
                    ack(message, AckKind::Nak(Some(Duration::from_secs(5)))).await;
                }
            },
            Err(error) => {
                // Running again pushes only what is still missing.
                tracing::warn!(%error, "cannot check for changes made meanwhile; the job runs again");
                ack(message, AckKind::Nak(Some(Duration::from_secs(5)))).await;
            }
        }
    }

    /// Whether the unit's desired state moved after the job read revision `read`.
    pub(super) async fn moved_since(
        &self,
        job: &Job,
        read: Option<(UnitId, i64)>,
    ) -> Result<bool, StoreError> {
        let Some((unit, revision)) = read else {
            return Ok(false);
        };
        let mut conn = self.pool.acquire().await?;
        let (current, _) = store::desired::revision(&mut conn, unit, job.key.kind).await?;
        Ok(current != revision)
    }

    pub(super) async fn defer(
        &self,
        message: &jetstream::Message,
        kind: SyncKind,
        reason: &'static str,
        delay: Duration,
    ) {
        self.metrics
            .deferred
            .with_label_values(&[kind.as_str(), reason])
            .inc();
        tracing::debug!(
            reason,
            delay_ms = delay.as_millis() as u64,
            "sync job deferred"
        );
        let delay = (!delay.is_zero()).then_some(delay);
        ack(message, AckKind::Nak(delay)).await;
    }

    pub(super) async fn store_trouble(
        &self,
        message: &jetstream::Message,
        kind: SyncKind,
        error: &StoreError,
    ) {
        let delay = match self.gate.note(error) {
            Trouble::Outage => self.gate.retry_delay(),
            Trouble::Contention => contention_delay(),
            // Counted as attempts where the run holds its lease (see
            // `JobError::from`); before that, only waited out.
            Trouble::Timeout | Trouble::Failure => {
                full_jitter(Duration::from_millis(200), Duration::from_secs(5), 3)
            }
        };
        tracing::warn!(%error, "database trouble; the job waits");
        self.defer(message, kind, "database", delay).await;
    }

    /// Queues a push if the unit's desired state moved after the job read it
    /// and its message is already gone.
    pub(super) async fn requeue_if_moved(&self, job: &Job, read: Option<(UnitId, i64)>) {
        match self.moved_since(job, read).await {
            Ok(true) => {
                if let Err(error) = self.queue.enqueue(&job.key, Mode::Push).await {
                    tracing::warn!(%error, "cannot queue the follow-up job; reconciliation will catch up");
                }
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "cannot check for changes made meanwhile"),
        }
    }
}
