//! The protobuf events the ingestor writes to the outbox.

use chrono::Utc;
use domain::{ChangeKind, GuestMessage, ListingId, UnitId};
use events::{Message as _, pb};
use sha2::{Digest, Sha256};
use store::bookings::{Overlap, StoredBooking};
use store::outbox::OutboxEvent;
use uuid::Uuid;

fn booking_message(stored: &StoredBooking) -> pb::Booking {
    let r = &stored.record;
    let g = &r.guest;
    pb::Booking {
        booking_id: stored.id.to_string(),
        unit_id: stored.unit.to_string(),
        external_source: domain::EXTERNAL_SOURCE.to_owned(),
        external_id: r.reservation.to_string(),
        hostaway_account_id: r.account.to_string(),
        hostaway_listing_id: r.listing.to_string(),
        status: r.status.as_str().to_owned(),
        block: events::block_kind(r.calendar_block().map(|b| b.kind)) as i32,
        arrival: Some(events::date(r.stay.arrival())),
        departure: Some(events::date(r.stay.departure())),
        nights: i32::try_from(r.stay.nights()).unwrap_or(i32::MAX),
        guest: Some(pb::Guest {
            name: g.name.clone().unwrap_or_default(),
            first_name: g.first_name.clone().unwrap_or_default(),
            last_name: g.last_name.clone().unwrap_or_default(),
            email: g.email.clone().unwrap_or_default(),
            phone: g.phone.clone().unwrap_or_default(),
            number_of_guests: g.number_of_guests.unwrap_or_default(),
            adults: g.adults.unwrap_or_default(),
            children: g.children.unwrap_or_default(),
            infants: g.infants.unwrap_or_default(),
            pets: g.pets.unwrap_or_default(),
        }),
        total: r.total.map(events::money),
        channel_id: r.channel_id.unwrap_or_default(),
        channel_name: r.channel_name.clone().unwrap_or_default(),
        channel_reservation_id: r.channel_reservation_id.clone().unwrap_or_default(),
        confirmation_code: r.confirmation_code.clone().unwrap_or_default(),
        source_updated_at: r.version.updated_at.map(events::naive_timestamp),
        revision: stored.revision,
    }
}

pub fn booking_changed(
    stored: &StoredBooking,
    change: ChangeKind,
    webhook_id: &str,
) -> OutboxEvent {
    let id = Uuid::now_v7();
    let message = pb::BookingEvent {
        event_id: id.to_string(),
        change: events::booking_change(change) as i32,
        booking: Some(booking_message(stored)),
        occurred_at: Some(events::timestamp(Utc::now())),
        webhook_id: webhook_id.to_owned(),
        replayed: false,
    };
    OutboxEvent {
        id,
        subject_suffix: format!("booking.{}", change.as_str()),
        payload: message.encode_to_vec(),
    }
}

/// A booking's current state, re-emitted by an operator for a consumer that
/// was down longer than the events stream keeps events. Its id comes from
/// the booking and its revision: replaying twice publishes one event.
pub fn booking_replayed(stored: &StoredBooking) -> OutboxEvent {
    let digest = Sha256::new()
        .chain_update(b"hostaway/booking.replayed/v1\n")
        .chain_update(stored.id.as_uuid().as_bytes())
        .chain_update(stored.revision.to_be_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let id = uuid::Builder::from_custom_bytes(bytes).into_uuid();
    let change = if stored.record.status.is_terminal() {
        ChangeKind::Cancelled
    } else {
        ChangeKind::Updated
    };
    let message = pb::BookingEvent {
        event_id: id.to_string(),
        change: events::booking_change(change) as i32,
        booking: Some(booking_message(stored)),
        occurred_at: Some(events::timestamp(Utc::now())),
        webhook_id: String::new(),
        replayed: true,
    };
    OutboxEvent {
        id,
        subject_suffix: format!("booking.{}", change.as_str()),
        payload: message.encode_to_vec(),
    }
}

pub fn double_booked(stored: &StoredBooking, overlap: &Overlap) -> OutboxEvent {
    let id = Uuid::now_v7();
    let this = stored.record.calendar_block();
    let message = pb::DoubleBookingDetected {
        event_id: id.to_string(),
        unit_id: stored.unit.to_string(),
        first: Some(pb::ConflictingBooking {
            booking_id: stored.id.to_string(),
            external_id: stored.record.reservation.to_string(),
            arrival: Some(events::date(stored.record.stay.arrival())),
            departure: Some(events::date(stored.record.stay.departure())),
            block: events::block_kind(this.map(|b| b.kind)) as i32,
        }),
        second: Some(pb::ConflictingBooking {
            booking_id: overlap.other.to_string(),
            external_id: overlap.other_external_id.clone(),
            arrival: Some(events::date(overlap.other_block.stay.arrival())),
            departure: Some(events::date(overlap.other_block.stay.departure())),
            block: events::block_kind(Some(overlap.other_block.kind)) as i32,
        }),
        overlap_start: Some(events::date(overlap.nights.arrival())),
        overlap_end: Some(events::date(overlap.nights.departure())),
        detected_at: Some(events::timestamp(Utc::now())),
    };
    OutboxEvent {
        id,
        subject_suffix: "booking.double_booked".to_owned(),
        payload: message.encode_to_vec(),
    }
}

/// A guest message's event id comes from the account and the message id:
/// Hostaway repeats `message.received` with incidental fields changed
/// (`isSeen`, `status`), and TVL must hear of the message once.
pub fn guest_message_event_id(message: &GuestMessage) -> Uuid {
    let digest = Sha256::new()
        .chain_update(b"hostaway/guest_message.received/v1\n")
        .chain_update(message.account.as_str().as_bytes())
        .chain_update(b"\n")
        .chain_update(message.message_id.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

pub fn guest_message(message: &GuestMessage, booking: Option<&StoredBooking>) -> OutboxEvent {
    let id = guest_message_event_id(message);
    let event = pb::GuestMessageReceived {
        event_id: id.to_string(),
        hostaway_account_id: message.account.to_string(),
        message_id: message.message_id.clone(),
        conversation_id: message.conversation_id.clone().unwrap_or_default(),
        hostaway_reservation_id: message
            .reservation
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        hostaway_listing_id: message
            .listing
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        channel_id: message.channel_id.unwrap_or_default(),
        body: message.body.clone(),
        is_incoming: message.is_incoming,
        sent_at: message.sent_at.map(events::naive_timestamp),
        booking_id: booking.map(|b| b.id.to_string()).unwrap_or_default(),
    };
    OutboxEvent {
        id,
        subject_suffix: "guest_message.received".to_owned(),
        payload: event.encode_to_vec(),
    }
}

pub fn listing_changed(
    account: &domain::AccountId,
    listing: &ListingId,
    kind: pb::ListingChangeKind,
    unit: Option<UnitId>,
    webhook_id: &str,
) -> OutboxEvent {
    let id = Uuid::now_v7();
    let event = pb::ListingChanged {
        event_id: id.to_string(),
        hostaway_account_id: account.to_string(),
        hostaway_listing_id: listing.to_string(),
        kind: kind as i32,
        webhook_id: webhook_id.to_owned(),
        unit_id: unit.map(|u| u.to_string()).unwrap_or_default(),
    };
    OutboxEvent {
        id,
        subject_suffix: "listing.changed".to_owned(),
        payload: event.encode_to_vec(),
    }
}
