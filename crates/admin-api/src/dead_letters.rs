//! The dead-letter queue: list with filters, inspect, replay, resolve, purge.
//! Replays go back through the same consumers as the original messages
//! (`booking_ingestor::dead_letter` for webhooks, `sync_dispatcher::dead_letter`
//! for sync jobs and TVL changes).

use events::{Message as _, pb};
use serde_json::json;
use service_kit::dead_letter::Replayed;
use store::dlq::{DeadLetter, Filter};
use tonic::Status;
use uuid::Uuid;

use crate::convert::{instant, non_empty, store_status, timestamp};
use crate::proto;
use crate::service::{Context, Detail};

/// Letters one call acts on at most (a larger backlog: call again).
const MAX_LETTERS: i64 = 1_000;

fn filter(message: Option<&proto::DeadLetterFilter>) -> Result<Filter, Status> {
    let Some(message) = message else {
        return Ok(Filter::default());
    };
    Ok(Filter {
        account: non_empty(&message.account_id),
        kind: non_empty(&message.kind),
        reason: non_empty(&message.reason),
        failed_after: instant("filter.failed_after", message.failed_after.as_ref())?,
        failed_before: instant("filter.failed_before", message.failed_before.as_ref())?,
        include_resolved: message.include_resolved,
    })
}

