//! Hostaway's side of webhooks: reservations change, unified webhooks go out.
//!
//! Deliveries are `{object, event, accountId, data}` with the full reservation,
//! authenticated with HTTP Basic (what Hostaway does) or the specification's
//! HMAC headers. They may be duplicated, delayed and reordered, and are retried
//! like Hostaway retries: only network errors, 5xx and 429, at most three
//! times with a growing delay; any other answer is final.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::Sim;
use crate::state::Delivery;

#[derive(Debug, Clone)]
pub enum WebhookAuth {
    None,
    Basic { login: String, password: String },
    Hmac { secret: String },
}

#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub auth: WebhookAuth,
}

#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Chance that a delivery is sent twice.
    pub duplicate_rate: f64,
    /// Each delivery waits a random time below this: deliveries overtake each other.
    pub reorder_window: Duration,
    /// Added before every delivery (Hostaway's first webhook can take minutes).
    pub delay: Duration,
    /// Hostaway retries about a minute later, then backs off.
    pub first_retry: Duration,
    pub max_retries: u32,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            duplicate_rate: 0.0,
            reorder_window: Duration::ZERO,
            delay: Duration::ZERO,
            first_retry: Duration::from_secs(60),
            max_retries: 3,
        }
    }
}

impl Sim {
    /// Where webhooks go, and how. `None` stops deliveries.
    pub async fn set_webhook_target(&self, target: Option<(WebhookTarget, DeliveryOptions)>) {
        self.state.lock().await.webhook_target = target;
    }

    /// Creates a reservation on `listing` and sends `reservation.created`.
    pub async fn create_reservation(
        &self,
        account: &str,
        listing: u64,
        fields: Map<String, Value>,
    ) -> Option<u64> {
        let reservation = self.insert_reservation(account, listing, fields).await?;
        let id = reservation.get("id").and_then(Value::as_u64)?;
        self.deliver(account, "reservation.created", reservation)
            .await;
        Some(id)
    }

    /// Creates a reservation and sends nothing (a webhook Hostaway lost).
    pub async fn create_reservation_silently(
        &self,
        account: &str,
        listing: u64,
        fields: Map<String, Value>,
    ) -> Option<u64> {
        let reservation = self.insert_reservation(account, listing, fields).await?;
        reservation.get("id").and_then(Value::as_u64)
    }

    async fn insert_reservation(
        &self,
        account: &str,
        listing: u64,
        mut fields: Map<String, Value>,
    ) -> Option<Map<String, Value>> {
        fields.insert("listingMapId".into(), json!(listing));
        self.state.lock().await.create_reservation(account, fields)
    }

    /// Changes a reservation and sends `reservation.updated`.
    pub async fn modify_reservation(
        &self,
        account: &str,
        id: u64,
        changes: Map<String, Value>,
    ) -> bool {
        let reservation = self
            .state
            .lock()
            .await
            .modify_reservation(account, id, changes);
        match reservation {
            Some(reservation) => {
                self.deliver(account, "reservation.updated", reservation)
                    .await;
                true
            }
            None => false,
        }
    }

    /// Cancels a reservation: Hostaway sends `reservation.updated` with status `cancelled`.
    pub async fn cancel_reservation(&self, account: &str, id: u64) -> bool {
        let mut changes = Map::new();
        changes.insert("status".into(), json!("cancelled"));
        changes.insert("cancelledBy".into(), json!("guest"));
        changes.insert("cancellationDate".into(), json!(crate::state::now_text()));
        self.modify_reservation(account, id, changes).await
    }

    /// Changes a reservation without any webhook (one Hostaway never sent: for
    /// reconciliation tests).
    pub async fn modify_reservation_silently(
        &self,
        account: &str,
        id: u64,
        changes: Map<String, Value>,
    ) -> bool {
        self.state
            .lock()
            .await
            .modify_reservation(account, id, changes)
            .is_some()
    }

    /// Where an account's webhooks go: the target set by the test or demo
    /// if there is one, else (as Hostaway does) every enabled unified webhook
    /// the account registered, with its Basic login.
    async fn targets(&self, account: &str) -> Vec<(WebhookTarget, DeliveryOptions)> {
        let state = self.state.lock().await;
        if let Some(target) = &state.webhook_target {
            return vec![target.clone()];
        }
        let Some(account) = state.accounts.get(account) else {
            return Vec::new();
        };
        account
            .webhooks
            .values()
            .filter(|hook| hook.get("isEnabled").and_then(Value::as_i64) == Some(1))
            .filter_map(|hook| {
                let url = hook.get("url")?.as_str()?.to_owned();
                let text = |key: &str| hook.get(key).and_then(Value::as_str).map(str::to_owned);
                let auth = match (text("login"), text("password")) {
                    (Some(login), Some(password)) => WebhookAuth::Basic { login, password },
                    _ => WebhookAuth::None,
                };
                Some((
                    WebhookTarget { url, auth },
                    state.registered_delivery.clone(),
                ))
            })
            .collect()
    }

    async fn deliver(&self, account: &str, event: &str, reservation: Map<String, Value>) {
        for (target, options) in self.targets(account).await {
            self.deliver_to(target, options, account, event, &reservation);
        }
    }

    fn deliver_to(
        &self,
        target: WebhookTarget,
        options: DeliveryOptions,
        account: &str,
        event: &str,
        reservation: &Map<String, Value>,
    ) {
        let reservation_id = reservation.get("id").and_then(Value::as_u64).unwrap_or(0);
        let body = json!({
            "object": "reservation",
            "event": event,
            "accountId": account.parse::<u64>().map(Value::from).unwrap_or_else(|_| json!(account)),
            "data": reservation,
        })
        .to_string();
        let copies = if fastrand::f64() < options.duplicate_rate {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let sim = self.clone();
            let (target, options, body, event) = (
                target.clone(),
                options.clone(),
                body.clone(),
                event.to_owned(),
            );
            tokio::spawn(async move {
                let jitter = options.reorder_window.mul_f64(fastrand::f64());
                tokio::time::sleep(options.delay + jitter).await;
                sim.send_with_retries(&target, &options, &event, reservation_id, body)
                    .await;
            });
        }
    }

    async fn send_with_retries(
        &self,
        target: &WebhookTarget,
        options: &DeliveryOptions,
        event: &str,
        reservation_id: u64,
        body: String,
    ) {
        let client = reqwest::Client::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = client
                .post(&target.url)
                .header("content-type", "application/json")
                .timeout(Duration::from_secs(20));
            match &target.auth {
                WebhookAuth::None => {}
                WebhookAuth::Basic { login, password } => {
                    request = request.basic_auth(login, Some(password))
                }
                WebhookAuth::Hmac { secret } => {
                    let ts = chrono::Utc::now().timestamp();
                    request = request
                        .header(mapping::signature::TIMESTAMP_HEADER, ts.to_string())
                        .header(
                            mapping::signature::SIGNATURE_HEADER,
                            mapping::signature::sign(secret.as_bytes(), ts, body.as_bytes()),
                        );
                }
            }
            let status = match request.body(body.clone()).send().await {
                Ok(response) => response.status().as_u16(),
                Err(_) => 0,
            };
            let transient = status == 0 || status == 429 || status >= 500;
            let last = !transient || attempt > options.max_retries;
            self.state.lock().await.deliveries.push(Delivery {
                event: event.to_owned(),
                reservation_id,
                status,
                attempt,
                last,
            });
            if last {
                return;
            }
            tokio::time::sleep(options.first_retry * 2u32.pow(attempt - 1)).await;
        }
    }
}
