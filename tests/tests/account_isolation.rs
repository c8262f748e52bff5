//! One Hostaway account can never reach another's bookings, whatever
//! reservation id it sends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use connector_tests::payloads::Reservation;
use connector_tests::{DEADLINE, TestEnv, eventually};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_cannot_cancel_another_accounts_booking() {
    let env = TestEnv::new().await;
    env.add_basic_account("70001", "victim", "pw-1").await;
    env.add_basic_account("70002", "attacker", "pw-2").await;
    env.link("70001", "300101").await;
    env.link("70002", "300201").await;
    let gateway = env.start_gateway().await;
    let ingestor = env.start_ingestor();

    let genuine = Reservation::new(8_000_001, 300_101).webhook("70001", "reservation.created");
    assert_eq!(
        gateway.post_basic("victim", "pw-1", &genuine).await.0,
        StatusCode::OK
    );
    eventually("the genuine booking", DEADLINE, || async {
        env.bookings()
            .await
            .into_iter()
            .find(|b| b.hostaway_account_id == "70001")
    })
    .await;

    // Authenticated as its own account, the attacker names the victim's
    // reservation id with a newer version.
    let forged = Reservation::new(8_000_001, 300_201)
        .status("cancelled")
        .updated("2026-03-05 00:00:00")
        .webhook("70002", "reservation.updated");
    assert_eq!(
        gateway.post_basic("attacker", "pw-2", &forged).await.0,
        StatusCode::OK
    );
    eventually("the forged webhook to be processed", DEADLINE, || async {
        (env.count("SELECT count(*) FROM webhook_log WHERE status = 'processed'")
            .await
            == 2)
            .then_some(())
    })
    .await;

    let bookings = env.bookings().await;
    let victim = bookings
        .iter()
        .find(|b| b.hostaway_account_id == "70001")
        .unwrap();
    assert_eq!(victim.status, "new", "the victim's booking is untouched");
    assert_eq!(
        env.blocks()
            .await
            .iter()
            .filter(|b| b.external_id == "8000001")
            .count(),
        1
    );
    // The attacker only ever wrote into its own account.
    let own = bookings
        .iter()
        .find(|b| b.hostaway_account_id == "70002")
        .unwrap();
    assert_eq!(own.status, "cancelled");
    assert_ne!(own.id, victim.id);
    ingestor.stop().await;
}
