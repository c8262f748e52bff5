//! A conversation message record (`message.received`) → [`GuestMessage`].
//!
//! In a message, `reservationId` is Hostaway's reservation id (an integer), not
//! the channel's reservation string it is on a reservation.

use domain::{AccountId, GuestMessage, ListingId, Patch, ReservationId};
use serde_json::{Map, Value};

use crate::json::Record;
use crate::{MappingError, Problem};

/// Longest message body kept.
pub const MAX_BODY_LEN: usize = 100_000;

pub fn map_message(
    account: &AccountId,
    data: &Map<String, Value>,
) -> Result<GuestMessage, MappingError> {
    let r = Record::new(data);
    let message_id = match r.id("id", &["id"])? {
        Patch::Set(id) => id,
        _ => return Err(MappingError::new("id", Problem::Missing)),
    };
    if message_id.len() > 64
        || !message_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(MappingError::new("id", Problem::WrongType("an id")));
    }
    let reservation = match r.id("reservationId", &["reservationId"])? {
        Patch::Set(id) => Some(
            ReservationId::parse(id)
                .map_err(|e| MappingError::new("reservationId", Problem::Invalid(e.to_string())))?,
        ),
        _ => None,
    };
    let listing = match r.id("listingMapId", &["listingMapId", "listingId"])? {
        Patch::Set(id) => Some(
            ListingId::parse(id)
                .map_err(|e| MappingError::new("listingMapId", Problem::Invalid(e.to_string())))?,
        ),
        _ => None,
    };
    Ok(GuestMessage {
        account: account.clone(),
        message_id,
        conversation_id: r.id("conversationId", &["conversationId"])?.set(),
        reservation,
        listing,
        channel_id: r.int("channelId", &["channelId"])?.set(),
        body: r
            .text_up_to("body", &["body"], MAX_BODY_LEN)?
            .set()
            .unwrap_or_default(),
        is_incoming: r.flag("isIncoming", &["isIncoming"])?.set().unwrap_or(true),
        sent_at: r.datetime("date", &["date", "insertedOn"])?.set(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn maps_a_captured_message() {
        let data = json!({
            "id": 340127415, "accountId": 59808, "listingMapId": 218666, "reservationId": 49264388,
            "conversationId": 35460020, "channelId": 2018, "body": "Hi, can't wait!",
            "isIncoming": 1, "isSeen": 0, "date": "2025-10-25 15:30:19", "status": "sent"
        });
        let m = map_message(
            &AccountId::parse("59808").unwrap(),
            data.as_object().unwrap(),
        )
        .unwrap();
        assert_eq!(m.message_id, "340127415");
        assert_eq!(m.reservation.unwrap().as_str(), "49264388");
        assert_eq!(m.conversation_id.as_deref(), Some("35460020"));
        assert!(m.is_incoming);
        assert!(m.sent_at.is_some());
    }

    #[test]
    fn a_message_needs_an_id() {
        let data = json!({"body": "hello"});
        let err =
            map_message(&AccountId::parse("1").unwrap(), data.as_object().unwrap()).unwrap_err();
        assert_eq!(err.field, "id");
    }
}
