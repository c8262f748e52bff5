//! One webhook, one transaction.
//!
//! The payload is mapped first (pure); then, inside one PostgreSQL
//! transaction: the delivery is recorded in `webhook_log` (a repeat of a
//! processed webhook stops here), the reservation is locked, the stored booking
//! and the payload are folded by [`domain::decide`], the booking and its block
//! are written, overlaps on the unit become double bookings, and the events
//! for TVL go to the outbox. Either all of it commits or none of it does.

use chrono::{DateTime, NaiveDateTime, Utc};
use domain::{AccountId, BookingId, Decision, GuestMessage, ReservationUpdate};
use events::{Message as _, pb};
use mapping::{ListingChange, Webhook, WebhookEvent};
use store::bookings::{self, StoredBooking};
use store::outbox::OutboxEvent;
use store::webhook_log::{self, Prior, WebhookMeta};
use store::{PgConnection, PgPool, StoreError};

use crate::event_builders;

/// A webhook message, decoded and parsed.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub webhook_id: String,
    pub account: AccountId,
    pub event: WebhookEvent,
    pub data: serde_json::Map<String, serde_json::Value>,
    pub sent_at: Option<NaiveDateTime>,
    pub received_at: DateTime<Utc>,
    pub source: pb::Source,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Cannot be applied now but may be later (the listing is not linked yet;
    /// a partial payload for a reservation not seen yet). Retried, then
    /// dead-lettered.
    #[error("{message}")]
    Retryable {
        reason: &'static str,
        message: String,
    },
    /// Can never be applied (undecodable, invalid). Dead-lettered at once.
    #[error("{message}")]
    Permanent {
        reason: &'static str,
        message: String,
    },
    /// PostgreSQL is unavailable: the webhook waits, no attempt is counted.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] StoreError),
    /// Another transaction was in the way (deadlock, lock timeout): retried
    /// soon, no attempt is counted.
    #[error("database busy: {0}")]
    Busy(#[source] StoreError),
    /// NATS did not take a message (the dead-letter copy): retried later.
    #[error("NATS unavailable: {0}")]
    Nats(String),
    /// Any other database error: counted like a retryable failure.
    #[error("database error: {0}")]
    Database(#[source] StoreError),
}

impl IngestError {
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Retryable { reason, .. } | IngestError::Permanent { reason, .. } => reason,
            IngestError::Unavailable(_) => "database_unavailable",
            IngestError::Busy(_) => "database_busy",
            IngestError::Nats(_) => "nats_unavailable",
            IngestError::Database(_) => "database_error",
        }
    }

    fn permanent(reason: &'static str, message: impl Into<String>) -> Self {
        IngestError::Permanent {
            reason,
            message: message.into(),
        }
    }
}

impl From<StoreError> for IngestError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => IngestError::Unavailable(error),
            StoreError::Busy(_) => IngestError::Busy(error),
            other => IngestError::Database(other),
        }
    }
}

impl From<sqlx::Error> for IngestError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::from(error).into()
    }
}

impl Inbound {
    /// Decodes a message from the webhooks stream.
    pub fn decode(payload: &[u8]) -> Result<Self, IngestError> {
        let message = pb::InboundWebhook::decode(payload).map_err(|e| {
            IngestError::permanent("undecodable", format!("not an InboundWebhook: {e}"))
        })?;
        let account = AccountId::parse(message.account_id.as_str())
            .map_err(|e| IngestError::permanent("invalid_account", e.to_string()))?;
        let webhook = mapping::parse_webhook(&message.raw_body)
            .map_err(|e| IngestError::permanent("malformed_body", e.to_string()))?;
        let Webhook::Event {
            event,
            data,
            sent_at,
            ..
        } = webhook
        else {
            return Err(IngestError::permanent(
                "not_an_event",
                "the body is not a webhook event",
            ));
        };
        let received_at = message
            .received_at
            .as_ref()
            .and_then(events::from_timestamp)
            .unwrap_or_else(Utc::now);
        Ok(Self {
            webhook_id: message.webhook_id,
            account,
            event,
            data,
            sent_at,
            received_at,
            source: pb::Source::try_from(message.source).unwrap_or(pb::Source::Unspecified),
        })
    }
}

/// What applying a webhook did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// created, updated, cancelled, unchanged, stale, duplicate, repeat, forwarded.
    pub outcome: &'static str,
    pub booking: Option<BookingId>,
    pub events: Vec<OutboxEvent>,
    pub double_bookings: usize,
    /// What happened to the booking's calendar block, if anything.
    pub block_change: Option<&'static str>,
}

