//! What the connector made of Hostaway's webhooks: bookings, blocks, double
//! bookings, the webhook log, parked webhooks. Reads only.

use tonic::Status;

use crate::convert::{account as parse_account, limit, non_empty, store_status, timestamp, unit};
use crate::proto;
use crate::service::{Context, Detail};

fn text(value: Option<String>) -> String {
    value.unwrap_or_default()
}

pub async fn bookings(
    ctx: &Context,
    req: proto::ListBookingsRequest,
) -> Result<(proto::ListBookingsResponse, Detail), Status> {
    let account = non_empty(&req.account_id)
        .map(|a| parse_account(&a))
        .transpose()?;
    let bookings =
        store::bookings::list(&ctx.pool, account.as_ref(), Some(limit(req.limit, 1_000)))
            .await
            .map_err(store_status)?
            .into_iter()
            .map(|b| proto::Booking {
                booking_id: b.id.to_string(),
                reservation_id: b.external_id,
                account_id: b.hostaway_account_id,
                listing_id: b.hostaway_listing_id,
                unit_id: b.unit_id.to_string(),
                status: b.status,
                arrival_date: b.arrival_date.to_string(),
                departure_date: b.departure_date.to_string(),
                nights: b.nights,
                guest_name: text(b.guest_name),
                total_minor: b.total_amount_minor,
                currency: text(b.currency),
                channel_name: text(b.channel_name),
                hostaway_updated_on: b
                    .source_updated_at
                    .map(|at| at.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default(),
                block_kind: text(b.block_kind),
            })
            .collect();
    Ok((proto::ListBookingsResponse { bookings }, Detail::Null))
}

pub async fn blocks(
    ctx: &Context,
    req: proto::ListBlocksRequest,
) -> Result<(proto::ListBlocksResponse, Detail), Status> {
    let only = non_empty(&req.unit_id).map(|u| unit(&u)).transpose()?;
    let blocks = store::bookings::list_blocks(&ctx.pool, only)
        .await
        .map_err(store_status)?
        .into_iter()
        .map(|b| proto::Block {
            unit_id: b.unit_id.to_string(),
            start_date: b.start_date.to_string(),
            end_date: b.end_date.to_string(),
            kind: b.kind,
            reservation_id: b.external_id,
            booking_id: b.booking_id.to_string(),
        })
        .collect();
    Ok((proto::ListBlocksResponse { blocks }, Detail::Null))
}

pub async fn double_bookings(
    ctx: &Context,
) -> Result<(proto::ListDoubleBookingsResponse, Detail), Status> {
    let double_bookings = store::bookings::list_double_bookings(&ctx.pool)
        .await
        .map_err(store_status)?
        .into_iter()
        .map(|d| proto::DoubleBooking {
            id: d.id.to_string(),
            unit_id: d.unit_id.to_string(),
            booking_a: d.booking_a.to_string(),
            booking_b: d.booking_b.to_string(),
            overlap_start: d.overlap_start.to_string(),
            overlap_end: d.overlap_end.to_string(),
            resolved: d.resolved,
        })
        .collect();
    Ok((
        proto::ListDoubleBookingsResponse { double_bookings },
        Detail::Null,
    ))
}

pub async fn webhooks(
    ctx: &Context,
    req: proto::ListWebhooksRequest,
) -> Result<(proto::ListWebhooksResponse, Detail), Status> {
    let webhooks = store::webhook_log::list(&ctx.pool, limit(req.limit, 50))
        .await
        .map_err(store_status)?
        .into_iter()
        .map(|w| proto::WebhookLogEntry {
            webhook_id: w.webhook_id,
            account_id: w.hostaway_account_id,
            event: w.event,
            object_id: text(w.object_id),
            status: w.status,
            outcome: text(w.outcome),
            deliveries: w.deliveries,
            attempts: w.attempts,
            error: text(w.error),
            adjustments: text(w.adjustments),
        })
        .collect();
    Ok((proto::ListWebhooksResponse { webhooks }, Detail::Null))
}

pub async fn parked(
    ctx: &Context,
    req: proto::ListParkedWebhooksRequest,
) -> Result<(proto::ListParkedWebhooksResponse, Detail), Status> {
    let webhooks = store::parked::list(&ctx.pool, limit(req.limit, 100))
        .await
        .map_err(store_status)?
        .into_iter()
        .map(|p| proto::ParkedWebhook {
            webhook_id: p.webhook_id,
            account_id: p.hostaway_account_id,
            event: p.event,
            reason: p.reason,
            reservation_id: text(p.reservation_id),
            listing_id: text(p.listing_id),
            retries: p.retries,
            parked_at: Some(timestamp(p.parked_at)),
            due_at: p.due_at.map(timestamp),
            last_error: p.last_error,
        })
        .collect();
    Ok((proto::ListParkedWebhooksResponse { webhooks }, Detail::Null))
}
