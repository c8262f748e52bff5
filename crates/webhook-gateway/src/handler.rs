//! `POST /webhooks/hostaway[/{accountId}]`.
//!
//! Order of checks, each with its answer (promise 5 of the design brief):
//! 1. body larger than the limit → 413;
//! 2. the account: from the URL, else the Basic login, else the body's
//!    `accountId` (a body that must name the account is parsed first → 400 if
//!    it is not JSON);
//! 3. credentials (Basic or HMAC, constant time; unknown account = wrong
//!    credentials) → 401;
//! 4. envelope and record → 400 naming the field;
//! 5. ping → 200; unknown event → 200, logged, not published;
//! 6. publish with `Nats-Msg-Id` → 200 after the server's ack, 503 if it cannot
//!    be made durable (Hostaway retries 5xx; it never retries a 4xx).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;
use domain::AccountId;
use events::Message as _;
use events::pb;
use mapping::{EnvelopeError, MappingError, Webhook, WebhookEvent};
use serde_json::{Map, Value, json};
use service_kit::nats::Topology;
use tracing::Instrument;

use crate::auth::{self, AuthFailure, AuthMethod, Unverified};
use crate::credentials::CredentialCache;
use crate::metrics::GatewayMetrics;
use service_kit::publish::{PublishFailure, Publisher};

#[derive(Debug, Clone)]
pub struct AppState {
    pub cache: Arc<CredentialCache>,
    pub publisher: Publisher,
    pub topology: Topology,
    pub metrics: GatewayMetrics,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
}

/// Everything the gateway answers besides 200. Bodies name the problem but
/// never echo a credential or a value from the request.
#[derive(Debug)]
pub enum Rejection {
    Unauthorized(AuthFailure),
    TooLarge { limit: usize },
    BodyTimeout,
    Malformed(EnvelopeError),
    InvalidPayload(MappingError),
    AccountMismatch,
    Unavailable(PublishFailure),
    CredentialsNotLoaded,
}

impl Rejection {
    fn metric_reason(&self) -> &'static str {
        match self {
            Rejection::Unauthorized(failure) => failure.metric_reason(),
            Rejection::TooLarge { .. } => "too_large",
            Rejection::BodyTimeout => "body_timeout",
            Rejection::Malformed(_) => "malformed_body",
            Rejection::InvalidPayload(_) => "invalid_payload",
            Rejection::AccountMismatch => "account_mismatch",
            Rejection::Unavailable(_) => "unavailable",
            Rejection::CredentialsNotLoaded => "credentials_not_loaded",
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Rejection::Unauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"hostaway-webhooks\""))],
                Json(json!({"error": "unauthorized"})),
            )
                .into_response(),
            Rejection::TooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(json!({"error": "payload_too_large", "limit_bytes": limit})),
            )
                .into_response(),
            Rejection::BodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                Json(json!({"error": "body_not_received_in_time"})),
            )
                .into_response(),
            Rejection::Malformed(error) => (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "malformed_body", "detail": error.to_string()})),
            )
                .into_response(),
            Rejection::InvalidPayload(error) => (
                StatusCode::BAD_REQUEST,
                Json(json!({
                    "error": "invalid_payload",
                    "field": error.field,
                    "detail": error.problem.to_string(),
                })),
            )
                .into_response(),
            Rejection::AccountMismatch => (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "account_mismatch", "detail": "accountId in the body is not the authenticated account"})),
            )
                .into_response(),
            Rejection::Unavailable(_) | Rejection::CredentialsNotLoaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, HeaderValue::from_static("5"))],
                Json(json!({"error": "temporarily_unavailable"})),
            )
                .into_response(),
        }
    }
}

/// The gateway is at its concurrency limit: shed the request (Hostaway retries 503).
pub async fn overloaded(_: tower::BoxError) -> Response {
    tracing::warn!("gateway overloaded; request shed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, HeaderValue::from_static("5"))],
        Json(json!({"error": "overloaded"})),
    )
        .into_response()
}

