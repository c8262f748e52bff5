//! The sync job queue: a JetStream work queue holding at most one message per
//! subject, that is per (kind, account, listing, mode). Publishing a job while
//! one is already waiting is refused by the server: the change folds into the
//! waiting job, which keeps its place in line and will read the newest
//! desired state when it runs.

use std::time::Duration;

use crate::nats::Topology;
use async_nats::jetstream;
use chrono::Utc;
use domain::{AccountId, ListingId, SyncKind};
use events::Message as _;
use events::pb;
use store::sync_jobs::JobKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Push what differs from what the connector knows Hostaway has.
    Push,
    /// Read Hostaway back first, then push the drift.
    Reconcile,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Push => "push",
            Mode::Reconcile => "reconcile",
        }
    }
}

/// The line a job waits in: its kind and mode, one durable consumer each, so
/// that a round of reconciliation queued for every listing never stands in
/// front of a manager's fresh change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobLane {
    pub kind: SyncKind,
    pub mode: Mode,
}

impl JobLane {
    pub const fn new(kind: SyncKind, mode: Mode) -> Self {
        Self { kind, mode }
    }

    /// Every line: each kind in each mode.
    pub fn all() -> Vec<JobLane> {
        [Mode::Push, Mode::Reconcile]
            .into_iter()
            .flat_map(|mode| {
                SyncKind::ALL
                    .into_iter()
                    .map(move |kind| JobLane { kind, mode })
            })
            .collect()
    }

    /// `push/availability`, for logs.
    pub fn name(self) -> String {
        format!("{}/{}", self.mode.as_str(), self.kind.as_str())
    }
}

/// A job as the worker receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub key: JobKey,
    pub mode: Mode,
    pub requested_at: Option<chrono::DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Queued,
    /// A job for the same subject was already waiting.
    Folded,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("not connected to NATS")]
    Disconnected,
    #[error("JetStream did not take the job: {0}")]
    Refused(String),
    #[error("a sync job message is malformed: {0}")]
    Malformed(String),
}

#[derive(Debug, Clone)]
pub struct JobQueue {
    client: async_nats::Client,
    js: jetstream::Context,
    topology: Topology,
    timeout: Duration,
}

impl JobQueue {
    pub fn new(client: async_nats::Client, topology: Topology, timeout: Duration) -> Self {
        Self {
            js: jetstream::new(client.clone()),
            client,
            topology,
            timeout,
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn subject(&self, key: &JobKey, mode: Mode) -> String {
        self.topology.sync_subject(
            key.kind.as_str(),
            key.account.as_str(),
            key.listing.as_ref().map(ListingId::as_str),
            mode == Mode::Reconcile,
        )
    }

    /// Queues the job unless one is already waiting on its subject.
    pub async fn enqueue(&self, key: &JobKey, mode: Mode) -> Result<Enqueued, QueueError> {
        if !crate::nats::is_connected(&self.client) {
            return Err(QueueError::Disconnected);
        }
        let message = pb::SyncJob {
            account_id: key.account.to_string(),
            listing_id: key.listing_str().to_owned(),
            kind: events::sync_kind(key.kind) as i32,
            mode: match mode {
                Mode::Push => pb::SyncMode::Push,
                Mode::Reconcile => pb::SyncMode::Reconcile,
            } as i32,
            requested_at: Some(events::timestamp(Utc::now())),
        };
        let publish = crate::publish::traced_message().payload(message.encode_to_vec().into());
        let sent = async {
            let ack = self
                .js
                .send_publish(self.subject(key, mode), publish)
                .await
                .map_err(|e| QueueError::Refused(e.to_string()))?;
            match ack.await {
                Ok(_) => Ok(Enqueued::Queued),
                Err(e) if is_subject_full(&e) => Ok(Enqueued::Folded),
                Err(e) => Err(QueueError::Refused(e.to_string())),
            }
        };
        tokio::time::timeout(self.timeout, sent)
            .await
            .map_err(|_| {
                QueueError::Refused(format!("no acknowledgement within {:?}", self.timeout))
            })?
    }
}

/// The server refused the job because its subject already holds one.
fn is_subject_full(error: &async_nats::jetstream::context::PublishError) -> bool {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<async_nats::jetstream::Error>())
        .is_some_and(|e| {
            e.error_code() == async_nats::jetstream::ErrorCode::STREAM_STORE_FAILED
                && e.to_string().contains("per subject")
        })
}

/// Decodes a job message; its subject must be the one its content names.
pub fn decode(topology: &Topology, subject: &str, payload: &[u8]) -> Result<Job, QueueError> {
    let message = pb::SyncJob::decode(payload).map_err(|e| QueueError::Malformed(e.to_string()))?;
    let kind = pb::SyncKind::try_from(message.kind)
        .ok()
        .and_then(events::from_sync_kind)
        .ok_or_else(|| QueueError::Malformed("unknown kind".into()))?;
    let mode = match pb::SyncMode::try_from(message.mode) {
        Ok(pb::SyncMode::Push) => Mode::Push,
        Ok(pb::SyncMode::Reconcile) => Mode::Reconcile,
        _ => return Err(QueueError::Malformed("unknown mode".into())),
    };
    let account =
        AccountId::parse(message.account_id).map_err(|e| QueueError::Malformed(e.to_string()))?;
    let listing = if message.listing_id.is_empty() {
        None
    } else {
        Some(
            ListingId::parse(message.listing_id)
                .map_err(|e| QueueError::Malformed(e.to_string()))?,
        )
    };
    if (kind == SyncKind::Reservations) != listing.is_none() {
        return Err(QueueError::Malformed(
            "reservation polling is per account; every other kind per listing".into(),
        ));
    }
    let key = JobKey {
        account,
        listing,
        kind,
    };
    let expected = topology.sync_subject(
        kind.as_str(),
        key.account.as_str(),
        key.listing.as_ref().map(ListingId::as_str),
        mode == Mode::Reconcile,
    );
    if subject != expected {
        return Err(QueueError::Malformed(format!(
            "published on {subject}, but names {expected}"
        )));
    }
    Ok(Job {
        key,
        mode,
        requested_at: message
            .requested_at
            .as_ref()
            .and_then(events::from_timestamp),
    })
}
