//! Credential rotation reaches running services: rotating an account's API
//! key drops the token minted with the old key in every running dispatcher
//! (PostgreSQL tells them), and the token they share is no longer used, so
//! the next call mints one with the new key; a rotation that keeps the same
//! key (a new ciphertext only) keeps the token, cached and shared.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::Utc;
use connector_tests::outbound::{Availability, Model, OutboundWorld, change_id, day};
use connector_tests::services::metric_labelled;
use domain::AccountId;
use hostaway_sim::SimConfig;
use secrecy::SecretString;
use store::accounts::Rotation;
use sync_dispatcher::Roles;

const ACCOUNT: &str = "71011";
const NO_SCHEDULES: Roles = Roles {
    changes: true,
    jobs: true,
    reconcile: false,
};

async fn rotate_api_key(world: &OutboundWorld, key: &str) {
    store::accounts::rotate_credentials(
        &world.env.pool,
        &world.env.cipher,
        &AccountId::parse(ACCOUNT).unwrap(),
        Rotation {
            webhook_password: None,
            webhook_secret: None,
            api_key: Some(SecretString::from(key.to_owned())),
            grace: chrono::Duration::zero(),
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_api_key_drops_the_cached_token_in_a_running_dispatcher() {
    let world = OutboundWorld::new(SimConfig::default(), &[(ACCOUNT, 1)]).await;
    let listing = world.listings[0].clone();
    let dispatcher = world.start_dispatcher(NO_SCHEDULES);
    dispatcher.ready().await;
    let mut model = Model::default();
    let change = |seq: u64| Availability {
        change_id: change_id(seq),
        seq,
        unit: listing.unit,
        start: day(seq as i64),
        end: day(seq as i64 + 1),
        available: Some(false),
        min_stay: None,
        occurred_at: Utc::now(),
        version: 0,
    };
    let drops = |reason: &str| {
        metric_labelled(
            &dispatcher.metrics,
            "hostaway_api_token_drops_total",
            ("reason", reason),
        )
    };

    let first = change(1);
    model.apply_availability(&first);
    world.publish_availability(&first).await;
    world.converged(&model, Duration::from_secs(30)).await;
    assert_eq!(world.sim.tokens_issued().await, 1);

    // The same key under a new ciphertext: the token stays.
    rotate_api_key(&world, &connector_tests::outbound::secret_of(ACCOUNT)).await;
    assert_eq!(
        world.env.count("SELECT count(*) FROM api_tokens").await,
        1,
        "the same key under a new ciphertext keeps the token every replica shares"
    );
    // A real rotation: Hostaway now knows only the new key.
    let new_key = "sim-secret-rotated-71011";
    world.sim.add_account(ACCOUNT, new_key).await;
    rotate_api_key(&world, new_key).await;
    connector_tests::eventually(
        "the running dispatcher to drop the token of the old key",
        Duration::from_secs(30),
        || async { (drops("key_changed") >= 1.0).then_some(()) },
    )
    .await;
    assert_eq!(
        drops("key_changed"),
        1.0,
        "only the rotation that changed the key dropped the token"
    );

    let second = change(2);
    model.apply_availability(&second);
    world.publish_availability(&second).await;
    world.converged(&model, Duration::from_secs(30)).await;
    assert_eq!(
        world.sim.tokens_issued().await,
        2,
        "the next call minted a token with the new key"
    );
    dispatcher.stop().await;
}
