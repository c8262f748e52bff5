//! Promise 1 and 2 across a crash: the ingestor killed mid-stream (no drain, no
//! acks, transactions cut) and restarted loses nothing and doubles nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use chrono::NaiveDate;
use connector_tests::payloads::Reservation;
use connector_tests::{TestEnv, eventually};
use reqwest::StatusCode;

const ACCOUNT: &str = "70001";
const RESERVATIONS: u64 = 300;
const LISTINGS: u64 = 4;

fn stay(k: u64) -> (String, String) {
    // Back-to-back stays per listing: no overlaps, so no double bookings.
    let start =
        NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Days::new((k / LISTINGS) * 3);
    (
        start.to_string(),
        (start + chrono::Days::new(3)).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingestor_killed_mid_stream_loses_and_doubles_nothing() {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    for listing in 0..LISTINGS {
        env.link(ACCOUNT, &(400_000 + listing).to_string()).await;
    }
    let gateway = env.start_gateway().await;
    for k in 0..RESERVATIONS {
        let (arrival, departure) = stay(k);
        let r = Reservation::new(2_000_000 + k, 400_000 + k % LISTINGS).dates(&arrival, &departure);
        let created = r
            .clone()
            .updated("2026-03-01 09:00:00")
            .webhook(ACCOUNT, "reservation.created");
        let updated = r
            .status("modified")
            .updated("2026-03-02 09:00:00")
            .webhook(ACCOUNT, "reservation.updated");
        for body in [created, updated] {
            assert_eq!(
                gateway.post_basic("hostaway", "pw", &body).await.0,
                StatusCode::OK
            );
        }
    }
    let total = RESERVATIONS * 2;
    let processed = || async {
        env.count("SELECT count(*) FROM webhook_log WHERE status = 'processed'")
            .await as u64
    };

    let first = env.start_ingestor();
    eventually(
        "the first ingestor to get going",
        Duration::from_secs(30),
        || async { (processed().await >= 40).then_some(()) },
    )
    .await;
    first.kill();
    let at_kill = processed().await;
    assert!(
        at_kill < total,
        "the ingestor was killed mid-stream ({at_kill} of {total} done)"
    );

    let second = env.start_ingestor();
    eventually(
        "every webhook to be processed after the restart",
        Duration::from_secs(90),
        || async { (processed().await == total).then_some(()) },
    )
    .await;

    let bookings = env.bookings().await;
    assert_eq!(
        bookings.len() as u64,
        RESERVATIONS,
        "nothing lost, nothing doubled"
    );
    assert!(bookings.iter().all(|b| b.status == "modified"));
    assert_eq!(env.blocks().await.len() as u64, RESERVATIONS);
    assert_eq!(env.count("SELECT count(*) FROM double_bookings").await, 0);

    env.outbox_drained().await;
    let events = env.booking_events().await;
    let mut per_booking: HashMap<String, Vec<i32>> = HashMap::new();
    for event in &events {
        let booking = event.booking.as_ref().unwrap();
        per_booking
            .entry(booking.booking_id.clone())
            .or_default()
            .push(event.change);
    }
    assert_eq!(
        per_booking.len() as u64,
        RESERVATIONS,
        "every booking was announced"
    );
    for (booking, changes) in &per_booking {
        let created = changes
            .iter()
            .filter(|c| **c == events::pb::BookingChange::Created as i32)
            .count();
        assert_eq!(
            created, 1,
            "booking {booking} announced once, got {changes:?}"
        );
        assert!(
            changes.len() <= 2,
            "booking {booking}: at most one event per version, got {changes:?}"
        );
    }
    second.stop().await;
}
