//! Promise 3 and the 503 rule: PostgreSQL down, the gateway keeps accepting and
//! the work drains when it returns; NATS down, the gateway answers 503 (which
//! Hostaway retries) instead of a 200 it could not keep.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use connector_tests::payloads::Reservation;
use connector_tests::services::metric_value;
use connector_tests::{DEADLINE, TestEnv, eventually};
use domain::AccountId;
use reqwest::StatusCode;
use secrecy::SecretString;
use webhook_gateway::credentials::AccountAuth;

const ACCOUNT: &str = "70001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_down_the_gateway_accepts_and_bookings_appear_when_it_returns() {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    env.link(ACCOUNT, "300101").await;
    env.link(ACCOUNT, "300102").await;
    let gateway = env.start_gateway().await;
    let ingestor = env.start_ingestor();

    let first = Reservation::new(3_000_001, 300_101);
    assert_eq!(
        gateway
            .post_basic(
                "hostaway",
                "pw",
                &first.webhook(ACCOUNT, "reservation.created")
            )
            .await
            .0,
        StatusCode::OK
    );
    eventually("the first booking", DEADLINE, || async {
        (env.bookings().await.len() == 1).then_some(())
    })
    .await;

    env.pg_proxy.cut();
    let during = [
        Reservation::new(3_000_002, 300_102).webhook(ACCOUNT, "reservation.created"),
        Reservation::new(3_000_003, 300_101)
            .dates("2026-06-01", "2026-06-05")
            .webhook(ACCOUNT, "reservation.created"),
        first
            .clone()
            .status("modified")
            .updated("2026-03-02 10:00:00")
            .webhook(ACCOUNT, "reservation.updated"),
    ];
    for body in &during {
        let (status, answer) = gateway.post_basic("hostaway", "pw", body).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "accepted while PostgreSQL is down: {answer}"
        );
    }
    assert!(
        gateway.health.is_ready(),
        "the gateway stays ready without its database"
    );
    assert_eq!(
        env.stream_len(&env.topology.webhooks_stream()).await,
        3,
        "the three unprocessed webhooks wait on JetStream"
    );
    eventually("the ingestor to notice the outage", DEADLINE, || async {
        (ingestor.metric("hostaway_ingestor_database_available") == 0.0).then_some(())
    })
    .await;
    assert_eq!(
        env.bookings().await.len(),
        1,
        "nothing was applied during the outage"
    );

    env.pg_proxy.restore();
    let bookings = eventually(
        "the waiting webhooks to drain",
        Duration::from_secs(60),
        || async {
            let bookings = env.bookings().await;
            (bookings.len() == 3 && bookings.iter().any(|b| b.status == "modified"))
                .then_some(bookings)
        },
    )
    .await;
    assert_eq!(
        bookings.iter().filter(|b| b.status == "modified").count(),
        1
    );
    assert_eq!(
        env.count("SELECT count(*) FROM dead_letter_queue").await,
        0,
        "an outage never dead-letters a webhook"
    );
    assert_eq!(
        env.count("SELECT coalesce(max(attempts), 0)::bigint FROM webhook_log")
            .await,
        0,
        "an outage uses up no attempts"
    );
    ingestor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_started_while_postgresql_is_down_serves_the_environment_account() {
    let env = TestEnv::new().await;
    // The account exists in the database (for the ingestor's links), but the
    // gateway cannot reach the database when it starts.
    env.add_basic_account(ACCOUNT, "hostaway", "db-password")
        .await;
    env.add_basic_account("70002", "other-account", "other-password")
        .await;
    env.link(ACCOUNT, "300101").await;
    env.pg_proxy.cut();
    let gateway = env
        .start_gateway_with(|settings| {
            settings.bootstrap = Some(AccountAuth {
                account: AccountId::parse(ACCOUNT).unwrap(),
                login: None,
                passwords: vec![],
                hmac_secrets: vec![SecretString::from("env-hmac-secret".to_owned())],
                enabled: true,
            });
        })
        .await;
    let body = Reservation::new(3_100_001, 300_101)
        .webhook(ACCOUNT, "reservation.created")
        .to_string();
    let now = chrono::Utc::now().timestamp();
    let (status, answer) = gateway
        .post_hmac(
            "/webhooks/hostaway",
            "env-hmac-secret",
            now,
            body.as_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        metric_value(&gateway.metrics, "hostaway_gateway_accounts_loaded"),
        0.0
    );
    // An account the gateway has not been able to load yet is told to retry
    // (503), not refused for good (401).
    let other = Reservation::new(3_100_002, 300_101).webhook("70002", "reservation.created");
    let (status, answer) = gateway
        .post_basic("other-account", "other-password", &other)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");

    env.pg_proxy.restore();
    let ingestor = env.start_ingestor();
    eventually("the booking", DEADLINE, || async {
        (env.bookings().await.len() == 1).then_some(())
    })
    .await;
    ingestor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_the_gateway_answers_503_and_recovers() {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    let gateway = env.start_gateway().await;
    let body = Reservation::new(3_200_001, 300_101).webhook(ACCOUNT, "reservation.created");

    env.nats_proxy.cut();
    eventually("the gateway to see NATS gone", DEADLINE, || async {
        (!gateway.health.is_ready()).then_some(())
    })
    .await;
    let (status, answer) = gateway.post_basic("hostaway", "pw", &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"], "temporarily_unavailable");
    assert_eq!(env.stream_len(&env.topology.webhooks_stream()).await, 0);

    env.nats_proxy.restore();
    eventually("the gateway to accept again", DEADLINE, || async {
        (gateway.post_basic("hostaway", "pw", &body).await.0 == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(env.stream_len(&env.topology.webhooks_stream()).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_jetstream_refuses_is_a_503_not_a_200() {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    let gateway = env.start_gateway().await;
    // Connected, but the stream is gone: nothing can make the webhook durable.
    env.js
        .delete_stream(env.topology.webhooks_stream())
        .await
        .unwrap();
    let body = Reservation::new(3_300_001, 300_101).webhook(ACCOUNT, "reservation.created");
    let (status, _) = gateway.post_basic("hostaway", "pw", &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        metric_value(&gateway.metrics, "hostaway_webhooks_published_total"),
        0.0
    );
}

/// A webhook whose transaction always times out (a lock held elsewhere, for
/// good) is not retried for free forever: after a few free timeouts each
/// counts as an attempt, and it reaches the dead-letter queue, from where it
/// is replayed once the cause is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_always_times_out_reaches_the_dlq() {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    env.link(ACCOUNT, "300101").await;
    let gateway = env.start_gateway().await;
    let ingestor = env.start_ingestor_tuned(|settings, pool| {
        settings.free_timeouts = 2;
        pool.lock_timeout = Some(Duration::from_millis(200));
    });
    // Someone holds the reservation's lock and never lets go.
    let holder = env.hold_reservation_lock(ACCOUNT, "3300001").await;
    let body = Reservation::new(3_300_001, 300_101).webhook(ACCOUNT, "reservation.created");
    assert_eq!(
        gateway.post_basic("hostaway", "pw", &body).await.0,
        StatusCode::OK
    );
    let (attempts, kind) = env
        .dead_lettered("the poisoned webhook in the dead-letter queue")
        .await;
    assert_eq!(kind, "database_timeout");
    assert_eq!(attempts, 3, "counted once the free timeouts were spent");
    assert_eq!(
        connector_tests::services::metric_labelled(
            &ingestor.metrics,
            "hostaway_ingest_retries_total",
            ("reason", "database_timeout")
        ),
        4.0,
        "two free retries, then two counted ones; the third counted attempt is the last"
    );
    let timeouts: i32 = sqlx::query_scalar("SELECT timeouts FROM webhook_log")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(timeouts, 0, "a replay gets its free timeouts again");

    holder.rollback().await.unwrap();
    let letter = store::dlq::list_filtered(&env.pool, &store::dlq::Filter::default(), 10)
        .await
        .unwrap()
        .remove(0);
    booking_ingestor::dead_letter::replay(&env.js, &env.topology, &env.pool, &letter)
        .await
        .unwrap();
    eventually("the replayed webhook applied", DEADLINE, || async {
        env.bookings().await.into_iter().next()
    })
    .await;
    ingestor.stop().await;
}

/// One owner of the topology and the schema: a service finding a stream
/// configured otherwise, or a schema behind its binary, reports not ready,
/// naming the difference, and changes nothing; it becomes ready once
/// `hostaway-admin` has provisioned or migrated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_reports_a_topology_or_schema_it_does_not_expect_and_changes_nothing() {
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, "hostaway", "pw").await;
    let expected = service_kit::nats::StreamSettings {
        webhooks_max_bytes: 1 << 30,
        ..service_kit::nats::StreamSettings::default()
    };
    let gateway = env
        .launch_gateway(|settings| {
            settings.streams = expected.clone();
            settings.topology_check_interval = Duration::from_millis(200);
        })
        .await;
    let problem = eventually("the difference reported", DEADLINE, || async {
        gateway
            .health
            .problems()
            .get("streams")
            .filter(|problem| problem.contains("expected"))
            .cloned()
    })
    .await;
    assert!(
        problem.contains("max_bytes is -1, expected 1073741824"),
        "{problem}"
    );
    assert!(!gateway.health.is_ready());
    let webhooks = || async {
        env.stream_config(&env.topology.webhooks_stream())
            .await
            .max_bytes
    };
    assert_eq!(
        webhooks().await,
        -1,
        "the gateway did not change the stream"
    );
    eventually("credentials loaded", DEADLINE, || async {
        gateway
            .health
            .report()
            .get("credentials")
            .copied()
            .unwrap_or(false)
            .then_some(())
    })
    .await;
    let body = Reservation::new(3_400_001, 300_101).webhook(ACCOUNT, "reservation.created");
    let (status, _) = gateway.post_basic("hostaway", "pw", &body).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "not ready is for the orchestrator: webhooks are still kept"
    );

    // The admin tool provisions what the gateway expects: ready.
    service_kit::nats::provision(&env.js, &env.topology, &expected)
        .await
        .unwrap();
    eventually("the gateway ready once provisioned", DEADLINE, || async {
        gateway.health.is_ready().then_some(())
    })
    .await;

    // A schema behind the ingestor's binary: not ready, naming the versions.
    // (The newest migration marked not applied; its tables stay.)
    let newest: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE _sqlx_migrations SET success = false WHERE version = $1")
        .bind(newest)
        .execute(&env.pool)
        .await
        .unwrap();
    let ingestor = env.start_ingestor_with(|settings| settings.streams = expected.clone());
    let problem = eventually("the schema reported", DEADLINE, || async {
        ingestor
            .health
            .problems()
            .get("consumer")
            .filter(|problem| problem.contains("schema"))
            .cloned()
    })
    .await;
    assert!(
        problem.contains("run `hostaway-admin migrate`"),
        "{problem}"
    );
    sqlx::query("UPDATE _sqlx_migrations SET success = true WHERE version = $1")
        .bind(newest)
        .execute(&env.pool)
        .await
        .unwrap();
    ingestor.ready().await;
    ingestor.stop().await;
    gateway.stop().await;
}
