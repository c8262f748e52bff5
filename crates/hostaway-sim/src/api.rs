//! The `/v1` endpoints, behind one gate: request log, faults, token check,
//! rate limits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Form, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use chrono::NaiveDate;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::SimConfig;
use crate::faults::Faults;
use crate::state::{Day, IssuedToken, RequestRecord, SimState};

#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub state: Arc<Mutex<SimState>>,
    pub faults: Arc<std::sync::Mutex<Faults>>,
    pub rng: Arc<std::sync::Mutex<fastrand::Rng>>,
    pub config: SimConfig,
}

impl Shared {
    fn roll(&self) -> f64 {
        self.rng.lock().map(|mut rng| rng.f64()).unwrap_or(1.0)
    }
}

/// The account a request's token belongs to.
#[derive(Debug, Clone)]
struct Caller(String);

const RATE_LIMIT_TEXT: &str = "This error occurs because a server detects that your application has exceeded the rate limits or has made too many requests in a given period of time.";
/// Reservations channels manage: Hostaway refuses changes to them.
const CHANNEL_MANAGED: &[i64] = &[2001, 2002, 2005, 2007, 2018];

fn fail(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"status": "fail", "message": message}))).into_response()
}

fn fail_result(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({"status": "fail", "result": text}))).into_response()
}

fn success(result: Value) -> Response {
    Json(json!({"status": "success", "result": result})).into_response()
}

fn not_found() -> Response {
    fail(StatusCode::NOT_FOUND, "Resource not found")
}