fn to_message(letter: &DeadLetter, with_body: bool) -> proto::DeadLetter {
    let text = |value: &serde_json::Value, key: &str| {
        value
            .get(key)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let body = if with_body {
        pb::InboundWebhook::decode(letter.payload.as_slice())
            .ok()
            .map(|m| String::from_utf8_lossy(&m.raw_body).into_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    proto::DeadLetter {
        id: letter.id.to_string(),
        job_id: letter.job_id.clone(),
        job_name: letter.job_name.clone(),
        account_id: text(&letter.data, "accountId"),
        failed_at: Some(timestamp(letter.failed_at)),
        attempts: letter.attempts,
        error_kind: text(&letter.error, "kind"),
        error_message: text(&letter.error, "message"),
        replay_count: letter.replay_count,
        replayed_at: letter.replayed_at.map(timestamp),
        resolved_at: letter.resolved_at.map(timestamp),
        data_json: letter.data.to_string(),
        body,
    }
}

fn id(raw: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(raw.trim())
        .map_err(|_| Status::invalid_argument(format!("{raw:?} is not a dead letter id")))
}

async fn by_id(ctx: &Context, raw: &str) -> Result<DeadLetter, Status> {
    let id = id(raw)?;
    store::dlq::get(&ctx.pool, id)
        .await
        .map_err(store_status)?
        .ok_or_else(|| Status::not_found(format!("dead letter {id} not found")))
}

/// The letters a replay or resolve names: by ids, or every open one
/// matching the filter (a filter is required: "all" is said explicitly
/// with an empty one).
async fn chosen(
    ctx: &Context,
    ids: &[String],
    message: Option<&proto::DeadLetterFilter>,
) -> Result<Vec<DeadLetter>, Status> {
    if !ids.is_empty() {
        let mut letters = Vec::with_capacity(ids.len());
        for raw in ids {
            letters.push(by_id(ctx, raw).await?);
        }
        return Ok(letters);
    }
    if message.is_none() {
        return Err(Status::invalid_argument(
            "give ids, or a filter (an empty filter means every open letter)",
        ));
    }
    let mut filter = filter(message)?;
    filter.include_resolved = false;
    store::dlq::list_filtered(&ctx.pool, &filter, MAX_LETTERS)
        .await
        .map_err(store_status)
}

pub async fn list(
    ctx: &Context,
    req: proto::ListDeadLettersRequest,
) -> Result<(proto::ListDeadLettersResponse, Detail), Status> {
    let filter = filter(req.filter.as_ref())?;
    let limit = crate::convert::limit(req.limit, 100).min(MAX_LETTERS);
    let letters = store::dlq::list_filtered(&ctx.pool, &filter, limit)
        .await
        .map_err(store_status)?;
    Ok((
        proto::ListDeadLettersResponse {
            letters: letters.iter().map(|l| to_message(l, false)).collect(),
        },
        Detail::Null,
    ))
}

pub async fn get(
    ctx: &Context,
    req: proto::GetDeadLetterRequest,
) -> Result<(proto::DeadLetter, Detail), Status> {
    let letter = by_id(ctx, &req.id).await?;
    Ok((to_message(&letter, true), Detail::Null))
}

fn outcomes(list: Vec<proto::DeadLetterOutcome>) -> (proto::DeadLetterOutcomes, Detail) {
    let failed = list.iter().filter(|o| o.outcome == "failed").count();
    let done = list.len() - failed;
    let detail = json!({
        "letters": list.iter().map(|o| json!({"id": o.id, "outcome": o.outcome})).collect::<Vec<_>>(),
    });
    (
        proto::DeadLetterOutcomes {
            done: i32::try_from(done).unwrap_or(i32::MAX),
            failed: i32::try_from(failed).unwrap_or(i32::MAX),
            outcomes: list,
        },
        detail,
    )
}

pub async fn replay(
    ctx: &Context,
    req: proto::ReplayDeadLettersRequest,
) -> Result<(proto::DeadLetterOutcomes, Detail), Status> {
    let letters = chosen(ctx, &req.ids, req.filter.as_ref()).await?;
    let mut list = Vec::with_capacity(letters.len());
    for letter in letters {
        let result = if sync_dispatcher::dead_letter::owns(&letter) {
            sync_dispatcher::dead_letter::replay(&ctx.queue, &ctx.js, &ctx.pool, &letter)
                .await
                .map_err(|e| e.to_string())
        } else {
            booking_ingestor::dead_letter::replay(&ctx.js, &ctx.topology, &ctx.pool, &letter)
                .await
                .map_err(|e| e.to_string())
        };
        // One letter that cannot go back must not hold the others.
        let (outcome, message) = match result {
            Ok(Replayed::Sent(n)) => ("replayed", format!("replay #{n}")),
            Ok(Replayed::AlreadyResolved) => ("already_resolved", String::new()),
            Err(error) => ("failed", error),
        };
        list.push(proto::DeadLetterOutcome {
            id: letter.id.to_string(),
            outcome: outcome.into(),
            message,
        });
    }
    Ok(outcomes(list))
}

pub async fn resolve(
    ctx: &Context,
    req: proto::ResolveDeadLettersRequest,
) -> Result<(proto::DeadLetterOutcomes, Detail), Status> {
    let letters = chosen(ctx, &req.ids, req.filter.as_ref()).await?;
    let mut list = Vec::with_capacity(letters.len());
    for letter in letters {
        let closed = store::dlq::resolve(&ctx.pool, letter.id)
            .await
            .map_err(store_status)?;
        list.push(proto::DeadLetterOutcome {
            id: letter.id.to_string(),
            outcome: if closed {
                "resolved"
            } else {
                "already_resolved"
            }
            .into(),
            message: String::new(),
        });
    }
    Ok(outcomes(list))
}

pub async fn purge(
    ctx: &Context,
    req: proto::PurgeDeadLettersRequest,
) -> Result<(proto::PurgeDeadLettersResponse, Detail), Status> {
    let before = instant("failed_before", req.failed_before.as_ref())?
        .ok_or_else(|| Status::invalid_argument("failed_before is required"))?;
    let purged = store::dlq::purge_resolved_before(&ctx.pool, before)
        .await
        .map_err(store_status)?;
    let purged = i64::try_from(purged).unwrap_or(i64::MAX);
    Ok((
        proto::PurgeDeadLettersResponse { purged },
        json!({"failedBefore": before, "purged": purged}),
    ))
}
