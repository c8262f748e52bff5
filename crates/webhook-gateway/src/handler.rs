//! `POST /webhooks/hostaway[/{accountId}]`.
//!
//! Order of checks, each with its answer (promise 5 of the design brief):
//! 1. credentials from the headers alone. Basic credentials of an account the
//!    URL or the login names are checked **before the body is read**: a
//!    refused sender costs no body (401). Otherwise (HMAC, or an account only
//!    the body names) the body is read first, from a separate, smaller pool
//!    of requests and, where the URL does not name the account, under a
//!    smaller limit; only `accountId` is picked out of it (no JSON tree is
//!    built) before the credentials are checked. Unknown account = wrong
//!    credentials: the same 401.
//! 2. the body: larger than the limit → 413; too slow or cut off → 503
//!    (never 408, which Hostaway would not retry).
//! 3. **authenticated means kept**: a ping is answered 200; anything else is
//!    published to JetStream with `Nats-Msg-Id` = its webhook id and answered
//!    200 only after the server's ack (503 if it cannot be made durable). A
//!    webhook the connector cannot use (not JSON, an unknown event, another
//!    account's body, a record the mapping refuses, a version from the
//!    future) is published too, marked with its problem, answered 200 naming
//!    the problem, and dead-lettered by the ingestor: Hostaway never retries
//!    a 4xx, so a 4xx would lose it.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;
use domain::AccountId;
use events::pb;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use mapping::{MappingError, Webhook, WebhookEvent};
use serde_json::{Map, Value, json};
use service_kit::inbound::{Content, Inbound};
use service_kit::nats::Topology;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::auth::{self, AuthFailure, AuthMethod, Presented, Unverified, Verified};
use crate::credentials::{AccountAuth, CredentialCache};
use crate::log_limit::LogLimiter;
use crate::metrics::GatewayMetrics;
use service_kit::publish::{PublishFailure, Publisher};

/// What bounds one request's body.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    /// Bodies of authenticated senders, and of senders the URL names.
    pub max_bytes: usize,
    /// Bodies read before the sender is known, where the URL names no account.
    pub preauth_max_bytes: usize,
    /// How long a body may take to arrive; a slower one is answered 503.
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct AppState {
    pub cache: Arc<CredentialCache>,
    pub publisher: Publisher,
    pub topology: Topology,
    pub metrics: GatewayMetrics,
    pub body: BodyLimits,
    /// Requests of authenticated senders handled at once.
    pub authenticated: Arc<Semaphore>,
    /// Requests whose body must be read before the sender is known.
    pub preauth: Arc<Semaphore>,
    /// Refusals are logged, but never faster than this lets them.
    pub refusal_log: Arc<LogLimiter>,
    /// Whether a request's `traceparent` is continued (a trusted proxy's).
    pub trust_traceparent: bool,
}

/// Who a refused request claimed to be, for the log. Neither is a secret;
/// both are cut and cleaned, since the sender chose them.
#[derive(Debug, Default, Clone)]
pub struct Claimed {
    account: Option<String>,
    login: Option<String>,
}

fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

/// Everything the gateway answers besides 200. Bodies name the problem but
/// never echo a credential or a value from the request.
#[derive(Debug)]
pub enum Rejection {
    Unauthorized(AuthFailure, Claimed),
    TooLarge {
        limit: usize,
    },
    /// The body was too slow or cut off: 503, so Hostaway sends it again.
    BodyIncomplete(&'static str),
    /// Too many requests at once in the sender's pool.
    Overloaded,
    Unavailable(PublishFailure),
    CredentialsNotLoaded,
}

impl Rejection {
    fn metric_reason(&self) -> &'static str {
        match self {
            Rejection::Unauthorized(failure, _) => failure.metric_reason(),
            Rejection::TooLarge { .. } => "too_large",
            Rejection::BodyIncomplete(why) => why,
            Rejection::Overloaded => "overloaded",
            Rejection::Unavailable(_) => "unavailable",
            Rejection::CredentialsNotLoaded => "credentials_not_loaded",
        }
    }
}