pub(crate) fn router(shared: Shared) -> Router {
    let protected = Router::new()
        .route("/v1/listings", get(list_listings).post(create_listing))
        .route(
            "/v1/listings/{id}",
            get(get_listing).put(update_listing).delete(delete_listing),
        )
        .route(
            "/v1/listings/{id}/calendar",
            get(get_calendar).put(update_calendar),
        )
        .route(
            "/v1/listings/{id}/calendarIntervals",
            put(update_calendar_intervals),
        )
        .route("/v1/reservations", get(list_reservations))
        .route(
            "/v1/reservations/{id}",
            get(get_reservation).put(update_reservation),
        )
        .route(
            "/v1/webhooks/unifiedWebhooks",
            get(list_webhooks).post(create_webhook),
        )
        .route(
            "/v1/webhooks/unifiedWebhooks/{id}",
            get(get_webhook).put(update_webhook).delete(delete_webhook),
        )
        .route_layer(middleware::from_fn_with_state(shared.clone(), authorize));
    Router::new()
        .route("/v1/accessTokens", post(access_token))
        .merge(protected)
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

/// Logs every request, then applies the faults.
async fn gate(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let at = Instant::now();
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let traceparent = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Whose request this is, as far as the token tells, for the log (faults
    // answer before the token is checked).
    let bearer_account = {
        let token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let state = shared.state.lock().await;
        token
            .and_then(|t| state.tokens.get(t))
            .map(|issued| issued.account.clone())
    };
    let faults = shared.faults.lock().map(|f| f.clone()).unwrap_or_default();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let response = if faults.in_storm() {
        rate_limited(&shared.config)
    } else if faults.drop_rate > 0.0 && shared.roll() < faults.drop_rate {
        dropped()
    } else if faults.timeout_rate > 0.0 && shared.roll() < faults.timeout_rate {
        tokio::time::sleep(Duration::from_millis(faults.timeout_ms)).await;
        fail(StatusCode::GATEWAY_TIMEOUT, "Gateway timeout")
    } else if faults.error_rate > 0.0 && shared.roll() < faults.error_rate {
        let statuses = [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::GATEWAY_TIMEOUT,
        ];
        let pick = (shared.roll() * statuses.len() as f64) as usize;
        fail(
            statuses[pick.min(statuses.len() - 1)],
            "Internal server error",
        )
    } else {
        next.run(request).await
    };
    let account = response
        .extensions()
        .get::<Caller>()
        .map(|c| c.0.clone())
        .or(bearer_account);
    shared.state.lock().await.requests.push(RequestRecord {
        at,
        peer: peer.ip(),
        account,
        method,
        path,
        status: response.status().as_u16(),
        traceparent,
    });
    response
}

fn rate_limited(config: &SimConfig) -> Response {
    let mut response = fail(StatusCode::TOO_MANY_REQUESTS, RATE_LIMIT_TEXT);
    if config.retry_after_header
        && let Ok(value) = HeaderValue::from_str(&config.window.as_secs().to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Headers, then a body that breaks: the client sees the connection drop.
fn dropped() -> Response {
    let broken = futures::stream::once(async {
        Err::<bytes::Bytes, std::io::Error>(std::io::Error::other(
            "connection dropped by the simulator",
        ))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(broken))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Checks the bearer token and both rate limits; passes the account on.
async fn authorize(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let now = Instant::now();
    let account = {
        let mut state = shared.state.lock().await;
        let issued = token.as_deref().and_then(|t| state.tokens.get(t).cloned());
        let Some(issued) = issued else {
            return fail(
                StatusCode::FORBIDDEN,
                "Access denied: no valid access token",
            );
        };
        if issued.revoked {
            return fail(
                StatusCode::UNAUTHORIZED,
                "Unauthorized: the key this token was issued for was revoked",
            );
        }
        if now < issued.active_from {
            return fail(
                StatusCode::FORBIDDEN,
                "Access denied: the token is not active yet",
            );
        }
        if now >= issued.expires_at {
            return fail(
                StatusCode::FORBIDDEN,
                "Access denied: the token is no longer valid and probably expired",
            );
        }
        let (limit, ip_limit, window) = (
            shared.config.account_limit,
            shared.config.ip_limit,
            shared.config.window,
        );
        let ip_ok = state
            .ip_windows
            .admit(&peer.ip().to_string(), ip_limit, window, now);
        let account_ok = ip_ok
            && state
                .account_windows
                .admit(&issued.account, limit, window, now);
        if !ip_ok || !account_ok {
            let mut response = rate_limited(&shared.config);
            response
                .extensions_mut()
                .insert(Caller(issued.account.clone()));
            return response;
        }
        issued.account
    };
    request.extensions_mut().insert(Caller(account.clone()));
    let mut response = next.run(request).await;
    response.extensions_mut().insert(Caller(account));
    response
}

async fn access_token(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "client_credentials" || field("scope") != "general" {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "error_description": "grant_type client_credentials and scope general are required"})),
        )
            .into_response();
    }
    let account = field("client_id").to_owned();
    let now = Instant::now();
    let mut state = shared.state.lock().await;
    let (limit, ip_limit, window) = (
        shared.config.account_limit,
        shared.config.ip_limit,
        shared.config.window,
    );
    let known = state
        .accounts
        .get(&account)
        .is_some_and(|a| a.secret == field("client_secret"));
    if !known {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "error_description": "Client authentication failed"})),
        )
            .into_response();
    }
    // Token requests count against the limits too.
    if !state
        .ip_windows
        .admit(&peer.ip().to_string(), ip_limit, window, now)
        || !state.account_windows.admit(&account, limit, window, now)
    {
        let mut response = rate_limited(&shared.config);
        response.extensions_mut().insert(Caller(account));
        return response;
    }
    let token = format!("sim.{}", uuid::Uuid::new_v4().simple());
    state.tokens.insert(
        token.clone(),
        IssuedToken {
            account: account.clone(),
            active_from: now + shared.config.token_activation,
            expires_at: now + shared.config.token_lifetime,
            revoked: false,
        },
    );
    let body = json!({
        "token_type": "Bearer",
        "expires_in": shared.config.token_lifetime.as_secs(),
        "access_token": token,
    });
    let body = if shared.config.wrapped_token_response {
        json!({"status": "success", "result": body})
    } else {
        body
    };
    let mut response = Json(body).into_response();
    response.extensions_mut().insert(Caller(account));
    response
}

fn number(query: &HashMap<String, String>, key: &str) -> Option<u64> {
    query.get(key).and_then(|v| v.trim().parse().ok())
}

async fn list_listings(
    State(shared): State<Shared>,
    Extension(Caller(account)): Extension<Caller>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let state = shared.state.lock().await;
    let Some(acct) = state.accounts.get(&account) else {
        return not_found();
    };
    let limit = number(&query, "limit").unwrap_or(100).min(500);
    let offset = number(&query, "offset").unwrap_or(0);
    let page: Vec<Value> = acct
        .listings
        .values()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|l| Value::Object(l.clone()))
        .collect();
    // Real list responses carry only these keys (no page/totalPages).
    Json(json!({"status": "success", "result": page, "count": acct.listings.len(), "limit": limit, "offset": offset}))
        .into_response()
}

