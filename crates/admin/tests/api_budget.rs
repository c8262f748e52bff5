//! `hostaway-admin api` is one more caller of an account's Hostaway API: its
//! requests take their place in the budget the dispatcher replicas share, and
//! it uses the account's stored token rather than minting one per run.

use connector_tests::TestEnv;
use connector_tests::env::reveal;
use domain::AccountId;
use hostaway_sim::{Sim, SimConfig};
use secrecy::SecretString;
use store::accounts::NewAccount;

async fn admin_api_check(env: &TestEnv, sim: &Sim, account: &str) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_hostaway-admin"))
        .args(["api", "check", "--account-id", account])
        .env("DATABASE_URL", reveal(&env.service_database_url()))
        .env("CONNECTOR_CREDENTIALS_KEY", reveal(&env.credentials_key))
        .env("HOSTAWAY_API_URL", sim.base_url())
        .env_remove("HOSTAWAY_EGRESS_ID")
        .output()
        .await
        .expect("hostaway-admin runs")
}

async fn simulator() -> Sim {
    Sim::start("127.0.0.1:0".parse().expect("addr"), SimConfig::default())
        .await
        .expect("simulator")
}

async fn add_api_account(env: &TestEnv, account: &str, api_key: &str) {
    env.add_account(NewAccount {
        account: AccountId::parse(account).expect("account id"),
        display_name: None,
        api_key: Some(SecretString::from(api_key.to_owned())),
        webhook_login: None,
        webhook_password: None,
        webhook_secret: None,
    })
    .await;
}

#[tokio::test]
async fn an_operators_calls_count_against_the_shared_budget_and_reuse_the_stored_token() {
    let env = TestEnv::new().await;
    let sim = simulator().await;
    sim.add_account("59808", "api-secret-59808").await;
    sim.add_listing("59808", serde_json::Map::new())
        .await
        .expect("listing");
    add_api_account(&env, "59808", "api-secret-59808").await;

    for run in 1..=2 {
        let out = admin_api_check(&env, &sim, "59808").await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "run {run}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("API credentials work (1 listing(s))"),
            "run {run}: {stdout}"
        );
    }

    assert_eq!(
        sim.tokens_issued().await,
        1,
        "the second run used the token the first stored"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM api_tokens WHERE hostaway_account_id = '59808'")
            .await,
        1
    );
    assert_eq!(
        env.count(
            "SELECT count(*) FROM api_budget_calls
             WHERE (scope = 'a' AND key = '59808') OR (scope = 'e' AND key = 'default')"
        )
        .await,
        2 * sim.requests(Some("59808")).await.len() as i64,
        "every request the simulator saw took its place in the account's and the egress's budget"
    );
}

#[tokio::test]
async fn a_wrong_api_key_is_a_clear_failure_that_never_shows_the_key() {
    let env = TestEnv::new().await;
    let sim = simulator().await;
    sim.add_account("59809", "the-right-secret").await;
    add_api_account(&env, "59809", "a-wrong-secret-4711").await;

    let out = admin_api_check(&env, &sim, "59809").await;
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    assert!(!all.contains("a-wrong-secret-4711"), "{all}");
    assert_eq!(
        env.count("SELECT count(*) FROM api_tokens WHERE hostaway_account_id = '59809'")
            .await,
        0,
        "no token stored"
    );
}