/// A handler panicked: a bug. 500 makes Hostaway retry; the body says nothing more.
pub fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("webhook handler panicked; answered 500");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": "internal_error"})),
    )
        .into_response()
}

pub async fn webhook_without_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, None, headers, body).await
}

pub async fn webhook_with_account(
    State(state): State<AppState>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, Some(account), headers, body).await
}

async fn handle(
    state: AppState,
    path_account: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!(
        "webhook",
        request_id = %request_id,
        account_id = tracing::field::Empty,
        event = tracing::field::Empty,
        webhook_id = tracing::field::Empty,
    );
    let metrics = state.metrics.clone();
    async move {
        let result = process(&state, path_account, headers, body, &request_id).await;
        match result {
            Ok(accepted) => accepted.into_response(),
            Err(rejection) => {
                metrics.rejected.with_label_values(&[rejection.metric_reason()]).inc();
                match &rejection {
                    Rejection::Unavailable(error) => {
                        tracing::error!(%error, "webhook not made durable; answered 503 so Hostaway retries");
                    }
                    Rejection::Unauthorized(failure) => {
                        tracing::warn!(reason = %failure, "webhook refused: unauthorized");
                    }
                    other => tracing::warn!(reason = other.metric_reason(), detail = ?other, "webhook refused"),
                }
                rejection.into_response()
            }
        }
    }
    .instrument(span)
    .await
}

#[derive(Debug)]
enum Accepted {
    Ping,
    Ignored,
    Durable { webhook_id: String },
}

impl IntoResponse for Accepted {
    fn into_response(self) -> Response {
        let body = match self {
            Accepted::Ping => json!({"received": true, "ping": true}),
            Accepted::Ignored => json!({"received": true, "ignored": "unknown event"}),
            Accepted::Durable { webhook_id } => json!({"received": true, "webhookId": webhook_id}),
        };
        (StatusCode::OK, Json(body)).into_response()
    }
}