async fn create_listing(
    State(shared): State<Shared>,
    Extension(Caller(account)): Extension<Caller>,
    Json(fields): Json<Map<String, Value>>,
) -> Response {
    let mut state = shared.state.lock().await;
    let mut fields = fields;
    fields.remove("id");
    match state.add_listing(&account, fields) {
        Some(id) => success(Value::Object(
            state.accounts[&account].listings[&id].clone(),
        )),
        None => not_found(),
    }
}

async fn get_listing(
    State(shared): State<Shared>,
    Extension(Caller(account)): Extension<Caller>,
    Path(id): Path<u64>,
) -> Response {
    let state = shared.state.lock().await;
    match state
        .accounts
        .get(&account)
        .and_then(|a| a.listings.get(&id))
    {
        Some(listing) => success(Value::Object(listing.clone())),
        None => not_found(),
    }
}

async fn update_listing(
    State(shared): State<Shared>,
    Extension(Caller(account)): Extension<Caller>,
    Path(id): Path<u64>,
    Json(fields): Json<Map<String, Value>>,
) -> Response {
    let mut state = shared.state.lock().await;
    let Some(listing) = state
        .accounts
        .get_mut(&account)
        .and_then(|a| a.listings.get_mut(&id))
    else {
        return not_found();
    };
    if listing.get("specialStatus").and_then(Value::as_str) == Some("archived") {
        return fail_result(
            StatusCode::BAD_REQUEST,
            "Archived listings cannot be modified",
        );
    }
    for (key, value) in fields {
        if key != "id" {
            listing.insert(key, value);
        }
    }
    listing.insert("latestActivityOn".into(), json!(crate::state::now_text()));
    success(Value::Object(listing.clone()))
}

async fn delete_listing(
    State(shared): State<Shared>,
    Extension(Caller(account)): Extension<Caller>,
    Path(id): Path<u64>,
) -> Response {
    let mut state = shared.state.lock().await;
    match state
        .accounts
        .get_mut(&account)
        .and_then(|a| a.listings.remove(&id))
    {
        Some(_) => success(json!([])),
        None => not_found(),
    }
}

fn parse_date(value: Option<&Value>) -> Option<NaiveDate> {
    value
        .and_then(Value::as_str)
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
}

/// A day as Hostaway shows it: a night a guest holds is reserved and not
/// available, whatever its own setting.
pub(crate) fn day_json(id: u64, date: NaiveDate, day: &Day, reserved: bool) -> Value {
    let available = day.is_available && !reserved;
    // A multi-unit night shows its units; one a guest holds has none left.
    let units = day.desired_units_to_sell;
    let left = units.map(|n| if reserved { (n - 1).max(0) } else { n });
    json!({
        "id": id, "date": date.to_string(), "isAvailable": u8::from(available), "isProcessed": 1,
        "status": if reserved { "reserved" } else if available { "available" } else { "blocked" },
        "price": day.price, "minimumStay": day.minimum_stay, "maximumStay": day.maximum_stay,
        "closedOnArrival": day.closed_on_arrival.map(u8::from), "closedOnDeparture": day.closed_on_departure.map(u8::from),
        "note": day.note, "countAvailableUnits": left, "availableUnitsToSell": left, "countPendingUnits": units.map(|_| 0),
        "countBlockingReservations": units.map(|_| u8::from(reserved)), "countBlockedUnits": units.map(|_| 0),
        "desiredUnitsToSell": units, "reservations": []
    })
}

/// Longest range one calendar read or write may cover.
const MAX_RANGE_DAYS: i64 = 800;

