//! Any number of dispatcher replicas, one Hostaway budget: three replicas on
//! three egress addresses (127.0.0.2-4, distinct clients to the simulator as
//! distinct egress IPs are to Hostaway) push a burst for one account, and
//! Hostaway's 20 requests per 10 s for the account hold across all three; a
//! replica killed mid-burst loses nothing; replicas restarted one after the
//! other under load leave no listing waiting for a lease to expire.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;
use connector_tests::outbound::{Availability, Model, OutboundWorld, change_id, day};
use connector_tests::services::Isolated;
use hostaway_sim::SimConfig;
use sync_dispatcher::Roles;

const ACCOUNT: &str = "71020";
const LISTINGS: usize = 60;
const WORKERS: Roles = Roles {
    changes: true,
    jobs: true,
    reconcile: false,
};

fn egress(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

/// A replica with an egress address and identity of its own.
fn replica(world: &OutboundWorld, n: u8) -> Isolated {
    world.start_dispatcher_with(WORKERS, |_, client| {
        client.local_address = Some(egress(n));
        client.egress_id = format!("egress-{n}");
    })
}

/// One availability change on every listing; the model of what Hostaway
/// should end with.
async fn burst(world: &OutboundWorld, first_seq: u64) -> Model {
    let mut model = Model::default();
    for (i, listing) in world.listings.iter().enumerate() {
        let seq = first_seq + i as u64;
        let change = Availability {
            change_id: change_id(seq),
            seq,
            unit: listing.unit,
            start: day(3 + (seq % 20) as i64),
            end: day(6 + (seq % 20) as i64),
            available: Some(seq.is_multiple_of(2)),
            min_stay: Some(2),
            occurred_at: Utc::now(),
            version: 0,
        };
        model.apply_availability(&change);
        world.publish_availability(&change).await;
    }
    model
}

async fn assert_within_hostaway_limits(world: &OutboundWorld) {
    let requests = world.sim.requests(None).await;
    let refused: Vec<_> = requests.iter().filter(|r| r.status == 429).collect();
    assert!(refused.is_empty(), "Hostaway answered 429: {refused:?}");
    let worst = world.sim.max_requests_in_window(Some(ACCOUNT)).await;
    assert!(
        worst <= 20,
        "{worst} requests in one 10 s window for the account"
    );
    let peers: std::collections::HashSet<IpAddr> = requests.iter().map(|r| r.peer).collect();
    assert!(
        peers.len() > 1,
        "the replicas used their own egress addresses: {peers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_account_budget_and_lose_nothing_when_one_dies() {
    let world = OutboundWorld::new(SimConfig::default(), &[(ACCOUNT, LISTINGS)]).await;
    let replicas: Vec<Isolated> = (2..=4).map(|n| replica(&world, n)).collect();
    for replica in &replicas {
        replica.ready().await;
    }
    let model = burst(&world, 1).await;

    // Mid-burst, one replica dies like a killed pod.
    connector_tests::eventually("the burst under way", Duration::from_secs(60), || async {
        let writes = world
            .sim
            .requests(Some(ACCOUNT))
            .await
            .iter()
            .filter(|r| r.path.ends_with("/calendarIntervals") && r.status == 200)
            .count();
        (writes >= 10).then_some(())
    })
    .await;
    let mut replicas = replicas.into_iter();
    let killed = replicas.next().unwrap();
    let killed_calls = killed.metric("hostaway_api_requests_total");
    killed.kill();
    let survivors: Vec<Isolated> = replicas.collect();

    world.converged(&model, Duration::from_secs(120)).await;
    assert_within_hostaway_limits(&world).await;
    assert!(killed_calls > 0.0, "the killed replica had taken part");
    let survivor_calls: Vec<f64> = survivors
        .iter()
        .map(|r| r.metric("hostaway_api_requests_total"))
        .collect();
    assert!(
        survivor_calls.iter().all(|calls| *calls > 0.0),
        "every surviving replica served the account: {survivor_calls:?}"
    );
    assert_eq!(
        world.env.count("SELECT count(*) FROM api_tokens").await,
        1,
        "one token for the account, shared by the replicas"
    );
    let minted = world
        .sim
        .requests(Some(ACCOUNT))
        .await
        .iter()
        .filter(|r| r.path == "/v1/accessTokens")
        .count();
    assert_eq!(minted, 1, "minted once, not once per replica");
    for replica in survivors {
        replica.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_leaves_no_listing_waiting_for_a_lease() {
    let world = OutboundWorld::new(
        SimConfig::default(),
        &[("71021", 15), ("71022", 15), ("71023", 15)],
    )
    .await;
    // Leases and redeliveries far longer than the test: only what a replica
    // gives back on SIGTERM lets another continue in time.
    let start = |n: u8| {
        world.start_dispatcher_with(WORKERS, |settings, client| {
            settings.worker.lease_ttl = Duration::from_secs(300);
            settings.consumers.job_ack_wait = Duration::from_secs(120);
            settings.consumers.change_ack_wait = Duration::from_secs(120);
            settings.shutdown_timeout = Duration::from_secs(3);
            client.local_address = Some(egress(n));
            client.egress_id = format!("egress-{n}");
        })
    };
    let mut running: Vec<Isolated> = (2..=4).map(start).collect();
    for replica in &running {
        replica.ready().await;
    }
    let model = burst(&world, 1_000).await;
    let writes = || async {
        world
            .sim
            .requests(None)
            .await
            .iter()
            .filter(|r| r.path.ends_with("/calendarIntervals") && r.status == 200)
            .count()
    };
    // Restart the replicas one after the other while the burst is pushed.
    for next in 5..=7u8 {
        let before = writes().await;
        // (Or the burst is already through: the restart is then under no load.)
        connector_tests::eventually("progress", Duration::from_secs(60), || async {
            (writes().await >= before + 3 || world.matches(&model).await).then_some(())
        })
        .await;
        let oldest = running.remove(0);
        oldest.stop().await;
        let fresh = start(next);
        fresh.ready().await;
        running.push(fresh);
    }
    world.converged(&model, Duration::from_secs(60)).await;
    // A job whose kind another job's push already carried may still be
    // running (it finds nothing to push); once it ends, no lease is held:
    // none was left behind by a stopped replica (those would hold for 300 s).
    connector_tests::eventually("no lease left behind", Duration::from_secs(20), || async {
        (world
            .env
            .count("SELECT count(*) FROM sync_jobs WHERE lease_until > now()")
            .await
            == 0)
            .then_some(())
    })
    .await;
    for replica in running {
        replica.stop().await;
    }
}

/// A `reconcile_slots` row: schedule, slot, runs, claimed by, completed.
type SlotRow = (String, chrono::DateTime<Utc>, i64, Option<uuid::Uuid>, bool);

/// Schedules at any replica count: a slot claimed by a replica that died
/// before completing it is taken over; the last slot missed while no replica
/// ran is run once at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_replicas_slot_is_taken_over_and_a_missed_slot_runs_at_start() {
    use sync_dispatcher::reconcile::Schedule;
    let world = OutboundWorld::new(SimConfig::default(), &[("71030", 2)]).await;
    let yearly = |kind| Schedule::parse(kind, "0 0 1 1 *").unwrap();
    let slot = yearly(domain::SyncKind::Availability)
        .latest_at_or_before(Utc::now())
        .unwrap();
    let dead = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO reconcile_slots (schedule, last_slot, runs, claimed_by, claimed_at, completed_at) VALUES
         ('availability', $1, 3, $2, now() - interval '1 hour', NULL),
         ('pricing', $1 - interval '1 year', 5, $2, now() - interval '300 days', now() - interval '300 days')",
    )
    .bind(slot)
    .bind(dead)
    .execute(&world.env.pool)
    .await
    .unwrap();
    let dispatcher = world.start_dispatcher_with(
        Roles {
            changes: false,
            jobs: false,
            reconcile: true,
        },
        |settings, _| {
            settings.schedules = vec![
                yearly(domain::SyncKind::Availability),
                yearly(domain::SyncKind::Pricing),
            ];
            settings.slot_takeover = Duration::from_secs(2);
        },
    );
    let slots = || async {
        let rows: Vec<SlotRow> = sqlx::query_as(
            "SELECT schedule, last_slot, runs, claimed_by, completed_at IS NOT NULL
                 FROM reconcile_slots WHERE schedule <> 'accounts' ORDER BY schedule",
        )
        .fetch_all(&world.env.pool)
        .await
        .unwrap();
        rows
    };
    connector_tests::eventually(
        "both slots run by the live replica",
        Duration::from_secs(30),
        || async {
            let rows = slots().await;
            rows.iter()
                .all(|(_, at, _, by, completed)| *at == slot && *by != Some(dead) && *completed)
                .then_some(rows)
        },
    )
    .await;
    let rows = slots().await;
    assert_eq!(
        rows[0].2, 3,
        "the taken-over slot keeps its run (its slice)"
    );
    assert_eq!(rows[1].2, 6, "the missed slot is a new run");
    assert_eq!(
        world.jobs_ever_queued().await,
        4,
        "two listings reconciled for each schedule, once"
    );
    dispatcher.stop().await;
}
