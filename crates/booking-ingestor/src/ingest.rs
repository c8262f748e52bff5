//! One webhook, one transaction.
//!
//! The payload is mapped first (pure); then, inside one PostgreSQL
//! transaction: the delivery is recorded in `webhook_log` (a repeat of a
//! processed webhook stops here), the reservation is locked, the stored booking
//! and the payload are folded by [`domain::decide`], the booking and its block
//! are written, overlaps on the unit become double bookings, and the events
//! for TVL go to the outbox. Either all of it commits or none of it does.

use chrono::{DateTime, NaiveDateTime, Utc};
use domain::{AccountId, BookingId, Decision, GuestMessage, Origin, ReservationUpdate};
use events::{Message as _, pb};
use mapping::{Adjustment, ListingChange, Webhook, WebhookEvent};
use store::bookings::{self, StoredBooking};
use store::outbox::OutboxEvent;
use store::parked::ParkReason;
use store::webhook_log::{self, Prior, WebhookMeta};
use store::{PgConnection, PgPool, StoreError};

use tracing::Instrument;

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
    /// The gateway found the account disabled: parked until it is enabled.
    pub account_disabled: bool,
}

/// Who and what a webhook message is, as far as it can be read: enough to
/// log it and dead-letter it even when its body cannot be understood.
#[derive(Debug, Clone)]
pub struct Identity {
    pub webhook_id: String,
    pub account: String,
    /// The event name the message carries (`unknown`, `unparsed` for bodies
    /// the gateway could not read).
    pub event: String,
    pub received_at: DateTime<Utc>,
    pub source: pb::Source,
    /// The reservation or message id, when the record names one.
    pub object_id: Option<String>,
    /// The listing, when the record names one.
    pub listing_id: Option<String>,
}

impl Identity {
    pub fn meta(&self) -> WebhookMeta<'_> {
        WebhookMeta {
            webhook_id: &self.webhook_id,
            account: &self.account,
            event: &self.event,
            object_id: self.object_id.as_deref(),
            source: source_name(self.source),
            received_at: self.received_at,
        }
    }
}

/// A message that cannot be turned into an [`Inbound`].
#[derive(Debug)]
pub struct Undecodable {
    /// `None` when the message is not an `InboundWebhook` at all.
    pub identity: Option<Identity>,
    pub error: IngestError,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Cannot be applied now but will be once something else happens (its
    /// reservation's complete record arrives, its listing is linked, its
    /// account is enabled): parked, and retried for hours.
    #[error("{message}")]
    Park {
        reason: ParkReason,
        message: String,
        reservation: Option<String>,
        listing: Option<String>,
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
    /// Another transaction was in the way (deadlock, serialization failure):
    /// retried soon, no attempt is counted.
    #[error("database busy: {0}")]
    Busy(#[source] StoreError),
    /// A statement or lock timeout: free the first few times, then counted
    /// as an attempt (a webhook that always times out is poisoned).
    #[error("database timeout: {0}")]
    Timeout(#[source] StoreError),
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
            IngestError::Park { reason, .. } => reason.as_str(),
            IngestError::Permanent { reason, .. } => reason,
            IngestError::Unavailable(_) => "database_unavailable",
            IngestError::Busy(_) => "database_busy",
            IngestError::Timeout(_) => "database_timeout",
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
        match error.trouble() {
            store::Trouble::Outage => IngestError::Unavailable(error),
            store::Trouble::Contention => IngestError::Busy(error),
            store::Trouble::Timeout => IngestError::Timeout(error),
            store::Trouble::Failure => IngestError::Database(error),
        }
    }
}

impl From<sqlx::Error> for IngestError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::from(error).into()
    }
}

impl Inbound {
    /// Decodes a message from the webhooks stream. A message whose body the
    /// connector cannot use is refused with its reason (and its identity, so
    /// it can be dead-lettered where an operator finds it).
    pub fn decode(payload: &[u8]) -> Result<Self, Box<Undecodable>> {
        let message = pb::InboundWebhook::decode(payload).map_err(|e| Undecodable {
            identity: None,
            error: IngestError::permanent("undecodable", format!("not an InboundWebhook: {e}")),
        })?;
        let received_at = message
            .received_at
            .as_ref()
            .and_then(events::from_timestamp)
            .unwrap_or_else(Utc::now);
        let source = pb::Source::try_from(message.source).unwrap_or(pb::Source::Unspecified);
        let mut identity = Identity {
            webhook_id: message.webhook_id.clone(),
            account: message.account_id.clone(),
            event: message.event.clone(),
            received_at,
            source,
            object_id: None,
            listing_id: None,
        };
        let refuse = |identity: Identity, reason, text: String| {
            Box::new(Undecodable {
                identity: Some(identity),
                error: IngestError::permanent(reason, text),
            })
        };
        let account = match AccountId::parse(message.account_id.as_str()) {
            Ok(account) => account,
            Err(e) => {
                identity.account = "unknown".into();
                return Err(refuse(identity, "invalid_account", e.to_string()));
            }
        };
        let webhook = match mapping::parse_webhook(&message.raw_body) {
            Ok(webhook) => webhook,
            Err(e) => return Err(refuse(identity, "malformed_body", e.to_string())),
        };
        if webhook.account().is_some_and(|claimed| claimed != &account) {
            return Err(refuse(
                identity,
                "account_mismatch",
                "accountId in the body is not the authenticated account".into(),
            ));
        }
        let (event, data, sent_at) = match webhook {
            Webhook::Event {
                event,
                data,
                sent_at,
                ..
            } => (event, data, sent_at),
            Webhook::Unknown { event, .. } => {
                return Err(refuse(
                    identity,
                    "unknown_event",
                    format!("`{event}` is not an event this version handles"),
                ));
            }
            Webhook::Ping { .. } => {
                return Err(refuse(
                    identity,
                    "not_an_event",
                    "the body is a ping, not a webhook event".into(),
                ));
            }
        };
        Ok(Self {
            webhook_id: message.webhook_id,
            account,
            event,
            data,
            sent_at,
            received_at,
            source,
            account_disabled: message.account_disabled,
        })
    }

