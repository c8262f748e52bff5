//! The simulator plays Hostaway end to end: reservations created, changed and
//! cancelled on its side reach TVL through the gateway and the ingestor, with
//! deliveries duplicated and reordered, and retried the way Hostaway retries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use connector_tests::services::{IsolatedIngestor, RunningGateway};
use connector_tests::{TestEnv, eventually};
use hostaway_sim::{DeliveryOptions, Sim, SimConfig, WebhookAuth, WebhookTarget};
use serde_json::{Map, Value, json};

const ACCOUNT: &str = "70001";

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("an object"),
    }
}

/// TVL's gateway and ingestor, the account with Basic webhook credentials
/// and its listing linked, and a simulator holding that listing.
async fn basic_auth_world() -> (TestEnv, RunningGateway, IsolatedIngestor, Sim) {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    env.link(ACCOUNT, "300101").await;
    let gateway = env.start_gateway().await;
    let ingestor = env.start_ingestor();
    let sim = sim_with_listing().await;
    (env, gateway, ingestor, sim)
}

/// Where the simulator delivers: the gateway, with the account's Basic login.
fn basic_target(gateway: &RunningGateway) -> WebhookTarget {
    WebhookTarget {
        url: gateway.url("/webhooks/hostaway"),
        auth: WebhookAuth::Basic {
            login: "hostaway".into(),
            password: "pw".into(),
        },
    }
}

async fn sim_with_listing() -> Sim {
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), SimConfig::default())
        .await
        .unwrap();
    sim.add_account(ACCOUNT, "api-secret").await;
    sim.add_listing(ACCOUNT, fields(json!({"id": 300101})))
        .await
        .unwrap();
    sim
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_day_on_hostaway_ends_with_tvl_agreeing() {
    let (env, gateway, ingestor, sim) = basic_auth_world().await;
    sim.set_webhook_target(Some((
        basic_target(&gateway),
        DeliveryOptions {
            duplicate_rate: 0.5,
            reorder_window: Duration::from_millis(300),
            first_retry: Duration::from_millis(100),
            ..DeliveryOptions::default()
        },
    )))
    .await;

    let mut ids = Vec::new();
    for n in 0..12u32 {
        let arrival = format!("2026-08-{:02}", 1 + n * 2);
        let departure = format!("2026-08-{:02}", 2 + n * 2);
        let id = sim
            .create_reservation(
                ACCOUNT,
                300_101,
                fields(json!({"arrivalDate": arrival, "departureDate": departure})),
            )
            .await
            .unwrap();
        ids.push(id);
    }
    for id in &ids[..6] {
        sim.modify_reservation(
            ACCOUNT,
            *id,
            fields(json!({"numberOfGuests": 4, "status": "modified"})),
        )
        .await;
    }
    for id in &ids[..3] {
        sim.cancel_reservation(ACCOUNT, *id).await;
    }

    // TVL ends where Hostaway is, whatever the delivery order.
    let expected: HashMap<String, String> = {
        let state = sim.state.lock().await;
        state.accounts[ACCOUNT]
            .reservations
            .values()
            .map(|r| {
                (
                    r["id"].to_string(),
                    r["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    eventually(
        "TVL to agree with Hostaway",
        Duration::from_secs(60),
        || async {
            let bookings = env.bookings().await;
            let actual: HashMap<String, String> = bookings
                .into_iter()
                .map(|b| (b.external_id, b.status))
                .collect();
            (actual == expected).then_some(())
        },
    )
    .await;
    assert_eq!(
        env.blocks().await.len(),
        9,
        "cancelled stays hold no nights"
    );
    let deliveries = sim.deliveries().await;
    assert!(
        deliveries.len() >= 21,
        "every change delivered (some twice)"
    );
    assert!(deliveries.iter().all(|d| d.status == 200), "{deliveries:?}");
    ingestor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostaway_retries_a_503_and_the_booking_arrives() {
    let (env, gateway, ingestor, sim) = basic_auth_world().await;
    sim.set_webhook_target(Some((
        basic_target(&gateway),
        DeliveryOptions {
            first_retry: Duration::from_millis(500),
            ..DeliveryOptions::default()
        },
    )))
    .await;

    env.nats_proxy.cut();
    eventually(
        "the gateway to see NATS gone",
        Duration::from_secs(30),
        || async { (!gateway.health.is_ready()).then_some(()) },
    )
    .await;
    sim.create_reservation(
        ACCOUNT,
        300_101,
        fields(json!({"arrivalDate": "2026-09-01", "departureDate": "2026-09-04"})),
    )
    .await
    .unwrap();
    eventually(
        "a first delivery refused with 503",
        Duration::from_secs(30),
        || async {
            sim.deliveries()
                .await
                .iter()
                .any(|d| d.status == 503)
                .then_some(())
        },
    )
    .await;
    env.nats_proxy.restore();
    eventually(
        "the booking after Hostaway's retry",
        Duration::from_secs(60),
        || async { (env.bookings().await.len() == 1).then_some(()) },
    )
    .await;
    let deliveries = sim.deliveries().await;
    assert_eq!(deliveries.last().unwrap().status, 200);
    assert!(deliveries.len() >= 2);
    ingestor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_signed_deliveries_are_accepted_and_a_4xx_is_never_retried() {
    let env = TestEnv::new().await;
    env.add_account(store::accounts::NewAccount {
        account: domain::AccountId::parse(ACCOUNT).unwrap(),
        display_name: None,
        api_key: None,
        webhook_login: None,
        webhook_password: None,
        webhook_secret: Some(secrecy::SecretString::from("hmac-secret".to_owned())),
    })
    .await;
    env.link(ACCOUNT, "300101").await;
    let gateway = env.start_gateway().await;
    let ingestor = env.start_ingestor();
    let sim = sim_with_listing().await;
    let target = |secret: &str| WebhookTarget {
        url: gateway.url(&format!("/webhooks/hostaway/{ACCOUNT}")),
        auth: WebhookAuth::Hmac {
            secret: secret.into(),
        },
    };
    let options = DeliveryOptions {
        first_retry: Duration::from_millis(50),
        ..DeliveryOptions::default()
    };
    sim.set_webhook_target(Some((target("hmac-secret"), options.clone())))
        .await;
    sim.create_reservation(
        ACCOUNT,
        300_101,
        fields(json!({"arrivalDate": "2026-09-01", "departureDate": "2026-09-04"})),
    )
    .await
    .unwrap();
    eventually(
        "the HMAC-signed booking",
        Duration::from_secs(30),
        || async { (env.bookings().await.len() == 1).then_some(()) },
    )
    .await;

    // A wrong secret: 401, which Hostaway treats as final.
    sim.set_webhook_target(Some((target("wrong"), options)))
        .await;
    sim.create_reservation(
        ACCOUNT,
        300_101,
        fields(json!({"arrivalDate": "2026-10-01", "departureDate": "2026-10-04"})),
    )
    .await
    .unwrap();
    let refused = eventually("the refused delivery", Duration::from_secs(30), || async {
        let deliveries = sim.deliveries().await;
        deliveries.iter().find(|d| d.status == 401).cloned()
    })
    .await;
    assert!(refused.last, "a 4xx is final for Hostaway");
    assert_eq!(refused.attempt, 1, "and was never retried");
    ingestor.stop().await;
}
