//! Sync status and triggers, booking events re-emitted, the audit trail.

use std::time::Duration;

use domain::{AccountId, ListingId, SyncKind};
use serde_json::json;
use store::sync_jobs::JobKey;
use sync_dispatcher::channel_config::{sync_type, sync_type_name};
use sync_dispatcher::queue::{Enqueued, Mode};
use tonic::Status;

use crate::convert::{
    account as parse_account, instant, non_empty, optional_listing, store_status, timestamp,
};
use crate::proto;
use crate::service::{Context, Detail};

/// Hostaway's account budget window.
const BUDGET_WINDOW: Duration = Duration::from_secs(10);

fn queue_status(error: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("the job was not queued: {error}"))
}

/// Queues a job of `kind` for one listing or every linked listing of the
/// account (reservations: the account). Returns the jobs newly queued (a job
/// already waiting takes the request in).
pub(crate) async fn queue_listings(
    ctx: &Context,
    account: &AccountId,
    listing: Option<ListingId>,
    kind: SyncKind,
    mode: Mode,
) -> Result<i32, Status> {
    let keys: Vec<JobKey> = if kind == SyncKind::Reservations {
        vec![JobKey {
            account: account.clone(),
            listing: None,
            kind,
        }]
    } else {
        let links = store::links::list(&ctx.pool, Some(account))
            .await
            .map_err(store_status)?;
        let listings: Vec<ListingId> = match listing {
            Some(listing) => {
                if !links.iter().any(|l| l.listing == listing) {
                    return Err(Status::failed_precondition(format!(
                        "listing {listing} of account {account} is not linked to a unit"
                    )));
                }
                vec![listing]
            }
            None => links.into_iter().map(|l| l.listing).collect(),
        };
        listings
            .into_iter()
            .map(|listing| JobKey {
                account: account.clone(),
                listing: Some(listing),
                kind,
            })
            .collect()
    };
    let mut queued = 0;
    for key in &keys {
        if let Enqueued::Queued = ctx.queue.enqueue(key, mode).await.map_err(queue_status)? {
            queued += 1;
        }
    }
    Ok(queued)
}

pub async fn trigger(
    ctx: &Context,
    req: proto::TriggerSyncRequest,
) -> Result<(proto::TriggerSyncResponse, Detail), Status> {
    let account = parse_account(&req.account_id)?;
    let listing = optional_listing(&req.listing_id)?;
    let kind = sync_type(req.sync_type.trim()).ok_or_else(|| {
        Status::invalid_argument(
            "sync_type: availability, pricing, listing_details or reservations",
        )
    })?;
    let mode = match req.mode.trim() {
        "push" => Mode::Push,
        "reconcile" | "" => Mode::Reconcile,
        _ => return Err(Status::invalid_argument("mode: push or reconcile")),
    };
    if kind == SyncKind::Reservations && (listing.is_some() || mode == Mode::Push) {
        return Err(Status::invalid_argument(
            "reservations are polled per account, by reconciliation",
        ));
    }
    crate::accounts::require(ctx, &account).await?;
    let queued = queue_listings(ctx, &account, listing.clone(), kind, mode).await?;
    Ok((
        proto::TriggerSyncResponse { queued },
        json!({
            "syncType": sync_type_name(kind),
            "mode": mode.as_str(),
            "listingId": listing.as_ref().map(ListingId::as_str),
            "queued": queued,
        }),
    ))
}

