//! Events besides reservations: guest messages are passed on to TVL without
//! touching bookings; the specification's listing and calendar events name a
//! listing to re-read; the specification's reservation shape and
//! `reservation.cancelled` work through the whole path with HMAC.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use connector_tests::fixtures::{own, read_json};
use connector_tests::{DEADLINE, TestEnv, eventually};
use domain::AccountId;
use events::Message as _;
use reqwest::StatusCode;
use secrecy::SecretString;
use store::accounts::NewAccount;

const ACCOUNT: &str = "70001";
const SECRET: &str = "spec-hmac-secret";

async fn env_with_hmac_account() -> TestEnv {
    let env = TestEnv::new().await;
    env.add_account(NewAccount {
        account: AccountId::parse(ACCOUNT).unwrap(),
        display_name: Some("Specification-style sender".into()),
        api_key: None,
        webhook_login: Some("hostaway".into()),
        webhook_password: Some(SecretString::from("pw".to_owned())),
        webhook_secret: Some(SecretString::from(SECRET.to_owned())),
    })
    .await;
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_message_becomes_an_event_and_touches_no_booking() {
    let env = env_with_hmac_account().await;
    env.link(ACCOUNT, "300101").await;
    let gateway = env.start_gateway().await;
    let ingestor = env.start_ingestor();

    let message = read_json(&own().join("webhooks/message_received.json"));
    assert_eq!(
        gateway.post_basic("hostaway", "pw", &message).await.0,
        StatusCode::OK
    );
    let events = eventually("the guest message event", DEADLINE, || async {
        let prefix = format!("{}.events.guest_message.received", env.topology.namespace());
        let found: Vec<_> = env
            .stream_messages(&env.topology.events_stream())
            .await
            .into_iter()
            .filter(|(s, _)| *s == prefix)
            .collect();
        (!found.is_empty()).then_some(found)
    })
    .await;
    let event = events::pb::GuestMessageReceived::decode(events[0].1.clone()).unwrap();
    assert_eq!(event.message_id, "800000001");
    assert_eq!(event.hostaway_reservation_id, "50000001");
    assert_eq!(event.body, "Could we check in an hour early?");
    assert!(event.is_incoming);
    assert!(
        env.bookings().await.is_empty(),
        "a message does not make a booking"
    );
    let outcome: String = sqlx::query_scalar("SELECT outcome FROM webhook_log")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(outcome, "forwarded");
    ingestor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_repeated_with_other_incidental_fields_is_one_event() {
    let env = env_with_hmac_account().await;
    let gateway = env.start_gateway().await;
    let ingestor = env.start_ingestor();
    let message = read_json(&own().join("webhooks/message_received.json"));
    let mut seen = message.clone();
    seen["data"]["isSeen"] = serde_json::json!(1);
    seen["data"]["status"] = serde_json::json!("read");
    for body in [&message, &seen, &message] {
        assert_eq!(
            gateway.post_basic("hostaway", "pw", body).await.0,
            StatusCode::OK
        );
    }
    env.count_reaches(
        "both deliveries processed (the third is a repeat of the first)",
        "SELECT count(*) FROM webhook_log WHERE status = 'processed'",
        2,
    )
    .await;
    env.outbox_drained().await;
    let subject = format!("{}.events.guest_message.received", env.topology.namespace());
    let published: Vec<_> = env
        .stream_messages(&env.topology.events_stream())
        .await
        .into_iter()
        .filter(|(s, _)| *s == subject)
        .collect();
    assert_eq!(published.len(), 1, "TVL hears of the message once");
    let event = events::pb::GuestMessageReceived::decode(published[0].1.clone()).unwrap();
    // Deliveries are handled concurrently: which one forwards is a race.
    let outcomes: Vec<String> =
        sqlx::query_scalar("SELECT outcome FROM webhook_log ORDER BY outcome")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(outcomes, vec!["duplicate", "forwarded"]);
    // The id is the message's, whichever delivery carried it.
    let message = domain::GuestMessage {
        account: AccountId::parse(ACCOUNT).unwrap(),
        message_id: event.message_id.clone(),
        conversation_id: None,
        reservation: None,
        listing: None,
        channel_id: None,
        body: String::new(),
        is_incoming: true,
        sent_at: None,
    };
    assert_eq!(
        event.event_id,
        booking_ingestor::event_builders::guest_message_event_id(&message).to_string()
    );
    ingestor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_specification_shape_signed_with_hmac_works_end_to_end() {
    let env = env_with_hmac_account().await;
    let unit = env.link(ACCOUNT, "300103").await;
    let gateway = env.start_gateway().await;
    let ingestor = env.start_ingestor();
    let now = chrono::Utc::now().timestamp();

    for file in [
        "spec_reservation_created.json",
        "spec_listing_updated.json",
        "spec_calendar_updated.json",
    ] {
        let body = std::fs::read(own().join("webhooks").join(file)).unwrap();
        let (status, answer) = gateway
            .post_hmac("/webhooks/hostaway", SECRET, now, &body)
            .await;
        assert_eq!(status, StatusCode::OK, "{file}: {answer}");
    }
    let booking = eventually("the specification-shaped booking", DEADLINE, || async {
        env.bookings().await.into_iter().next()
    })
    .await;
    assert_eq!(booking.external_id, "hostaway_res_456");
    assert_eq!(
        booking.status, "new",
        "the specification's `confirmed` is Hostaway's `new`"
    );
    assert_eq!(booking.unit_id, unit.as_uuid());
    assert_eq!(
        (booking.arrival_date.to_string(), booking.nights),
        ("2026-07-15".to_owned(), 5)
    );
    assert_eq!(booking.total_amount_minor, Some(150_000));

    let body = std::fs::read(own().join("webhooks/spec_reservation_cancelled.json")).unwrap();
    let path = format!("/webhooks/hostaway/{ACCOUNT}");
    assert_eq!(
        gateway.post_hmac(&path, SECRET, now, &body).await.0,
        StatusCode::OK
    );
    eventually("the specification's cancellation", DEADLINE, || async {
        env.bookings()
            .await
            .into_iter()
            .find(|b| b.status == "cancelled")
    })
    .await;
    assert!(env.blocks().await.is_empty());

    let listing_events = eventually("two listing-changed events", DEADLINE, || async {
        let prefix = format!("{}.events.listing.changed", env.topology.namespace());
        let found: Vec<_> = env
            .stream_messages(&env.topology.events_stream())
            .await
            .into_iter()
            .filter(|(s, _)| *s == prefix)
            .map(|(_, p)| events::pb::ListingChanged::decode(p).unwrap())
            .collect();
        (found.len() == 2).then_some(found)
    })
    .await;
    assert!(
        listing_events
            .iter()
            .all(|e| e.hostaway_listing_id == "300103" && e.unit_id == unit.to_string())
    );
    let kinds: Vec<i32> = listing_events.iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&(events::pb::ListingChangeKind::Details as i32)));
    assert!(kinds.contains(&(events::pb::ListingChangeKind::Calendar as i32)));
    ingestor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_is_picked_up_live_and_both_work_during_the_rotation() {
    let env = env_with_hmac_account().await;
    let gateway = env.start_gateway().await;
    let body = std::fs::read(own().join("webhooks/spec_listing_updated.json")).unwrap();
    let now = chrono::Utc::now().timestamp();
    let path = format!("/webhooks/hostaway/{ACCOUNT}");

    store::accounts::rotate_credentials(
        &env.pool,
        &env.cipher,
        &AccountId::parse(ACCOUNT).unwrap(),
        store::accounts::Rotation {
            webhook_password: None,
            webhook_secret: Some(SecretString::from("new-secret".to_owned())),
            api_key: None,
            grace: chrono::Duration::hours(1),
        },
    )
    .await
    .unwrap();
    eventually("the new secret to be accepted", DEADLINE, || async {
        (gateway.post_hmac(&path, "new-secret", now, &body).await.0 == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(
        gateway.post_hmac(&path, SECRET, now, &body).await.0,
        StatusCode::OK,
        "the old one still works"
    );

    store::accounts::finish_rotation(&env.pool, &AccountId::parse(ACCOUNT).unwrap())
        .await
        .unwrap();
    eventually("the old secret to be refused", DEADLINE, || async {
        (gateway.post_hmac(&path, SECRET, now, &body).await.0 == StatusCode::UNAUTHORIZED)
            .then_some(())
    })
    .await;
    assert_eq!(
        gateway.post_hmac(&path, "new-secret", now, &body).await.0,
        StatusCode::OK
    );
}
