//! A conversation message record (`message.received`) → [`GuestMessage`].
//!
//! In a message, `reservationId` is Hostaway's reservation id (an integer), not
//! the channel's reservation string it is on a reservation.

use domain::{AccountId, GuestMessage, ListingId, Patch, ReservationId};
use serde_json::{Map, Value};

use crate::json::{AdjustmentAction, Adjustments, Mapped, Record};
use crate::{MappingError, Problem};

/// Longest message body kept.
pub const MAX_BODY_LEN: usize = 100_000;

/// Maps a message. Only its id is required; anything else that cannot be
/// read is left out, and a body that is too long is cut (both noted).
pub fn map_message(
    account: &AccountId,
    data: &Map<String, Value>,
) -> Result<Mapped<GuestMessage>, MappingError> {
    let r = Record::new(data);
    let mut notes = Adjustments::default();
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
    let reservation = optional_id(
        &r,
        &mut notes,
        "reservationId",
        &["reservationId"],
        ReservationId::parse,
    );
    let listing = optional_id(
        &r,
        &mut notes,
        "listingMapId",
        &["listingMapId", "listingId"],
        ListingId::parse,
    );
    let conversation_id = notes
        .optional(r.id("conversationId", &["conversationId"]))
        .set();
    let channel_id = notes.optional(r.int("channelId", &["channelId"])).set();
    let body = r
        .lenient_text("body", &["body"], MAX_BODY_LEN, &mut notes)
        .set()
        .unwrap_or_default();
    let is_incoming = notes
        .optional(r.flag("isIncoming", &["isIncoming"]))
        .set()
        .unwrap_or(true);
    let sent_at = notes
        .optional(r.datetime("date", &["date", "insertedOn"]))
        .set();
    Ok(Mapped {
        value: GuestMessage {
            account: account.clone(),
            message_id,
            conversation_id,
            reservation,
            listing,
            channel_id,
            body,
            is_incoming,
            sent_at,
        },
        adjustments: notes.into_vec(),
    })
}

/// An id the message can do without: one that cannot be read is left out.
fn optional_id<T>(
    r: &Record<'_>,
    notes: &mut Adjustments,
    field: &'static str,
    names: &[&str],
    parse: fn(String) -> Result<T, domain::IdError>,
) -> Option<T> {
    let id = notes.optional(r.id(field, names)).set()?;
    match parse(id) {
        Ok(id) => Some(id),
        Err(e) => {
            notes.note(
                field,
                AdjustmentAction::Dropped(Problem::Invalid(e.to_string())),
            );
            None
        }
    }
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
        .unwrap()
        .value;
        assert_eq!(m.message_id, "340127415");
        assert_eq!(m.reservation.unwrap().as_str(), "49264388");
        assert_eq!(m.conversation_id.as_deref(), Some("35460020"));
        assert!(m.is_incoming);
        assert!(m.sent_at.is_some());
    }

    #[test]
    fn a_long_body_with_nuls_is_cut_and_cleaned_not_refused() {
        let data = json!({"id": 1, "body": format!("a\u{0}{}", "b".repeat(MAX_BODY_LEN + 5)), "reservationId": "x y"});
        let m = map_message(&AccountId::parse("1").unwrap(), data.as_object().unwrap()).unwrap();
        assert_eq!(m.value.body.chars().count(), MAX_BODY_LEN);
        assert!(!m.value.body.contains('\0'));
        assert_eq!(m.value.reservation, None);
        let fields: Vec<_> = m.adjustments.iter().map(|a| a.field).collect();
        assert_eq!(fields, vec!["reservationId", "body", "body"]);
    }

    #[test]
    fn a_message_needs_an_id() {
        let data = json!({"body": "hello"});
        let err =
            map_message(&AccountId::parse("1").unwrap(), data.as_object().unwrap()).unwrap_err();
        assert_eq!(err.field, "id");
    }
}
