//! The durability promised for production, on a real JetStream cluster: three
//! `nats-server` processes on loopback, every stream replicated on all three,
//! the webhooks stream's leader killed with SIGKILL while webhooks pour in.
//! A webhook answered 200 is a booking, exactly once; what could not be made
//! durable during the election was answered 503 (Hostaway delivers it again).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use connector_tests::cluster::NatsCluster;
use connector_tests::payloads::Reservation;
use connector_tests::{TestEnv, eventually};
use reqwest::StatusCode;
use service_kit::nats::StreamSettings;

const ACCOUNT: &str = "59001";
const POSTERS: u64 = 4;
const PER_POSTER: u64 = 100;
const FIRST_ID: u64 = 6_000_000;
const FIRST_LISTING: u64 = 400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_leader_killed_mid_load_loses_no_webhook_answered_200() {
    let mut cluster = NatsCluster::start(3).await;
    let streams = StreamSettings {
        replicas: 3,
        ..StreamSettings::default()
    };
    let env = TestEnv::on_cluster(&cluster.urls(), streams).await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    for n in 0..POSTERS * PER_POSTER {
        env.link(ACCOUNT, &(FIRST_LISTING + n).to_string()).await;
    }
    let webhooks = env.topology.webhooks_stream();
    let replicas = env.stream_config(&webhooks).await.num_replicas;
    assert_eq!(
        replicas, 3,
        "the webhooks stream is replicated on every node"
    );

    let gateway = env
        .start_gateway_with(|settings| settings.publish_timeout = Duration::from_secs(2))
        .await;
    let ingestor = env.start_ingestor();
    ingestor.ready().await;

    // Four posters, each its own reservations, one listing per reservation
    // (no two overlap); the leader is killed once a quarter are accepted. A
    // webhook answered 503 is delivered again shortly, as Hostaway does: it
    // may have been stored before the answer was lost, and must still become
    // one booking.
    let accepted = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    let post = |poster: u64| {
        let (gateway, accepted, refused) = (&gateway, &accepted, &refused);
        async move {
            let mut answered = Vec::new();
            for n in 0..PER_POSTER {
                let offset = poster * PER_POSTER + n;
                let body = Reservation::new(FIRST_ID + offset, FIRST_LISTING + offset)
                    .webhook(ACCOUNT, "reservation.created");
                let started = Instant::now();
                loop {
                    let (status, answer) = gateway.post_basic("hostaway", "pw", &body).await;
                    if status == StatusCode::OK {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    assert_eq!(
                        status,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "only 200 or 503 while a node dies: {answer}"
                    );
                    refused.fetch_add(1, Ordering::Relaxed);
                    assert!(
                        started.elapsed() < Duration::from_secs(60),
                        "the gateway took webhooks again within a minute"
                    );
                    // Hostaway's redelivery, not a synchronisation.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                answered.push(FIRST_ID + offset);
            }
            answered
        }
    };
    let js = env.js.clone();
    let killer = async {
        eventually(
            "a quarter of the webhooks accepted",
            Duration::from_secs(60),
            || async {
                (accepted.load(Ordering::Relaxed) as u64 >= POSTERS * PER_POSTER / 4).then_some(())
            },
        )
        .await;
        let leader = cluster.leader_of(&js, &webhooks).await;
        cluster.kill(&leader);
        leader
    };
    let (killed, answers) = tokio::join!(killer, futures::future::join_all((0..POSTERS).map(post)));
    let answered_200: BTreeSet<String> = answers
        .into_iter()
        .flatten()
        .map(|id| id.to_string())
        .collect();
    tracing::info!(
        killed,
        accepted = answered_200.len(),
        refused = refused.load(Ordering::Relaxed),
        "webhooks posted while the leader died"
    );

    // Every webhook answered 200 is a booking, and TVL hears of it once.
    let bookings = eventually(
        "a booking for every webhook answered 200",
        Duration::from_secs(90),
        || async {
            let bookings: BTreeSet<String> = env
                .bookings()
                .await
                .into_iter()
                .map(|booking| booking.external_id)
                .collect();
            answered_200.is_subset(&bookings).then_some(bookings)
        },
    )
    .await;
    assert_eq!(bookings, answered_200, "no booking from nowhere");
    env.outbox_drained().await;
    let mut created: BTreeMap<String, usize> = BTreeMap::new();
    for event in env.booking_events().await {
        if event.change == events::pb::BookingChange::Created as i32 {
            let booking = event.booking.expect("the booking");
            *created.entry(booking.external_id).or_default() += 1;
        }
    }
    for id in &bookings {
        assert_eq!(created.get(id), Some(&1), "one booking.created for {id}");
    }

    // A service starts while a node is down: the URL list has the others.
    let late = env.start_gateway().await;
    let body = Reservation::new(FIRST_ID + 999_000, FIRST_LISTING + 999_000)
        .webhook(ACCOUNT, "reservation.created");
    let (status, answer) = late.post_basic("hostaway", "pw", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    late.stop().await;
    ingestor.stop().await;
    gateway.stop().await;
}