fn unavailable(error: &'static str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, HeaderValue::from_static("5"))],
        Json(json!({"error": error})),
    )
        .into_response()
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Rejection::Unauthorized(..) => (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"hostaway-webhooks\""),
                )],
                Json(json!({"error": "unauthorized"})),
            )
                .into_response(),
            Rejection::TooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(json!({"error": "payload_too_large", "limit_bytes": limit})),
            )
                .into_response(),
            Rejection::BodyIncomplete(_) => unavailable("body_incomplete"),
            Rejection::Overloaded => unavailable("overloaded"),
            Rejection::Unavailable(_) | Rejection::CredentialsNotLoaded => {
                unavailable("temporarily_unavailable")
            }
        }
    }
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
        "hostaway.webhook.receive",
        otel.kind = "server",
        request_id = %request_id,
        account_id = tracing::field::Empty,
        event = tracing::field::Empty,
        webhook_id = tracing::field::Empty,
        "webhook.id" = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    if state.trust_traceparent {
        // The proxy in front began the trace.
        telemetry::propagation::continue_from_http(&span, &headers);
    }
    async move {
        match process(&state, path_account, headers, body, &request_id).await {
            Ok(accepted) => accepted.into_response(),
            Err(rejection) => {
                refused(&state, &rejection);
                if matches!(rejection, Rejection::Unavailable(_)) {
                    tracing::Span::current().record("otel.status_code", "ERROR");
                }
                rejection.into_response()
            }
        }
    }
    .instrument(span)
    .await
}

/// Counts a refusal and logs it, unless refusals are coming too fast to log
/// each (a flood of forgeries must not flood the logs).
fn refused(state: &AppState, rejection: &Rejection) {
    state
        .metrics
        .rejected
        .with_label_values(&[rejection.metric_reason()])
        .inc();
    if let Rejection::Unavailable(error) = rejection {
        // Never left out: this is the connector failing, not a sender.
        tracing::error!(%error, "webhook not made durable; answered 503 so Hostaway retries");
        return;
    }
    let Some(suppressed) = state.refusal_log.allow() else {
        state.metrics.unauthorized_logs_suppressed.inc();
        return;
    };
    match rejection {
        Rejection::Unauthorized(failure, claimed) => {
            tracing::warn!(
                reason = %failure,
                claimed_account = claimed.account.as_deref(),
                claimed_login = claimed.login.as_deref(),
                suppressed,
                "webhook refused: unauthorized"
            );
        }
        other => {
            tracing::warn!(
                reason = other.metric_reason(),
                suppressed,
                "webhook refused"
            )
        }
    }
}

#[derive(Debug)]
enum Accepted {
    Ping,
    Durable {
        webhook_id: String,
    },
    /// Authenticated and kept, but the connector cannot use it: the ingestor
    /// dead-letters it with `problem`.
    Kept {
        webhook_id: String,
        problem: pb::Problem,
    },
}

impl IntoResponse for Accepted {
    fn into_response(self) -> Response {
        let body = match self {
            Accepted::Ping => json!({"received": true, "ping": true}),
            Accepted::Durable { webhook_id } => json!({"received": true, "webhookId": webhook_id}),
            Accepted::Kept {
                webhook_id,
                problem,
            } => json!({
                "received": true,
                "webhookId": webhook_id,
                "processed": false,
                "keptFor": "dead_letter_queue",
                "problem": {
                    "reason": problem.reason,
                    "field": problem.field,
                    "detail": problem.detail,
                },
            }),
        };
        (StatusCode::OK, Json(body)).into_response()
    }
}

async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Rejection> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(Rejection::TooLarge { limit });
    }
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(Rejection::BodyIncomplete("body_too_slow")),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(Rejection::TooLarge { limit })
        }
        Ok(Err(_)) => Err(Rejection::BodyIncomplete("body_aborted")),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