impl Applied {
    fn outcome(outcome: &'static str, booking: Option<BookingId>) -> Self {
        Self {
            outcome,
            booking,
            events: Vec::new(),
            double_bookings: 0,
            block_change: None,
        }
    }
}

/// The mapped record of a webhook.
enum Work {
    Reservation(Box<ReservationUpdate>),
    Message(GuestMessage),
    Listing(ListingChange, pb::ListingChangeKind),
}

impl Work {
    fn map(inbound: &Inbound) -> Result<Self, IngestError> {
        let invalid =
            |e: mapping::MappingError| IngestError::permanent("invalid_payload", e.to_string());
        Ok(match inbound.event {
            WebhookEvent::ReservationCreated
            | WebhookEvent::ReservationUpdated
            | WebhookEvent::ReservationCancelled => Work::Reservation(Box::new(
                mapping::map_reservation(
                    &inbound.account,
                    inbound.event,
                    &inbound.data,
                    inbound.sent_at,
                )
                .map_err(invalid)?,
            )),
            WebhookEvent::MessageReceived => Work::Message(
                mapping::map_message(&inbound.account, &inbound.data).map_err(invalid)?,
            ),
            WebhookEvent::ListingUpdated => Work::Listing(
                mapping::map_listing_change(&inbound.data).map_err(invalid)?,
                pb::ListingChangeKind::Details,
            ),
            WebhookEvent::CalendarUpdated => Work::Listing(
                mapping::map_listing_change(&inbound.data).map_err(invalid)?,
                pb::ListingChangeKind::Calendar,
            ),
        })
    }

    fn object_id(&self) -> String {
        match self {
            Work::Reservation(update) => update.reservation.to_string(),
            Work::Message(message) => message.message_id.clone(),
            Work::Listing(change, _) => change.listing.to_string(),
        }
    }
}

fn source_name(source: pb::Source) -> &'static str {
    match source {
        pb::Source::WebhookBasic => "webhook_basic",
        pb::Source::WebhookHmac => "webhook_hmac",
        pb::Source::DlqReplay => "dlq_replay",
        pb::Source::Reconciliation => "reconciliation",
        pb::Source::Unspecified => "unspecified",
    }
}

/// The `webhook_log` key fields of a message.
pub fn meta<'a>(inbound: &'a Inbound, object_id: Option<&'a str>) -> WebhookMeta<'a> {
    WebhookMeta {
        webhook_id: &inbound.webhook_id,
        account: inbound.account.as_str(),
        event: inbound.event.as_str(),
        object_id,
        source: source_name(inbound.source),
        received_at: inbound.received_at,
    }
}

/// Applies one webhook in one transaction.
pub async fn apply(pool: &PgPool, inbound: &Inbound) -> Result<Applied, IngestError> {
    let work = Work::map(inbound)?;
    let object_id = work.object_id();
    let mut tx = pool.begin().await?;
    let failed_before = match webhook_log::begin(&mut tx, &meta(inbound, Some(&object_id))).await? {
        Prior::Processed => {
            tx.commit().await?;
            return Ok(Applied::outcome("repeat", None));
        }
        Prior::New => false,
        // A retry, or a dead-lettered webhook coming back: apply it.
        Prior::Unfinished { .. } => true,
    };
    let applied = match work {
        Work::Reservation(update) => {
            apply_reservation(&mut tx, *update, &inbound.webhook_id).await?
        }
        Work::Message(message) => forward_message(&mut tx, &message).await?,
        Work::Listing(change, kind) => {
            forward_listing_change(&mut tx, inbound, &change, kind).await?
        }
    };
    webhook_log::finish(
        &mut tx,
        &inbound.webhook_id,
        applied.outcome,
        applied.booking.map(|b| b.as_uuid()),
    )
    .await?;
    if failed_before {
        store::dlq::resolve_for_job(&mut tx, &inbound.webhook_id).await?;
    }
    for event in &applied.events {
        store::outbox::enqueue(&mut tx, event).await?;
    }
    tx.commit().await?;
    Ok(applied)
}