    /// Whether the record was read from Hostaway's API (it wins ties).
    pub fn origin(&self) -> Origin {
        match self.source {
            pb::Source::Reconciliation | pb::Source::ApiFetch => Origin::ApiRead,
            _ => Origin::Webhook,
        }
    }

    pub fn identity(&self) -> Identity {
        let text = |names: &[&str]| {
            names.iter().find_map(|name| match self.data.get(*name) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
        };
        Identity {
            webhook_id: self.webhook_id.clone(),
            account: self.account.to_string(),
            event: self.event.as_str().to_owned(),
            received_at: self.received_at,
            source: self.source,
            object_id: text(&["id", "hostawayReservationId"]),
            listing_id: text(&["listingMapId", "listingId"]),
        }
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
    /// What the mapping cut or left out to apply the record.
    pub adjustments: Vec<Adjustment>,
    /// Reconciliations to queue once committed: a listing Hostaway says
    /// changed is read back and its drift pushed.
    pub reconcile: Vec<store::sync_jobs::JobKey>,
}

impl Applied {
    /// What the mapping cut or left out, as the log keeps it (`None`: nothing).
    pub(crate) fn noted_adjustments(&self) -> Option<String> {
        (!self.adjustments.is_empty()).then(|| {
            self.adjustments
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    pub(crate) fn outcome(outcome: &'static str, booking: Option<BookingId>) -> Self {
        Self {
            outcome,
            booking,
            events: Vec::new(),
            double_bookings: 0,
            block_change: None,
            adjustments: Vec::new(),
            reconcile: Vec::new(),
        }
    }
}

/// The mapped record of a webhook.
pub(crate) enum Work {
    Reservation(Box<ReservationUpdate>),
    Message(GuestMessage),
    Listing(ListingChange, pb::ListingChangeKind),
}

impl Work {
    fn map(inbound: &Inbound) -> Result<(Self, Vec<Adjustment>), IngestError> {
        let invalid =
            |e: mapping::MappingError| IngestError::permanent("invalid_payload", e.to_string());
        Ok(match inbound.event {
            WebhookEvent::ReservationCreated
            | WebhookEvent::ReservationUpdated
            | WebhookEvent::ReservationCancelled => {
                let mapped = mapping::map_reservation(
                    &inbound.account,
                    inbound.event,
                    &inbound.data,
                    inbound.sent_at,
                    inbound.origin(),
                )
                .map_err(invalid)?;
                // A replay is judged against now: it is replayed once the
                // time has passed.
                let reference = if inbound.source == pb::Source::DlqReplay {
                    Utc::now()
                } else {
                    inbound.received_at
                };
                mapping::check_version_skew(&mapped.value, reference.naive_utc())
                    .map_err(|e| IngestError::permanent("clock_skew", e.to_string()))?;
                (
                    Work::Reservation(Box::new(mapped.value)),
                    mapped.adjustments,
                )
            }
            WebhookEvent::MessageReceived => {
                let mapped =
                    mapping::map_message(&inbound.account, &inbound.data).map_err(invalid)?;
                (Work::Message(mapped.value), mapped.adjustments)
            }
            WebhookEvent::ListingUpdated => (
                Work::Listing(
                    mapping::map_listing_change(&inbound.data).map_err(invalid)?,
                    pb::ListingChangeKind::Details,
                ),
                Vec::new(),
            ),
            WebhookEvent::CalendarUpdated => (
                Work::Listing(
                    mapping::map_listing_change(&inbound.data).map_err(invalid)?,
                    pb::ListingChangeKind::Calendar,
                ),
                Vec::new(),
            ),
        })
    }

    pub(crate) fn object_id(&self) -> String {
        match self {
            Work::Reservation(update) => update.reservation.to_string(),
            Work::Message(message) => message.message_id.clone(),
            Work::Listing(change, _) => change.listing.to_string(),
        }
    }
}

pub(crate) fn source_name(source: pb::Source) -> &'static str {
    match source {
        pb::Source::WebhookBasic => "webhook_basic",
        pb::Source::WebhookHmac => "webhook_hmac",
        pb::Source::DlqReplay => "dlq_replay",
        pb::Source::Reconciliation => "reconciliation",
        pb::Source::ApiFetch => "api_fetch",
        pb::Source::Unspecified => "unspecified",
    }
}

/// Applies one webhook in one transaction.
pub async fn apply(pool: &PgPool, inbound: &Inbound) -> Result<Applied, IngestError> {
    let (work, adjustments) = prepare(inbound)?;
    let object_id = work.object_id();
    let span = tracing::info_span!(
        "hostaway.webhook.create_booking",
        "db.system" = "postgresql",
        "hostaway.object_id" = %object_id,
        outcome = tracing::field::Empty,
    );
    let applied = store_work(pool, inbound, work, adjustments, &object_id)
        .instrument(span.clone())
        .await?;
    span.record("outcome", applied.outcome);
    Ok(applied)
}

/// What can be decided about a webhook before any transaction: whether its
/// account takes webhooks, and its mapped record.
pub(crate) fn prepare(inbound: &Inbound) -> Result<(Work, Vec<Adjustment>), IngestError> {
    if inbound.account_disabled {
        return Err(IngestError::Park {
            reason: ParkReason::AccountDisabled,
            message: format!(
                "account {} was disabled in the connector when this webhook arrived",
                inbound.account
            ),
            reservation: None,
            listing: None,
        });
    }
    let _mapping = tracing::info_span!("hostaway.webhook.map_fields").entered();
    Work::map(inbound)
}

/// The webhook's one transaction: the log, the booking, the events.
async fn store_work(
    pool: &PgPool,
    inbound: &Inbound,
    work: Work,
    adjustments: Vec<Adjustment>,
    object_id: &str,
) -> Result<Applied, IngestError> {
    let identity = inbound.identity();
    let meta = WebhookMeta {
        object_id: Some(object_id),
        ..identity.meta()
    };
    let mut tx = pool.begin().await?;
    let failed_before = match webhook_log::begin(&mut tx, &meta).await? {
        Prior::Processed => {
            // A copy parked while another was applied waits no more.
            store::parked::remove(&mut tx, &inbound.webhook_id).await?;
            tx.commit().await?;
            return Ok(Applied::outcome("repeat", None));
        }
        Prior::New => false,
        // A retry, a parked webhook released, or a dead-lettered one coming
        // back: apply it.
        Prior::Unfinished { .. } => true,
    };
    let mut applied = match work {
        Work::Reservation(update) => {
            apply_reservation(&mut tx, *update, &inbound.webhook_id).await?
        }
        Work::Message(message) => forward_message(&mut tx, &message).await?,
        Work::Listing(change, kind) => {
            forward_listing_change(&mut tx, inbound, &change, kind).await?
        }
    };
    let mut fresh_events = Vec::with_capacity(applied.events.len());
    for event in applied.events.drain(..) {
        if store::outbox::enqueue(&mut tx, &event).await? {
            fresh_events.push(event);
        }
    }
    if fresh_events.is_empty() && applied.outcome == "forwarded" {
        // The event's id comes from its content (a message's id): a repeat
        // of it with other incidental fields tells TVL nothing new.
        applied.outcome = "duplicate";
        applied.reconcile.clear();
    }
    applied.events = fresh_events;
    applied.adjustments.splice(0..0, adjustments);
    webhook_log::finish(
        &mut tx,
        &inbound.webhook_id,
        applied.outcome,
        applied.booking.map(|b| b.as_uuid()),
        applied.noted_adjustments().as_deref(),
    )
    .await?;
    if failed_before {
        store::dlq::resolve_for_job(&mut tx, &inbound.webhook_id).await?;
        store::parked::remove(&mut tx, &inbound.webhook_id).await?;
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
    let (decided, adjustments) = decide_update(current.as_ref(), update)?;
    let (record, change) = match decided {
        Decided::Stale => return Ok(Applied::outcome("stale", current.map(|c| c.id))),
        Decided::Duplicate => return Ok(Applied::outcome("duplicate", current.map(|c| c.id))),
        Decided::Apply { record, change } => (record, change),
    };
    let linked = store::links::resolve_unit(tx, &record.account, &record.listing).await?;
    let stored = place(*record, current.as_ref(), linked)?;
    let mut applied = write_version(tx, stored, change, webhook_id).await?;
    applied.adjustments.splice(0..0, adjustments);
    Ok(applied)
}

/// What a reservation's payload does to its stored booking.
pub(crate) enum Decided {
    Stale,
    Duplicate,
    Apply {
        record: Box<domain::BookingRecord>,
        change: Option<domain::ChangeKind>,
    },
}

/// Folds a payload into the stored booking (pure): the version rule, and a
/// stay of no nights never freeing booked nights. An incomplete first record
/// is parked.
pub(crate) fn decide_update(
    current: Option<&StoredBooking>,
    mut update: ReservationUpdate,
) -> Result<(Decided, Vec<Adjustment>), IngestError> {
    let mut adjustments = Vec::new();
    if update.stay.is_some_and(|stay| stay.nights() == 0)
        && current.is_some_and(|c| c.record.stay.nights() > 0)
    {
        // A stay of no nights would free the nights a booking holds: the
        // stored dates are kept (only a status can free them).
        update.stay = None;
        adjustments.push(Adjustment {
            field: "departureDate",
            action: mapping::AdjustmentAction::Dropped(mapping::Problem::Invalid(
                "a stay of no nights would free a booked stay; the booking keeps its dates".into(),
            )),
        });
    }
    let reservation = update.reservation.to_string();
    let listing = update.listing.as_ref().map(ToString::to_string);
    let decision =
        domain::decide(current.map(|c| &c.record), update).map_err(|e| IngestError::Park {
            reason: ParkReason::IncompletePayload,
            message: e.to_string(),
            reservation: Some(reservation),
            listing,
        })?;
    let decided = match decision {
        Decision::Stale => Decided::Stale,
        Decision::Duplicate => Decided::Duplicate,
        Decision::Apply { record, change } => Decided::Apply { record, change },
    };
    Ok((decided, adjustments))
}

/// The booking a record becomes: on its listing's unit, or on the unit it
/// already had when the link was removed since; a new booking of an unlinked
/// listing is parked.
pub(crate) fn place(
    record: domain::BookingRecord,
    current: Option<&StoredBooking>,
    linked: Option<domain::UnitId>,
) -> Result<StoredBooking, IngestError> {
    let unit = match (linked, current) {
        (Some(unit), _) => unit,
        (None, Some(existing)) => existing.unit,
        (None, None) => {
            return Err(IngestError::Park {
                reason: ParkReason::ListingNotLinked,
                message: format!(
                    "Hostaway listing {} of account {} is not linked to a TVL unit",
                    record.listing, record.account
                ),
                reservation: Some(record.reservation.to_string()),
                listing: Some(record.listing.to_string()),
            });
        }
    };
    Ok(StoredBooking {
        id: current.map_or_else(BookingId::generate, |c| c.id),
        unit,
        record,
        revision: 0,
    })
}

/// Saves an applied version of a booking and its calendar block: moved,
/// created or released, overlaps on the unit recorded as double bookings.
/// (`crate::batch` does the same for many bookings at once.)
async fn write_version(
    tx: &mut PgConnection,
    mut stored: StoredBooking,
    change: Option<domain::ChangeKind>,
    webhook_id: &str,
) -> Result<Applied, IngestError> {
    stored.revision = bookings::save(tx, &stored).await?;
    let mut events = Vec::new();
    if let Some(change) = change {
        events.push(event_builders::booking_changed(&stored, change, webhook_id));
    }
    if change == Some(domain::ChangeKind::Created) {
        // Partial payloads that overtook this reservation's first complete
        // record wait parked: they can be applied now.
        store::parked::wake_reservation(
            tx,
            &stored.record.account,
            stored.record.reservation.as_str(),
        )
        .await?;
    }
    let mut applied = Applied::outcome(change.map_or("unchanged", |c| c.as_str()), Some(stored.id));
    applied.events = events;
    let unit = stored.unit;
    let block = stored.record.calendar_block();
    if block.is_some() {
        // Two bookings landing on the same nights at once must see each other.
        bookings::lock_unit(tx, unit).await?;
    }
    let block_change = bookings::set_block(tx, stored.id, unit, block).await?;
    // An unchanged block was checked when it was written; a block written later
    // on the same nights is checked by its own booking.
    let moved_here = matches!(
        block_change,
        bookings::BlockChange::Created | bookings::BlockChange::Moved
    );
    if let Some(block) = block.as_ref().filter(|_| moved_here) {
        for overlap in bookings::overlapping_blocks(tx, stored.id, unit, block).await? {
            report_double_booking(tx, &stored, &overlap, &mut applied).await?;
        }
    }
    after_block_change(tx, stored.id, block_change, &mut applied).await?;
    Ok(applied)
}

/// Records an overlap of a booking's block with another live block: a
/// double booking newly reported becomes an event and a warning.
pub(crate) async fn report_double_booking(
    tx: &mut PgConnection,
    stored: &StoredBooking,
    overlap: &bookings::Overlap,
    applied: &mut Applied,
) -> Result<(), IngestError> {
    let unit = stored.unit;
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
        applied
            .events
            .push(event_builders::double_booked(stored, overlap));
        applied.double_bookings += 1;
    }
    Ok(())
}

/// A block that moved away or was released may end double bookings; the
/// change is noted on the outcome.
pub(crate) async fn after_block_change(
    tx: &mut PgConnection,
    booking: BookingId,
    change: bookings::BlockChange,
    applied: &mut Applied,
) -> Result<(), IngestError> {
    if matches!(
        change,
        bookings::BlockChange::Moved | bookings::BlockChange::Released
    ) {
        bookings::resolve_stale_double_bookings(tx, booking).await?;
    }
    applied.block_change = match change {
        bookings::BlockChange::Created => Some("created"),
        bookings::BlockChange::Moved => Some("moved"),
        bookings::BlockChange::Released => Some("released"),
        bookings::BlockChange::Unchanged => None,
    };
    Ok(())
}

pub(crate) async fn forward_message(
    tx: &mut PgConnection,
    message: &GuestMessage,
) -> Result<Applied, IngestError> {
    let booking = match &message.reservation {
        Some(reservation) => bookings::find(tx, &message.account, reservation).await?,
        None => None,
    };
    let mut applied = Applied::outcome("forwarded", booking.as_ref().map(|b| b.id));
    applied.events = vec![event_builders::guest_message(message, booking.as_ref())];
    Ok(applied)
}

pub(crate) async fn forward_listing_change(
    tx: &mut PgConnection,
    inbound: &Inbound,
    change: &ListingChange,
    kind: pb::ListingChangeKind,
) -> Result<Applied, IngestError> {
    let unit = store::links::resolve_unit(tx, &inbound.account, &change.listing).await?;
    let mut applied = Applied::outcome("forwarded", None);
    applied.events = vec![event_builders::listing_changed(
        &inbound.account,
        &change.listing,
        kind,
        unit,
        &inbound.webhook_id,
    )];
    if unit.is_some() {
        // Hostaway says the listing changed on its side: what TVL wants for
        // it is checked against what Hostaway now has (the specification's
        // listing and calendar webhooks). An unlinked listing has nothing
        // of TVL's to check.
        let kinds: &[domain::SyncKind] = match kind {
            pb::ListingChangeKind::Calendar => {
                &[domain::SyncKind::Availability, domain::SyncKind::Pricing]
            }
            _ => &[domain::SyncKind::Listing],
        };
        applied.reconcile = kinds
            .iter()
            .map(|kind| store::sync_jobs::JobKey {
                account: inbound.account.clone(),
                listing: Some(change.listing.clone()),
                kind: *kind,
            })
            .collect();
    }
    Ok(applied)
}
