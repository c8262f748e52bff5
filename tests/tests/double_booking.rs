//! Two live bookings holding the same nights on one unit: both are kept (the
//! channels already sold them) and the conflict is reported as an event, a
//! metric, a log line and a row.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use connector_tests::payloads::Reservation;
use connector_tests::{DEADLINE, TestEnv, eventually};
use events::Message as _;
use reqwest::StatusCode;

const ACCOUNT: &str = "70001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_bookings_are_both_kept_and_reported_once() {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    // Two Hostaway listings (say Airbnb and Vrbo copies) on one TVL unit.
    let unit = env.link(ACCOUNT, "300101").await;
    env.link_to(ACCOUNT, "300102", unit).await;
    let gateway = env.start_gateway().await;
    let ingestor = env.start_ingestor();

    let airbnb = Reservation::new(6_000_001, 300_101).dates("2026-07-01", "2026-07-05");
    let vrbo = Reservation::new(6_000_002, 300_102).dates("2026-07-03", "2026-07-08");
    let back_to_back = Reservation::new(6_000_003, 300_101).dates("2026-07-08", "2026-07-10");
    for r in [&airbnb, &vrbo, &back_to_back] {
        assert_eq!(
            gateway
                .post_basic("hostaway", "pw", &r.webhook(ACCOUNT, "reservation.created"))
                .await
                .0,
            StatusCode::OK
        );
    }
    eventually("three bookings", DEADLINE, || async {
        (env.bookings().await.len() == 3).then_some(())
    })
    .await;
    assert_eq!(
        env.blocks().await.len(),
        3,
        "both conflicting bookings keep their blocks"
    );

    let conflicts = store::bookings::list_double_bookings(&env.pool)
        .await
        .unwrap();
    assert_eq!(
        conflicts.len(),
        1,
        "one conflict; back-to-back stays do not overlap"
    );
    assert_eq!(conflicts[0].unit_id, unit.as_uuid());
    assert_eq!(conflicts[0].overlap_start.to_string(), "2026-07-03");
    assert_eq!(conflicts[0].overlap_end.to_string(), "2026-07-05");
    assert_eq!(ingestor.metric("hostaway_double_bookings_total"), 1.0);

    let reports = eventually("the double-booking event", DEADLINE, || async {
        let prefix = format!("{}.events.booking.double_booked", env.topology.namespace());
        let reports: Vec<_> = env
            .stream_messages(&env.topology.events_stream())
            .await
            .into_iter()
            .filter(|(subject, _)| *subject == prefix)
            .collect();
        (!reports.is_empty()).then_some(reports)
    })
    .await;
    assert_eq!(reports.len(), 1);
    let report = events::pb::DoubleBookingDetected::decode(reports[0].1.clone()).unwrap();
    assert_eq!(report.unit_id, unit.to_string());
    let ids = [
        report.first.unwrap().external_id,
        report.second.unwrap().external_id,
    ];
    assert!(ids.contains(&"6000001".to_owned()) && ids.contains(&"6000002".to_owned()));

    // The same booking updated without moving: not reported again.
    let touched = vrbo.clone().updated("2026-03-02 00:00:00").total(999.0);
    assert_eq!(
        gateway
            .post_basic(
                "hostaway",
                "pw",
                &touched.webhook(ACCOUNT, "reservation.updated")
            )
            .await
            .0,
        StatusCode::OK
    );
    eventually("the update", DEADLINE, || async {
        env.bookings()
            .await
            .into_iter()
            .find(|b| b.total_amount_minor == Some(99_900))
    })
    .await;
    assert_eq!(
        store::bookings::list_double_bookings(&env.pool)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(ingestor.metric("hostaway_double_bookings_total"), 1.0);

    // Cancelling one side resolves the conflict.
    let cancelled = vrbo.status("cancelled").updated("2026-03-03 00:00:00");
    assert_eq!(
        gateway
            .post_basic(
                "hostaway",
                "pw",
                &cancelled.webhook(ACCOUNT, "reservation.updated")
            )
            .await
            .0,
        StatusCode::OK
    );
    eventually("the conflict to be resolved", DEADLINE, || async {
        let all = store::bookings::list_double_bookings(&env.pool)
            .await
            .unwrap();
        all.iter().all(|d| d.resolved).then_some(())
    })
    .await;
    ingestor.stop().await;
}