pub async fn status(
    ctx: &Context,
    req: proto::GetSyncStatusRequest,
) -> Result<(proto::SyncStatus, Detail), Status> {
    let account = parse_account(&req.account_id)?;
    let only = optional_listing(&req.listing_id)?;
    crate::accounts::require(ctx, &account).await?;
    let (version, config) = sync_dispatcher::channel_config::in_force(&ctx.pool, &account)
        .await
        .map_err(store_status)?;
    let (open_until, used) = store::api_shared::account_state(&ctx.pool, &account, BUDGET_WINDOW)
        .await
        .map_err(store_status)?;
    let jobs = store::sync_jobs::list(&ctx.pool, Some(&account))
        .await
        .map_err(store_status)?;
    let job_status = |job: &store::sync_jobs::JobRow| proto::JobStatus {
        sync_type: sync_type_name(job.key.kind).to_owned(),
        last_success_at: job.last_success_at.map(timestamp),
        attempts: job.attempts,
        last_error: job.last_error.clone().unwrap_or_default(),
        running: job.leased,
        calls: job.calls,
    };
    let listings = sync_dispatcher::report::status(&ctx.pool, Some(&account))
        .await
        .map_err(store_status)?
        .into_iter()
        .filter(|s| only.as_ref().is_none_or(|l| *l == s.listing))
        .map(|s| proto::ListingSyncStatus {
            listing_id: s.listing.to_string(),
            unit_id: s.unit.to_string(),
            pending_availability_days: i64::try_from(s.pending_availability).unwrap_or(i64::MAX),
            pending_pricing_days: i64::try_from(s.pending_pricing).unwrap_or(i64::MAX),
            fewest_writes: i64::try_from(s.minimum_writes).unwrap_or(i64::MAX),
            jobs: jobs
                .iter()
                .filter(|j| j.key.listing.as_ref() == Some(&s.listing))
                .map(job_status)
                .collect(),
        })
        .collect();
    let open_dead_letters = store::dlq::count_open_of(&ctx.pool, account.as_str())
        .await
        .map_err(store_status)?;
    Ok((
        proto::SyncStatus {
            account_id: account.to_string(),
            circuit_open: open_until.is_some(),
            circuit_open_until: open_until.map(timestamp),
            budget_used: used,
            budget_limit: i64::from(if version > 0 {
                config.requests_per_window(ctx.account_budget)
            } else {
                ctx.account_budget
            }),
            config_version: version,
            enabled_types: config.sync.enabled_types.iter().cloned().collect(),
            listings,
            open_dead_letters,
        },
        Detail::Null,
    ))
}

pub async fn reemit(
    ctx: &Context,
    req: proto::ReemitBookingEventsRequest,
) -> Result<(proto::ReemitBookingEventsResponse, Detail), Status> {
    let since = instant("since", req.since.as_ref())?
        .ok_or_else(|| Status::invalid_argument("since is required"))?;
    let account = non_empty(&req.account_id)
        .map(|a| parse_account(&a))
        .transpose()?;
    let publisher = booking_ingestor::outbox::EventPublisher::new(
        ctx.js.clone(),
        ctx.topology.clone(),
        ctx.metrics.ingestor.clone(),
    );
    let done =
        booking_ingestor::reemit::reemit(&ctx.pool, &publisher, since, account.as_ref(), |_| {})
            .await
            .map_err(|error| Status::unavailable(format!("re-emission stopped: {error}")))?;
    let published = i64::try_from(done.published).unwrap_or(i64::MAX);
    let failed = i64::try_from(done.failed).unwrap_or(i64::MAX);
    Ok((
        proto::ReemitBookingEventsResponse { published, failed },
        json!({"since": since, "published": published, "failed": failed}),
    ))
}

pub async fn audit_entries(
    ctx: &Context,
    req: proto::ListAuditEntriesRequest,
) -> Result<(proto::ListAuditEntriesResponse, Detail), Status> {
    let account = non_empty(&req.account_id);
    let since = instant("since", req.since.as_ref())?;
    let limit = if req.limit == 0 {
        100
    } else {
        i64::from(req.limit.min(1_000))
    };
    let entries = store::admin::audit_entries(&ctx.pool, account.as_deref(), since, limit)
        .await
        .map_err(store_status)?
        .into_iter()
        .map(|e| proto::AuditEntry {
            id: e.id,
            at: Some(timestamp(e.at)),
            actor: e.actor,
            role: e.role,
            method: e.method,
            account_id: e.account_id.unwrap_or_default(),
            outcome: e.outcome,
            detail_json: e.detail.to_string(),
        })
        .collect();
    Ok((proto::ListAuditEntriesResponse { entries }, Detail::Null))
}
