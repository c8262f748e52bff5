//! Every client operation against the simulator, on a paused clock: the real
//! rate limits apply, but waiting costs nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::NaiveDate;
use connector_tests::sim::{ACCOUNT, SimClient};
use domain::{Currency, ListingId, ReservationId};
use hostaway_client::{
    AvailabilityUpdate, ErrorKind, ListingsQuery, PricingUpdate, ReservationsQuery,
};
use hostaway_sim::SimConfig;
use mapping::api::{CalendarInterval, UnifiedWebhookRequest};
use secrecy::SecretString;
use serde_json::{Map, Value, json};

/// Every log line of this test binary, at debug level.
fn captured_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> =
        std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&buffer);
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_writer(move || LogSink(std::sync::Arc::clone(&sink)))
            .try_init();
        buffer
    })
    .clone()
}

struct LogSink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("an object"),
    }
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

#[tokio::test(start_paused = true)]
async fn listings_list_get_create_update() {
    let t = SimClient::start(SimConfig::default(), |_| {}).await;
    for n in 0..130 {
        t.sim
            .add_listing(ACCOUNT, fields(json!({"name": format!("Listing {n}")})))
            .await;
    }
    let page = t
        .client
        .list_listings(
            &t.account,
            &ListingsQuery {
                limit: 100,
                offset: 0,
            },
        )
        .await
        .unwrap();
    assert_eq!((page.items.len(), page.count), (100, Some(130)));
    let all = t.client.all_listings(&t.account).await.unwrap();
    assert_eq!(all.len(), 130, "paged until the count");

    let created = t
        .client
        .create_listing(
            &t.account,
            &fields(json!({"name": "Harbour flat", "price": 180, "currencyCode": "EUR"})),
        )
        .await
        .unwrap();
    assert_eq!(
        created.currency.map(|c| c.to_string()).as_deref(),
        Some("EUR")
    );
    let updated = t
        .client
        .update_listing(
            &t.account,
            &created.id,
            &fields(json!({"name": "Harbour flat, renovated"})),
        )
        .await
        .unwrap();
    assert_eq!(updated.name.as_deref(), Some("Harbour flat, renovated"));
    assert_eq!(
        t.client
            .get_listing(&t.account, &created.id)
            .await
            .unwrap()
            .name,
        updated.name
    );

    // An empty amenity list would delete every amenity: refused before sending.
    let before = t.sim.requests(None).await.len();
    let error = t
        .client
        .update_listing(
            &t.account,
            &created.id,
            &fields(json!({"listingAmenities": []})),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Validation);
    assert_eq!(t.sim.requests(None).await.len(), before, "nothing was sent");

    let missing = t
        .client
        .get_listing(&t.account, &ListingId::parse("999999").unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        (missing.kind, missing.status, missing.retryable),
        (ErrorKind::NotFound, Some(404), false)
    );
    assert_eq!(
        missing.message, "Resource not found",
        "error text from `message`"
    );
}

#[tokio::test(start_paused = true)]
async fn calendar_read_write_and_batches_over_200_are_split() {
    let t = SimClient::start(SimConfig::default(), |_| {}).await;
    let id = t
        .sim
        .add_listing(ACCOUNT, fields(json!({"price": 120})))
        .await
        .unwrap();
    let listing = ListingId::parse(id.to_string()).unwrap();

    let days = t
        .client
        .get_calendar(&t.account, &listing, d("2026-07-01"), d("2026-07-10"))
        .await
        .unwrap();
    assert_eq!(days.len(), 10);
    let price = |p: &Option<String>| p.as_deref().and_then(|p| p.parse::<f64>().ok());
    assert!(
        days.iter()
            .all(|day| day.is_available == Some(true) && price(&day.price) == Some(120.0))
    );

    let mut block = CalendarInterval::new(d("2026-07-03"), d("2026-07-05"));
    block.is_available = Some(false);
    let affected = t
        .client
        .update_calendar(&t.account, &listing, &block)
        .await
        .unwrap();
    assert_eq!(affected.len(), 3, "endDate is inclusive");

    // 450 single-day price changes: three calls of at most 200.
    let start = d("2026-08-01");
    let intervals: Vec<CalendarInterval> = (0..450)
        .map(|n| {
            let day = start + chrono::Days::new(n);
            CalendarInterval::new(day, day).with_price_minor(10_000 + n as i64, 2)
        })
        .collect();
    let before = t.sim.requests(Some(ACCOUNT)).await.len();
    assert_eq!(
        t.client
            .update_calendar_intervals(&t.account, &listing, &intervals)
            .await
            .unwrap(),
        3
    );
    assert_eq!(t.sim.requests(Some(ACCOUNT)).await.len() - before, 3);
    let state = t
        .sim
        .state
        .lock()
        .await
        .calendar(id, start, start + chrono::Days::new(449));
    assert_eq!(state.len(), 450);
    assert!((state[449].1.price - 104.49).abs() < 1e-9);
    assert!(
        !t.sim
            .state
            .lock()
            .await
            .day(ACCOUNT, id, d("2026-07-04"))
            .unwrap()
            .is_available
    );

    // The specification's names: per-day changes compressed into ranges.
    let availability: Vec<AvailabilityUpdate> = (1..=28)
        .map(|n| AvailabilityUpdate {
            date: d("2026-09-01") + chrono::Days::new(n - 1),
            available: n > 14,
            min_stay: Some(2),
            max_stay: None,
        })
        .collect();
    let before = t.sim.requests(Some(ACCOUNT)).await.len();
    assert_eq!(
        t.client
            .update_availability(&t.account, &listing, &availability)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        t.sim.requests(Some(ACCOUNT)).await.len() - before,
        1,
        "28 days, two ranges, one call"
    );
    let usd = Currency::parse("USD").unwrap();
    let prices: Vec<PricingUpdate> = (0..10)
        .map(|n| PricingUpdate {
            date: d("2026-10-01") + chrono::Days::new(n),
            price_minor: 9_999,
            currency: usd,
        })
        .collect();
    assert_eq!(
        t.client
            .update_pricing(&t.account, &listing, &prices)
            .await
            .unwrap(),
        1
    );
    assert!(
        (t.sim
            .state
            .lock()
            .await
            .day(ACCOUNT, id, d("2026-10-05"))
            .unwrap()
            .price
            - 99.99)
            .abs()
            < 1e-9
    );
}

