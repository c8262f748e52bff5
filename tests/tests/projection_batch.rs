//! Projecting a batch of TVL changes in one statement per kind ends exactly
//! where applying them one by one, in any order, ends (newest wins per day
//! and field), on real PostgreSQL; and only units whose days moved get a new
//! revision.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use connector_tests::TestEnv;
use domain::{ChangeStamp, Currency, SyncKind, UnitId};
use store::desired::{AvailabilityChange, PriceChange};

fn day(n: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2027, 1, 1).unwrap() + Duration::days(n)
}

fn stamp(rng: &mut fastrand::Rng, id: u64) -> ChangeStamp {
    // Few distinct instants: ties are broken by version, then change id.
    let at = Utc.timestamp_opt(1_800_000_000 + rng.i64(0..5), 0).unwrap();
    ChangeStamp::new(at, rng.u64(0..2), &format!("c{id:05}")).unwrap()
}

type Row = (
    NaiveDate,
    Option<bool>,
    Option<i32>,
    Option<i32>,
    Option<i64>,
    Option<String>,
);

async fn calendar(env: &TestEnv, unit: UnitId) -> Vec<Row> {
    sqlx::query_as(
        "SELECT day, available, min_stay, max_stay, price_minor, currency
         FROM desired_calendar WHERE unit_id = $1 ORDER BY day",
    )
    .bind(unit.as_uuid())
    .fetch_all(&env.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_ends_where_the_changes_one_by_one_end_in_any_order() {
    let env = TestEnv::new().await;
    let usd = Currency::parse("USD").unwrap();
    let eur = Currency::parse("EUR").unwrap();
    for seed in 0..12u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let (batched, single) = (
            UnitId::from_uuid(uuid::Uuid::new_v4()),
            UnitId::from_uuid(uuid::Uuid::new_v4()),
        );
        // What was there before: some days already hold newer values.
        let mut id = 0u64;
        let mut availability = Vec::new();
        let mut prices = Vec::new();
        for _ in 0..rng.usize(1..40) {
            id += 1;
            let start = rng.i64(0..20);
            let end = start + rng.i64(0..6);
            if rng.bool() {
                availability.push(AvailabilityChange {
                    unit: batched,
                    start: day(start),
                    end: day(end),
                    available: rng.bool().then(|| rng.bool()),
                    min_stay: rng.bool().then(|| rng.i32(1..4)),
                    max_stay: rng.bool().then(|| rng.i32(5..9)),
                    stamp: stamp(&mut rng, id),
                });
            } else {
                prices.push(PriceChange {
                    unit: batched,
                    start: day(start),
                    end: day(end),
                    price_minor: rng.i64(1..5) * 1000,
                    currency: if rng.bool() { usd } else { eur },
                    stamp: stamp(&mut rng, id),
                });
            }
        }
        // Half of them were applied earlier, one by one, to both units.
        let (earlier_a, later_a) = availability.split_at(availability.len() / 2);
        let (earlier_p, later_p) = prices.split_at(prices.len() / 2);
        let mut conn = env.pool.acquire().await.unwrap();
        for unit in [batched, single] {
            for change in earlier_a {
                let change = AvailabilityChange {
                    unit,
                    ..change.clone()
                };
                store::desired::apply_availability(&mut conn, &change)
                    .await
                    .unwrap();
            }
            for change in earlier_p {
                let change = PriceChange {
                    unit,
                    ..change.clone()
                };
                store::desired::apply_price(&mut conn, &change)
                    .await
                    .unwrap();
            }
        }
        // The rest: as one batch to one unit; one by one, shuffled, to the other.
        let a: Vec<&AvailabilityChange> = later_a.iter().collect();
        let p: Vec<&PriceChange> = later_p.iter().collect();
        let moved = store::desired::apply_calendar_batch(&mut conn, &a, &p)
            .await
            .unwrap();
        let mut shuffled_a: Vec<AvailabilityChange> = later_a
            .iter()
            .map(|c| AvailabilityChange {
                unit: single,
                ..c.clone()
            })
            .collect();
        let mut shuffled_p: Vec<PriceChange> = later_p
            .iter()
            .map(|c| PriceChange {
                unit: single,
                ..c.clone()
            })
            .collect();
        rng.shuffle(&mut shuffled_a);
        rng.shuffle(&mut shuffled_p);
        let mut one_by_one = [0u64; 2];
        for change in &shuffled_a {
            one_by_one[0] += store::desired::apply_availability(&mut conn, change)
                .await
                .unwrap();
        }
        for change in &shuffled_p {
            one_by_one[1] += store::desired::apply_price(&mut conn, change)
                .await
                .unwrap();
        }
        drop(conn);
        assert_eq!(
            calendar(&env, batched).await,
            calendar(&env, single).await,
            "seed {seed}: the batch ends where the changes one by one end"
        );
        for (kind, singly) in [
            (SyncKind::Availability, one_by_one[0]),
            (SyncKind::Pricing, one_by_one[1]),
        ] {
            let in_batch = moved
                .iter()
                .find(|(u, k, _)| *u == batched && *k == kind)
                .map_or(0, |(_, _, n)| *n);
            assert_eq!(
                in_batch > 0,
                singly > 0,
                "seed {seed}: {kind:?} moved in the batch exactly when it moved one by one"
            );
            let revision: Option<i64> = sqlx::query_scalar(
                "SELECT revision FROM desired_revisions WHERE unit_id = $1 AND kind = $2",
            )
            .bind(batched.as_uuid())
            .bind(kind.as_str())
            .fetch_optional(&env.pool)
            .await
            .unwrap();
            let earlier = match kind {
                SyncKind::Availability => !earlier_a.is_empty(),
                _ => !earlier_p.is_empty(),
            };
            if in_batch == 0 && !earlier {
                assert_eq!(revision, None, "seed {seed}: no revision for nothing moved");
            }
        }
    }
}
