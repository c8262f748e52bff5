//! Several webhooks in one transaction (issue 11): a batch ends exactly where
//! one-by-one delivery ends, two versions of one reservation in a batch end
//! in the greatest, and a webhook that poisons the batch's transaction is
//! retried and dead-lettered alone while the others are applied.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use booking_ingestor::batch::apply_batch;
use booking_ingestor::ingest::{self, IngestError};
use connector_tests::fixtures::{own, read_json};
use connector_tests::payloads::{Reservation, inbound};
use connector_tests::{TestEnv, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ACCOUNT: &str = "70001";
const DEADLINE: Duration = Duration::from_secs(30);

/// Everything TVL and an operator can see of what the webhooks did: the
/// bookings and blocks, what the log says of each processed webhook, the
/// events in the outbox, the open double bookings.
async fn seen(env: &TestEnv) -> Value {
    sqlx::query_scalar(
        "SELECT jsonb_build_object(
             'bookings', (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.external_id), '[]')
                 FROM (SELECT k.external_id, k.status, k.arrival_date, k.departure_date,
                              k.total_amount_minor, k.guest_name, k.revision,
                              encode(k.version_digest, 'hex') AS digest,
                              b.kind, b.start_date, b.end_date
                       FROM bookings k LEFT JOIN availability_blocks b ON b.booking_id = k.id) x),
             'log', (SELECT coalesce(jsonb_agg(jsonb_build_array(webhook_id, outcome, adjustments)
                                               ORDER BY webhook_id), '[]')
                     FROM webhook_log WHERE status = 'processed'),
             'events', (SELECT coalesce(jsonb_agg(subject_suffix ORDER BY subject_suffix), '[]')
                        FROM outbox),
             'double_bookings', (SELECT count(*) FROM double_bookings WHERE resolved_at IS NULL))",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

fn outcome(result: &Result<ingest::Applied, IngestError>) -> String {
    match result {
        Ok(applied) => applied.outcome.to_owned(),
        Err(error) => format!("error:{}", error.reason()),
    }
}

/// Posts reservations `first + 1` … `first + count` (alternating between the
/// two linked listings, each stay from `stay(n)`) through the gateway.
async fn post_burst(
    gateway: &connector_tests::services::RunningGateway,
    first: u64,
    count: u64,
    stay: impl Fn(u64) -> (String, String),
) {
    for n in 1..=count {
        let (arrival, departure) = stay(n);
        let body = Reservation::new(first + n, 300_101 + n % 2)
            .dates(&arrival, &departure)
            .webhook(ACCOUNT, "reservation.created");
        assert_eq!(
            gateway.post_basic("hostaway", "pw", &body).await.0,
            StatusCode::OK
        );
    }
}

async fn env_with_links() -> TestEnv {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    env.link(ACCOUNT, "300101").await;
    env.link(ACCOUNT, "300102").await;
    env
}

