//! The webhook envelope.
//!
//! Real unified webhooks: `{object, event, accountId, data}`, once seen with the
//! record under `payload.data`, and `{"data": "test"}` as the ping sent when a
//! webhook is created. The specification adds `reservation.cancelled`,
//! `listing.updated` and `calendar.updated`, and an envelope `timestamp`. Legacy
//! (non-unified) webhooks post the bare reservation object.

use chrono::NaiveDateTime;
use domain::AccountId;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::canonical::{HashWriter, write_canonical_object};
use crate::json::parse_datetime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookEvent {
    ReservationCreated,
    ReservationUpdated,
    /// The specification's; real Hostaway sends `reservation.updated` with status
    /// `cancelled`.
    ReservationCancelled,
    MessageReceived,
    /// The specification's; real Hostaway sends no listing webhooks.
    ListingUpdated,
    /// The specification's; real Hostaway sends no calendar webhooks.
    CalendarUpdated,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 6] = [
        WebhookEvent::ReservationCreated,
        WebhookEvent::ReservationUpdated,
        WebhookEvent::ReservationCancelled,
        WebhookEvent::MessageReceived,
        WebhookEvent::ListingUpdated,
        WebhookEvent::CalendarUpdated,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            WebhookEvent::ReservationCreated => "reservation.created",
            WebhookEvent::ReservationUpdated => "reservation.updated",
            WebhookEvent::ReservationCancelled => "reservation.cancelled",
            WebhookEvent::MessageReceived => "message.received",
            WebhookEvent::ListingUpdated => "listing.updated",
            WebhookEvent::CalendarUpdated => "calendar.updated",
        }
    }

    /// The event name as a NATS subject suffix (`reservation_created`).
    pub fn subject_token(&self) -> &'static str {
        match self {
            WebhookEvent::ReservationCreated => "reservation_created",
            WebhookEvent::ReservationUpdated => "reservation_updated",
            WebhookEvent::ReservationCancelled => "reservation_cancelled",
            WebhookEvent::MessageReceived => "message_received",
            WebhookEvent::ListingUpdated => "listing_updated",
            WebhookEvent::CalendarUpdated => "calendar_updated",
        }
    }

    pub fn is_reservation(&self) -> bool {
        matches!(
            self,
            WebhookEvent::ReservationCreated
                | WebhookEvent::ReservationUpdated
                | WebhookEvent::ReservationCancelled
        )
    }
}

/// A webhook body, understood.
#[derive(Debug, Clone, PartialEq)]
pub enum Webhook {
    /// `{"data": "test"}`: Hostaway checking the endpoint.
    Ping { account: Option<AccountId> },
    Event {
        account: Option<AccountId>,
        event: WebhookEvent,
        /// The record: a reservation, a conversation message, or a listing.
        data: Map<String, Value>,
        /// The specification envelope's `timestamp`, if sent.
        sent_at: Option<NaiveDateTime>,
        /// The body was a legacy bare object, not an envelope.
        legacy: bool,
    },
    /// An event this version does not know. Hostaway says more will come; they
    /// are answered 200 and logged, not processed.
    Unknown {
        account: Option<AccountId>,
        event: String,
    },
}

impl Webhook {
    pub fn account(&self) -> Option<&AccountId> {
        match self {
            Webhook::Ping { account }
            | Webhook::Event { account, .. }
            | Webhook::Unknown { account, .. } => account.as_ref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("body is not valid JSON")]
    NotJson,
    #[error("body is not a JSON object")]
    NotAnObject,
    #[error("`event` is missing")]
    MissingEvent,
    #[error("`event` must be a string")]
    EventNotText,
    #[error("`data` (or `payload.data`) is missing")]
    MissingData,
    #[error("`data` must be an object")]
    DataNotObject,
    #[error("`accountId` is not a valid account id")]
    BadAccountId,
}

/// Longest unknown event name kept for the log line.
const MAX_UNKNOWN_EVENT_LEN: usize = 64;

pub fn parse_webhook(body: &[u8]) -> Result<Webhook, EnvelopeError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| EnvelopeError::NotJson)?;
    let Value::Object(root) = value else {
        return Err(EnvelopeError::NotAnObject);
    };
    let account = account_of(&root)?;

    let data = root
        .get("data")
        .or_else(|| root.get("payload").and_then(|p| p.get("data")));
    if matches!(data, Some(Value::String(s)) if s == "test") {
        return Ok(Webhook::Ping { account });
    }

    let event = match root.get("event") {
        Some(Value::String(name)) => name.trim().to_owned(),
        Some(_) => return Err(EnvelopeError::EventNotText),
        None if data.is_none() && looks_like_bare_reservation(&root) => {
            return Ok(Webhook::Event {
                account,
                event: WebhookEvent::ReservationUpdated,
                data: root,
                sent_at: None,
                legacy: true,
            });
        }
        None => return Err(EnvelopeError::MissingEvent),
    };

    let Some(event_kind) = WebhookEvent::parse(&event) else {
        return Ok(Webhook::Unknown {
            account,
            event: sanitize_event_name(&event),
        });
    };
    let data = match data {
        Some(Value::Object(map)) => map.clone(),
        Some(_) => return Err(EnvelopeError::DataNotObject),
        None => return Err(EnvelopeError::MissingData),
    };
    let sent_at = root
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(parse_datetime);
    let account = match account {
        Some(a) => Some(a),
        None => account_of(&data)?,
    };
    Ok(Webhook::Event {
        account,
        event: event_kind,
        data,
        sent_at,
        legacy: false,
    })
}

