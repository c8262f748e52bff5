//! deploy/nats/permissions.conf on a real `nats-server`: every service runs
//! with its own user (the operations API too) and is refused nothing it needs, and a user cannot
//! publish on another service's subjects (the gateway no TVL change, the
//! ingestor no webhook). The ingestor also refuses, and keeps, a webhook whose
//! subject names another account than its payload.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use async_nats::jetstream::{self, message::PublishMessage};
use chrono::Utc;
use connector_tests::cluster::SecuredNats;
use connector_tests::outbound::{Availability, OutboundWorld, change_id, day};
use connector_tests::payloads::Reservation;
use connector_tests::{DEADLINE, TestEnv, eventually};
use domain::AccountId;
use events::pb;
use hostaway_sim::SimConfig;
use reqwest::StatusCode;
use service_kit::nats::{ConsumerSettings, StreamSettings};
use sync_dispatcher::Roles;

const NAMESPACE: &str = "hostaway";
const ACCOUNT: &str = "72001";

fn permissions_file() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats/permissions.conf")
}

/// Publishes as `user` (a plain publish: a refused one is dropped by the
/// server, which logs the violation) and flushes.
async fn publish_as(server: &SecuredNats, user: &str, client_name: &str, subject: &str) {
    let client =
        service_kit::nats::connect(&server.users.url(&server.url(), user), None, client_name)
            .await
            .expect("client");
    eventually("the client to connect", DEADLINE, || async {
        service_kit::nats::is_connected(&client).then_some(())
    })
    .await;
    let _ = client
        .publish(subject.to_owned(), "forged".as_bytes().into())
        .await;
    let _ = client.flush().await;
}

