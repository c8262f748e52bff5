//! Promise 4: a webhook that cannot be applied is retried with backoff, then
//! lands in the dead-letter queue (stream and table) with its error, and can be
//! replayed once the cause is fixed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use connector_tests::payloads::Reservation;
use connector_tests::{DEADLINE, TestEnv, eventually};
use reqwest::StatusCode;

const ACCOUNT: &str = "70001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlinked_listing_is_retried_dead_lettered_and_replayed_after_linking() {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    let gateway = env.start_gateway().await;
    let ingestor = env.start_ingestor();

    let body = Reservation::new(5_000_001, 777_001).webhook(ACCOUNT, "reservation.created");
    assert_eq!(
        gateway.post_basic("hostaway", "pw", &body).await.0,
        StatusCode::OK
    );

    let (attempts, error): (i32, serde_json::Value) =
        eventually("the webhook to be dead-lettered", DEADLINE, || async {
            sqlx::query_as("SELECT attempts, error FROM dead_letter_queue")
                .fetch_optional(&env.pool)
                .await
                .unwrap()
        })
        .await;
    assert_eq!(attempts, 3, "retried up to the configured attempts");
    assert_eq!(error["kind"], "listing_not_linked");
    assert!(error["message"].as_str().unwrap().contains("777001"));
    assert!(
        ingestor.metric("hostaway_ingest_retries_total") >= 2.0,
        "it was retried before giving up"
    );
    let dlq_stream = env.stream_messages(&env.topology.dlq_stream()).await;
    assert_eq!(dlq_stream.len(), 1, "the DLQ stream has it too");
    assert_eq!(dlq_stream[0].0, env.topology.dlq_subject(ACCOUNT));
    let status: String = sqlx::query_scalar("SELECT status FROM webhook_log")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(status, "dead_lettered");
    assert!(env.bookings().await.is_empty());

    // Replayed before the cause is fixed: a fresh set of attempts, then back
    // in the dead-letter queue.
    let first = store::dlq::list(&env.pool, false, 10)
        .await
        .unwrap()
        .remove(0);
    replay(&env, first.id, 1).await;
    let attempts: i32 = eventually("the replay to be dead-lettered again", DEADLINE, || async {
        sqlx::query_scalar("SELECT attempts FROM dead_letter_queue WHERE id <> $1")
            .bind(first.id)
            .fetch_optional(&env.pool)
            .await
            .unwrap()
    })
    .await;
    assert_eq!(attempts, 3, "a replay gets every attempt again, not one");

    // Fix the cause, then replay as an operator would.
    let unit = env.link(ACCOUNT, "777001").await;
    let second = store::dlq::list(&env.pool, false, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.id != first.id)
        .unwrap();
    replay(&env, second.id, 1).await;

    let booking = eventually(
        "the replayed webhook to create the booking",
        DEADLINE,
        || async { env.bookings().await.into_iter().next() },
    )
    .await;
    assert_eq!(booking.unit_id, unit.as_uuid());
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dead_letter_queue WHERE resolved_at IS NULL")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(
        open, 0,
        "a processed replay resolves the webhook's dead letters"
    );
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
async fn a_partial_payload_for_an_unknown_reservation_waits_for_the_full_one() {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    env.link(ACCOUNT, "300101").await;
    let gateway = env.start_gateway().await;
    let ingestor = env.start_ingestor_with(|s| s.retry.max_attempts = 50);

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
    eventually("the partial payload to be retried", DEADLINE, || async {
        (ingestor.metric("hostaway_ingest_retries_total") >= 1.0).then_some(())
    })
    .await;
    assert!(
        env.bookings().await.is_empty(),
        "a partial payload cannot create a booking"
    );

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
    assert_eq!(env.count("SELECT count(*) FROM dead_letter_queue").await, 0);
    ingestor.stop().await;
}