async fn get_calendar(
    State(shared): State<Shared>,
    Extension(Caller(account)): Extension<Caller>,
    Path(id): Path<u64>,
    Query(query): Query<HashMap<String, Value>>,
) -> Response {
    let (Some(start), Some(end)) = (
        parse_date(query.get("startDate")),
        parse_date(query.get("endDate")),
    ) else {
        return fail_result(
            StatusCode::BAD_REQUEST,
            "startDate and endDate (Y-m-d) are required",
        );
    };
    if end < start || (end - start).num_days() > MAX_RANGE_DAYS {
        return fail_result(StatusCode::BAD_REQUEST, "Invalid date range");
    }
    let state = shared.state.lock().await;
    if !state
        .accounts
        .get(&account)
        .is_some_and(|a| a.listings.contains_key(&id))
    {
        return not_found();
    }
    let days: Vec<Value> = start
        .iter_days()
        .take_while(|d| *d <= end)
        .filter_map(|date| {
            state
                .day(&account, id, date)
                .map(|day| day_json(id, date, &day, state.reserved(&account, id, date)))
        })
        .collect();
    success(Value::Array(days))
}

/// One interval of a calendar write, validated.
pub(crate) struct IntervalChange {
    start: NaiveDate,
    end: NaiveDate,
    available: Option<bool>,
    price: Option<f64>,
    min_stay: Option<i64>,
    max_stay: Option<i64>,
    closed_arrival: Option<bool>,
    closed_departure: Option<bool>,
    note: Option<String>,
    units: Option<i64>,
}

pub(crate) fn parse_interval(interval: &Map<String, Value>) -> Result<IntervalChange, String> {
    let (Some(start), Some(end)) = (
        parse_date(interval.get("startDate")),
        parse_date(interval.get("endDate")),
    ) else {
        return Err("startDate and endDate (Y-m-d) are required".into());
    };
    if end < start || (end - start).num_days() > MAX_RANGE_DAYS {
        return Err("Invalid date range".into());
    }
    let flag = |key: &str| -> Result<Option<bool>, String> {
        match interval.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => match v.as_i64() {
                Some(0) => Ok(Some(false)),
                Some(1) => Ok(Some(true)),
                _ => Err(format!("{key} must be 0 or 1")),
            },
        }
    };
    let int = |key: &str| -> Result<Option<i64>, String> {
        match interval.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .filter(|n| *n >= 0)
                .map(Some)
                .ok_or(format!("{key} must be a non-negative integer")),
        }
    };
    let price = match interval.get("price") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|p| *p >= 0.0)
                .ok_or("price must be a non-negative number")?,
        ),
    };
    Ok(IntervalChange {
        start,
        end,
        available: flag("isAvailable")?,
        price,
        min_stay: int("minimumStay")?,
        max_stay: int("maximumStay")?,
        closed_arrival: flag("closedOnArrival")?,
        closed_departure: flag("closedOnDeparture")?,
        note: interval
            .get("note")
            .and_then(Value::as_str)
            .map(str::to_owned),
        units: int("desiredUnitsToSell")?,
    })
}

/// Writes the days of `change`; returns them as Hostaway shows them.
pub(crate) fn apply_interval(
    state: &mut SimState,
    account: &str,
    listing: u64,
    change: &IntervalChange,
) -> Vec<Value> {
    let mut affected = Vec::new();
    for date in change.start.iter_days().take_while(|d| *d <= change.end) {
        let Some(mut day) = state.day(account, listing, date) else {
            continue;
        };
        // Multi-unit listings use desiredUnitsToSell instead of isAvailable
        // (ignored on them); ordinary listings ignore desiredUnitsToSell.
        match (day.desired_units_to_sell, change.units, change.available) {
            (Some(_), Some(units), _) => {
                day.desired_units_to_sell = Some(units);
                day.is_available = units > 0;
            }
            (Some(_), None, _) => {}
            (None, _, Some(v)) => day.is_available = v,
            (None, _, None) => {}
        }
        if let Some(v) = change.price {
            day.price = v;
        }
        if let Some(v) = change.min_stay {
            day.minimum_stay = v;
        }
        if let Some(v) = change.max_stay {
            day.maximum_stay = v;
        }
        if change.closed_arrival.is_some() {
            day.closed_on_arrival = change.closed_arrival;
        }
        if change.closed_departure.is_some() {
            day.closed_on_departure = change.closed_departure;
        }
        if change.note.is_some() {
            day.note = change.note.clone();
        }
        affected.push(day_json(
            listing,
            date,
            &day,
            state.reserved(account, listing, date),
        ));
        if let Some(acct) = state.accounts.get_mut(account) {
            acct.calendars.entry(listing).or_default().insert(date, day);
        }
    }
    affected
}

