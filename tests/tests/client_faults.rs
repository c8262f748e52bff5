//! The client under Hostaway's bad days, on a paused clock where the behaviour
//! is about time (limits, backoff, the circuit's reset, token expiry).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::NaiveDate;
use connector_tests::sim::{ACCOUNT, SimClient};
use domain::ListingId;
use hostaway_client::breaker::{BreakerConfig, CircuitState};
use hostaway_client::{ErrorKind, ListingsQuery};
use hostaway_sim::{Faults, SimConfig};
use mapping::api::CalendarInterval;
use serde_json::Map;

async fn listing(t: &SimClient) -> ListingId {
    let id = t.sim.add_listing(ACCOUNT, Map::new()).await.unwrap();
    ListingId::parse(id.to_string()).unwrap()
}

fn day(n: u64) -> CalendarInterval {
    let date = NaiveDate::from_ymd_opt(2026, 7, 1).unwrap() + chrono::Days::new(n);
    let mut interval = CalendarInterval::new(date, date);
    interval.is_available = Some(n.is_multiple_of(2));
    interval
}

/// The simulator with its fault dice seeded, and a client on it.
async fn seeded(seed: u64) -> SimClient {
    SimClient::start(
        SimConfig {
            seed,
            ..SimConfig::default()
        },
        |_| {},
    )
    .await
}