#[tokio::test(start_paused = true)]
async fn the_simulator_refuses_more_than_200_intervals() {
    let t = SimClient::start(SimConfig::default(), |_| {}).await;
    let id = t.sim.add_listing(ACCOUNT, Map::new()).await.unwrap();
    let token = reqwest::Client::new()
        .post(format!("{}/accessTokens", t.sim.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ACCOUNT),
            ("client_secret", connector_tests::sim::SECRET),
            ("scope", "general"),
        ])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::advance(std::time::Duration::from_secs(2)).await;
    let body: Vec<Value> = (0..201)
        .map(|_| json!({"startDate": "2026-01-01", "endDate": "2026-01-01", "isAvailable": 0}))
        .collect();
    let response = reqwest::Client::new()
        .put(format!(
            "{}/listings/{id}/calendarIntervals",
            t.sim.base_url()
        ))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "fail");
    assert!(
        t.sim
            .state
            .lock()
            .await
            .day(ACCOUNT, id, d("2026-01-01"))
            .unwrap()
            .is_available,
        "nothing applied"
    );
}

#[tokio::test(start_paused = true)]
async fn reservations_page_with_after_id_in_the_documented_order() {
    let t = SimClient::start(SimConfig::default(), |_| {}).await;
    let listing = t.sim.add_listing(ACCOUNT, Map::new()).await.unwrap();
    let mut ids = Vec::new();
    for n in 0..250 {
        let fields = fields(
            json!({"arrivalDate": "2026-05-01", "departureDate": "2026-05-03", "guestName": format!("Guest {n}")}),
        );
        ids.push(
            t.sim
                .create_reservation(ACCOUNT, listing, fields)
                .await
                .unwrap(),
        );
    }
    t.client
        .list_listings(&t.account, &ListingsQuery::default())
        .await
        .unwrap(); // the token
    let before = t.sim.requests(Some(ACCOUNT)).await.len();
    let all = t
        .client
        .all_reservations(&t.account, &ReservationsQuery::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 250);
    let mut seen: Vec<u64> = all.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "updatedOn DESC, id DESC"
    );
    seen.sort_unstable();
    ids.sort_unstable();
    assert_eq!(seen, ids, "every reservation once");
    assert_eq!(
        t.sim.requests(Some(ACCOUNT)).await.len() - before,
        4,
        "three pages of 100, then an empty one"
    );
    for record in &all[..3] {
        mapping::map_reservation(
            &t.account,
            mapping::WebhookEvent::ReservationUpdated,
            record,
            None,
            domain::Origin::ApiRead,
        )
        .unwrap();
    }

    let one = t
        .client
        .get_reservation(
            &t.account,
            &ReservationId::parse(ids[0].to_string()).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(one["id"], json!(ids[0]));
    let filtered = t
        .client
        .list_reservations(
            &t.account,
            &ReservationsQuery {
                listing_id: Some(ListingId::parse("1").unwrap()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(filtered.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_locked_reservation_is_a_business_rule_error_and_is_not_retried() {
    let t = SimClient::start(SimConfig::default(), |_| {}).await;
    let listing = t.sim.add_listing(ACCOUNT, Map::new()).await.unwrap();
    let airbnb = t
        .sim
        .create_reservation(ACCOUNT, listing, fields(json!({"channelId": 2018})))
        .await
        .unwrap();
    let direct = t
        .sim
        .create_reservation(ACCOUNT, listing, fields(json!({"channelId": 2000})))
        .await
        .unwrap();

    let puts = || async {
        t.sim
            .requests(Some(ACCOUNT))
            .await
            .iter()
            .filter(|r| r.method == "PUT")
            .count()
    };
    let error = t
        .client
        .update_reservation(
            &t.account,
            &ReservationId::parse(airbnb.to_string()).unwrap(),
            &fields(json!({"guestNote": "late"})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind, error.status, error.retryable),
        (ErrorKind::BusinessRule, Some(403), false)
    );
    assert_eq!(puts().await, 1, "not retried");
    assert_eq!(
        t.sim.tokens_issued().await,
        1,
        "and the token was not refreshed for it"
    );

    let changed = t
        .client
        .update_reservation(
            &t.account,
            &ReservationId::parse(direct.to_string()).unwrap(),
            &fields(json!({"guestNote": "late"})),
        )
        .await
        .unwrap();
    assert_eq!(changed["guestNote"], "late");
}

#[tokio::test(start_paused = true)]
async fn unified_webhooks_create_list_update_delete() {
    let t = SimClient::start(SimConfig::default(), |_| {}).await;
    let request = UnifiedWebhookRequest {
        is_enabled: true,
        url: "https://connector.example.org/webhooks/hostaway".into(),
        login: Some("hostaway".into()),
        password: Some(SecretString::from("webhook-password".to_owned())),
        alerting_email_address: None,
    };
    let created = t
        .client
        .create_unified_webhook(&t.account, &request)
        .await
        .unwrap();
    assert!(created.is_enabled && created.has_password);
    let listed = t.client.list_unified_webhooks(&t.account).await.unwrap();
    assert_eq!(listed.len(), 1);
    let disabled = t
        .client
        .update_unified_webhook(
            &t.account,
            &created.id,
            &UnifiedWebhookRequest {
                is_enabled: false,
                ..request
            },
        )
        .await
        .unwrap();
    assert!(!disabled.is_enabled);
    t.client
        .delete_unified_webhook(&t.account, &created.id)
        .await
        .unwrap();
    assert!(
        t.client
            .list_unified_webhooks(&t.account)
            .await
            .unwrap()
            .is_empty()
    );
    let bad_id = t
        .client
        .delete_unified_webhook(&t.account, "../listings")
        .await
        .unwrap_err();
    assert_eq!(bad_id.kind, ErrorKind::Validation);
}

#[tokio::test(start_paused = true)]
async fn tokens_are_fetched_once_activated_and_never_leak() {
    let logs = captured_logs();
    let t = SimClient::start(
        SimConfig {
            wrapped_token_response: true,
            ..SimConfig::default()
        },
        |_| {},
    )
    .await;
    for _ in 0..5 {
        t.client
            .list_listings(&t.account, &ListingsQuery::default())
            .await
            .unwrap();
    }
    assert_eq!(
        t.sim.tokens_issued().await,
        1,
        "one token, cached (wrapped response read)"
    );
    let requests = t.sim.requests(Some(ACCOUNT)).await;
    assert!(
        requests.iter().all(|r| r.status != 403),
        "never used before its activation second"
    );
    let debug = format!("{:?}", t.client);
    assert!(!debug.contains(connector_tests::sim::SECRET));
    assert!(!debug.contains("sim."), "the token is not in Debug output");
    t.sim.expire_tokens().await;
    t.client
        .list_listings(&t.account, &ListingsQuery::default())
        .await
        .unwrap();
    let tokens: Vec<String> = t.sim.state.lock().await.tokens.keys().cloned().collect();
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("access token fetched"),
        "the client logs at debug level"
    );
    assert!(
        !logs.contains(connector_tests::sim::SECRET),
        "the client secret reached the logs"
    );
    for token in tokens {
        assert!(!logs.contains(&token), "a token reached the logs");
    }
}

#[tokio::test(start_paused = true)]
async fn a_wrong_client_secret_is_an_auth_error_without_retries() {
    let t = SimClient::start(SimConfig::default(), |_| {}).await;
    t.sim.add_account(ACCOUNT, "a-different-secret").await;
    let error = t
        .client
        .list_listings(&t.account, &ListingsQuery::default())
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind, error.status, error.retryable),
        (ErrorKind::Auth, Some(401), false)
    );
    assert_eq!(
        error.message, "Client authentication failed",
        "the OAuth error_description"
    );
    assert_eq!(t.sim.requests(None).await.len(), 1);
    assert!(!error.to_string().contains(connector_tests::sim::SECRET));
}
