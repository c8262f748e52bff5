//! Hostaway's payloads can be incomplete, and its first webhook of a
//! reservation can lag minutes behind the updates. A partial payload that
//! cannot create its booking is parked, and the reservation's complete record
//! is fetched from the API (`GET /reservations/{id}`) and fed through the same
//! ingestion path as a webhook: the booking exists without waiting for the
//! late `reservation.created`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use connector_tests::outbound::{JOBS_ONLY, OutboundWorld, day};
use hostaway_sim::SimConfig;
use serde_json::json;

const ACCOUNT: &str = "71010";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_payload_fetches_its_reservation_and_needs_no_late_created() {
    let world = OutboundWorld::new(SimConfig::default(), &[(ACCOUNT, 1)]).await;
    let listing = world.listings[0].clone();
    // Hostaway has the reservation; its reservation.created is late (never
    // sent here).
    let mut fields = serde_json::Map::new();
    fields.insert("arrivalDate".into(), json!(day(20).to_string()));
    fields.insert("departureDate".into(), json!(day(23).to_string()));
    fields.insert("guestName".into(), json!("Robin Fetched"));
    let id = world
        .sim
        .create_reservation(ACCOUNT, listing.listing, fields)
        .await
        .unwrap();
    // A default schedule: the first retry is 10 s away, so only the fetch
    // can make the booking in time.
    let ingestor = world.env.start_ingestor_with(|s| {
        s.park_schedule = booking_ingestor::server::default_park_schedule();
    });
    let dispatcher = world.start_dispatcher(JOBS_ONLY);
    dispatcher.ready().await;

    let stamp = (chrono::Utc::now() + chrono::Duration::seconds(30))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    world
        .deliver_webhook(
            ACCOUNT,
            json!({
            "object": "reservation", "event": "reservation.updated", "accountId": 71010,
            "data": {"id": id, "status": "modified", "guestName": "Robin Partial", "updatedOn": stamp}
        }),
    )
    .await;

    let booking = connector_tests::eventually(
        "the booking, from the fetched record and the partial over it",
        Duration::from_secs(30),
        || async {
            world
                .env
                .bookings()
                .await
                .into_iter()
                .find(|b| b.external_id == id.to_string() && b.status == "modified")
        },
    )
    .await;
    assert_eq!(
        booking.guest_name.as_deref(),
        Some("Robin Partial"),
        "the newer partial applies over the fetched record"
    );
    assert_eq!(
        booking.arrival_date,
        day(20),
        "dates from the fetched record"
    );
    assert_eq!(booking.unit_id, listing.unit.as_uuid());

    let fetched = world
        .sim
        .requests(Some(ACCOUNT))
        .await
        .into_iter()
        .filter(|r| r.path == format!("/v1/reservations/{id}"))
        .count();
    assert_eq!(fetched, 1, "one fetch of the reservation");
    let sources: Vec<String> =
        sqlx::query_scalar("SELECT source FROM webhook_log ORDER BY first_seen_at")
            .fetch_all(&world.env.pool)
            .await
            .unwrap();
    assert!(
        sources.iter().any(|s| s == "api_fetch"),
        "the fetched record went through ingestion: {sources:?}"
    );
    for (what, sql) in [
        ("parked", "SELECT count(*) FROM parked_webhooks"),
        ("fetch requests", "SELECT count(*) FROM reservation_fetches"),
        ("dead letters", "SELECT count(*) FROM dead_letter_queue"),
    ] {
        world.env.count_reaches(what, sql, 0).await;
    }
    assert_eq!(
        ingestor.metric("hostaway_reservation_fetches_requested_total"),
        1.0
    );
    assert_eq!(
        dispatcher.metric("hostaway_reservations_fetched_total"),
        1.0
    );
    dispatcher.stop().await;
    ingestor.stop().await;
}