async fn refused(server: &SecuredNats, user: &str, subject: &str) {
    eventually(
        &format!("the server to refuse {user} publishing {subject}"),
        DEADLINE,
        || async {
            server
                .violations()
                .iter()
                .any(|line| line.contains(&format!("\"{user}\"")) && line.contains(subject))
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_works_with_its_own_user_and_may_not_publish_for_another() {
    let server = SecuredNats::start(&permissions_file()).await;

    // The provisioning Job's user creates every stream and consumer.
    let provisioner = service_kit::nats::connect(
        &server.users.url(&server.url(), "provisioner"),
        None,
        "hostaway-admin",
    )
    .await
    .expect("provisioner");
    let js = jetstream::new(provisioner);
    let topology = service_kit::nats::Topology::new(NAMESPACE).unwrap();
    service_kit::nats::provision(&js, &topology, &StreamSettings::default())
        .await
        .expect("streams provisioned by the provisioner");
    service_kit::nats::provision_consumers(&js, &topology, &ConsumerSettings::default())
        .await
        .expect("consumers provisioned by the provisioner");

    let env = TestEnv::on_secured_nats(&server.url(), server.users.clone(), NAMESPACE).await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    env.link(ACCOUNT, "301").await;

    // Inbound: gateway → ingestor → booking and its event, each as itself.
    let gateway = env.start_gateway().await;
    let ingestor = env.start_ingestor();
    ingestor.ready().await;
    let webhook = Reservation::new(9_100_001, 301).webhook(ACCOUNT, "reservation.created");
    let (status, answer) = gateway.post_basic("hostaway", "pw", &webhook).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    env.count_reaches("one booking", "SELECT count(*) FROM bookings", 1)
        .await;
    env.outbox_drained().await;
    assert_eq!(
        env.booking_events().await.len(),
        1,
        "booking.created published"
    );

    // Parked, then released by the ingestor once its listing is linked.
    let waiting = Reservation::new(9_100_003, 305).webhook(ACCOUNT, "reservation.created");
    assert_eq!(
        gateway.post_basic("hostaway", "pw", &waiting).await.0,
        StatusCode::OK
    );
    env.count_reaches(
        "the webhook parked",
        "SELECT count(*) FROM parked_webhooks",
        1,
    )
    .await;
    env.link(ACCOUNT, "305").await;
    env.count_reaches("the released booking", "SELECT count(*) FROM bookings", 2)
        .await;

    // Kept for the dead-letter queue (an event this version does not know).
    let unknown = serde_json::json!({
        "event": "reservation.teleported",
        "accountId": ACCOUNT,
        "data": {"id": 1},
    });
    assert_eq!(
        gateway.post_basic("hostaway", "pw", &unknown).await.0,
        StatusCode::OK
    );
    env.count_reaches(
        "the unknown event dead-lettered",
        "SELECT count(*) FROM dead_letter_queue",
        1,
    )
    .await;

    // Outbound: a change from TVL's user, projected and pushed to Hostaway by
    // the dispatcher's.
    let world = OutboundWorld::with_env(env, SimConfig::default(), &[("72002", 1)]).await;
    let dispatcher = world.start_dispatcher(Roles::ALL);
    dispatcher.ready().await;
    let listing = world.listings[0].clone();
    let change = Availability {
        change_id: change_id(1),
        seq: 1,
        unit: listing.unit,
        start: day(3),
        end: day(5),
        available: Some(false),
        min_stay: None,
        occurred_at: Utc::now(),
        version: 0,
    };
    let tvl = service_kit::nats::connect(&server.users.url(&server.url(), "tvl"), None, "tvl")
        .await
        .expect("tvl client");
    jetstream::new(tvl)
        .send_publish(
            world
                .env
                .topology
                .change_subject("availability", &listing.unit.to_string()),
            PublishMessage::build()
                .payload(change.encode().into())
                .message_id(&change.change_id),
        )
        .await
        .expect("change published")
        .await
        .expect("change acknowledged");
    eventually("the change pushed to Hostaway", DEADLINE, || async {
        (world.calendar_writes(listing.listing).await > 0).then_some(())
    })
    .await;

    // Reservation polling: the dispatcher publishes what it read as a webhook.
    let mut fields = serde_json::Map::new();
    fields.insert("arrivalDate".into(), serde_json::json!(day(20).to_string()));
    fields.insert(
        "departureDate".into(),
        serde_json::json!(day(22).to_string()),
    );
    world
        .sim
        .create_reservation("72002", listing.listing, fields)
        .await
        .unwrap();
    sync_dispatcher::reconcile::enqueue_all(
        &world.env.pool,
        &world.queue(),
        domain::SyncKind::Reservations,
        None,
    )
    .await
    .unwrap();
    world
        .env
        .count_reaches("the polled booking", "SELECT count(*) FROM bookings", 3)
        .await;
    // The operations API, as its own user: a dead letter replayed, a push
    // and a poll queued, booking events re-emitted.
    let api = world
        .env
        .start_admin_api(
            &world.sim.base_url(),
            "http://127.0.0.1:1/webhooks/hostaway",
        )
        .await;
    let operator = world.env.admin_token(admin_api::auth::Role::Operator).await;
    let mut client = api.client(Some(&operator)).await;
    let replayed = client
        .replay_dead_letters(admin_api::proto::ReplayDeadLettersRequest {
            ids: vec![],
            filter: Some(admin_api::proto::DeadLetterFilter::default()),
        })
        .await
        .expect("replayed")
        .into_inner();
    assert_eq!((replayed.done, replayed.failed), (1, 0), "{replayed:?}");
    for (sync_type, mode) in [("availability", "push"), ("reservations", "reconcile")] {
        client
            .trigger_sync(admin_api::proto::TriggerSyncRequest {
                account_id: "72002".into(),
                listing_id: String::new(),
                sync_type: sync_type.into(),
                mode: mode.into(),
            })
            .await
            .expect("queued");
    }
    let reemitted = client
        .reemit_booking_events(admin_api::proto::ReemitBookingEventsRequest {
            since: Some(prost_types::Timestamp::default()),
            account_id: String::new(),
        })
        .await
        .expect("re-emitted")
        .into_inner();
    assert_eq!((reemitted.published, reemitted.failed), (3, 0));
    world
        .env
        .count_reaches(
            "the replayed letter back on the stream and dead-lettered again",
            "SELECT max(replay_count)::bigint FROM dead_letter_queue",
            1,
        )
        .await;

    assert_eq!(
        server.violations(),
        Vec::<String>::new(),
        "no service was refused anything it does"
    );

    // The gateway may not publish a TVL change, nor a released webhook.
    let env = &world.env;
    let change_subject = env
        .topology
        .change_subject("availability", &listing.unit.to_string());
    publish_as(&server, "gateway", "webhook-gateway", &change_subject).await;
    refused(&server, "gateway", &change_subject).await;
    let released = format!("{NAMESPACE}.webhooks.released.{ACCOUNT}.reservation_created");
    publish_as(&server, "gateway", "webhook-gateway", &released).await;
    refused(&server, "gateway", &released).await;

    // The ingestor may not publish a webhook on the gateway's subjects.
    let webhook_subject = env.topology.webhook_subject(ACCOUNT, "reservation_created");
    publish_as(&server, "ingestor", "booking-ingestor", &webhook_subject).await;
    refused(&server, "ingestor", &webhook_subject).await;

    // The provisioner may neither publish nor delete.
    publish_as(&server, "provisioner", "hostaway-admin", &webhook_subject).await;
    refused(&server, "provisioner", &webhook_subject).await;
    let delete = format!("$JS.API.STREAM.DELETE.{}", env.topology.webhooks_stream());
    publish_as(&server, "provisioner", "hostaway-admin", &delete).await;
    refused(&server, "provisioner", &delete).await;

    // The operations API may not touch the streams themselves.
    publish_as(&server, "admin-api", "admin-api", &delete).await;
    refused(&server, "admin-api", &delete).await;

    assert_eq!(
        env.count("SELECT count(*) FROM bookings").await,
        3,
        "nothing refused was applied"
    );
    gateway.stop().await;
    ingestor.stop().await;
    dispatcher.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_whose_subject_names_another_account_is_kept_not_applied() {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    env.add_basic_account("72003", "other", "pw2").await;
    env.link(ACCOUNT, "302").await;
    let ingestor = env.start_ingestor();
    ingestor.ready().await;

    // A well-formed webhook of account 72001 on account 72003's subject, as a
    // client allowed to publish only for 72003 would send it.
    let account = AccountId::parse(ACCOUNT).unwrap();
    let reservation = Reservation::new(9_100_002, 302).data();
    let outgoing = service_kit::inbound::api_read(
        &env.topology,
        &account,
        reservation.as_object().unwrap(),
        pb::Source::ApiFetch,
        "forged".into(),
    );
    let forged_subject = env.topology.webhook_subject("72003", "reservation_updated");
    env.js
        .send_publish(
            forged_subject.clone(),
            PublishMessage::build()
                .payload(outgoing.payload)
                .message_id(&outgoing.webhook_id),
        )
        .await
        .unwrap()
        .await
        .unwrap();

    env.count_reaches(
        "the webhook dead-lettered",
        "SELECT count(*) FROM dead_letter_queue",
        1,
    )
    .await;
    let (error, subject): (String, Option<String>) =
        sqlx::query_as("SELECT error->>'message', data->>'subject' FROM dead_letter_queue")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(
        error.contains("72003") && error.contains(ACCOUNT),
        "the reason names both accounts: {error}"
    );
    assert_eq!(subject.as_deref(), Some(forged_subject.as_str()));
    assert_eq!(env.count("SELECT count(*) FROM bookings").await, 0);

    // The same webhook on its own account's subject is applied.
    env.js
        .send_publish(
            env.topology.webhook_subject(ACCOUNT, "reservation_updated"),
            PublishMessage::build().payload(outgoing_payload(&env, &account)),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    env.count_reaches("the booking", "SELECT count(*) FROM bookings", 1)
        .await;
    ingestor.stop().await;
}

fn outgoing_payload(env: &TestEnv, account: &AccountId) -> bytes::Bytes {
    let reservation = Reservation::new(9_100_002, 302).data();
    service_kit::inbound::api_read(
        &env.topology,
        account,
        reservation.as_object().unwrap(),
        pb::Source::ApiFetch,
        "honest".into(),
    )
    .payload
}