async fn update_calendar(
    State(shared): State<Shared>,
    Extension(Caller(account)): Extension<Caller>,
    Path(id): Path<u64>,
    Json(interval): Json<Map<String, Value>>,
) -> Response {
    let mut state = shared.state.lock().await;
    if !state
        .accounts
        .get(&account)
        .is_some_and(|a| a.listings.contains_key(&id))
    {
        return not_found();
    }
    match parse_interval(&interval) {
        Ok(change) => success(Value::Array(apply_interval(
            &mut state, &account, id, &change,
        ))),
        Err(text) => fail_result(StatusCode::BAD_REQUEST, &text),
    }
}

async fn update_calendar_intervals(
    State(shared): State<Shared>,
    Extension(Caller(account)): Extension<Caller>,
    Path(id): Path<u64>,
    Json(intervals): Json<Value>,
) -> Response {
    let Value::Array(intervals) = intervals else {
        return fail_result(
            StatusCode::BAD_REQUEST,
            "The body must be an array of intervals",
        );
    };
    if intervals.len() > 200 {
        return fail_result(StatusCode::BAD_REQUEST, "At most 200 intervals per request");
    }
    let mut state = shared.state.lock().await;
    if !state
        .accounts
        .get(&account)
        .is_some_and(|a| a.listings.contains_key(&id))
    {
        return not_found();
    }
    // Validate everything first: a refused batch changes nothing.
    let mut changes = Vec::with_capacity(intervals.len());
    for interval in &intervals {
        let Some(map) = interval.as_object() else {
            return fail_result(StatusCode::BAD_REQUEST, "Each interval must be an object");
        };
        match parse_interval(map) {
            Ok(change) => changes.push(change),
            Err(text) => return fail_result(StatusCode::BAD_REQUEST, &text),
        }
    }
    for change in &changes {
        apply_interval(&mut state, &account, id, change);
    }
    success(json!([]))
}

fn text_field(map: &Map<String, Value>, key: &str) -> String {
    match map.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

async fn list_reservations(
    State(shared): State<Shared>,
    Extension(Caller(account)): Extension<Caller>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let state = shared.state.lock().await;
    let Some(acct) = state.accounts.get(&account) else {
        return not_found();
    };
    let q = |key: &str| query.get(key).map(String::as_str).filter(|s| !s.is_empty());
    let mut matching: Vec<&Map<String, Value>> = acct
        .reservations
        .values()
        .filter(|r| q("listingId").is_none_or(|l| text_field(r, "listingMapId") == l))
        .filter(|r| q("channelId").is_none_or(|c| text_field(r, "channelId") == c))
        .filter(|r| {
            q("latestActivityStart").is_none_or(|s| text_field(r, "latestActivityOn").as_str() >= s)
        })
        .filter(|r| {
            q("latestActivityEnd").is_none_or(|e| text_field(r, "latestActivityOn").as_str() <= e)
        })
        .filter(|r| {
            q("arrivalStartDate").is_none_or(|s| text_field(r, "arrivalDate").as_str() >= s)
        })
        .filter(|r| q("arrivalEndDate").is_none_or(|e| text_field(r, "arrivalDate").as_str() <= e))
        .collect();
    // The documented default order: updatedOn DESC, id DESC; `updatedOn` asks ascending.
    let key = |r: &&Map<String, Value>| {
        (
            text_field(r, "updatedOn"),
            r.get("id").and_then(Value::as_u64).unwrap_or(0),
        )
    };
    if q("sortOrder") == Some("updatedOn") {
        matching.sort_by_key(key);
    } else {
        matching.sort_by_key(|r| std::cmp::Reverse(key(r)));
    }
    let count = matching.len();
    // `afterId` continues after that reservation in this order.
    if let Some(after) = q("afterId") {
        match matching.iter().position(|r| text_field(r, "id") == after) {
            Some(position) => {
                matching.drain(..=position);
            }
            None => matching.clear(),
        }
    }
    let limit = number(&query, "limit").unwrap_or(100).clamp(1, 500) as usize;
    let page: Vec<Value> = matching
        .into_iter()
        .take(limit)
        .map(|r| Value::Object(r.clone()))
        .collect();
    Json(json!({"status": "success", "result": page, "count": count, "limit": limit, "offset": null})).into_response()
}

async fn get_reservation(
    State(shared): State<Shared>,
    Extension(Caller(account)): Extension<Caller>,
    Path(id): Path<u64>,
) -> Response {
    let state = shared.state.lock().await;
    match state
        .accounts
        .get(&account)
        .and_then(|a| a.reservations.get(&id))
    {
        Some(r) => success(Value::Object(r.clone())),
        None => not_found(),
    }
}

async fn update_reservation(
    State(shared): State<Shared>,
    Extension(Caller(account)): Extension<Caller>,
    Path(id): Path<u64>,
    Json(fields): Json<Map<String, Value>>,
) -> Response {
    let mut state = shared.state.lock().await;
    let Some(reservation) = state
        .accounts
        .get(&account)
        .and_then(|a| a.reservations.get(&id))
    else {
        return not_found();
    };
    let channel = reservation
        .get("channelId")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if CHANNEL_MANAGED.contains(&channel) {
        // Hostaway's answer for a reservation a channel manages.
        return fail_result(StatusCode::FORBIDDEN, "Cannot modify reservation");
    }
    let mut fields = fields;
    fields.remove("listingMapId");
    fields.remove("id");
    match state.modify_reservation(&account, id, fields) {
        Some(r) => success(Value::Object(r)),
        None => not_found(),
    }
}

fn masked(webhook: &Map<String, Value>) -> Value {
    let mut shown = webhook.clone();
    if shown.get("password").is_some_and(|p| !p.is_null()) {
        shown.insert("password".into(), json!("****"));
    }
    Value::Object(shown)
}

fn webhook_fields(id: u64, body: &Map<String, Value>) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("id".into(), json!(id));
    map.insert(
        "isEnabled".into(),
        json!(body.get("isEnabled").and_then(Value::as_i64).unwrap_or(1)),
    );
    for key in ["url", "login", "password", "alertingEmailAddress"] {
        map.insert(key.into(), body.get(key).cloned().unwrap_or(Value::Null));
    }
    map
}

