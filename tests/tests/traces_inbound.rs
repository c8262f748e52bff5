//! One trace per webhook: the gateway's request, the ingestor's processing
//! (the specification's `hostaway.webhook.process`, `map_fields`,
//! `create_booking`) and the booking event, exported over OTLP to a
//! collector in the test process, joined by the W3C `traceparent` in HTTP and
//! in NATS headers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use connector_tests::TestEnv;
use connector_tests::otlp::OtlpReceiver;
use connector_tests::payloads::Reservation;
use reqwest::StatusCode;

const ACCOUNT: &str = "73001";

fn ids() -> (String, String) {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let span = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    (trace, span)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_one_trace_from_the_request_to_the_booking_event() {
    let receiver = OtlpReceiver::start().await;
    let telemetry = receiver.export_here();
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    env.link(ACCOUNT, "303").await;
    let gateway = env
        .start_gateway_with(|settings| settings.trust_traceparent = true)
        .await;
    let ingestor = env.start_ingestor();
    ingestor.ready().await;

    // A trace begun in front of the gateway (a proxy or a test client).
    let (trace_id, caller_span) = ids();
    let webhook = Reservation::new(9_200_001, 303).webhook(ACCOUNT, "reservation.created");
    let auth = mapping::signature::basic_authorization("hostaway", "pw");
    let (status, answer) = gateway
        .post(
            "/webhooks/hostaway",
            &[
                ("authorization", auth.clone()),
                ("traceparent", format!("00-{trace_id}-{caller_span}-01")),
            ],
            webhook.to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    env.count_reaches("the booking", "SELECT count(*) FROM bookings", 1)
        .await;
    env.outbox_drained().await;
    telemetry.flush().await;

    let receive = receiver.span("hostaway.webhook.receive", &trace_id).await;
    let process = receiver.span("hostaway.webhook.process", &trace_id).await;
    let map_fields = receiver
        .span("hostaway.webhook.map_fields", &trace_id)
        .await;
    let create = receiver
        .span("hostaway.webhook.create_booking", &trace_id)
        .await;
    let publish = receiver.span("hostaway.event.publish", &trace_id).await;
    assert_eq!(receive.parent_span_id, caller_span, "the caller's span");
    assert_eq!(
        process.parent_span_id, receive.span_id,
        "the ingestor continues the gateway's span across NATS"
    );
    assert_eq!(map_fields.parent_span_id, process.span_id);
    assert_eq!(create.parent_span_id, process.span_id);
    assert_eq!(publish.parent_span_id, process.span_id);
    let webhook_id = answer["webhookId"].as_str().expect("webhook id");
    assert_eq!(
        process.attributes.get("webhook.id").map(String::as_str),
        Some(webhook_id)
    );
    assert_eq!(
        process.attributes.get("webhook.event").map(String::as_str),
        Some("reservation.created")
    );
    assert_eq!(
        create.attributes.get("outcome").map(String::as_str),
        Some("created")
    );

    // TVL receives the trace with the event.
    let events = env
        .js
        .get_stream(env.topology.events_stream())
        .await
        .unwrap();
    let event = events
        .get_last_raw_message_by_subject(&env.topology.event_subject("booking.created"))
        .await
        .expect("the booking event");
    let traceparent = event
        .headers
        .get("traceparent")
        .map(|v| v.as_str().to_owned())
        .expect("the event carries a traceparent");
    assert_eq!(
        traceparent,
        format!("00-{trace_id}-{}-01", publish.span_id),
        "the event's parent is its publish span"
    );

    // Without a caller's trace the gateway begins one; the ingestor joins it.
    let webhook = Reservation::new(9_200_002, 303)
        .dates("2027-03-01", "2027-03-04")
        .webhook(ACCOUNT, "reservation.created");
    let (status, answer) = gateway
        .post(
            "/webhooks/hostaway",
            &[("authorization", auth)],
            webhook.to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    env.count_reaches("the second booking", "SELECT count(*) FROM bookings", 2)
        .await;
    let webhook_id = answer["webhookId"].as_str().expect("webhook id").to_owned();
    let process = connector_tests::eventually(
        "the second webhook's trace",
        connector_tests::DEADLINE,
        || {
            let (receiver, telemetry, webhook_id) = (&receiver, &telemetry, &webhook_id);
            async move {
                telemetry.flush().await;
                receiver.spans().into_iter().find(|s| {
                    s.name == "hostaway.webhook.process"
                        && s.attributes.get("webhook.id") == Some(webhook_id)
                })
            }
        },
    )
    .await;
    assert_ne!(process.trace_id, trace_id);
    let receive = receiver
        .span("hostaway.webhook.receive", &process.trace_id)
        .await;
    assert!(
        receive.parent_span_id.is_empty(),
        "a root span: {receive:?}"
    );
    assert_eq!(process.parent_span_id, receive.span_id);

    gateway.stop().await;
    ingestor.stop().await;
    telemetry.shutdown().await;
}