/// A burst as Hostaway can send it: versions of one reservation out of
/// order, a stale one, a new booking on nights already booked, a booking on
/// an unlinked listing, the same content under a later event (the version
/// moves, nothing TVL sees changes), an exact
/// repeat, a guest message.
fn burst() -> Vec<Value> {
    let a = Reservation::new(4_100_001, 300_101).dates("2026-06-01", "2026-06-05");
    vec![
        a.clone()
            .updated("2026-03-01 10:00:00")
            .webhook(ACCOUNT, "reservation.created"),
        Reservation::new(4_100_002, 300_102).webhook(ACCOUNT, "reservation.created"),
        a.clone()
            .dates("2026-06-02", "2026-06-06")
            .total(1000.0)
            .updated("2026-03-01 10:02:00")
            .webhook(ACCOUNT, "reservation.updated"),
        a.clone()
            .total(950.0)
            .updated("2026-03-01 10:01:00")
            .webhook(ACCOUNT, "reservation.updated"),
        Reservation::new(4_100_003, 300_199).webhook(ACCOUNT, "reservation.created"),
        Reservation::new(4_100_004, 300_101)
            .dates("2026-06-04", "2026-06-08")
            .webhook(ACCOUNT, "reservation.created"),
        Reservation::new(4_100_002, 300_102).webhook(ACCOUNT, "reservation.updated"),
        Reservation::new(4_100_002, 300_102).webhook(ACCOUNT, "reservation.created"),
        read_json(&own().join("webhooks/message_received.json")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_ends_where_one_by_one_delivery_ends() {
    let (one_by_one, batched) = (env_with_links().await, env_with_links().await);
    let bodies = burst();
    let inbounds: Vec<_> = bodies.iter().map(|body| inbound(ACCOUNT, body)).collect();

    let mut singly = Vec::new();
    for inbound in &inbounds {
        singly.push(outcome(&ingest::apply(&one_by_one.pool, inbound).await));
    }
    let together: Vec<String> = apply_batch(&batched.pool, &inbounds)
        .await
        .iter()
        .map(outcome)
        .collect();

    assert_eq!(
        singly,
        [
            "created",
            "created",
            "updated",
            "stale",
            "error:listing_not_linked",
            "created",
            "unchanged",
            "repeat",
            "forwarded",
        ],
        "the reference run"
    );
    assert_eq!(together, singly, "each webhook's outcome");
    assert_eq!(seen(&batched).await, seen(&one_by_one).await);
    let seen = seen(&batched).await;
    assert_eq!(seen["double_bookings"], json!(1), "{seen}");
    assert_eq!(
        seen["bookings"][0]["arrival_date"],
        json!("2026-06-02"),
        "the greatest version of the reservation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_payload_before_its_first_complete_record_in_a_batch_is_applied_after_it() {
    let env = env_with_links().await;
    let complete = Reservation::new(4_200_001, 300_101).updated("2026-03-01 10:00:00");
    let partial = json!({
        "object": "reservation", "event": "reservation.updated", "accountId": 70001,
        "data": {"id": 4_200_001, "status": "modified", "guestName": "Robin Partial",
                 "updatedOn": "2026-03-01 10:05:00"}
    });
    let inbounds = [
        inbound(ACCOUNT, &partial),
        inbound(ACCOUNT, &complete.webhook(ACCOUNT, "reservation.created")),
    ];
    // One by one, the partial would be parked until the booking exists.
    let outcomes: Vec<String> = apply_batch(&env.pool, &inbounds)
        .await
        .iter()
        .map(outcome)
        .collect();
    assert_eq!(outcomes, ["updated", "created"]);
    let bookings = env.bookings().await;
    assert_eq!(bookings.len(), 1);
    assert_eq!(bookings[0].guest_name.as_deref(), Some("Robin Partial"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_poisons_the_batch_is_left_alone_and_the_others_applied() {
    let env = env_with_links().await;
    let pool = store::connect_lazy(
        &env.service_database_url(),
        &store::PoolSettings {
            lock_timeout: Some(Duration::from_millis(200)),
            ..store::PoolSettings::default()
        },
    )
    .unwrap();
    // Someone holds one reservation's lock and never lets go.
    let holder = env.hold_reservation_lock(ACCOUNT, "4300002").await;
    let inbounds: Vec<_> = (1..=4)
        .map(|n| {
            inbound(
                ACCOUNT,
                &Reservation::new(4_300_000 + n, 300_101)
                    .dates(
                        &format!("2026-07-{:02}", n * 5),
                        &format!("2026-07-{:02}", n * 5 + 2),
                    )
                    .webhook(ACCOUNT, "reservation.created"),
            )
        })
        .collect();
    let outcomes: Vec<String> = apply_batch(&pool, &inbounds)
        .await
        .iter()
        .map(outcome)
        .collect();
    assert_eq!(
        outcomes,
        ["created", "error:database_timeout", "created", "created"]
    );
    let mut booked: Vec<String> = env
        .bookings()
        .await
        .into_iter()
        .map(|b| b.external_id)
        .collect();
    booked.sort();
    assert_eq!(booked, ["4300001", "4300003", "4300004"]);
    holder.rollback().await.unwrap();
}

/// Through the gateway and the consumer: a burst is taken in batches, and
/// one webhook whose transaction always times out reaches the dead-letter
/// queue on its own attempts while every other webhook is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_applied_in_batches_and_a_poisoned_webhook_is_dead_lettered_alone() {
    let env = env_with_links().await;
    let gateway = env.start_gateway().await;
    let holder = env.hold_reservation_lock(ACCOUNT, "4400007").await;
    // The burst is durable before the ingestor starts: it finds a backlog.
    post_burst(&gateway, 4_400_000, 40, |n| {
        (
            format!("2027-{:02}-01", 1 + n % 12),
            format!("2027-{:02}-0{}", 1 + n % 12, 2 + n / 12),
        )
    })
    .await;
    let ingestor = env.start_ingestor_tuned(|settings, pool| {
        settings.batch = 16;
        settings.free_timeouts = 0;
        settings.retry.max_attempts = 2;
        settings.retry.base = Duration::from_millis(50);
        settings.retry.cap = Duration::from_millis(100);
        pool.lock_timeout = Some(Duration::from_millis(200));
    });
    let (attempts, kind) = env
        .dead_lettered("the poisoned webhook in the dead-letter queue")
        .await;
    assert_eq!((attempts, kind.as_str()), (2, "database_timeout"));
    let booked = eventually("the 39 other bookings", DEADLINE, || async {
        let bookings = env.bookings().await;
        (bookings.len() == 39).then_some(bookings)
    })
    .await;
    assert!(booked.iter().all(|b| b.external_id != "4400007"));
    let batches = connector_tests::services::metric_value(
        &ingestor.metrics,
        "hostaway_ingest_batch_webhooks",
    );
    let webhooks = connector_tests::services::histogram_sum(
        &ingestor.metrics,
        "hostaway_ingest_batch_webhooks",
    );
    assert!(
        webhooks > batches,
        "some webhooks were applied together ({webhooks} in {batches} batches)"
    );
    holder.rollback().await.unwrap();
    ingestor.stop().await;
}

/// A batch held up by a lock outlasts JetStream's ack wait: its messages are
/// reported in progress meanwhile, so none of the webhooks that did nothing
/// wrong is delivered twice (or has a timeout counted against it), and the
/// one that waited is applied once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_longer_than_the_ack_wait_is_not_delivered_again() {
    let env = env_with_links().await;
    let gateway = env.start_gateway().await;
    let holder = env.hold_reservation_lock(ACCOUNT, "4500001").await;
    post_burst(&gateway, 4_500_000, 8, |n| {
        (
            format!("2027-08-{:02}", n * 3),
            format!("2027-08-{:02}", n * 3 + 2),
        )
    })
    .await;
    let ingestor = env.start_ingestor_tuned(|settings, pool| {
        settings.batch = 16;
        settings.consumers.ingest_ack_wait = Duration::from_secs(2);
        settings.free_timeouts = 10;
        // The waiting webhook's own wait, alone, outlasts the ack wait too.
        pool.lock_timeout = Some(Duration::from_secs(3));
    });
    let others = eventually("the 7 other bookings", DEADLINE, || async {
        let bookings = env.bookings().await;
        (bookings.len() == 7).then_some(bookings)
    })
    .await;
    assert!(others.iter().all(|b| b.external_id != "4500001"));
    holder.rollback().await.unwrap();
    eventually("the booking that waited for the lock", DEADLINE, || async {
        (env.bookings().await.len() == 8).then_some(())
    })
    .await;
    let (delivered_twice, timeouts): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE deliveries > 1), coalesce(sum(timeouts), 0)::bigint
         FROM webhook_log WHERE object_id <> '4500001'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        (delivered_twice, timeouts),
        (0, 0),
        "no innocent webhook was delivered again or timed out"
    );
    assert!(
        connector_tests::services::metric_value(
            &ingestor.metrics,
            "hostaway_ingest_batch_webhooks"
        ) >= 1.0
    );
    ingestor.stop().await;
}

/// Correct at any replica count: three ingestors drain one shuffled burst
/// (three versions of each of 24 reservations, on two units, with nights
/// that collide) in batches at once, and every booking, block and open
/// double booking ends as one in-order delivery of each reservation leaves
/// them, each booking announced once, nothing dead-lettered or parked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_ingestors_applying_batches_at_once_end_as_one_in_order_delivery() {
    let (reference, replicas) = (env_with_links().await, env_with_links().await);
    let versions: Vec<Vec<Value>> = (1..=24u64)
        .map(|n| {
            let listing = 300_101 + n % 2;
            let arrival = |shift: u64| format!("2027-09-{:02}", 1 + (n + shift) % 20);
            let departure = |shift: u64| format!("2027-09-{:02}", 4 + (n + shift) % 20);
            let base = Reservation::new(4_600_000 + n, listing);
            vec![
                base.clone()
                    .dates(&arrival(0), &departure(0))
                    .updated("2026-03-01 10:00:00")
                    .webhook(ACCOUNT, "reservation.created"),
                base.clone()
                    .dates(&arrival(0), &departure(0))
                    .total(1000.0 + n as f64)
                    .updated("2026-03-01 10:01:00")
                    .webhook(ACCOUNT, "reservation.updated"),
                base.dates(&arrival(7), &departure(7))
                    .status(if n % 5 == 0 { "cancelled" } else { "modified" })
                    .updated("2026-03-01 10:02:00")
                    .webhook(ACCOUNT, "reservation.updated"),
            ]
        })
        .collect();
    for body in versions.iter().flatten() {
        ingest::apply(&reference.pool, &inbound(ACCOUNT, body))
            .await
            .unwrap();
    }

    let gateway = replicas.start_gateway().await;
    let mut burst: Vec<&Value> = versions.iter().flatten().collect();
    fastrand::Rng::with_seed(11).shuffle(&mut burst);
    for body in burst {
        assert_eq!(
            gateway.post_basic("hostaway", "pw", body).await.0,
            StatusCode::OK
        );
    }
    let ingestors: Vec<_> = (0..3)
        .map(|_| {
            replicas.start_ingestor_tuned(|settings, _| {
                settings.batch = 8;
                settings.concurrency = 4;
            })
        })
        .collect();
    replicas
        .count_reaches(
            "every webhook processed",
            "SELECT count(*) FROM webhook_log WHERE status = 'processed'",
            72,
        )
        .await;

    async fn outcome(env: &TestEnv) -> Value {
        sqlx::query_scalar(
            "SELECT jsonb_build_object(
                 'bookings', (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.external_id)
                     FROM (SELECT k.external_id, k.status, k.arrival_date, k.departure_date,
                                  k.total_amount_minor, encode(k.version_digest, 'hex') AS digest,
                                  b.start_date, b.end_date
                           FROM bookings k LEFT JOIN availability_blocks b ON b.booking_id = k.id) x),
                 'open_double_bookings', (SELECT coalesce(jsonb_agg(p ORDER BY p), '[]') FROM (
                     SELECT jsonb_build_array(least(a.external_id, b.external_id),
                                              greatest(a.external_id, b.external_id)) AS p
                     FROM double_bookings d JOIN bookings a ON a.id = d.booking_a
                          JOIN bookings b ON b.id = d.booking_b
                     WHERE d.resolved_at IS NULL) pairs),
                 'created_events', (SELECT count(*) FROM outbox WHERE subject_suffix = 'booking.created'),
                 'dead_or_parked', (SELECT count(*) FROM dead_letter_queue)
                                   + (SELECT count(*) FROM parked_webhooks))",
        )
        .fetch_one(&env.pool)
        .await
        .unwrap()
    }
    let (expected, actual) = (outcome(&reference).await, outcome(&replicas).await);
    assert_eq!(actual, expected);
    assert_eq!(expected["created_events"], json!(24));
    assert_eq!(expected["dead_or_parked"], json!(0));
    assert_ne!(
        expected["open_double_bookings"],
        json!([]),
        "nights collide"
    );
    let (mut applied, mut batches) = (0.0, 0.0);
    for ingestor in &ingestors {
        let metrics = &ingestor.metrics;
        applied +=
            connector_tests::services::histogram_sum(metrics, "hostaway_ingest_batch_webhooks");
        batches +=
            connector_tests::services::metric_value(metrics, "hostaway_ingest_batch_webhooks");
    }
    assert!(
        applied >= 72.0 && applied > batches,
        "the replicas applied the burst in batches ({applied} webhooks in {batches})"
    );
    for ingestor in ingestors {
        ingestor.stop().await;
    }
}
