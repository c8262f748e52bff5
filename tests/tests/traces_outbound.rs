//! One trace per TVL change: the change consumer, the job it queued and the
//! Hostaway calls the job made, joined by the W3C `traceparent` in NATS
//! headers and sent on to Hostaway in HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_nats::jetstream::message::PublishMessage;
use chrono::Utc;
use connector_tests::otlp::OtlpReceiver;
use connector_tests::outbound::{Availability, OutboundWorld, change_id, day};
use connector_tests::{DEADLINE, eventually};
use hostaway_sim::SimConfig;
use sync_dispatcher::Roles;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_one_trace_from_the_change_consumer_to_the_hostaway_call() {
    let receiver = OtlpReceiver::start().await;
    let telemetry = receiver.export_here();
    let world = OutboundWorld::new(SimConfig::default(), &[("73002", 1)]).await;
    let dispatcher = world.start_dispatcher(Roles {
        changes: true,
        jobs: true,
        reconcile: false,
    });
    dispatcher.ready().await;
    let listing = world.listings[0].clone();

    // TVL's publisher sends its trace with the change.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let tvl_span = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let change = Availability {
        change_id: change_id(1),
        seq: 1,
        unit: listing.unit,
        start: day(2),
        end: day(4),
        available: Some(false),
        min_stay: None,
        occurred_at: Utc::now(),
        version: 0,
    };
    world
        .env
        .js
        .send_publish(
            world
                .env
                .topology
                .change_subject("availability", &listing.unit.to_string()),
            PublishMessage::build()
                .payload(change.encode().into())
                .message_id(&change.change_id)
                .header(
                    "traceparent",
                    format!("00-{trace_id}-{tvl_span}-01").as_str(),
                ),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    eventually("the change pushed to Hostaway", DEADLINE, || async {
        (world.calendar_writes(listing.listing).await > 0).then_some(())
    })
    .await;
    telemetry.flush().await;

    let consumed = receiver.span("hostaway.sync.change", &trace_id).await;
    let job = receiver.span("hostaway.sync.job", &trace_id).await;
    assert_eq!(consumed.parent_span_id, tvl_span, "TVL's span");
    assert_eq!(
        job.parent_span_id, consumed.span_id,
        "the job continues the change that queued it"
    );
    assert_eq!(
        job.attributes.get("sync_type").map(String::as_str),
        Some("availability")
    );
    let call = eventually("the calendar call in the trace", DEADLINE, || async {
        receiver.spans().into_iter().find(|s| {
            s.name == "hostaway.api.request"
                && s.trace_id == trace_id
                && s.attributes.get("http.request.method").map(String::as_str) == Some("PUT")
        })
    })
    .await;
    // A push that waited for its unit to settle ran more than once: each run
    // is a span of the job, each under the change.
    let run = eventually("the run that made the call, ended", DEADLINE, || async {
        telemetry.flush().await;
        receiver
            .spans()
            .into_iter()
            .find(|s| s.span_id == call.parent_span_id)
    })
    .await;
    assert_eq!(
        run.name, "hostaway.sync.job",
        "the Hostaway call is the job's"
    );
    assert_eq!(run.trace_id, trace_id);
    assert_eq!(run.parent_span_id, consumed.span_id);
    assert_eq!(
        call.attributes
            .get("http.response.status_code")
            .map(String::as_str),
        Some("200")
    );
    assert_eq!(consumed.service, "connector-tests");

    // Hostaway received the trace context with the call.
    let requests = world.sim.requests(None).await;
    let traced = requests
        .iter()
        .filter(|r| r.method == "PUT")
        .filter_map(|r| r.traceparent.as_deref())
        .collect::<Vec<_>>();
    assert!(
        traced
            .iter()
            .any(|t| *t == format!("00-{trace_id}-{}-01", call.span_id)),
        "the calendar PUT carries its span's traceparent: {traced:?}"
    );
    dispatcher.stop().await;
    telemetry.shutdown().await;
}