#[tokio::test(start_paused = true)]
async fn thirty_percent_5xx_still_completes() {
    let t = seeded(7).await;
    let listing = listing(&t).await;
    t.sim.set_faults(Faults::errors(0.3));
    for n in 0..30 {
        t.client
            .update_calendar(&t.account, &listing, &day(n))
            .await
            .unwrap();
    }
    let failures = t
        .sim
        .requests(None)
        .await
        .iter()
        .filter(|r| r.status >= 500)
        .count();
    assert!(failures >= 5, "the faults were real: {failures} 5xx");
    assert!(t.metric("hostaway_api_errors_total", Some(("type", "server_error"))) >= 5.0);
    let sim_state = t.sim.state.lock().await;
    for n in 0..30 {
        let date = NaiveDate::from_ymd_opt(2026, 7, 1).unwrap() + chrono::Days::new(n);
        let id: u64 = listing.as_str().parse().unwrap();
        assert_eq!(
            sim_state.day(ACCOUNT, id, date).unwrap().is_available,
            n.is_multiple_of(2),
            "day {n} applied"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn dropped_connections_are_retried() {
    let t = seeded(11).await;
    let listing = listing(&t).await;
    t.sim.set_faults(Faults {
        drop_rate: 0.3,
        ..Faults::default()
    });
    for n in 0..15 {
        t.client
            .update_calendar(&t.account, &listing, &day(n))
            .await
            .unwrap();
    }
    assert!(
        t.metric(
            "hostaway_api_requests_total",
            Some(("status_code", "network"))
        ) >= 1.0
    );
}

#[tokio::test(start_paused = true)]
async fn a_429_storm_never_pushes_requests_above_the_limits() {
    let t = SimClient::start(SimConfig::default(), |_| {}).await;
    let listing = listing(&t).await;
    t.client
        .list_listings(&t.account, &ListingsQuery::default())
        .await
        .unwrap();
    t.sim.set_faults(Faults::storm(Duration::from_secs(25)));
    let started = tokio::time::Instant::now();
    let work: Vec<_> = (0..40)
        .map(|n| {
            let (client, account, listing) = (t.client.clone(), t.account.clone(), listing.clone());
            tokio::spawn(async move { client.update_calendar(&account, &listing, &day(n)).await })
        })
        .collect();
    for task in work {
        task.await
            .unwrap()
            .expect("completes once the storm passes");
    }
    assert!(
        started.elapsed() >= Duration::from_secs(25),
        "it waited the storm out"
    );
    let during_storm = t
        .sim
        .requests(Some(ACCOUNT))
        .await
        .iter()
        .filter(|r| r.status == 429)
        .count();
    assert!(during_storm > 0);
    assert!(
        t.sim.max_requests_in_window(Some(ACCOUNT)).await <= 20,
        "per-account limit held"
    );
    assert!(
        t.sim.max_requests_in_window(None).await <= 15,
        "per-IP limit held"
    );
}

#[tokio::test(start_paused = true)]
async fn at_full_speed_the_limits_hold_and_hostaway_never_answers_429() {
    let t = SimClient::start(SimConfig::default(), |_| {}).await;
    let listing = listing(&t).await;
    let work: Vec<_> = (0..60)
        .map(|n| {
            let (client, account, listing) = (t.client.clone(), t.account.clone(), listing.clone());
            tokio::spawn(async move { client.update_calendar(&account, &listing, &day(n)).await })
        })
        .collect();
    for task in work {
        task.await.unwrap().unwrap();
    }
    let requests = t.sim.requests(None).await;
    assert_eq!(
        requests.iter().filter(|r| r.status == 429).count(),
        0,
        "no 429 at all"
    );
    assert!(t.sim.max_requests_in_window(None).await <= 15);
    let span = requests
        .last()
        .unwrap()
        .at
        .duration_since(requests.first().unwrap().at);
    // 61 requests at 15 per 10 s cannot take less than 40 s; the limiter should
    // not take much more either.
    assert!(
        span >= Duration::from_secs(40) && span <= Duration::from_secs(45),
        "{span:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_open_circuit_fails_fast_then_recovers_through_half_open() {
    let t = SimClient::start(SimConfig::default(), |c| {
        c.breaker = BreakerConfig {
            failure_threshold: 10,
            ..BreakerConfig::default()
        };
    })
    .await;
    let listing = listing(&t).await;
    t.client
        .list_listings(&t.account, &ListingsQuery::default())
        .await
        .unwrap();
    t.sim.set_faults(Faults::errors(1.0));
    // Two requests of five attempts each: ten failures open the circuit.
    for n in 0..2 {
        let error = t
            .client
            .update_calendar(&t.account, &listing, &day(n))
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Server);
    }
    assert_eq!(t.client.circuit_state(&t.account), CircuitState::Open);
    assert_eq!(
        t.metric("hostaway_circuit_breaker_state", Some(("state", "open"))),
        1.0
    );

    let sent = t.sim.requests(None).await.len();
    let error = t
        .client
        .update_calendar(&t.account, &listing, &day(3))
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind, error.retryable),
        (ErrorKind::CircuitOpen, false)
    );
    assert!(error.retry_after.is_some());
    assert_eq!(
        t.sim.requests(None).await.len(),
        sent,
        "an open circuit sends nothing"
    );

    // Hostaway recovers; after the reset timeout the circuit half-opens and
    // three successes close it.
    t.sim.set_faults(Faults::default());
    tokio::time::advance(Duration::from_secs(61)).await;
    for n in 4..7 {
        t.client
            .update_calendar(&t.account, &listing, &day(n))
            .await
            .unwrap();
        if n == 4 {
            assert_eq!(t.client.circuit_state(&t.account), CircuitState::HalfOpen);
        }
    }
    assert_eq!(t.client.circuit_state(&t.account), CircuitState::Closed);
    assert_eq!(
        t.metric("hostaway_circuit_breaker_state", Some(("state", "closed"))),
        1.0
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_expiring_mid_run_is_refreshed_exactly_once() {
    let t = SimClient::start(SimConfig::default(), |_| {}).await;
    let listing = listing(&t).await;
    t.client
        .list_listings(&t.account, &ListingsQuery::default())
        .await
        .unwrap();
    assert_eq!(t.sim.tokens_issued().await, 1);
    t.sim.expire_tokens().await;
    // Many requests meet the stale token at once.
    let work: Vec<_> = (0..8)
        .map(|n| {
            let (client, account, listing) = (t.client.clone(), t.account.clone(), listing.clone());
            tokio::spawn(async move { client.update_calendar(&account, &listing, &day(n)).await })
        })
        .collect();
    for task in work {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        t.sim.tokens_issued().await,
        2,
        "one refresh, however many requests saw the 403"
    );
    assert_eq!(t.metric("hostaway_api_token_fetches_total", None), 2.0);
}

#[tokio::test(start_paused = true)]
async fn a_token_refused_even_after_a_refresh_is_an_auth_error() {
    let t = SimClient::start(
        SimConfig {
            token_activation: Duration::from_secs(3600),
            ..SimConfig::default()
        },
        |c| {
            // A client that does not wait long enough for activation.
            c.token_activation_delay = Duration::from_secs(1);
        },
    )
    .await;
    let error = t
        .client
        .list_listings(&t.account, &ListingsQuery::default())
        .await
        .unwrap_err();
    assert_eq!((error.kind, error.retryable), (ErrorKind::Auth, false));
    assert_eq!(t.sim.tokens_issued().await, 2, "refreshed once, not more");
}

/// Timeouts need real time: the request timeout runs on the wall clock.
#[tokio::test]
async fn a_timeout_is_a_retryable_network_error() {
    let t = SimClient::start(
        SimConfig {
            token_activation: Duration::ZERO,
            ..SimConfig::default()
        },
        |c| {
            c.timeout = Some(Duration::from_millis(200));
            // The limits wait on the wall clock here: lift them to time the timeouts alone.
            let open = hostaway_client::RateLimit {
                limit: 1000,
                window: Duration::from_secs(1),
                burst: 1000,
            };
            (c.account_limit, c.ip_limit) = (open, open);
            c.token_activation_delay = Duration::ZERO;
            c.retry.max_attempts = 2;
            c.retry.base = Duration::from_millis(10);
        },
    )
    .await;
    let listing = listing(&t).await;
    t.client
        .list_listings(&t.account, &ListingsQuery::default())
        .await
        .unwrap();
    t.sim.set_faults(Faults {
        timeout_rate: 1.0,
        timeout_ms: 2_000,
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    let error = t
        .client
        .update_calendar(&t.account, &listing, &day(1))
        .await
        .unwrap_err();
    assert_eq!((error.kind, error.retryable), (ErrorKind::Network, true));
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "gave up at the client timeout, twice"
    );
}

#[tokio::test(start_paused = true)]
async fn a_401_drops_the_token_so_the_next_call_mints_one_with_the_current_key() {
    let t = seeded(3).await;
    let listing = listing(&t).await;
    t.client.get_listing(&t.account, &listing).await.unwrap();
    assert_eq!(t.sim.tokens_issued().await, 1);

    t.sim.revoke_tokens(connector_tests::sim::ACCOUNT).await;
    let refused = t
        .client
        .get_listing(&t.account, &listing)
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Auth);
    assert!(!refused.retryable, "a 401 is final for the call");
    assert_eq!(
        t.metric(
            "hostaway_api_token_drops_total",
            Some(("reason", "unauthorized"))
        ),
        1.0
    );

    t.client.get_listing(&t.account, &listing).await.unwrap();
    assert_eq!(
        t.sim.tokens_issued().await,
        2,
        "the next call minted a new token instead of reusing the refused one"
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_is_kept_for_the_same_key_and_dropped_for_another() {
    let t = seeded(4).await;
    let listing = listing(&t).await;
    t.client.get_listing(&t.account, &listing).await.unwrap();
    let same = secrecy::SecretString::from(connector_tests::sim::SECRET.to_owned());
    assert!(
        !t.client
            .forget_token_unless_minted_with(&t.account, Some(&same))
            .await
    );
    t.client.get_listing(&t.account, &listing).await.unwrap();
    assert_eq!(t.sim.tokens_issued().await, 1, "kept");
    let other = secrecy::SecretString::from("another-key".to_owned());
    assert!(
        t.client
            .forget_token_unless_minted_with(&t.account, Some(&other))
            .await
    );
    assert!(
        t.client
            .forget_token_unless_minted_with(&t.account, None)
            .await
            .eq(&false),
        "nothing left to drop"
    );
}
