//! Outbound sync end to end: TVL changes on real JetStream, the projection in
//! real PostgreSQL, the sync dispatcher pushing to the Hostaway simulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::Utc;
use connector_tests::outbound::{
    Availability, CHANGES_ONLY, JOBS_ONLY, Model, OutboundWorld, Price, change_id, day, interval,
};
use hostaway_sim::SimConfig;
use serde_json::json;
use sync_dispatcher::Roles;

/// No schedules: nothing but the change path can bring Hostaway in line.
const NO_SCHEDULES: Roles = Roles {
    changes: true,
    jobs: true,
    reconcile: false,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_changes_to_one_listing_end_in_the_fewest_calls_and_the_newest_values() {
    let world = OutboundWorld::new(SimConfig::default(), &[("71001", 1)]).await;
    let listing = world.listings[0].clone();
    let changes = world.start_dispatcher(CHANGES_ONLY);
    changes.ready().await;

    let mut rng = fastrand::Rng::with_seed(7);
    let base = Utc::now() - chrono::Duration::minutes(30);
    let mut model = Model::default();
    let mut availability = Vec::new();
    let mut prices = Vec::new();
    for seq in 0..400u64 {
        let start = rng.i64(1..60);
        let end = (start + rng.i64(0..10)).min(60);
        let occurred_at = base + chrono::Duration::seconds(rng.i64(0..600));
        if seq % 4 == 3 {
            prices.push(Price {
                change_id: change_id(seq),
                seq,
                unit: listing.unit,
                start: day(start),
                end: day(end),
                price_minor: [12_000, 15_000, 17_550][rng.usize(0..3)],
                currency: "USD".into(),
                occurred_at,
            });
        } else {
            availability.push(Availability {
                change_id: change_id(seq),
                seq,
                unit: listing.unit,
                start: day(start),
                end: day(end),
                available: rng.bool().then(|| rng.bool()),
                min_stay: if rng.bool() {
                    Some(rng.u32(1..4))
                } else {
                    None
                },
                occurred_at,
                version: 0,
            });
        }
    }
    availability.retain(|a| a.available.is_some() || a.min_stay.is_some());
    // Out of order (occurred_at is random), and some published twice: once
    // within JetStream's duplicate window, once as a redelivery would be.
    rng.shuffle(&mut availability);
    for change in &availability {
        model.apply_availability(change);
        world.publish_availability(change).await;
    }
    for change in &prices {
        model.apply_price(change);
        world.publish_price(change).await;
    }
    for change in availability.iter().take(40) {
        world.publish_availability(change).await;
        world
            .publish(
                "availability",
                change.unit,
                &format!("{}-again", change.change_id),
                change.encode(),
            )
            .await;
    }
    world.changes_consumed().await;
    assert!(
        changes.metric("hostaway_sync_changes_total") >= (availability.len() + prices.len()) as f64,
        "every change was consumed"
    );

    // The burst has been folded into one job per kind: run them now.
    let jobs = world.start_dispatcher(JOBS_ONLY);
    world.converged(&model, Duration::from_secs(60)).await;
    let minimum = model.minimum_writes(listing.unit);
    connector_tests::eventually("the jobs to finish", Duration::from_secs(30), || async {
        (jobs.metric("hostaway_sync_jobs_total") >= 2.0).then_some(())
    })
    .await;
    // The first push reads the listing (its currency and units), so the
    // other kind's days may ride along in its calls: from the fewest writes
    // of both kinds together up to the fewest of each kind on its own.
    let writes = world.calendar_writes(listing.listing).await;
    let combined = model.minimum_writes_combined(listing.unit);
    assert!(
        (combined..=minimum).contains(&writes),
        "{} changes became {writes} calendar writes (fewest possible: {combined} together, {minimum} per kind)",
        availability.len() + prices.len() + 80
    );
    assert!(minimum <= 2, "60 days fit in one call per kind");
    assert!(world.sim.max_requests_in_window(None).await <= 15);
    jobs.stop().await;
    changes.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_change_arriving_late_never_undoes_a_newer_one() {
    let world = OutboundWorld::new(SimConfig::default(), &[("71002", 1)]).await;
    let listing = world.listings[0].clone();
    let dispatcher = world.start_dispatcher(Roles::ALL);
    dispatcher.ready().await;
    let now = Utc::now();
    let newer = Availability {
        change_id: change_id(2),
        seq: 2,
        unit: listing.unit,
        start: day(3),
        end: day(9),
        available: Some(false),
        min_stay: None,
        occurred_at: now,
        version: 0,
    };
    let older = Availability {
        change_id: change_id(1),
        available: Some(true),
        min_stay: Some(2),
        seq: 1,
        occurred_at: now - chrono::Duration::seconds(30),
        ..newer.clone()
    };
    let mut model = Model::default();
    model.apply_availability(&newer);
    world.publish_availability(&newer).await;
    world.converged(&model, Duration::from_secs(30)).await;
    model.apply_availability(&older);
    world.publish_availability(&older).await;
    world.changes_consumed().await;
    world.converged(&model, Duration::from_secs(30)).await;
    let sim = world.sim.state.lock().await;
    let day5 = &sim.calendar(listing.listing, day(5), day(5))[0].1;
    assert!(!day5.is_available, "the newer 'blocked' stands");
    assert_eq!(
        day5.minimum_stay, 2,
        "the older change's other field still applies"
    );
    drop(sim);
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_that_break_the_contract_are_dead_lettered_and_change_nothing() {
    let world = OutboundWorld::new(SimConfig::default(), &[("71003", 1)]).await;
    let listing = world.listings[0].clone();
    let dispatcher = world.start_dispatcher(Roles::ALL);
    dispatcher.ready().await;

    // Not protobuf; a change naming another unit than its subject.
    world
        .publish(
            "availability",
            listing.unit,
            "garbage-1",
            b"\xff\xfe not protobuf".to_vec(),
        )
        .await;
    let other_unit = domain::UnitId::from_uuid(uuid::Uuid::now_v7());
    let mismatched = Availability {
        change_id: change_id(1),
        seq: 1,
        unit: other_unit,
        start: day(1),
        end: day(3),
        available: Some(false),
        min_stay: None,
        occurred_at: Utc::now(),
        version: 0,
    };
    let body = mismatched.encode();
    world
        .publish("availability", listing.unit, "mismatch-1", body)
        .await;
    // A price in a currency the listing does not use: valid for the contract,
    // refused when pushed (Hostaway does not convert).
    let euros = Price {
        change_id: change_id(2),
        seq: 2,
        unit: listing.unit,
        start: day(1),
        end: day(3),
        price_minor: 9_900,
        currency: "EUR".into(),
        occurred_at: Utc::now(),
    };
    world.publish_price(&euros).await;
    // Something on the job queue that the connector did not write.
    let forged =
        world
            .env
            .topology
            .sync_subject("availability", "71003", Some("not-a-listing"), false);
    world
        .env
        .js
        .publish(forged, b"\x00 forged job".to_vec().into())
        .await
        .expect("forged job published")
        .await
        .expect("forged job acknowledged");

    world
        .env
        .count_reaches(
            "four dead letters",
            "SELECT count(*) FROM dead_letter_queue",
            4,
        )
        .await;
    let names: Vec<(String, String)> = sqlx::query_as(
        "SELECT job_name, error->>'kind' FROM dead_letter_queue ORDER BY job_name, error->>'kind'",
    )
    .fetch_all(&world.env.pool)
    .await
    .unwrap();
    assert_eq!(
        names,
        [
            ("change:availability".into(), "contract".into()),
            ("change:availability".into(), "contract".into()),
            ("sync:malformed".into(), "malformed".into()),
            ("sync:pricing".into(), "business_rule_error".into()),
        ]
    );
    // Dead-lettered, then acknowledged: the work queue empties.
    world.queue_drained().await;
    assert_eq!(
        world
            .env
            .count("SELECT count(*) FROM desired_calendar WHERE available IS NOT NULL")
            .await,
        0,
        "refused changes project nothing"
    );
    assert_eq!(
        world.calendar_writes(listing.listing).await,
        0,
        "nothing was pushed"
    );
    assert!(world.env.stream_len(&world.env.topology.dlq_stream()).await >= 4);

    // The same mistake again: the open letter counts it, no second letter.
    let euros_again = Price {
        change_id: change_id(4),
        seq: 4,
        price_minor: 10_900,
        occurred_at: Utc::now(),
        ..euros.clone()
    };
    world.publish_price(&euros_again).await;
    world.env.count_reaches("the letter to count the repeat", "SELECT count(*) FROM dead_letter_queue WHERE job_name = 'sync:pricing' AND data->>'repeats' = '2'", 1).await;
    assert_eq!(
        world
            .env
            .count("SELECT count(*) FROM dead_letter_queue WHERE job_name = 'sync:pricing'")
            .await,
        1
    );

    // A newer price in the listing's currency supersedes: the job succeeds and
    // its dead letter is resolved.
    let dollars = Price {
        change_id: change_id(3),
        seq: 3,
        currency: "USD".into(),
        occurred_at: Utc::now() + chrono::Duration::seconds(1),
        ..euros.clone()
    };
    world.publish_price(&dollars).await;
    let mut model = Model::default();
    model.apply_price(&dollars);
    world.converged(&model, Duration::from_secs(30)).await;
    world.env.count_reaches("the pricing letter to be resolved", "SELECT count(*) FROM dead_letter_queue WHERE job_name = 'sync:pricing' AND resolved_at IS NULL", 0).await;

    // The forged job cannot be replayed (nothing to decode), and changes
    // nothing when tried; an operator closes it by hand, once.
    let forged: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM dead_letter_queue WHERE job_name = 'sync:malformed'")
            .fetch_one(&world.env.pool)
            .await
            .unwrap();
    let letter = store::dlq::get(&world.env.pool, forged)
        .await
        .unwrap()
        .unwrap();
    let queue = world.queue();
    let jobs_queued_before = world.jobs_ever_queued().await;
    let refused =
        sync_dispatcher::dead_letter::replay(&queue, &world.env.js, &world.env.pool, &letter).await;
    assert!(
        matches!(
            refused,
            Err(service_kit::dead_letter::ReplayError::Foreign { .. })
        ),
        "a malformed job is not replayable: {refused:?}"
    );
    assert_eq!(
        world.jobs_ever_queued().await,
        jobs_queued_before,
        "nothing was queued"
    );
    assert!(store::dlq::resolve(&world.env.pool, forged).await.unwrap());
    assert!(
        !store::dlq::resolve(&world.env.pool, forged).await.unwrap(),
        "already closed"
    );
    assert!(matches!(
        store::dlq::resolve(&world.env.pool, uuid::Uuid::now_v7()).await,
        Err(store::StoreError::NotFound(_))
    ));
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_reads_hostaway_back_and_pushes_only_the_drift() {
    let world = OutboundWorld::new(SimConfig::default(), &[("71004", 1)]).await;
    let listing = world.listings[0].clone();
    let dispatcher = world.start_dispatcher(NO_SCHEDULES);
    dispatcher.ready().await;
    let now = Utc::now();
    let block = Availability {
        change_id: change_id(1),
        seq: 1,
        unit: listing.unit,
        start: day(1),
        end: day(20),
        available: Some(true),
        min_stay: Some(2),
        occurred_at: now,
        version: 0,
    };
    let price = Price {
        change_id: change_id(2),
        seq: 2,
        unit: listing.unit,
        start: day(1),
        end: day(20),
        price_minor: 20_000,
        currency: "USD".into(),
        occurred_at: now,
    };
    let mut model = Model::default();
    model.apply_availability(&block);
    model.apply_price(&price);
    world.publish_availability(&block).await;
    world.publish_price(&price).await;
    world.converged(&model, Duration::from_secs(30)).await;
    connector_tests::eventually("both jobs done", Duration::from_secs(30), || async {
        (dispatcher.metric("hostaway_sync_jobs_total") >= 2.0).then_some(())
    })
    .await;

    // A manager edits Hostaway by hand: Hostaway sends no webhook for that.
    world
        .sim
        .edit_calendar(
            listing.listing,
            &interval(day(5), day(7), json!({"isAvailable": 0})),
        )
        .await
        .unwrap();
    world
        .sim
        .edit_calendar(
            listing.listing,
            &interval(day(12), day(12), json!({"price": 99})),
        )
        .await
        .unwrap();
    assert!(!world.differences(&listing, &model).await.is_empty());
    let writes_before = world.calendar_writes(listing.listing).await;
    let ranges_before = dispatcher.metric("hostaway_sync_ranges_pushed_total");
    let jobs_before = dispatcher.metric("hostaway_sync_jobs_total");

    let queue = world.queue();
    for kind in [domain::SyncKind::Availability, domain::SyncKind::Pricing] {
        let queued = sync_dispatcher::reconcile::enqueue_all(&world.env.pool, &queue, kind, None)
            .await
            .unwrap();
        assert_eq!(queued.queued, 1);
    }
    world.converged(&model, Duration::from_secs(30)).await;
    connector_tests::eventually(
        "the reconciliation jobs to finish",
        Duration::from_secs(30),
        || async {
            (dispatcher.metric("hostaway_sync_jobs_total") >= jobs_before + 2.0).then_some(())
        },
    )
    .await;
    assert_eq!(
        world.calendar_writes(listing.listing).await - writes_before,
        1,
        "both kinds' drift in one write"
    );
    assert_eq!(
        dispatcher.metric("hostaway_sync_ranges_pushed_total") - ranges_before,
        1.0,
        "only the drift was pushed: days 5-7 and day 12's price, one range (the days between want the same values)"
    );
    assert_eq!(dispatcher.metric("hostaway_reconcile_drift_total"), 4.0);
    dispatcher.stop().await;
}

/// A burst over several listings and accounts, for the fault tests.
async fn burst(world: &OutboundWorld, per_listing: u64, seed: u64) -> Model {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut model = Model::default();
    let base = Utc::now() - chrono::Duration::minutes(5);
    let mut seq = seed * 1_000_000;
    for listing in &world.listings {
        for _ in 0..per_listing {
            seq += 1;
            let start = rng.i64(1..40);
            let change = Availability {
                change_id: change_id(seq),
                seq,
                unit: listing.unit,
                start: day(start),
                end: day(start + rng.i64(0..5)),
                available: Some(rng.bool()),
                min_stay: None,
                occurred_at: base + chrono::Duration::seconds(rng.i64(0..240)),
                version: 0,
            };
            model.apply_availability(&change);
            world.publish_availability(&change).await;
        }
    }
    model
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_5xx_and_a_429_storm_it_converges_and_never_exceeds_the_limits() {
    let world = OutboundWorld::new(SimConfig::default(), &[("71005", 3), ("71006", 3)]).await;
    world.sim.set_faults(hostaway_sim::Faults::errors(0.3));
    let dispatcher = world.start_dispatcher_with(Roles::ALL, |settings, _| {
        settings.worker.retry.max_attempts = 20;
    });
    dispatcher.ready().await;
    let model = burst(&world, 15, 1).await;
    // A storm of 429s in the middle of it.
    connector_tests::eventually("some jobs to fail", Duration::from_secs(30), || async {
        (world.sim.requests(None).await.len() > 10).then_some(())
    })
    .await;
    // The storm lasts until Hostaway has answered 429 at least once (the
    // account's circuit may be open when it starts, and sends nothing).
    world.sim.set_faults(hostaway_sim::Faults {
        error_rate: 0.3,
        ..hostaway_sim::Faults::storm(Duration::from_secs(120))
    });
    let mut model = model;
    model.merge(burst(&world, 5, 2).await);
    connector_tests::eventually("a 429 answered", Duration::from_secs(90), || async {
        world
            .sim
            .requests(None)
            .await
            .iter()
            .any(|r| r.status == 429)
            .then_some(())
    })
    .await;
    world.sim.set_faults(hostaway_sim::Faults::errors(0.3));
    world.converged(&model, Duration::from_secs(120)).await;
    let statuses: Vec<u16> = world
        .sim
        .requests(None)
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    assert!(statuses.iter().any(|s| *s >= 500), "5xx were injected");
    assert!(statuses.contains(&429), "a 429 storm was injected");
    for account in ["71005", "71006"] {
        assert!(
            world.sim.max_requests_in_window(Some(account)).await <= 20,
            "account {account} within 20/10 s"
        );
    }
    assert!(
        world.sim.max_requests_in_window(None).await <= 15,
        "the egress IP within 15/10 s"
    );
    assert_eq!(
        world
            .env
            .count("SELECT count(*) FROM dead_letter_queue")
            .await,
        0,
        "nothing was given up"
    );
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_circuit_parks_the_account_and_resumes_it() {
    let world = OutboundWorld::new(SimConfig::default(), &[("71007", 3)]).await;
    world.sim.set_faults(hostaway_sim::Faults::errors(1.0));
    let dispatcher = world.start_dispatcher_with(Roles::ALL, |settings, client| {
        settings.worker.retry.max_attempts = 50;
        client.breaker.failure_threshold = 3;
        client.breaker.reset_timeout = Duration::from_secs(2);
    });
    dispatcher.ready().await;
    let model = burst(&world, 4, 3).await;
    connector_tests::eventually(
        "jobs to be parked by the open circuit",
        Duration::from_secs(30),
        || async {
            (dispatcher.metric("hostaway_sync_jobs_deferred_total") > 0.0
                && connector_tests::services::metric_labelled(
                    &dispatcher.metrics,
                    "hostaway_sync_jobs_deferred_total",
                    ("reason", "circuit_open"),
                ) > 0.0)
                .then_some(())
        },
    )
    .await;
    // While open, the account's jobs wait without calling Hostaway: requests
    // only trickle (one trial per reset period).
    let before = world.sim.requests(Some("71007")).await.len();
    connector_tests::eventually("more jobs parked", Duration::from_secs(10), || async {
        (connector_tests::services::metric_labelled(
            &dispatcher.metrics,
            "hostaway_sync_jobs_deferred_total",
            ("reason", "circuit_open"),
        ) >= 3.0)
            .then_some(())
    })
    .await;
    let during = world.sim.requests(Some("71007")).await.len() - before;
    assert!(
        during <= 6,
        "an open circuit sends (almost) nothing: {during} requests"
    );
    world.sim.set_faults(hostaway_sim::Faults::default());
    world.converged(&model, Duration::from_secs(60)).await;
    assert_eq!(
        world
            .env
            .count("SELECT count(*) FROM dead_letter_queue")
            .await,
        0,
        "parked, not dropped"
    );
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_killed_mid_job_loses_no_change() {
    let world = OutboundWorld::new(SimConfig::default(), &[("71008", 3)]).await;
    // Slow answers: the kill lands while a push is in flight.
    world.sim.set_faults(hostaway_sim::Faults {
        latency_ms: 1500,
        ..hostaway_sim::Faults::default()
    });
    let first = world.start_dispatcher(Roles::ALL);
    first.ready().await;
    let mut model = burst(&world, 10, 4).await;
    world.a_job_running().await;
    first.kill();
    // Changes keep coming while no dispatcher runs.
    model.merge(burst(&world, 5, 5).await);
    world.sim.set_faults(hostaway_sim::Faults::default());
    let second = world.start_dispatcher(Roles::ALL);
    world.converged(&model, Duration::from_secs(60)).await;
    assert_eq!(
        world
            .env
            .count("SELECT count(*) FROM dead_letter_queue")
            .await,
        0
    );
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_while_its_listing_is_being_pushed_is_pushed_too() {
    let world = OutboundWorld::new(SimConfig::default(), &[("71012", 1)]).await;
    let listing = world.listings[0].clone();
    // No reconciliation to heal a lost change; slow answers keep the first
    // push in flight while the later changes arrive.
    let dispatcher = world.start_dispatcher(NO_SCHEDULES);
    dispatcher.ready().await;
    world.sim.set_faults(hostaway_sim::Faults {
        latency_ms: 3000,
        ..hostaway_sim::Faults::default()
    });
    let change = |seq: u64, start: i64, available: bool| Availability {
        change_id: change_id(seq),
        seq,
        unit: listing.unit,
        start: day(start),
        end: day(start + 3),
        available: Some(available),
        min_stay: None,
        occurred_at: Utc::now() + chrono::Duration::seconds(seq as i64),
        version: 0,
    };
    let mut model = Model::default();
    let first = change(1, 2, false);
    model.apply_availability(&first);
    world.publish_availability(&first).await;
    // The token has come back: the job is past its settle wait, and its push
    // (a second of token activation, then three of latency) is under way.
    connector_tests::eventually("the job's token", Duration::from_secs(30), || async {
        world
            .sim
            .requests(None)
            .await
            .iter()
            .any(|r| r.path.ends_with("accessTokens"))
            .then_some(())
    })
    .await;
    for (seq, start, available) in [(2, 10, false), (3, 3, true)] {
        let later = change(seq, start, available);
        model.apply_availability(&later);
        world.publish_availability(&later).await;
    }
    world.sim.set_faults(hostaway_sim::Faults::default());
    world.converged(&model, Duration::from_secs(60)).await;
    // The later changes folded into the running job's message, which was
    // delivered again: no second job was ever queued (one queued after the
    // first was acknowledged would be lost with a crash in between).
    assert_eq!(world.jobs_ever_queued().await, 1, "one job message in all");
    world.queue_drained().await;
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_whose_webhook_never_came_appears_through_polling() {
    let world = OutboundWorld::new(SimConfig::default(), &[("71009", 1)]).await;
    let listing = world.listings[0].clone();
    let ingestor = world.env.start_ingestor();
    let dispatcher = world.start_dispatcher(Roles::ALL);
    dispatcher.ready().await;
    // No webhook target: Hostaway never delivers this one.
    let mut fields = serde_json::Map::new();
    fields.insert("arrivalDate".into(), json!(day(10).to_string()));
    fields.insert("departureDate".into(), json!(day(13).to_string()));
    let id = world
        .sim
        .create_reservation("71009", listing.listing, fields)
        .await
        .unwrap();
    assert!(world.sim.deliveries().await.is_empty());

    let queue = world.queue();
    let poll = || async {
        sync_dispatcher::reconcile::enqueue_all(
            &world.env.pool,
            &queue,
            domain::SyncKind::Reservations,
            None,
        )
        .await
        .unwrap()
    };
    assert_eq!(poll().await.queued, 1);
    let booking = connector_tests::eventually(
        "the missed reservation as a booking",
        Duration::from_secs(30),
        || async {
            world
                .env
                .bookings()
                .await
                .into_iter()
                .find(|b| b.external_id == id.to_string())
        },
    )
    .await;
    assert_eq!(booking.unit_id, listing.unit.as_uuid());
    assert_eq!(world.env.blocks().await.len(), 1, "its nights are blocked");

    // TVL opens the week around it: the guest's nights are not reopened,
    // though no calendar read has shown them reserved yet.
    let open = Availability {
        change_id: change_id(1),
        seq: 1,
        unit: listing.unit,
        start: day(8),
        end: day(15),
        available: Some(true),
        min_stay: None,
        occurred_at: Utc::now(),
        version: 0,
    };
    world.publish_availability(&open).await;
    let pushed_open = || async {
        let days: Vec<chrono::NaiveDate> = sqlx::query_scalar(
            "SELECT day FROM remote_calendar WHERE hostaway_listing_id = $1 AND available ORDER BY day",
        )
        .bind(listing.listing.to_string())
        .fetch_all(&world.env.pool)
        .await
        .unwrap();
        days
    };
    connector_tests::eventually(
        "the free nights pushed",
        Duration::from_secs(30),
        || async { (pushed_open().await.len() >= 5).then_some(()) },
    )
    .await;
    assert_eq!(
        pushed_open().await,
        [day(8), day(9), day(13), day(14), day(15)],
        "the booked nights 10-12 were left to Hostaway"
    );
    assert!(
        world
            .env
            .count("SELECT count(*) FROM reservation_poll_cursors")
            .await
            == 1,
        "the cursor moved"
    );

    // A cursor left unpolled for three hours shows on the gauge its alert
    // reads (HostawayReservationPollCursorStalled)…
    sqlx::query("UPDATE reservation_poll_cursors SET polled_at = now() - interval '3 hours'")
        .execute(&world.env.pool)
        .await
        .unwrap();
    connector_tests::eventually(
        "the stalled cursor on the gauge",
        Duration::from_secs(30),
        || async {
            (dispatcher.metric("hostaway_reservation_poll_oldest_seconds") >= 3.0 * 3600.0)
                .then_some(())
        },
    )
    .await;

    // …and polling again finds the reservation again (the overlap), changes
    // nothing, and the cursor is current again.
    let polled = dispatcher.metric("hostaway_reservations_polled_total");
    assert_eq!(poll().await.queued, 1);
    connector_tests::eventually("the second poll", Duration::from_secs(30), || async {
        (dispatcher.metric("hostaway_reservations_polled_total") > polled).then_some(())
    })
    .await;
    connector_tests::eventually(
        "the cursor current again",
        Duration::from_secs(30),
        || async {
            (dispatcher.metric("hostaway_reservation_poll_oldest_seconds") < 600.0).then_some(())
        },
    )
    .await;
    ingestor.stop().await;
    assert_eq!(world.env.bookings().await.len(), 1, "no duplicate booking");
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waiting_absorbs_further_changes_to_its_listing() {
    use domain::{AccountId, ListingId, SyncKind};
    use store::sync_jobs::JobKey;
    use sync_dispatcher::queue::{Enqueued, Mode};
    let world = OutboundWorld::new(SimConfig::default(), &[("71010", 2)]).await;
    let queue = world.queue();
    let key = |listing: &str, kind| JobKey {
        account: AccountId::parse("71010").unwrap(),
        listing: Some(ListingId::parse(listing).unwrap()),
        kind,
    };
    let first = key(
        &world.listings[0].listing.to_string(),
        SyncKind::Availability,
    );
    assert_eq!(
        queue.enqueue(&first, Mode::Push).await.unwrap(),
        Enqueued::Queued
    );
    assert_eq!(
        queue.enqueue(&first, Mode::Push).await.unwrap(),
        Enqueued::Folded
    );
    assert_eq!(
        queue.enqueue(&first, Mode::Push).await.unwrap(),
        Enqueued::Folded
    );
    // Another mode, kind or listing is another job.
    assert_eq!(
        queue.enqueue(&first, Mode::Reconcile).await.unwrap(),
        Enqueued::Queued
    );
    let pricing = key(&world.listings[0].listing.to_string(), SyncKind::Pricing);
    assert_eq!(
        queue.enqueue(&pricing, Mode::Push).await.unwrap(),
        Enqueued::Queued
    );
    let second = key(
        &world.listings[1].listing.to_string(),
        SyncKind::Availability,
    );
    assert_eq!(
        queue.enqueue(&second, Mode::Push).await.unwrap(),
        Enqueued::Queued
    );
    assert_eq!(
        world
            .env
            .stream_len(&world.env.topology.sync_stream())
            .await,
        4
    );

    // Once the waiting job has run (and been acknowledged), a change queues anew.
    let dispatcher = world.start_dispatcher(JOBS_ONLY);
    world.queue_drained().await;
    assert_eq!(
        queue.enqueue(&first, Mode::Push).await.unwrap(),
        Enqueued::Queued
    );
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_goes_first_and_pricing_is_not_starved() {
    let world = OutboundWorld::new(SimConfig::default(), &[("71011", 8)]).await;
    let changes = world.start_dispatcher(CHANGES_ONLY);
    changes.ready().await;
    let now = Utc::now() - chrono::Duration::minutes(1);
    for (n, listing) in world.listings.iter().enumerate() {
        let seq = n as u64 * 2;
        world
            .publish_price(&Price {
                change_id: change_id(seq),
                seq,
                unit: listing.unit,
                start: day(1),
                end: day(5),
                price_minor: 18_000,
                currency: "USD".into(),
                occurred_at: now,
            })
            .await;
        world
            .publish_availability(&Availability {
                change_id: change_id(seq + 1),
                seq: seq + 1,
                unit: listing.unit,
                start: day(1),
                end: day(5),
                available: Some(false),
                min_stay: None,
                occurred_at: now,
                version: 0,
            })
            .await;
    }
    world.changes_consumed().await;
    // One worker, so the order of completion is the order of dispatch.
    let jobs = world.start_dispatcher_with(JOBS_ONLY, |settings, _| settings.job_concurrency = 1);
    connector_tests::eventually("all 16 jobs", Duration::from_secs(90), || async {
        (world
            .env
            .count("SELECT count(*) FROM sync_jobs WHERE last_success_at IS NOT NULL")
            .await
            == 16)
            .then_some(())
    })
    .await;
    let order: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM sync_jobs ORDER BY last_success_at")
            .fetch_all(&world.env.pool)
            .await
            .unwrap();
    // The very first job goes to whichever kind's pull answers first; after
    // that the weights rule (their exact order is unit-tested in `lanes`).
    let mean = |kind: &str| {
        let positions: Vec<usize> = order
            .iter()
            .enumerate()
            .filter(|(_, k)| *k == kind)
            .map(|(i, _)| i)
            .collect();
        positions.iter().sum::<usize>() as f64 / positions.len() as f64
    };
    assert!(
        mean("availability") + 2.0 < mean("pricing"),
        "availability first: {order:?}"
    );
    let last_availability = order.iter().rposition(|k| k == "availability").unwrap();
    let first_pricing = order.iter().position(|k| k == "pricing").unwrap();
    assert!(
        first_pricing < last_availability,
        "pricing is served while availability still waits: {order:?}"
    );
    jobs.stop().await;
    changes.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_details_reach_hostaway_and_a_hand_edit_is_healed() {
    use events::Message as _;
    let world = OutboundWorld::new(SimConfig::default(), &[("71012", 1)]).await;
    let listing = world.listings[0].clone();
    let dispatcher = world.start_dispatcher(Roles::ALL);
    dispatcher.ready().await;
    let change = events::pb::ListingDetailsChange {
        header: Some(sync_dispatcher::contract::header(
            "details-1",
            listing.unit,
            Utc::now(),
            0,
            "test",
        )),
        name: Some("Sea view loft".into()),
        person_capacity: Some(5),
        check_out_hour: Some(10),
        ..Default::default()
    };
    world
        .publish("listing", listing.unit, "details-1", change.encode_to_vec())
        .await;
    let field = |name: &'static str| {
        let sim = world.sim.clone();
        let id = listing.listing;
        async move {
            sim.state.lock().await.accounts["71012"].listings[&id]
                .get(name)
                .cloned()
        }
    };
    connector_tests::eventually(
        "the details on Hostaway",
        Duration::from_secs(30),
        || async {
            (field("name").await == Some(json!("Sea view loft"))
                && field("personCapacity").await == Some(json!(5))
                && field("checkOutTime").await == Some(json!(10)))
            .then_some(())
        },
    )
    .await;
    let puts = |requests: Vec<hostaway_sim::RequestRecord>| {
        requests
            .iter()
            .filter(|r| r.method == "PUT" && r.path == format!("/v1/listings/{}", listing.listing))
            .count()
    };
    assert_eq!(
        puts(world.sim.requests(None).await),
        1,
        "one call for all fields"
    );

    // Renamed in Hostaway by hand; the daily listing reconciliation puts it back.
    world
        .sim
        .state
        .lock()
        .await
        .accounts
        .get_mut("71012")
        .unwrap()
        .listings
        .get_mut(&listing.listing)
        .unwrap()
        .insert("name".into(), json!("Renamed by hand"));
    let queue = world.queue();
    sync_dispatcher::reconcile::enqueue_all(
        &world.env.pool,
        &queue,
        domain::SyncKind::Listing,
        None,
    )
    .await
    .unwrap();
    connector_tests::eventually("the name healed", Duration::from_secs(30), || async {
        (field("name").await == Some(json!("Sea view loft"))).then_some(())
    })
    .await;
    assert_eq!(puts(world.sim.requests(None).await), 2);
    assert_eq!(
        connector_tests::services::metric_labelled(
            &dispatcher.metrics,
            "hostaway_reconcile_drift_total",
            ("sync_type", "listing")
        ),
        1.0,
        "only the name drifted"
    );
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_whose_availability_and_prices_changed_is_pushed_in_one_call() {
    let world = OutboundWorld::new(SimConfig::default(), &[("71020", 1)]).await;
    let listing = world.listings[0].clone();
    // The listing's currency is known (an earlier price push or listing read
    // learned it): an availability push never waits to read it.
    store::remote::record_listing_reads(
        &world.env.pool,
        "71020",
        &[store::remote::ListingRead {
            listing: listing.listing.to_string(),
            currency: Some(domain::Currency::parse("USD").unwrap()),
            units: 0,
        }],
    )
    .await
    .unwrap();
    let changes = world.start_dispatcher(CHANGES_ONLY);
    changes.ready().await;
    let now = Utc::now();
    let closed = Availability {
        change_id: change_id(1),
        seq: 1,
        unit: listing.unit,
        start: day(3),
        end: day(6),
        available: Some(false),
        min_stay: Some(2),
        occurred_at: now,
        version: 0,
    };
    let priced = Price {
        change_id: change_id(2),
        seq: 2,
        unit: listing.unit,
        start: day(1),
        end: day(10),
        price_minor: 17_550,
        currency: "USD".into(),
        occurred_at: now,
    };
    world.publish_availability(&closed).await;
    world.publish_price(&priced).await;
    world.changes_consumed().await;
    let mut model = Model::default();
    model.apply_availability(&closed);
    model.apply_price(&priced);
    assert_eq!(model.minimum_writes(listing.unit), 2, "one per kind");
    assert_eq!(
        model.minimum_writes_combined(listing.unit),
        1,
        "both kinds in one call"
    );

    // Both jobs are queued; whichever runs first carries the other's days.
    let jobs = world.start_dispatcher(JOBS_ONLY);
    jobs.ready().await;
    world.converged(&model, Duration::from_secs(30)).await;
    world.queue_drained().await;
    assert_eq!(
        world.calendar_writes(listing.listing).await,
        1,
        "availability, stay rules and prices in one calendarIntervals call"
    );
    changes.stop().await;
    jobs.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_the_database_refuses_never_holds_back_the_others_of_its_batch() {
    let world = OutboundWorld::new(SimConfig::default(), &[("71021", 2)]).await;
    let (healthy, poisoned) = (world.listings[0].clone(), world.listings[1].clone());
    // PostgreSQL refuses every write of one unit's calendar.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.unit_id = '{}' THEN RAISE EXCEPTION 'poisoned unit'; END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON desired_calendar
             FOR EACH ROW EXECUTE FUNCTION poison();",
        poisoned.unit
    )))
    .execute(&world.env.pool)
    .await
    .unwrap();

    // A burst waits on the stream, the poisoned change in its middle: the
    // consumer takes it in batches.
    let now = Utc::now();
    let mut model = Model::default();
    for seq in 0..60u64 {
        let unit = if seq == 30 {
            poisoned.unit
        } else {
            healthy.unit
        };
        let change = Availability {
            change_id: change_id(seq),
            seq,
            unit,
            start: day(1 + (seq % 20) as i64),
            end: day(2 + (seq % 20) as i64),
            available: Some(seq % 3 == 0),
            min_stay: None,
            occurred_at: now - chrono::Duration::seconds(60 - seq as i64),
            version: 0,
        };
        if unit == healthy.unit {
            model.apply_availability(&change);
        }
        world.publish_availability(&change).await;
    }
    let changes = world.start_dispatcher_with(CHANGES_ONLY, |settings, _| {
        settings.change_batch = 64;
        settings.change_concurrency = 1;
    });
    changes.ready().await;
    connector_tests::eventually(
        "the poisoned change dead-lettered alone",
        Duration::from_secs(60),
        || async {
            (world
                .env
                .count("SELECT count(*) FROM dead_letter_queue WHERE job_name LIKE 'change:%'")
                .await
                == 1)
                .then_some(())
        },
    )
    .await;
    world.changes_consumed().await;
    let projected: i64 = world
        .env
        .count("SELECT count(*) FROM desired_calendar")
        .await;
    assert_eq!(
        projected as usize,
        model.units.get(&healthy.unit).map_or(0, |days| days.len()),
        "every healthy change projected; nothing of the poisoned unit"
    );
    assert_eq!(
        changes.metric("hostaway_sync_changes_total"),
        59.0,
        "the 59 others counted once each"
    );
    changes.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_unit_listing_is_opened_and_closed_with_desired_units_to_sell() {
    let world = OutboundWorld::new(SimConfig::default(), &[("71030", 0)]).await;
    let units = json!({"listingUnits": [{"id": 1}, {"id": 2}, {"id": 3}]});
    let listing = world
        .sim
        .add_listing("71030", units.as_object().unwrap().clone())
        .await
        .unwrap();
    let unit = world.env.link("71030", &listing.to_string()).await;
    let dispatcher = world.start_dispatcher(NO_SCHEDULES);
    dispatcher.ready().await;
    let now = Utc::now();
    for (seq, (start, end, available)) in [(3, 5, false), (6, 7, true)].into_iter().enumerate() {
        let seq = seq as u64 + 1;
        world
            .publish_availability(&Availability {
                change_id: change_id(seq),
                seq,
                unit,
                start: day(start),
                end: day(end),
                available: Some(available),
                min_stay: Some(2),
                occurred_at: now,
                version: 0,
            })
            .await;
    }
    // Hostaway ignores isAvailable on a multi-unit listing: only
    // desiredUnitsToSell closes it.
    let sold = || async {
        let state = world.sim.state.lock().await;
        state
            .calendar(listing, day(3), day(7))
            .into_iter()
            .map(|(_, d)| (d.desired_units_to_sell, d.minimum_stay))
            .collect::<Vec<_>>()
    };
    let wanted = vec![
        (Some(0), 2),
        (Some(0), 2),
        (Some(0), 2),
        (Some(3), 2),
        (Some(3), 2),
    ];
    connector_tests::eventually(
        "the units to follow TVL",
        Duration::from_secs(30),
        || async { (sold().await == wanted).then_some(()) },
    )
    .await;
    world.queue_drained().await;

    // A manager reopens one unit of a closed night by hand: reconciliation
    // reads it back and closes it again.
    world
        .sim
        .edit_calendar(
            listing,
            json!({"startDate": day(4).to_string(), "endDate": day(4).to_string(), "desiredUnitsToSell": 1})
                .as_object()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_ne!(sold().await, wanted);
    world
        .queue()
        .enqueue(
            &store::sync_jobs::JobKey {
                account: domain::AccountId::parse("71030").unwrap(),
                listing: Some(domain::ListingId::parse(listing.to_string()).unwrap()),
                kind: domain::SyncKind::Availability,
            },
            sync_dispatcher::queue::Mode::Reconcile,
        )
        .await
        .unwrap();
    connector_tests::eventually(
        "the drift to be closed again",
        Duration::from_secs(30),
        || async { (sold().await == wanted).then_some(()) },
    )
    .await;
    dispatcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_on_its_own_schedule_is_reconciled_by_it_and_the_others_are_not() {
    let world = OutboundWorld::new(SimConfig::default(), &[("71040", 1), ("71041", 1)]).await;
    let (own, fleet) = (world.listings[0].clone(), world.listings[1].clone());
    // Every 2 s for 71040; 71041 keeps the fleet's schedules, none here.
    let mut config = sync_dispatcher::channel_config::ChannelConfig::default();
    config.sync.schedules.availability = "*/2 * * * * *".into();
    assert_eq!(config.validate(), Ok(()));
    store::channel_config::set(
        &world.env.pool,
        &domain::AccountId::parse("71040").unwrap(),
        Some(0),
        &config.to_json(),
        "test",
    )
    .await
    .unwrap();
    let dispatcher = world.start_dispatcher_with(Roles::ALL, |settings, _| {
        settings.account_schedule_tick = Duration::from_secs(1);
    });
    dispatcher.ready().await;
    let mut model = Model::default();
    for (seq, listing) in [&own, &fleet].into_iter().enumerate() {
        let change = Availability {
            change_id: change_id(seq as u64 + 1),
            seq: seq as u64 + 1,
            unit: listing.unit,
            start: day(1),
            end: day(5),
            available: Some(true),
            min_stay: Some(2),
            occurred_at: Utc::now(),
            version: 0,
        };
        model.apply_availability(&change);
        world.publish_availability(&change).await;
    }
    world.converged(&model, Duration::from_secs(30)).await;

    // Both calendars edited by hand in Hostaway: only the account on its own
    // schedule is read back and healed.
    for listing in [&own, &fleet] {
        world
            .sim
            .edit_calendar(
                listing.listing,
                json!({"startDate": day(3).to_string(), "endDate": day(3).to_string(), "minimumStay": 9})
                    .as_object()
                    .unwrap(),
            )
            .await
            .unwrap();
    }
    connector_tests::eventually(
        "the account's own schedule to heal its calendar",
        Duration::from_secs(30),
        || async {
            world
                .differences(&own, &model)
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await;
    world.queue_drained().await;
    assert_eq!(
        world.differences(&fleet, &model).await.len(),
        1,
        "the other account waits for the fleet's schedule"
    );
    dispatcher.stop().await;
}
