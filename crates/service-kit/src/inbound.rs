//! Webhooks on their way to the ingestor: the one builder of the protobuf
//! `InboundWebhook`, used by the gateway (what Hostaway posted), by
//! reservation polling and fetches (what the API returned), and by the
//! replays of parked and dead-lettered webhooks.
//!
//! Every message lands on `{ns}.webhooks.{account}.{event}` with
//! `Nats-Msg-Id` = its webhook id, so repeats of the same content are one.

use bytes::Bytes;
use chrono::{NaiveDateTime, Utc};
use domain::AccountId;
use events::{Message as _, pb};
use mapping::WebhookEvent;
use serde_json::{Map, Value, json};

use crate::nats::Topology;

/// What the body is, as far as the sender of the message could tell.
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    /// A webhook event the connector knows.
    Event {
        event: WebhookEvent,
        sent_at: Option<NaiveDateTime>,
        data: &'a Map<String, Value>,
    },
    /// An event this version does not know (kept, dead-lettered for later).
    Unknown,
    /// A body that is not a webhook envelope at all (kept, dead-lettered).
    Unparsed,
}

impl Content<'_> {
    /// The last token of the subject.
    fn subject_token(&self) -> &'static str {
        match self {
            Content::Event { event, .. } => event.subject_token(),
            Content::Unknown => "unknown",
            Content::Unparsed => "unparsed",
        }
    }
}

/// One webhook to publish.
#[derive(Debug, Clone)]
pub struct Inbound<'a> {
    pub account: &'a AccountId,
    pub content: Content<'a>,
    /// The body, exactly as received (or as the API answered, wrapped in an
    /// envelope by [`api_read`]).
    pub raw_body: Bytes,
    pub source: pb::Source,
    pub request_id: String,
    /// Set when the webhook is kept although it cannot be used.
    pub problem: Option<pb::Problem>,
    pub account_disabled: bool,
}

/// A message ready for [`crate::publish::Publisher::publish`].
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub subject: String,
    /// Also the `Nats-Msg-Id`.
    pub webhook_id: String,
    pub payload: Bytes,
}

impl Inbound<'_> {
    pub fn build(&self, topology: &Topology) -> Outgoing {
        let (event_name, webhook_id) = match self.content {
            Content::Event {
                event,
                sent_at,
                data,
            } => (
                event.as_str(),
                mapping::webhook_id(self.account, event, sent_at, data),
            ),
            Content::Unknown => (
                "unknown",
                mapping::raw_webhook_id(self.account, "unknown", &self.raw_body),
            ),
            Content::Unparsed => (
                "unparsed",
                mapping::raw_webhook_id(self.account, "unparsed", &self.raw_body),
            ),
        };
        let message = pb::InboundWebhook {
            webhook_id: webhook_id.clone(),
            account_id: self.account.to_string(),
            event: event_name.to_owned(),
            received_at: Some(events::timestamp(Utc::now())),
            raw_body: self.raw_body.to_vec(),
            source: self.source as i32,
            request_id: self.request_id.clone(),
            problem: self.problem.clone(),
            account_disabled: self.account_disabled,
        };
        Outgoing {
            subject: topology.webhook_subject(self.account.as_str(), self.content.subject_token()),
            webhook_id,
            payload: Bytes::from(message.encode_to_vec()),
        }
    }
}

/// A reservation record read from Hostaway's API, as the webhook
/// `reservation.updated` the ingestor applies like any other.
pub fn api_read(
    topology: &Topology,
    account: &AccountId,
    reservation: &Map<String, Value>,
    source: pb::Source,
    request_id: String,
) -> Outgoing {
    let event = WebhookEvent::ReservationUpdated;
    let body = json!({
        "object": "reservation",
        "event": event.as_str(),
        "accountId": account.as_str(),
        "data": reservation,
    });
    Inbound {
        account,
        content: Content::Event {
            event,
            sent_at: None,
            data: reservation,
        },
        raw_body: Bytes::from(body.to_string()),
        source,
        request_id,
        problem: None,
        account_disabled: false,
    }
    .build(topology)
}

/// A stored message sent back to the ingestor (a replay of a dead letter, a
/// parked webhook released): the same webhook, with `source` if given, and
/// without the holds the gateway put on it (the ingestor judges afresh).
/// `None` when the stored bytes are not an `InboundWebhook`.
pub fn resent(stored: &[u8], source: Option<pb::Source>) -> Option<Vec<u8>> {
    let mut message = pb::InboundWebhook::decode(stored).ok()?;
    if let Some(source) = source {
        message.source = source as i32;
    }
    message.problem = None;
    message.account_disabled = false;
    Some(message.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_of_the_same_content_share_an_id_and_a_subject() {
        let topology = Topology::new("t").unwrap_or_else(|_| unreachable!());
        let account = AccountId::parse("59808").unwrap_or_else(|_| unreachable!());
        let data: Map<String, Value> =
            serde_json::from_str(r#"{"id": 7, "status": "new"}"#).unwrap_or_default();
        let a = api_read(
            &topology,
            &account,
            &data,
            pb::Source::Reconciliation,
            "a".into(),
        );
        let b = api_read(&topology, &account, &data, pb::Source::ApiFetch, "b".into());
        assert_eq!(a.webhook_id, b.webhook_id);
        assert_eq!(a.subject, "t.webhooks.59808.reservation_updated");

        let raw = Inbound {
            account: &account,
            content: Content::Unparsed,
            raw_body: Bytes::from_static(b"{not json"),
            source: pb::Source::WebhookBasic,
            request_id: "r".into(),
            problem: None,
            account_disabled: true,
        }
        .build(&topology);
        assert_eq!(raw.subject, "t.webhooks.59808.unparsed");
        let resent = resent(&raw.payload, Some(pb::Source::DlqReplay))
            .and_then(|bytes| pb::InboundWebhook::decode(bytes.as_slice()).ok());
        assert!(resent.is_some_and(|m| !m.account_disabled
            && m.source == pb::Source::DlqReplay as i32
            && m.webhook_id == raw.webhook_id));
    }
}