async fn process(
    state: &AppState,
    path_account: Option<String>,
    headers: HeaderMap,
    body: Body,
    request_id: &str,
) -> Result<Accepted, Rejection> {
    let presented = auth::presented(&headers);
    let mut claimed = Claimed {
        account: path_account.as_deref().map(printable),
        login: match &presented {
            Presented::Basic { login, .. } => Some(printable(login)),
            _ => None,
        },
    };
    match presented {
        Presented::Missing => return Err(Rejection::Unauthorized(AuthFailure::Missing, claimed)),
        Presented::Malformed => {
            return Err(Rejection::Unauthorized(AuthFailure::Malformed, claimed));
        }
        Presented::Basic { .. } | Presented::Hmac => {}
    }
    // The account the URL or the login names: `Some(None)` when it names one
    // that does not exist, `None` when only the body can say.
    let named: Option<Option<Arc<AccountAuth>>> = match (&path_account, &presented) {
        (Some(raw), _) => Some(
            AccountId::parse(raw.as_str())
                .ok()
                .and_then(|id| state.cache.by_account(&id)),
        ),
        (None, Presented::Basic { login, .. }) => state.cache.by_login(login).map(Some),
        _ => None,
    };
    let not_loaded = |found: &Option<Arc<AccountAuth>>| {
        // Never loaded from PostgreSQL since this process started: the account
        // may well exist. 503 makes Hostaway retry; a 401 would be final.
        found.is_none() && !state.cache.loaded_from_database()
    };

    if let (Some(found), Presented::Basic { login, password }) = (&named, &presented) {
        if not_loaded(found) {
            return Err(Rejection::CredentialsNotLoaded);
        }
        let verified = auth::verify_basic(login, password, found.as_deref())
            .map_err(|failure| Rejection::Unauthorized(failure, claimed))?;
        let _permit = Arc::clone(&state.authenticated)
            .try_acquire_owned()
            .map_err(|_| Rejection::Overloaded)?;
        let body = read_body(&headers, body, state.body.max_bytes, state.body.timeout).await?;
        return keep(state, &verified, body, request_id).await;
    }

    // The body is needed to know or check the sender.
    let _permit = Arc::clone(&state.preauth)
        .try_acquire_owned()
        .map_err(|_| Rejection::Overloaded)?;
    let limit = if path_account.is_some() {
        state.body.max_bytes
    } else {
        state.body.preauth_max_bytes
    };
    let body = read_body(&headers, body, limit, state.body.timeout).await?;
    let account = match named {
        Some(found) => found,
        None => {
            let probed = mapping::probe_account(&body);
            if let Some(id) = &probed {
                claimed.account = Some(id.to_string());
            }
            probed.and_then(|id| state.cache.by_account(&id))
        }
    };
    if not_loaded(&account) {
        return Err(Rejection::CredentialsNotLoaded);
    }
    let unverified = Unverified { headers, body };
    let verified = auth::authenticate(&unverified, account.as_deref(), Utc::now().timestamp())
        .map_err(|failure| Rejection::Unauthorized(failure, claimed))?;
    keep(state, &verified, unverified.body, request_id).await
}

