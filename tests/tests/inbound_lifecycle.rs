//! A reservation's life, end to end: gateway → JetStream → ingestor →
//! PostgreSQL → events for TVL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use connector_tests::payloads::Reservation;
use connector_tests::{DEADLINE, TestEnv, eventually};
use reqwest::StatusCode;

const ACCOUNT: &str = "70001";
const LOGIN: &str = "hostaway";
const PASSWORD: &str = "correct horse battery staple";

fn lifecycle() -> [serde_json::Value; 3] {
    let r = Reservation::new(50_000_001, 300_101);
    [
        r.clone()
            .updated("2026-03-01 09:12:45")
            .webhook(ACCOUNT, "reservation.created"),
        r.clone()
            .status("modified")
            .dates("2026-04-10", "2026-04-15")
            .total(1140.0)
            .updated("2026-03-05 17:40:02")
            .webhook(ACCOUNT, "reservation.updated"),
        r.status("cancelled")
            .dates("2026-04-10", "2026-04-15")
            .total(0.0)
            .updated("2026-03-09 08:00:01")
            .webhook(ACCOUNT, "reservation.updated"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_then_updated_then_cancelled() {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, LOGIN, PASSWORD).await;
    let unit = env.link(ACCOUNT, "300101").await;
    let gateway = env.start_gateway().await;
    let _ingestor = env.start_ingestor();
    let [created, updated, cancelled] = lifecycle();

    let (status, body) = gateway.post_basic(LOGIN, PASSWORD, &created).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["received"], true);
    assert_eq!(body["webhookId"].as_str().map(str::len), Some(32));

    let booking = eventually("the booking to be created", DEADLINE, || async {
        env.bookings().await.into_iter().next()
    })
    .await;
    assert_eq!(booking.external_id, "50000001");
    assert_eq!(booking.status, "new");
    assert_eq!(booking.unit_id, unit.as_uuid());
    assert_eq!(booking.total_amount_minor, Some(91_235));
    assert_eq!(booking.currency.as_deref(), Some("USD"));
    let blocks = env.blocks().await;
    assert_eq!(blocks.len(), 1);
    assert_eq!(
        (
            blocks[0].start_date.to_string(),
            blocks[0].end_date.to_string()
        ),
        ("2026-04-10".into(), "2026-04-14".into())
    );

    assert_eq!(
        gateway.post_basic(LOGIN, PASSWORD, &updated).await.0,
        StatusCode::OK
    );
    eventually("the booking to be modified", DEADLINE, || async {
        env.bookings()
            .await
            .into_iter()
            .find(|b| b.status == "modified")
    })
    .await;
    let blocks = env.blocks().await;
    assert_eq!(blocks.len(), 1, "the block moved, not duplicated");
    assert_eq!(blocks[0].end_date.to_string(), "2026-04-15");
    assert_eq!(env.bookings().await[0].total_amount_minor, Some(114_000));

    assert_eq!(
        gateway.post_basic(LOGIN, PASSWORD, &cancelled).await.0,
        StatusCode::OK
    );
    eventually("the booking to be cancelled", DEADLINE, || async {
        env.bookings()
            .await
            .into_iter()
            .find(|b| b.status == "cancelled")
    })
    .await;
    assert!(
        env.blocks().await.is_empty(),
        "a cancelled booking releases its block"
    );
    assert_eq!(env.bookings().await.len(), 1);

    let mut events = eventually("three booking events", DEADLINE, || async {
        let events = env.booking_events().await;
        (events.len() >= 3).then_some(events)
    })
    .await;
    // Consumers order a booking's events by revision (publication may reorder them).
    events.sort_by_key(|e| e.booking.as_ref().map(|b| b.revision));
    let steps: Vec<(i32, i64)> = events
        .iter()
        .map(|e| (e.change, e.booking.as_ref().map_or(0, |b| b.revision)))
        .collect();
    use events::pb::BookingChange::{Cancelled, Created, Updated};
    assert_eq!(
        steps,
        [
            (Created as i32, 1),
            (Updated as i32, 2),
            (Cancelled as i32, 3)
        ]
    );
    assert_eq!(
        env.count("SELECT count(*) FROM webhook_log WHERE status = 'processed'")
            .await,
        3
    );
    env.outbox_drained().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_reordered_deliveries_end_as_one_in_order_delivery() {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, LOGIN, PASSWORD).await;
    env.link(ACCOUNT, "300101").await;
    let gateway = env.start_gateway().await;
    let [created, updated, cancelled] = lifecycle();

    // Hostaway's worst day: the cancellation first, then everything repeated.
    for body in [
        &cancelled, &updated, &created, &updated, &cancelled, &created, &cancelled,
    ] {
        let (status, answer) = gateway.post_basic(LOGIN, PASSWORD, body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    // JetStream already dropped the exact repeats inside its window.
    assert_eq!(env.stream_len(&env.topology.webhooks_stream()).await, 3);

    let ingestor = env.start_ingestor();
    eventually("all three webhooks to be processed", DEADLINE, || async {
        (env.count("SELECT count(*) FROM webhook_log WHERE status = 'processed'")
            .await
            == 3)
            .then_some(())
    })
    .await;
    let bookings = env.bookings().await;
    assert_eq!(bookings.len(), 1);
    assert_eq!(bookings[0].status, "cancelled");
    assert_eq!(bookings[0].departure_date.to_string(), "2026-04-15");
    assert!(
        env.blocks().await.is_empty(),
        "a late `created` never resurrects a cancelled booking"
    );
    // Workers apply the three concurrently, so TVL may hear one, two or three
    // steps, possibly out of order; but it hears of the booking once, and the
    // highest revision carries the final state.
    env.outbox_drained().await;
    let events = env.booking_events().await;
    let created = events
        .iter()
        .filter(|e| e.change == events::pb::BookingChange::Created as i32)
        .count();
    assert_eq!(created, 1, "TVL hears of the booking once");
    let last = events
        .iter()
        .filter_map(|e| e.booking.as_ref())
        .max_by_key(|b| b.revision)
        .expect("an event");
    let revisions: std::collections::HashSet<i64> = events
        .iter()
        .filter_map(|e| e.booking.as_ref().map(|b| b.revision))
        .collect();
    assert_eq!(
        revisions.len(),
        events.len(),
        "every event has its own revision"
    );
    assert_eq!(last.status, "cancelled");
    assert_eq!(last.block, events::pb::BlockKind::None as i32);
    ingestor.stop().await;
}