async fn list_webhooks(
    State(shared): State<Shared>,
    Extension(Caller(account)): Extension<Caller>,
) -> Response {
    let state = shared.state.lock().await;
    let hooks: Vec<Value> = state
        .accounts
        .get(&account)
        .map(|a| a.webhooks.values().map(masked).collect())
        .unwrap_or_default();
    success(Value::Array(hooks))
}

async fn create_webhook(
    State(shared): State<Shared>,
    Extension(Caller(account)): Extension<Caller>,
    Json(body): Json<Map<String, Value>>,
) -> Response {
    if body
        .get("url")
        .and_then(Value::as_str)
        .is_none_or(|u| !u.starts_with("http"))
    {
        return fail_result(StatusCode::BAD_REQUEST, "url is required");
    }
    let mut state = shared.state.lock().await;
    let id = state.next_id();
    let hook = webhook_fields(id, &body);
    match state.accounts.get_mut(&account) {
        Some(acct) => {
            acct.webhooks.insert(id, hook.clone());
            success(masked(&hook))
        }
        None => not_found(),
    }
}

async fn get_webhook(
    State(shared): State<Shared>,
    Extension(Caller(account)): Extension<Caller>,
    Path(id): Path<u64>,
) -> Response {
    let state = shared.state.lock().await;
    match state
        .accounts
        .get(&account)
        .and_then(|a| a.webhooks.get(&id))
    {
        Some(hook) => success(masked(hook)),
        None => not_found(),
    }
}

async fn update_webhook(
    State(shared): State<Shared>,
    Extension(Caller(account)): Extension<Caller>,
    Path(id): Path<u64>,
    Json(body): Json<Map<String, Value>>,
) -> Response {
    let mut state = shared.state.lock().await;
    let Some(hook) = state
        .accounts
        .get_mut(&account)
        .and_then(|a| a.webhooks.get_mut(&id))
    else {
        return not_found();
    };
    *hook = webhook_fields(id, &body);
    success(masked(hook))
}

async fn delete_webhook(
    State(shared): State<Shared>,
    Extension(Caller(account)): Extension<Caller>,
    Path(id): Path<u64>,
) -> Response {
    let mut state = shared.state.lock().await;
    match state
        .accounts
        .get_mut(&account)
        .and_then(|a| a.webhooks.remove(&id))
    {
        Some(_) => success(json!([])),
        None => not_found(),
    }
}
