//! Promise 4 and reordering over minutes: a webhook that cannot be applied
//! yet waits, parked, for what it needs (its reservation's complete record,
//! its listing's link) and is applied as soon as that happens; one whose wait
//! outlasts its schedule lands in the dead-letter queue (stream and table)
//! with its error, and is released by itself once its listing is linked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use connector_tests::payloads::Reservation;
use connector_tests::{DEADLINE, TestEnv, eventually};
use reqwest::StatusCode;

const ACCOUNT: &str = "70001";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn parked_retries(env: &TestEnv) -> Option<i32> {
    sqlx::query_scalar("SELECT max(retries) FROM parked_webhooks")
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlinked_listing_waits_parked_is_dead_lettered_after_its_schedule_and_released_when_linked()
 {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    let gateway = env.start_gateway().await;
    let ingestor = env.start_ingestor_with(|s| s.park_schedule = vec![ms(100), ms(100)]);

    let body = Reservation::new(5_000_001, 777_001).webhook(ACCOUNT, "reservation.created");
    assert_eq!(
        gateway.post_basic("hostaway", "pw", &body).await.0,
        StatusCode::OK
    );

    let (attempts, error, data): (i32, serde_json::Value, serde_json::Value) = eventually(
        "the webhook to be dead-lettered after its schedule",
        DEADLINE,
        || async {
            sqlx::query_as("SELECT attempts, error, data FROM dead_letter_queue")
                .fetch_optional(&env.pool)
                .await
                .unwrap()
        },
    )
    .await;
    assert_eq!(attempts, 2, "released once per step of the schedule");
    assert_eq!(error["kind"], "listing_not_linked");
    assert!(error["message"].as_str().unwrap().contains("777001"));
    assert_eq!(data["listingId"], "777001");
    assert_eq!(data["objectId"], "5000001");
    assert!(ingestor.metric("hostaway_webhooks_parked_total") >= 2.0);
    assert!(ingestor.metric("hostaway_webhooks_released_total") >= 2.0);
    let dlq_stream = env.stream_messages(&env.topology.dlq_stream()).await;
    assert_eq!(dlq_stream.len(), 1, "the DLQ stream has it too");
    assert_eq!(dlq_stream[0].0, env.topology.dlq_subject(ACCOUNT));
    let status: String = sqlx::query_scalar("SELECT status FROM webhook_log")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(status, "dead_lettered");
    assert_eq!(env.count("SELECT count(*) FROM parked_webhooks").await, 0);
    assert!(env.bookings().await.is_empty());

    // Linking the listing is all it takes: no replay by hand.
    let unit = env.link(ACCOUNT, "777001").await;
    let booking = eventually(
        "the dead-lettered webhook to create its booking once linked",
        DEADLINE,
        || async { env.bookings().await.into_iter().next() },
    )
    .await;
    assert_eq!(booking.unit_id, unit.as_uuid());
    env.count_reaches(
        "no open dead letter",
        "SELECT count(*) FROM dead_letter_queue WHERE resolved_at IS NULL",
        0,
    )
    .await;
    let resolution: String =
        sqlx::query_scalar("SELECT data->>'resolution' FROM dead_letter_queue")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(resolution.contains("linked"), "{resolution}");
    ingestor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_linked_while_its_webhook_waits_releases_it_at_once() {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    let gateway = env.start_gateway().await;
    // An hour before the first retry: only the link can release it in time.
    let ingestor = env.start_ingestor_with(|s| s.park_schedule = vec![Duration::from_secs(3600)]);

    let body = Reservation::new(5_000_002, 777_002).webhook(ACCOUNT, "reservation.created");
    assert_eq!(
        gateway.post_basic("hostaway", "pw", &body).await.0,
        StatusCode::OK
    );
    env.count_reaches(
        "the webhook to be parked",
        "SELECT count(*) FROM parked_webhooks WHERE reason = 'listing_not_linked'",
        1,
    )
    .await;
    let status: String = sqlx::query_scalar("SELECT status FROM webhook_log")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(status, "parked");
    assert_eq!(
        env.stream_len(&env.topology.webhooks_stream()).await,
        0,
        "a parked webhook is not held by JetStream"
    );

    let unit = env.link(ACCOUNT, "777002").await;
    let booking = eventually("the booking, right after linking", DEADLINE, || async {
        env.bookings().await.into_iter().next()
    })
    .await;
    assert_eq!(booking.unit_id, unit.as_uuid());
    env.count_reaches(
        "nothing left parked",
        "SELECT count(*) FROM parked_webhooks",
        0,
    )
    .await;
    assert_eq!(env.count("SELECT count(*) FROM dead_letter_queue").await, 0);
    ingestor.stop().await;
}

/// A partial `reservation.updated` that overtakes its `reservation.created`.
/// Hostaway's first webhook of a reservation can lag its updates by minutes;
/// the clock is shortened twenty-fold (the default schedule's steps, and a
/// 60 s gap, divided by 20), the mechanism is the real one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_update_a_minute_ahead_of_its_created_ends_in_the_newest_state() {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    env.link(ACCOUNT, "300101").await;
    let gateway = env.start_gateway().await;
    let ingestor = env.start_ingestor_with(|s| {
        s.park_schedule = booking_ingestor::server::default_park_schedule()
            .into_iter()
            .map(|step| step / 20)
            .collect();
    });

    // Hostaway's partial payload (as once seen nested under payload.data),
    // stamped later than the full record that follows it.
    let partial = serde_json::json!({
        "object": "reservation", "event": "reservation.updated", "accountId": 70001,
        "payload": {"data": {"id": 5_100_001, "listingMapId": 300101, "guestName": "Nested Guest",
                             "status": "modified", "updatedOn": "2026-03-02 00:00:00"}}
    });
    assert_eq!(
        gateway.post_basic("hostaway", "pw", &partial).await.0,
        StatusCode::OK
    );
    // 60 s ÷ 20: the partial has been released twice and is still waiting.
    eventually(
        "the partial payload to wait through two releases",
        DEADLINE,
        || async { (parked_retries(&env).await >= Some(2)).then_some(()) },
    )
    .await;
    assert!(
        env.bookings().await.is_empty(),
        "a partial payload cannot create a booking"
    );
    assert_eq!(env.count("SELECT count(*) FROM dead_letter_queue").await, 0);

    let full = Reservation::new(5_100_001, 300_101).webhook(ACCOUNT, "reservation.created");
    assert_eq!(
        gateway.post_basic("hostaway", "pw", &full).await.0,
        StatusCode::OK
    );
    let booking = eventually(
        "the partial update applied over the full record",
        DEADLINE,
        || async {
            env.bookings()
                .await
                .into_iter()
                .find(|b| b.status == "modified")
        },
    )
    .await;
    assert_eq!(booking.guest_name.as_deref(), Some("Nested Guest"));
    assert_eq!(
        booking.arrival_date.to_string(),
        "2026-04-10",
        "fields the partial lacked come from the full record"
    );
    env.count_reaches(
        "nothing left parked",
        "SELECT count(*) FROM parked_webhooks",
        0,
    )
    .await;
    assert_eq!(env.count("SELECT count(*) FROM dead_letter_queue").await, 0);
    ingestor.stop().await;
}

/// What `hostaway-admin dlq replay ID` does.
async fn replay(env: &TestEnv, id: uuid::Uuid, expected_number: i32) {
    let letter = store::dlq::get(&env.pool, id)
        .await
        .unwrap()
        .expect("the dead letter");
    let outcome = booking_ingestor::dead_letter::replay(&env.js, &env.topology, &env.pool, &letter)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        booking_ingestor::dead_letter::Replayed::Sent(expected_number)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_replayed_before_its_cause_is_fixed_gets_a_fresh_schedule() {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    let gateway = env.start_gateway().await;
    let ingestor = env.start_ingestor_with(|s| s.park_schedule = vec![ms(50), ms(50), ms(50)]);
    let body = Reservation::new(5_000_003, 777_003).webhook(ACCOUNT, "reservation.created");
    assert_eq!(
        gateway.post_basic("hostaway", "pw", &body).await.0,
        StatusCode::OK
    );
    env.count_reaches(
        "the first dead letter",
        "SELECT count(*) FROM dead_letter_queue",
        1,
    )
    .await;
    let first = store::dlq::list_filtered(&env.pool, &store::dlq::Filter::default(), 10)
        .await
        .unwrap()
        .remove(0);
    replay(&env, first.id, 1).await;
    let attempts: i32 = eventually("the replay to be dead-lettered again", DEADLINE, || async {
        sqlx::query_scalar(
            "SELECT attempts FROM dead_letter_queue WHERE id = $1 AND (data->>'repeats')::int = 2",
        )
        .bind(first.id)
        .fetch_optional(&env.pool)
        .await
        .unwrap()
    })
    .await;
    assert_eq!(
        attempts, 3,
        "a replay waits through the whole schedule again"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM dead_letter_queue").await,
        1,
        "the same webhook failing for the same reason keeps one letter"
    );

    // Linking now finds the open letter and applies its webhook.
    env.link(ACCOUNT, "777003").await;
    eventually("the booking once linked", DEADLINE, || async {
        env.bookings().await.into_iter().next()
    })
    .await;
    ingestor.stop().await;
}

/// A version stamped ahead of the connector's clock is dead-lettered
/// (`clock_skew`); replayed once that time has passed, it applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_skew_letter_replayed_after_its_time_applies() {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    env.link(ACCOUNT, "300101").await;
    let stamp = chrono::Utc::now().naive_utc() - chrono::Duration::minutes(1);
    let body = Reservation::new(5_000_004, 300_101)
        .updated(&stamp.format("%Y-%m-%d %H:%M:%S").to_string())
        .webhook(ACCOUNT, "reservation.created");
    // Received three hours ago: its version was then two hours ahead.
    let mut received = connector_tests::payloads::inbound(ACCOUNT, &body);
    received.received_at = chrono::Utc::now() - chrono::Duration::hours(3);
    let refused = booking_ingestor::ingest::apply(&env.pool, &received)
        .await
        .unwrap_err();
    assert_eq!(refused.reason(), "clock_skew");
    // The same, replayed from the dead-letter queue now.
    let mut replayed = received.clone();
    replayed.source = events::pb::Source::DlqReplay;
    booking_ingestor::ingest::apply(&env.pool, &replayed)
        .await
        .unwrap();
    assert_eq!(env.bookings().await.len(), 1);
}
