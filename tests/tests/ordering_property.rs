//! Promise 2, as a property over real PostgreSQL: any delivery of a
//! reservation's history (every version at least once, some repeated, in any
//! order, one webhook per transaction or several) ends in the state one
//! in-order delivery gives.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use booking_ingestor::ingest;
use connector_tests::TestEnv;
use connector_tests::payloads::{Reservation, inbound};
use proptest::prelude::*;
use serde_json::Value;

const ACCOUNT: &str = "70001";

#[derive(Debug, Clone)]
struct Step {
    status: &'static str,
    arrival_day: u32,
    nights: u32,
    total_cents: u32,
    event: &'static str,
}

fn arb_history() -> impl Strategy<Value = Vec<Step>> {
    let step = (
        prop::sample::select(vec![
            "new",
            "modified",
            "cancelled",
            "awaitingPayment",
            "ownerStay",
            "inquiry",
        ]),
        1u32..20,
        1u32..8,
        0u32..500_000,
        prop::sample::select(vec![
            "reservation.created",
            "reservation.updated",
            "reservation.cancelled",
        ]),
    )
        .prop_map(|(status, arrival_day, nights, total_cents, event)| Step {
            status,
            arrival_day,
            nights,
            total_cents,
            event,
        });
    prop::collection::vec(step, 1..6)
}

/// The webhook bodies of a history for one reservation: versions are stamped
/// in pairs (i/2 minutes after the first), so same-second ties are decided by
/// the rest of the version, through PostgreSQL too.
fn bodies(history: &[Step], reservation: u64, listing: u64) -> Vec<Value> {
    history
        .iter()
        .enumerate()
        .map(|(i, step)| {
            Reservation::new(reservation, listing)
                .status(step.status)
                .dates(
                    &format!("2026-05-{:02}", step.arrival_day),
                    &format!("2026-05-{:02}", step.arrival_day + step.nights),
                )
                .total(f64::from(step.total_cents) / 100.0)
                .updated(&format!("2026-03-01 10:{:02}:00", i / 2))
                .webhook(ACCOUNT, step.event)
        })
        .collect()
}

/// What TVL can see of a reservation: the booking row and its block.
async fn state(env: &TestEnv, reservation: u64) -> Option<Value> {
    let row: Option<Value> = sqlx::query_scalar(
        "SELECT to_jsonb(x) FROM (
             SELECT k.status, k.arrival_date, k.departure_date, k.total_amount_minor, k.currency,
                    k.guest_name, k.source_updated_at, k.version_terminal, k.version_event,
                    encode(k.version_digest, 'hex') AS digest, b.kind, b.start_date, b.end_date
             FROM bookings k LEFT JOIN availability_blocks b ON b.booking_id = k.id
             WHERE k.external_id = $1) x",
    )
    .bind(reservation.to_string())
    .fetch_optional(&env.pool)
    .await
    .unwrap();
    row
}

fn expected(outcome: Result<ingest::Applied, ingest::IngestError>) {
    match outcome {
        Ok(_)
        | Err(ingest::IngestError::Park {
            reason: store::parked::ParkReason::IncompletePayload,
            ..
        }) => {}
        Err(error) => panic!("ingest failed: {error}"),
    }
}

async fn deliver(env: &TestEnv, bodies: &[Value]) {
    for body in bodies {
        expected(ingest::apply(&env.pool, &inbound(ACCOUNT, body)).await);
    }
}

/// The same, several webhooks per transaction (the ingestor's batches):
/// consecutive runs of the given sizes.
async fn deliver_in_batches(env: &TestEnv, bodies: &[Value], sizes: &[usize]) {
    let inbounds: Vec<_> = bodies.iter().map(|body| inbound(ACCOUNT, body)).collect();
    let mut rest = inbounds.as_slice();
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (batch, after) = rest.split_at((*size).clamp(1, rest.len()));
        for outcome in booking_ingestor::batch::apply_batch(&env.pool, batch).await {
            expected(outcome);
        }
        rest = after;
    }
}

/// The bodies in version order: what "one in-order delivery" means when two
/// versions share a second (Hostaway's own order within a second is unknowable).
fn in_version_order(bodies: &[Value]) -> Vec<Value> {
    let mut keyed: Vec<(domain::Version, Value)> = bodies
        .iter()
        .map(|body| (inbound(ACCOUNT, body), body))
        .map(|(inbound, body)| {
            let update = mapping::map_reservation(
                &inbound.account,
                inbound.event,
                &inbound.data,
                inbound.sent_at,
                inbound.origin(),
            )
            .expect("the generated payloads map");
            (update.value.version, body.clone())
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, body)| body).collect()
}

#[test]
fn any_delivery_order_ends_in_the_in_order_state() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The same payloads (same ids, hence same digests) go to three
    // databases: in version order to one, repeated and shuffled to the
    // others, one by one to one and in batches to the other.
    let (in_order_env, shuffled_env, batched_env) = runtime.block_on(async {
        let a = TestEnv::new().await;
        let b = TestEnv::new().await;
        let c = TestEnv::new().await;
        for env in [&a, &b, &c] {
            env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
        }
        (a, b, c)
    });
    let cases = std::sync::atomic::AtomicU64::new(0);
    proptest!(ProptestConfig::with_cases(40), |(history in arb_history(), seed in any::<u64>(), repeats in prop::collection::vec(any::<prop::sample::Index>(), 0..5), sizes in prop::collection::vec(1usize..8, 1..4))| {
        let case = cases.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        runtime.block_on(async {
            let (reservation, listing) = (1_000_000 + case, 500_000 + case);
            for env in [&in_order_env, &shuffled_env, &batched_env] {
                env.link(ACCOUNT, &listing.to_string()).await;
            }
            let versions = bodies(&history, reservation, listing);
            deliver(&in_order_env, &in_version_order(&versions)).await;

            let mut delivered = versions.clone();
            delivered.extend(repeats.iter().map(|i| i.get(&versions).clone()));
            fastrand::Rng::with_seed(seed).shuffle(&mut delivered);
            deliver(&shuffled_env, &delivered).await;
            deliver_in_batches(&batched_env, &delivered, &sizes).await;

            let expected = state(&in_order_env, reservation).await;
            let actual = state(&shuffled_env, reservation).await;
            assert_eq!(actual, expected, "history {history:?}, delivered in another order");
            let batched = state(&batched_env, reservation).await;
            assert_eq!(batched, expected, "history {history:?}, delivered in batches of {sizes:?}");

            // Exactly one booking.created per booking that exists.
            for env in [&shuffled_env, &batched_env] {
                let created: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM outbox WHERE subject_suffix = 'booking.created'
                     AND position(convert_to($1, 'UTF8') in payload) > 0",
                )
                .bind(reservation.to_string())
                .fetch_one(&env.pool)
                .await
                .unwrap();
                assert_eq!(created, i64::from(actual.is_some()), "booking.created once");
            }
        });
    });
}