async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, Rejection> {
    let limit = state.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(Rejection::TooLarge { limit });
    }
    match tokio::time::timeout(state.body_timeout, to_bytes(body, limit)).await {
        Err(_) => Err(Rejection::BodyTimeout),
        // `to_bytes` fails when the limit is exceeded (or the client hung up).
        Ok(Err(_)) => Err(Rejection::TooLarge { limit }),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

async fn process(
    state: &AppState,
    path_account: Option<String>,
    headers: HeaderMap,
    body: Body,
    request_id: &str,
) -> Result<Accepted, Rejection> {
    let body = read_body(state, &headers, body).await?;

    let mut parsed: Option<Webhook> = None;
    let credentials = match &path_account {
        // An id that cannot exist is an unknown account: the same 401.
        Some(raw) => AccountId::parse(raw.as_str())
            .ok()
            .and_then(|id| state.cache.by_account(&id)),
        None => match auth::basic_login(&headers).and_then(|login| state.cache.by_login(&login)) {
            Some(found) => Some(found),
            // A body that cannot name its account fails authentication like any
            // other unknown account: a 400 here would tell a caller which logins
            // exist. It is reported as malformed only after authentication.
            None => mapping::parse_webhook(&body).ok().and_then(|webhook| {
                let found = webhook.account().and_then(|id| state.cache.by_account(id));
                parsed = Some(webhook);
                found
            }),
        },
    };
    if credentials.is_none() && !state.cache.loaded_from_database() {
        // Never loaded from PostgreSQL since this process started: the account
        // may well exist. 503 makes Hostaway retry; a 401 would be final.
        return Err(Rejection::CredentialsNotLoaded);
    }

    let verified = auth::authenticate(
        Unverified { headers, body },
        credentials.as_deref(),
        Utc::now().timestamp(),
    )
    .map_err(Rejection::Unauthorized)?;
    let span = tracing::Span::current();
    span.record("account_id", verified.account.as_str());

    let webhook = match parsed {
        Some(webhook) => webhook,
        None => mapping::parse_webhook(&verified.body).map_err(Rejection::Malformed)?,
    };
    if webhook
        .account()
        .is_some_and(|claimed| claimed != &verified.account)
    {
        return Err(Rejection::AccountMismatch);
    }

    let (event, data, sent_at) = match webhook {
        Webhook::Ping { .. } => {
            state.metrics.received.with_label_values(&["ping"]).inc();
            tracing::info!("Hostaway test ping answered");
            return Ok(Accepted::Ping);
        }
        Webhook::Unknown { event, .. } => {
            state.metrics.received.with_label_values(&["unknown"]).inc();
            tracing::warn!(unknown_event = %event, "webhook event not handled by this version; answered 200, not processed");
            return Ok(Accepted::Ignored);
        }
        Webhook::Event {
            event,
            data,
            sent_at,
            ..
        } => (event, data, sent_at),
    };
    span.record("event", event.as_str());
    state
        .metrics
        .received
        .with_label_values(&[event.as_str()])
        .inc();

    validate(
        &verified.account,
        event,
        &data,
        sent_at,
        Utc::now().naive_utc(),
    )
    .map_err(Rejection::InvalidPayload)?;

    let webhook_id = mapping::webhook_id(&verified.account, event, sent_at, &data);
    span.record("webhook_id", webhook_id.as_str());
    let message = pb::InboundWebhook {
        webhook_id: webhook_id.clone(),
        account_id: verified.account.to_string(),
        event: event.as_str().to_owned(),
        received_at: Some(events::timestamp(Utc::now())),
        raw_body: verified.body.to_vec(),
        source: match verified.method {
            AuthMethod::Basic => pb::Source::WebhookBasic,
            AuthMethod::Hmac => pb::Source::WebhookHmac,
        } as i32,
        request_id: request_id.to_owned(),
    };
    let subject = state
        .topology
        .webhook_subject(verified.account.as_str(), event.subject_token());
    let acked = state
        .publisher
        .publish(subject, &webhook_id, Bytes::from(message.encode_to_vec()))
        .await
        .map_err(Rejection::Unavailable)?;
    state
        .metrics
        .publish_duration
        .observe(acked.elapsed.as_secs_f64());
    state
        .metrics
        .published
        .with_label_values(&[
            event.as_str(),
            if acked.duplicate { "true" } else { "false" },
        ])
        .inc();
    tracing::info!(
        stream_sequence = acked.sequence,
        duplicate = acked.duplicate,
        "webhook received and durable"
    );
    Ok(Accepted::Durable { webhook_id })
}

/// How far ahead of our clock a payload's `updatedOn` may be. A version far in
/// the future would make every genuine later update of the booking stale.
const MAX_VERSION_SKEW: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// The record must map: what would fail in the ingestor is refused here, while
/// the sender can still be told.
fn validate(
    account: &AccountId,
    event: WebhookEvent,
    data: &Map<String, Value>,
    sent_at: Option<chrono::NaiveDateTime>,
    now: chrono::NaiveDateTime,
) -> Result<(), MappingError> {
    match event {
        WebhookEvent::ReservationCreated
        | WebhookEvent::ReservationUpdated
        | WebhookEvent::ReservationCancelled => {
            let update = mapping::map_reservation(account, event, data, sent_at)?;
            if update
                .version
                .updated_at
                .is_some_and(|at| at > now + MAX_VERSION_SKEW)
            {
                return Err(MappingError::new(
                    "updatedOn",
                    mapping::Problem::OutOfRange(
                        "more than an hour ahead of the connector's clock",
                    ),
                ));
            }
            Ok(())
        }
        WebhookEvent::MessageReceived => mapping::map_message(account, data).map(|_| ()),
        WebhookEvent::ListingUpdated | WebhookEvent::CalendarUpdated => {
            mapping::map_listing_change(data).map(|_| ())
        }
    }
}
