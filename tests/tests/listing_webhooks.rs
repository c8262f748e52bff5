//! The specification's listing and calendar webhooks (issue 12, point 4):
//! Hostaway saying a linked listing changed queues a reconciliation of that
//! listing (read back, drift pushed), once, besides the event for TVL; a
//! repeat of the webhook queues nothing more, and an unlinked listing has
//! nothing to reconcile.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use connector_tests::eventually;
use connector_tests::outbound::{
    Availability, CHANGES_ONLY, JOBS_ONLY, OutboundWorld, change_id, day,
};
use hostaway_sim::SimConfig;
use serde_json::json;

const ACCOUNT: &str = "71020";
const DEADLINE: Duration = Duration::from_secs(30);

fn listing_webhook(event: &str, listing: u64) -> serde_json::Value {
    json!({
        "event": event,
        "timestamp": "2026-03-12T08:30:00Z",
        "accountId": ACCOUNT,
        "data": {"id": listing.to_string(), "name": "Renamed in Hostaway"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_updated_webhook_reconciles_that_listing_once() {
    let world = OutboundWorld::new(SimConfig::default(), &[(ACCOUNT, 2)]).await;
    let (changed, untouched) = (world.listings[0].listing, world.listings[1].listing);
    let ingestor = world.env.start_ingestor();
    let dispatcher = world.start_dispatcher(JOBS_ONLY);
    dispatcher.ready().await;
    let reads_of = |listing: u64| {
        let sim = world.sim.clone();
        async move {
            sim.requests(Some(ACCOUNT))
                .await
                .into_iter()
                .filter(|r| r.method == "GET" && r.path == format!("/v1/listings/{listing}"))
                .count()
        }
    };

    world
        .deliver_webhook(ACCOUNT, listing_webhook("listing.updated", changed))
        .await;
    eventually("the listing read back from Hostaway", DEADLINE, || async {
        (reads_of(changed).await == 1).then_some(())
    })
    .await;
    // A webhook for an unlinked listing of the account: an event, no job.
    world
        .deliver_webhook(ACCOUNT, listing_webhook("listing.updated", 999_999))
        .await;
    world
        .env
        .count_reaches(
            "both listing webhooks processed",
            "SELECT count(*) FROM webhook_log WHERE status = 'processed'",
            2,
        )
        .await;

    assert_eq!(
        ingestor.metric("hostaway_ingest_reconciliations_requested_total"),
        1.0,
        "one reconciliation queued, for the linked listing"
    );
    assert_eq!(reads_of(changed).await, 1, "read back once");
    assert_eq!(reads_of(untouched).await, 0, "the other listing left alone");
    let events = world
        .env
        .stream_messages(&world.env.topology.events_stream())
        .await
        .into_iter()
        .filter(|(subject, _)| subject.ends_with("listing.changed"))
        .count();
    assert_eq!(events, 2, "an event for each webhook");
    dispatcher.stop().await;
    ingestor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calendar_updated_webhook_reconciles_the_listings_calendar() {
    let world = OutboundWorld::new(SimConfig::default(), &[(ACCOUNT, 1)]).await;
    let linked = world.listings[0].clone();
    // TVL wants something of the calendar (a reconciliation compares only
    // the days TVL has a say on); projected, not pushed yet.
    let projector = world.start_dispatcher(CHANGES_ONLY);
    projector.ready().await;
    world
        .publish_availability(&Availability {
            change_id: change_id(1),
            seq: 1,
            unit: linked.unit,
            start: day(3),
            end: day(6),
            available: Some(false),
            min_stay: None,
            occurred_at: chrono::Utc::now(),
            version: 0,
        })
        .await;
    world.changes_consumed().await;
    projector.stop().await;

    let ingestor = world.env.start_ingestor();
    world
        .deliver_webhook(ACCOUNT, listing_webhook("calendar.updated", linked.listing))
        .await;
    eventually("both reconciliations queued", DEADLINE, || async {
        (ingestor.metric("hostaway_ingest_reconciliations_requested_total") == 2.0).then_some(())
    })
    .await;
    let dispatcher = world.start_dispatcher(JOBS_ONLY);
    dispatcher.ready().await;
    let calendar = format!("/v1/listings/{}/calendar", linked.listing);
    eventually("the calendar read back from Hostaway", DEADLINE, || async {
        let read = world
            .sim
            .requests(Some(ACCOUNT))
            .await
            .into_iter()
            .any(|r| r.method == "GET" && r.path == calendar);
        read.then_some(())
    })
    .await;
    dispatcher.stop().await;
    ingestor.stop().await;
}

/// A repeat of a processed listing webhook (Hostaway retrying after the
/// stream's duplicate window) queues nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_listing_webhook_asks_for_no_second_reconciliation() {
    let world = OutboundWorld::new(SimConfig::default(), &[(ACCOUNT, 1)]).await;
    let body = listing_webhook("listing.updated", world.listings[0].listing);
    let inbound = connector_tests::payloads::inbound(ACCOUNT, &body);
    let first = booking_ingestor::ingest::apply(&world.env.pool, &inbound)
        .await
        .unwrap();
    let again = booking_ingestor::ingest::apply(&world.env.pool, &inbound)
        .await
        .unwrap();
    assert_eq!(
        (first.outcome, first.reconcile.len()),
        ("forwarded", 1),
        "{first:?}"
    );
    assert_eq!((again.outcome, again.reconcile.len()), ("repeat", 0));
}
