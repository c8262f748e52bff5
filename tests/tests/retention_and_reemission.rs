//! What is kept, and for how long: booking events can be re-emitted from the
//! bookings table for a consumer that was down longer than the events stream
//! keeps them; dead letters holding guest data are purged a while after they
//! are resolved, and never before.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use connector_tests::payloads::Reservation;
use connector_tests::{DEADLINE, TestEnv, eventually};
use domain::AccountId;
use events::Message as _;
use reqwest::StatusCode;

const ACCOUNT: &str = "70001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booking_events_are_reemitted_from_the_bookings_table() {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    env.link(ACCOUNT, "300101").await;
    let gateway = env.start_gateway().await;
    let ingestor = env.start_ingestor();
    for (id, status) in [
        (8_000_001, "new"),
        (8_000_002, "new"),
        (8_000_003, "cancelled"),
    ] {
        let body = Reservation::new(id, 300_101)
            .status(status)
            .webhook(ACCOUNT, "reservation.created");
        assert_eq!(
            gateway.post_basic("hostaway", "pw", &body).await.0,
            StatusCode::OK
        );
    }
    env.count_reaches("three bookings", "SELECT count(*) FROM bookings", 3)
        .await;
    env.outbox_drained().await;
    ingestor.stop().await;

    // The consumer was away longer than the stream keeps events.
    env.js
        .get_stream(env.topology.events_stream())
        .await
        .unwrap()
        .purge()
        .await
        .unwrap();
    let publisher = booking_ingestor::outbox::EventPublisher::new(
        env.js.clone(),
        env.topology.clone(),
        booking_ingestor::metrics::IngestorMetrics::register(&service_kit::metrics::Metrics::new())
            .unwrap(),
    );
    let reemit = |since: chrono::DateTime<chrono::Utc>, account: Option<&str>| {
        let (pool, publisher) = (env.pool.clone(), publisher.clone());
        let account = account.map(|a| AccountId::parse(a).unwrap());
        async move {
            booking_ingestor::reemit::reemit(&pool, &publisher, since, account.as_ref(), |_| {})
                .await
                .unwrap()
        }
    };
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let done = reemit(hour_ago, None).await;
    assert_eq!((done.published, done.failed), (3, 0));

    let events = env.booking_events().await;
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.replayed && e.webhook_id.is_empty()));
    let revisions: std::collections::HashMap<String, i64> =
        sqlx::query_as("SELECT external_id, revision FROM bookings")
            .fetch_all(&env.pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    for event in &events {
        let booking = event.booking.as_ref().unwrap();
        assert_eq!(revisions[&booking.external_id], booking.revision);
    }
    let cancelled = env
        .stream_messages(&env.topology.events_stream())
        .await
        .into_iter()
        .filter(|(subject, _)| subject.ends_with("booking.cancelled"))
        .map(|(_, payload)| events::pb::BookingEvent::decode(payload).unwrap())
        .collect::<Vec<_>>();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(
        cancelled[0].booking.as_ref().unwrap().external_id,
        "8000003"
    );

    // Replaying again publishes each state once (the ids are the states').
    reemit(hour_ago, None).await;
    assert_eq!(env.booking_events().await.len(), 3);
    // Nothing changed since a minute ahead, nor for another account.
    let later = reemit(chrono::Utc::now() + chrono::Duration::minutes(1), None).await;
    assert_eq!(later.published, 0);
    assert_eq!(reemit(hour_ago, Some("70002")).await.published, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolved_dead_letters_are_purged_after_their_retention_and_open_ones_kept() {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    let gateway = env.start_gateway().await;
    let ingestor = env.start_ingestor_with(|s| {
        s.park_schedule = vec![Duration::from_millis(50)];
        s.retention.resolved_dead_letters = Duration::from_secs(1);
        s.retention.interval = Duration::from_millis(200);
    });
    let unlinked = Reservation::new(8_100_001, 777_100).webhook(ACCOUNT, "reservation.created");
    let unknown = serde_json::json!({"object": "review", "event": "review.created", "accountId": 70001, "data": {"id": 1}});
    for body in [&unlinked, &unknown] {
        assert_eq!(
            gateway.post_basic("hostaway", "pw", body).await.0,
            StatusCode::OK
        );
    }
    env.count_reaches(
        "two dead letters",
        "SELECT count(*) FROM dead_letter_queue",
        2,
    )
    .await;

    env.link(ACCOUNT, "777100").await;
    eventually("the booking once linked", DEADLINE, || async {
        env.bookings().await.into_iter().next()
    })
    .await;
    env.count_reaches(
        "the resolved letter purged after its retention",
        "SELECT count(*) FROM dead_letter_queue WHERE error->>'kind' = 'listing_not_linked'",
        0,
    )
    .await;
    assert_eq!(
        env.count("SELECT count(*) FROM dead_letter_queue WHERE resolved_at IS NULL")
            .await,
        1,
        "the open letter stays until someone deals with it"
    );
    ingestor.stop().await;
}