/// An authenticated webhook: durable on JetStream before the answer, whatever
/// is wrong with it.
async fn keep(
    state: &AppState,
    verified: &Verified,
    body: Bytes,
    request_id: &str,
) -> Result<Accepted, Rejection> {
    let span = tracing::Span::current();
    span.record("account_id", verified.account.as_str());
    let parsed = mapping::parse_webhook(&body);
    let (content, problem, event_label) = match &parsed {
        Err(error) => (
            Content::Unparsed,
            Some(problem("malformed_body", "", error.to_string())),
            "unparsed",
        ),
        Ok(Webhook::Ping { .. }) => {
            state.metrics.received.with_label_values(&["ping"]).inc();
            tracing::info!("Hostaway test ping answered");
            return Ok(Accepted::Ping);
        }
        Ok(Webhook::Unknown { event, .. }) => (
            Content::Unknown,
            Some(problem(
                "unknown_event",
                "event",
                format!("`{event}` is not an event this version handles"),
            )),
            "unknown",
        ),
        Ok(Webhook::Event {
            account,
            event,
            data,
            sent_at,
            ..
        }) => {
            let problem = if account
                .as_ref()
                .is_some_and(|claimed| claimed != &verified.account)
            {
                Some(problem(
                    "account_mismatch",
                    "accountId",
                    "accountId in the body is not the authenticated account".into(),
                ))
            } else {
                validate(
                    &verified.account,
                    *event,
                    data,
                    *sent_at,
                    Utc::now().naive_utc(),
                )
                .err()
            };
            span.record("event", event.as_str());
            (
                Content::Event {
                    event: *event,
                    sent_at: *sent_at,
                    data,
                },
                problem,
                event.as_str(),
            )
        }
    };
    state
        .metrics
        .received
        .with_label_values(&[event_label])
        .inc();
    let outgoing = Inbound {
        account: &verified.account,
        content,
        raw_body: body.clone(),
        source: match verified.method {
            AuthMethod::Basic => pb::Source::WebhookBasic,
            AuthMethod::Hmac => pb::Source::WebhookHmac,
        },
        request_id: request_id.to_owned(),
        problem: problem.clone(),
        account_disabled: !verified.enabled,
    }
    .build(&state.topology);
    span.record("webhook_id", outgoing.webhook_id.as_str());
    span.record("webhook.id", outgoing.webhook_id.as_str());
    let acked = state
        .publisher
        .publish(outgoing.subject, &outgoing.webhook_id, outgoing.payload)
        .await
        .map_err(Rejection::Unavailable)?;
    state
        .metrics
        .publish_duration
        .observe(acked.elapsed.as_secs_f64());
    state
        .metrics
        .published
        .with_label_values(&[event_label, if acked.duplicate { "true" } else { "false" }])
        .inc();
    let webhook_id = outgoing.webhook_id;
    match problem {
        None => {
            tracing::info!(
                stream_sequence = acked.sequence,
                duplicate = acked.duplicate,
                account_enabled = verified.enabled,
                "webhook received and durable"
            );
            Ok(Accepted::Durable { webhook_id })
        }
        Some(problem) => {
            state
                .metrics
                .kept_unusable
                .with_label_values(&[problem.reason.as_str()])
                .inc();
            tracing::warn!(
                reason = problem.reason,
                field = problem.field,
                detail = problem.detail,
                stream_sequence = acked.sequence,
                "webhook cannot be used; kept for the dead-letter queue and answered 200"
            );
            Ok(Accepted::Kept {
                webhook_id,
                problem,
            })
        }
    }
}

fn problem(reason: &str, field: &str, detail: String) -> pb::Problem {
    pb::Problem {
        reason: reason.to_owned(),
        field: field.to_owned(),
        detail,
    }
}

/// Whether the record can be used: what the ingestor would refuse is found
/// here too, so the sender's answer names it. (The ingestor judges again.)
fn validate(
    account: &AccountId,
    event: WebhookEvent,
    data: &Map<String, Value>,
    sent_at: Option<chrono::NaiveDateTime>,
    now: chrono::NaiveDateTime,
) -> Result<(), pb::Problem> {
    let invalid = |e: MappingError| problem("invalid_payload", e.field, e.problem.to_string());
    match event {
        WebhookEvent::ReservationCreated
        | WebhookEvent::ReservationUpdated
        | WebhookEvent::ReservationCancelled => {
            let update =
                mapping::map_reservation(account, event, data, sent_at, domain::Origin::Webhook)
                    .map_err(invalid)?;
            mapping::check_version_skew(&update.value, now)
                .map_err(|e| problem("clock_skew", e.field, e.problem.to_string()))
        }
        WebhookEvent::MessageReceived => mapping::map_message(account, data)
            .map(|_| ())
            .map_err(invalid),
        WebhookEvent::ListingUpdated | WebhookEvent::CalendarUpdated => {
            mapping::map_listing_change(data)
                .map(|_| ())
                .map_err(invalid)
        }
    }
}