fn account_of(root: &Map<String, Value>) -> Result<Option<AccountId>, EnvelopeError> {
    match root.get("accountId") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or(EnvelopeError::BadAccountId)
            .and_then(|n| AccountId::parse(n.to_string()).map_err(|_| EnvelopeError::BadAccountId))
            .map(Some),
        Some(Value::String(s)) => AccountId::parse(s.trim())
            .map(Some)
            .map_err(|_| EnvelopeError::BadAccountId),
        Some(_) => Err(EnvelopeError::BadAccountId),
    }
}

fn looks_like_bare_reservation(root: &Map<String, Value>) -> bool {
    root.contains_key("id")
        && (root.contains_key("listingMapId") || root.contains_key("arrivalDate"))
}

fn sanitize_event_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(MAX_UNKNOWN_EVENT_LEN)
        .collect()
}

/// The stable id of one webhook delivery: the same account, event, envelope
/// timestamp and record always give the same id, whatever the key order or
/// whitespace, so Hostaway's repeats deduplicate on JetStream (`Nats-Msg-Id`)
/// and in `webhook_log`. The timestamp matters for the specification's shape,
/// where it is the only version a record has.
pub fn webhook_id(
    account: &AccountId,
    event: WebhookEvent,
    sent_at: Option<NaiveDateTime>,
    data: &Map<String, Value>,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"hostaway-webhook/v1\n");
    hasher.update(account.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(event.as_str().as_bytes());
    hasher.update(b"\n");
    if let Some(at) = sent_at {
        hasher.update(at.and_utc().timestamp().to_string().as_bytes());
    }
    hasher.update(b"\n");
    write_canonical_object(data, &mut HashWriter(&mut hasher));
    let digest = hasher.finalize();
    hex::encode(&digest[..16])
}