async fn apply_reservation(
    tx: &mut PgConnection,
    update: ReservationUpdate,
    webhook_id: &str,
) -> Result<Applied, IngestError> {
    bookings::lock_reservation(tx, &update.account, &update.reservation).await?;
    let current = bookings::find(tx, &update.account, &update.reservation).await?;
    let decision = domain::decide(current.as_ref().map(|c| &c.record), update).map_err(|e| {
        IngestError::Retryable {
            reason: "incomplete_payload",
            message: e.to_string(),
        }
    })?;
    let (record, change) = match decision {
        Decision::Stale => return Ok(Applied::outcome("stale", current.map(|c| c.id))),
        Decision::Duplicate => return Ok(Applied::outcome("duplicate", current.map(|c| c.id))),
        Decision::Apply { record, change } => (*record, change),
    };

    let linked = store::links::resolve_unit(tx, &record.account, &record.listing).await?;
    let unit = match (linked, &current) {
        (Some(unit), _) => unit,
        // A link removed after the booking was made: keep the booking's unit.
        (None, Some(existing)) => existing.unit,
        (None, None) => {
            return Err(IngestError::Retryable {
                reason: "listing_not_linked",
                message: format!(
                    "Hostaway listing {} of account {} is not linked to a TVL unit",
                    record.listing, record.account
                ),
            });
        }
    };
    let mut stored = StoredBooking {
        id: current.as_ref().map_or_else(BookingId::generate, |c| c.id),
        unit,
        record,
        revision: 0,
    };
    stored.revision = bookings::save(tx, &stored).await?;
    let block = stored.record.calendar_block();
    if block.is_some() {
        // Two bookings landing on the same nights at once must see each other.
        bookings::lock_unit(tx, unit).await?;
    }
    let block_change = bookings::set_block(tx, stored.id, unit, block).await?;

    let mut events = Vec::new();
    if let Some(change) = change {
        events.push(event_builders::booking_changed(&stored, change, webhook_id));
    }
    let mut double_bookings = 0;
    // An unchanged block was checked when it was written; a block written later
    // on the same nights is checked by its own booking.
    let moved_here = matches!(
        block_change,
        bookings::BlockChange::Created | bookings::BlockChange::Moved
    );
    if let Some(block) = block.as_ref().filter(|_| moved_here) {
        for overlap in bookings::overlapping_blocks(tx, stored.id, unit, block).await? {
            if bookings::record_double_booking(tx, unit, stored.id, overlap.other, overlap.nights)
                .await?
                .is_some()
            {
                tracing::warn!(
                    unit_id = %unit,
                    booking_id = %stored.id,
                    other_booking_id = %overlap.other,
                    overlap_start = %overlap.nights.arrival(),
                    overlap_end = %overlap.nights.departure(),
                    "double booking: two live bookings hold the same nights; both are kept"
                );
                events.push(event_builders::double_booked(&stored, &overlap));
                double_bookings += 1;
            }
        }
    }
    if matches!(
        block_change,
        bookings::BlockChange::Moved | bookings::BlockChange::Released
    ) {
        bookings::resolve_stale_double_bookings(tx, stored.id).await?;
    }

    Ok(Applied {
        outcome: change.map_or("unchanged", |c| c.as_str()),
        booking: Some(stored.id),
        events,
        double_bookings,
        block_change: match block_change {
            bookings::BlockChange::Created => Some("created"),
            bookings::BlockChange::Moved => Some("moved"),
            bookings::BlockChange::Released => Some("released"),
            bookings::BlockChange::Unchanged => None,
        },
    })
}

async fn forward_message(
    tx: &mut PgConnection,
    message: &GuestMessage,
) -> Result<Applied, IngestError> {
    let booking = match &message.reservation {
        Some(reservation) => bookings::find(tx, &message.account, reservation).await?,
        None => None,
    };
    Ok(Applied {
        outcome: "forwarded",
        booking: booking.as_ref().map(|b| b.id),
        events: vec![event_builders::guest_message(message, booking.as_ref())],
        double_bookings: 0,
        block_change: None,
    })
}

async fn forward_listing_change(
    tx: &mut PgConnection,
    inbound: &Inbound,
    change: &ListingChange,
    kind: pb::ListingChangeKind,
) -> Result<Applied, IngestError> {
    let unit = store::links::resolve_unit(tx, &inbound.account, &change.listing).await?;
    Ok(Applied {
        outcome: "forwarded",
        booking: None,
        events: vec![event_builders::listing_changed(
            &inbound.account,
            &change.listing,
            kind,
            unit,
            &inbound.webhook_id,
        )],
        double_bookings: 0,
        block_change: None,
    })
}
