//! Accounts and their credentials at rest: the environment bootstrap, API key
//! storage, and rotating the master key without losing a credential.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use connector_tests::TestEnv;
use domain::AccountId;
use secrecy::{ExposeSecret, SecretString};
use store::accounts::{self, NewAccount};
use store::crypto::CredentialCipher;

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_survive_a_master_key_rotation() {
    let env = TestEnv::new().await;
    let account = AccountId::parse("70001").unwrap();
    accounts::upsert_account(
        &env.pool,
        &env.cipher,
        NewAccount {
            account: account.clone(),
            display_name: None,
            api_key: Some(secret("api-secret")),
            webhook_login: Some("hostaway".into()),
            webhook_password: Some(secret("pw")),
            webhook_secret: None,
        },
    )
    .await
    .unwrap();
    // Importing again with one more credential keeps the others.
    accounts::upsert_account(
        &env.pool,
        &env.cipher,
        NewAccount {
            account: account.clone(),
            display_name: Some("Renamed".into()),
            api_key: None,
            webhook_login: None,
            webhook_password: None,
            webhook_secret: Some(secret("hmac")),
        },
    )
    .await
    .unwrap();
    let stored: serde_json::Value = sqlx::query_scalar("SELECT credentials FROM channels")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    let text = stored.to_string();
    for clear in ["api-secret", "\"pw\"", "hmac\""] {
        assert!(!text.contains(clear), "credentials are encrypted at rest");
    }
    assert_eq!(
        accounts::api_key(&env.pool, &env.cipher, &account)
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        "api-secret"
    );

    // A new master key, with the old one kept as the previous key.
    let new_key = CredentialCipher::generate_key();
    let rotated = CredentialCipher::new(&new_key, Some(&env.credentials_key)).unwrap();
    assert_eq!(accounts::rewrap_all(&env.pool, &rotated).await.unwrap(), 1);
    assert_eq!(
        accounts::rewrap_all(&env.pool, &rotated).await.unwrap(),
        0,
        "idempotent"
    );

    // Only the new key is needed from now on.
    let new_only = CredentialCipher::new(&new_key, None).unwrap();
    let (loaded, failed) = accounts::load_webhook_credentials(&env.pool, &new_only)
        .await
        .unwrap();
    assert!(failed.is_empty());
    assert_eq!(loaded[0].passwords[0].expose_secret(), "pw");
    assert_eq!(loaded[0].hmac_secrets[0].expose_secret(), "hmac");
    assert_eq!(
        accounts::api_key(&env.pool, &new_only, &account)
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        "api-secret"
    );
    // And the old key alone no longer opens anything.
    let (_, failed) = accounts::load_webhook_credentials(&env.pool, &env.cipher)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    let summary = accounts::list_accounts(&env.pool).await.unwrap();
    assert_eq!(summary[0].display_name.as_deref(), Some("Renamed"));
    assert!(
        summary[0].has_api_key && summary[0].has_webhook_password && summary[0].has_webhook_secret
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_account_input_is_refused_and_changes_nothing() {
    let env = TestEnv::new().await;
    let add = |login: &str| NewAccount {
        account: AccountId::parse("70001").unwrap(),
        display_name: None,
        api_key: None,
        webhook_login: Some(login.to_owned()),
        webhook_password: Some(secret("pw")),
        webhook_secret: None,
    };
    for bad in ["", "has:colon", "has space", &"x".repeat(129)] {
        assert!(
            accounts::add_account(&env.pool, &env.cipher, add(bad))
                .await
                .is_err(),
            "{bad:?}"
        );
    }
    assert_eq!(env.count("SELECT count(*) FROM channels").await, 0);
    accounts::add_account(&env.pool, &env.cipher, add("hostaway"))
        .await
        .unwrap();
    let again = accounts::add_account(&env.pool, &env.cipher, add("hostaway")).await;
    assert!(
        matches!(again, Err(store::StoreError::Conflict(_))),
        "adding twice is a conflict"
    );
    // Links need an existing account.
    let missing = store::links::link(
        &env.pool,
        &AccountId::parse("79999").unwrap(),
        &domain::ListingId::parse("1").unwrap(),
        domain::UnitId::from_uuid(uuid::Uuid::now_v7()),
    )
    .await;
    assert!(matches!(missing, Err(store::StoreError::NotFound(_))));
}
