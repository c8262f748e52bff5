//! Webhook bodies for tests, shaped like real unified webhooks.

use serde_json::{Value, json};

/// A reservation as Hostaway sends it in `data` (a realistic subset).
#[derive(Debug, Clone)]
pub struct Reservation {
    pub id: u64,
    pub listing: u64,
    pub status: &'static str,
    pub arrival: String,
    pub departure: String,
    pub updated_on: String,
    pub total: f64,
    pub guest: String,
}

impl Reservation {
    pub fn new(id: u64, listing: u64) -> Self {
        Self {
            id,
            listing,
            status: "new",
            arrival: "2026-04-10".into(),
            departure: "2026-04-14".into(),
            updated_on: "2026-03-01 09:12:45".into(),
            total: 912.35,
            guest: "Avery Example".into(),
        }
    }

    pub fn status(mut self, status: &'static str) -> Self {
        self.status = status;
        self
    }

    pub fn dates(mut self, arrival: &str, departure: &str) -> Self {
        self.arrival = arrival.into();
        self.departure = departure.into();
        self
    }

    pub fn updated(mut self, updated_on: &str) -> Self {
        self.updated_on = updated_on.into();
        self
    }

    pub fn total(mut self, total: f64) -> Self {
        self.total = total;
        self
    }

    pub fn data(&self) -> Value {
        json!({
            "id": self.id,
            "listingMapId": self.listing,
            "channelId": 2018,
            "channelName": "airbnbOfficial",
            "reservationId": format!("{}-guest-1-confirmation-HMTEST{}", self.listing, self.id),
            "hostawayReservationId": self.id.to_string(),
            "guestName": self.guest,
            "guestFirstName": "Avery",
            "guestLastName": "Example",
            "guestEmail": "avery.example@example.org",
            "phone": "+440000000001",
            "numberOfGuests": 2,
            "adults": 2,
            "children": 0,
            "infants": null,
            "pets": 0,
            "arrivalDate": self.arrival,
            "departureDate": self.departure,
            "isDatesUnspecified": 0,
            "totalPrice": self.total,
            "currency": "USD",
            "status": self.status,
            "cancelledBy": null,
            "comment": "",
            "confirmationCode": format!("HMTEST{}", self.id),
            "insertedOn": "2026-03-01 09:12:45",
            "updatedOn": self.updated_on,
        })
    }

    /// The unified envelope.
    pub fn webhook(&self, account: &str, event: &str) -> Value {
        json!({
            "object": "reservation",
            "event": event,
            "accountId": account.parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::from(account)),
            "data": self.data(),
        })
    }
}

/// The ingestor's view of a webhook body, as the gateway would have published it.
pub fn inbound(account: &str, body: &Value) -> booking_ingestor::ingest::Inbound {
    let account = domain::AccountId::parse(account).expect("account id");
    let bytes = serde_json::to_vec(body).expect("json");
    let mapping::Webhook::Event {
        event,
        data,
        sent_at,
        ..
    } = mapping::parse_webhook(&bytes).expect("a webhook")
    else {
        panic!("not an event: {body}");
    };
    booking_ingestor::ingest::Inbound {
        webhook_id: mapping::webhook_id(&account, event, sent_at, &data),
        account,
        event,
        data,
        sent_at,
        received_at: chrono::Utc::now(),
        source: events::pb::Source::WebhookBasic,
        account_disabled: false,
    }
}

/// The `Authorization` header value for HTTP Basic.
pub fn basic_auth(login: &str, password: &str) -> String {
    mapping::signature::basic_authorization(login, password)
}