/// The id of a body that is not a webhook the connector can read (not JSON,
/// an unknown event): its exact bytes, so a repeat is the same delivery.
pub fn raw_webhook_id(account: &AccountId, kind: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"hostaway-webhook-raw/v1\n");
    hasher.update(account.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(kind.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    let digest = hasher.finalize();
    hex::encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Webhook ids are deduplication keys kept in `webhook_log` and on
    /// JetStream: the way they are computed may change, their values never.
    #[test]
    fn a_webhook_id_never_changes() {
        let (_, event, data, _) = event(
            r#"{"object":"reservation","event":"reservation.created","accountId":70001,
                "data":{"id":4100001,"listingMapId":300101,"guestName":"Zoë \"Q\" Example",
                        "totalPrice":912.35,"isDatesUnspecified":0,"infants":null,
                        "customFieldValues":[{"id":1,"value":"a\nb"}]}}"#,
        );
        let account = AccountId::parse("70001").unwrap();
        let id = webhook_id(&account, event, None, &data);
        let mut buffered = Sha256::new();
        buffered.update(b"hostaway-webhook/v1\n70001\nreservation.created\n\n");
        buffered.update(crate::canonical::object_to_canonical_bytes(&data));
        assert_eq!(id, hex::encode(&buffered.finalize()[..16]));
        assert_eq!(id, "f7bce281b79f2a19fbdf3515869e0233");
    }

    fn event(body: &str) -> (Option<AccountId>, WebhookEvent, Map<String, Value>, bool) {
        match parse_webhook(body.as_bytes()).unwrap() {
            Webhook::Event {
                account,
                event,
                data,
                legacy,
                ..
            } => (account, event, data, legacy),
            other => panic!("expected an event, got {other:?}"),
        }
    }

    #[test]
    fn unified_envelope() {
        let (account, event, data, legacy) = event(
            r#"{"object":"reservation","event":"reservation.created","accountId":59808,"data":{"id":1}}"#,
        );
        assert_eq!(account.unwrap().as_str(), "59808");
        assert_eq!(event, WebhookEvent::ReservationCreated);
        assert_eq!(data.get("id"), Some(&Value::from(1)));
        assert!(!legacy);
    }

    #[test]
    fn nested_payload_data() {
        let (_, event, data, _) = event(
            r#"{"object":"reservation","event":"reservation.updated","accountId":"59808","payload":{"data":{"id":2}}}"#,
        );
        assert_eq!(event, WebhookEvent::ReservationUpdated);
        assert_eq!(data.get("id"), Some(&Value::from(2)));
    }

    #[test]
    fn the_test_ping() {
        assert_eq!(
            parse_webhook(br#"{"data":"test"}"#).unwrap(),
            Webhook::Ping { account: None }
        );
    }

    #[test]
    fn specification_events_and_timestamp() {
        let body = r#"{"event":"reservation.cancelled","timestamp":"2025-10-24T10:00:00Z","accountId":"hostaway_account_123","data":{"id":"hostaway_res_456"}}"#;
        match parse_webhook(body.as_bytes()).unwrap() {
            Webhook::Event {
                event,
                sent_at,
                account,
                ..
            } => {
                assert_eq!(event, WebhookEvent::ReservationCancelled);
                assert!(sent_at.is_some());
                assert_eq!(account.unwrap().as_str(), "hostaway_account_123");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_account_may_sit_in_the_record() {
        let (account, ..) =
            event(r#"{"event":"message.received","data":{"id":1,"accountId":151651}}"#);
        assert_eq!(account.unwrap().as_str(), "151651");
    }

    #[test]
    fn legacy_bare_reservation() {
        let (_, event, _, legacy) =
            event(r#"{"id":5,"listingMapId":7,"arrivalDate":"2025-01-01"}"#);
        assert_eq!(event, WebhookEvent::ReservationUpdated);
        assert!(legacy);
    }

    #[test]
    fn unknown_events_are_named_but_sanitized() {
        match parse_webhook(br#"{"event":"review.created\n<script>","data":{}}"#).unwrap() {
            Webhook::Unknown { event, .. } => assert_eq!(event, "review.createdscript"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_bodies_are_refused_with_a_reason() {
        let cases: [(&[u8], EnvelopeError); 8] = [
            (b"{not json", EnvelopeError::NotJson),
            (b"[1,2]", EnvelopeError::NotAnObject),
            (b"{}", EnvelopeError::MissingEvent),
            (br#"{"event":5,"data":{}}"#, EnvelopeError::EventNotText),
            (
                br#"{"event":"reservation.created"}"#,
                EnvelopeError::MissingData,
            ),
            (
                br#"{"event":"reservation.created","data":[1]}"#,
                EnvelopeError::DataNotObject,
            ),
            (
                br#"{"event":"reservation.created","data":"x"}"#,
                EnvelopeError::DataNotObject,
            ),
            (
                br#"{"event":"reservation.created","accountId":"a.b","data":{}}"#,
                EnvelopeError::BadAccountId,
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(
                parse_webhook(body),
                Err(expected),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn webhook_ids_ignore_formatting_but_not_content() {
        let account = AccountId::parse("1").unwrap();
        let a: Map<String, Value> = serde_json::from_str(r#"{"id":1,"status":"new"}"#).unwrap();
        let b: Map<String, Value> =
            serde_json::from_str(r#"{ "status" : "new", "id" : 1 }"#).unwrap();
        let c: Map<String, Value> =
            serde_json::from_str(r#"{"id":1,"status":"modified"}"#).unwrap();
        let id = |d| webhook_id(&account, WebhookEvent::ReservationUpdated, None, d);
        let later = crate::json::parse_datetime("2026-01-01T00:00:00Z");
        assert_ne!(
            id(&a),
            webhook_id(&account, WebhookEvent::ReservationUpdated, later, &a)
        );
        assert_eq!(id(&a), id(&b));
        assert_ne!(id(&a), id(&c));
        assert_ne!(
            id(&a),
            webhook_id(&account, WebhookEvent::ReservationCreated, None, &a)
        );
        assert_eq!(id(&a).len(), 32);
    }
}
