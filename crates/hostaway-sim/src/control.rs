//! `/_sim/…`: setting the simulator up and reading it back over HTTP (for
//! `just sim` and the demo; tests use the library directly). Not part of
//! Hostaway's API.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::Shared;
use crate::faults::Faults;
use crate::sender::{DeliveryOptions, WebhookAuth, WebhookTarget};

pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/_sim/accounts", post(add_account))
        .route("/_sim/accounts/{account}/listings", post(add_listing))
        .route(
            "/_sim/accounts/{account}/reservations",
            post(create_reservation),
        )
        .route(
            "/_sim/accounts/{account}/reservations/{id}/modify",
            post(modify_reservation),
        )
        .route(
            "/_sim/accounts/{account}/reservations/{id}/cancel",
            post(cancel_reservation),
        )
        .route(
            "/_sim/listings/{id}/calendar",
            get(calendar).put(edit_calendar),
        )
        .route("/_sim/requests", get(requests))
        .route("/_sim/deliveries", get(deliveries))
        .route("/_sim/faults", put(set_faults).get(get_faults))
        .route("/_sim/webhook-target", put(set_target))
        .with_state(shared)
}

fn sim(shared: &Shared) -> crate::Sim {
    crate::Sim::from_shared(shared)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewAccount {
    account_id: String,
    secret: String,
}

async fn add_account(State(shared): State<Shared>, Json(body): Json<NewAccount>) -> Response {
    shared
        .state
        .lock()
        .await
        .add_account(&body.account_id, &body.secret);
    (
        StatusCode::CREATED,
        Json(json!({"accountId": body.account_id})),
    )
        .into_response()
}

async fn add_listing(
    State(shared): State<Shared>,
    Path(account): Path<String>,
    Json(fields): Json<Map<String, Value>>,
) -> Response {
    match shared.state.lock().await.add_listing(&account, fields) {
        Some(id) => (StatusCode::CREATED, Json(json!({"id": id}))).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such account"})),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct CreateOptions {
    /// `false`: create it as Hostaway does when it loses the webhook.
    #[serde(default = "yes")]
    webhook: bool,
}

fn yes() -> bool {
    true
}

async fn create_reservation(
    State(shared): State<Shared>,
    Path(account): Path<String>,
    Query(options): Query<CreateOptions>,
    Json(fields): Json<Map<String, Value>>,
) -> Response {
    let Some(listing) = fields.get("listingMapId").and_then(Value::as_u64) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "listingMapId is required"})),
        )
            .into_response();
    };
    let sim = sim(&shared);
    let created = if options.webhook {
        sim.create_reservation(&account, listing, fields).await
    } else {
        sim.create_reservation_silently(&account, listing, fields)
            .await
    };
    match created {
        Some(id) => (StatusCode::CREATED, Json(json!({"id": id}))).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such account"})),
        )
            .into_response(),
    }
}

async fn modify_reservation(
    State(shared): State<Shared>,
    Path((account, id)): Path<(String, u64)>,
    Json(changes): Json<Map<String, Value>>,
) -> Response {
    if sim(&shared).modify_reservation(&account, id, changes).await {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn cancel_reservation(
    State(shared): State<Shared>,
    Path((account, id)): Path<(String, u64)>,
) -> Response {
    if sim(&shared).cancel_reservation(&account, id).await {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn calendar(
    State(shared): State<Shared>,
    Path(id): Path<u64>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let date = |key: &str| {
        query
            .get(key)
            .and_then(|v| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok())
    };
    let (Some(start), Some(end)) = (date("startDate"), date("endDate")) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "startDate and endDate are required"})),
        )
            .into_response();
    };
    let state = shared.state.lock().await;
    let account = state.listing_account(id).unwrap_or_default().to_owned();
    let days: Vec<Value> = state
        .calendar(id, start, end)
        .into_iter()
        .map(|(date, day)| {
            let mut shown = json!({"date": date.to_string(), "isAvailable": day.is_available, "price": day.price,
                   "minimumStay": day.minimum_stay, "maximumStay": day.maximum_stay,
                   "reserved": state.reserved(&account, id, date)});
            if let Some(units) = day.desired_units_to_sell {
                shown["desiredUnitsToSell"] = json!(units);
            }
            shown
        })
        .collect();
    Json(Value::Array(days)).into_response()
}

/// Days changed in Hostaway by hand (drift for reconciliation to find).
async fn edit_calendar(
    State(shared): State<Shared>,
    Path(id): Path<u64>,
    Json(interval): Json<Map<String, Value>>,
) -> Response {
    match sim(&shared).edit_calendar(id, &interval).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response(),
    }
}

async fn requests(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let state = shared.state.lock().await;
    let records = state.requests_of(query.get("account").map(String::as_str));
    let first = state.requests.first().map(|r| r.at);
    let list: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({"atMs": first.map(|f| r.at.duration_since(f).as_millis() as u64), "peer": r.peer.to_string(),
                   "account": r.account, "method": r.method, "path": r.path, "status": r.status})
        })
        .collect();
    Json(json!({"count": list.len(), "requests": list})).into_response()
}

async fn deliveries(State(shared): State<Shared>) -> Response {
    let list: Vec<Value> = shared
        .state
        .lock()
        .await
        .deliveries
        .iter()
        .map(|d| json!({"event": d.event, "reservationId": d.reservation_id, "status": d.status, "attempt": d.attempt, "last": d.last}))
        .collect();
    Json(Value::Array(list)).into_response()
}

async fn set_faults(State(shared): State<Shared>, Json(mut faults): Json<Faults>) -> Response {
    if faults.storm_ms > 0 {
        faults.storm_until =
            Some(tokio::time::Instant::now() + Duration::from_millis(faults.storm_ms));
    }
    if let Ok(mut current) = shared.faults.lock() {
        *current = faults;
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn get_faults(State(shared): State<Shared>) -> Response {
    let faults = shared.faults.lock().map(|f| f.clone()).unwrap_or_default();
    Json(faults).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    url: String,
    login: Option<String>,
    password: Option<String>,
    hmac_secret: Option<String>,
    #[serde(default)]
    duplicate_rate: f64,
    #[serde(default)]
    reorder_window_ms: u64,
    #[serde(default)]
    retry_ms: Option<u64>,
}

async fn set_target(State(shared): State<Shared>, Json(target): Json<Target>) -> Response {
    let auth = match (target.login, target.password, target.hmac_secret) {
        (_, _, Some(secret)) => WebhookAuth::Hmac { secret },
        (Some(login), Some(password), None) => WebhookAuth::Basic { login, password },
        _ => WebhookAuth::None,
    };
    let options = DeliveryOptions {
        duplicate_rate: target.duplicate_rate.clamp(0.0, 1.0),
        reorder_window: Duration::from_millis(target.reorder_window_ms),
        first_retry: target
            .retry_ms
            .map_or(Duration::from_secs(60), Duration::from_millis),
        ..DeliveryOptions::default()
    };
    sim(&shared)
        .set_webhook_target(Some((
            WebhookTarget {
                url: target.url,
                auth,
            },
            options,
        )))
        .await;
    StatusCode::NO_CONTENT.into_response()
}
