//! `hostaway-admin` over the operations API: its calls are the API's (roles,
//! audit), the API's Hostaway calls take their place in the budget the
//! dispatchers share and reuse the account's stored token whichever replica
//! serves them, and no secret ever reaches its output.

use admin_api::auth::Role;
use connector_tests::TestEnv;
use connector_tests::admin_api::RunningAdminApi;
use connector_tests::env::reveal;
use domain::AccountId;
use hostaway_sim::{Sim, SimConfig};
use secrecy::SecretString;
use store::accounts::NewAccount;

struct Run {
    ok: bool,
    stdout: String,
    all: String,
}

async fn admin(
    env: &TestEnv,
    api: &RunningAdminApi,
    token: Option<&SecretString>,
    args: &[&str],
    extra_env: &[(&str, &str)],
) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hostaway-admin"));
    command
        .args(args)
        .env("ADMIN_API_URL", api.url())
        .env("DATABASE_URL", reveal(&env.service_database_url()))
        .env_remove("ADMIN_API_TOKEN");
    if let Some(token) = token {
        command.env("ADMIN_API_TOKEN", reveal(token));
    }
    for (name, value) in extra_env {
        command.env(name, value);
    }
    let out = command.output().await.expect("hostaway-admin runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    Run {
        ok: out.status.success(),
        stdout,
        all,
    }
}

async fn simulator() -> Sim {
    Sim::start("127.0.0.1:0".parse().expect("addr"), SimConfig::default())
        .await
        .expect("simulator")
}

const NO_GATEWAY: &str = "http://127.0.0.1:1/webhooks/hostaway";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_through_either_api_replica_share_the_budget_and_the_stored_token() {
    let env = TestEnv::new().await;
    let sim = simulator().await;
    sim.add_account("59808", "api-secret-59808").await;
    sim.add_listing(
        "59808",
        serde_json::json!({"name": "Harbour Loft"})
            .as_object()
            .cloned()
            .expect("object"),
    )
    .await
    .expect("listing");
    env.add_account(NewAccount {
        account: AccountId::parse("59808").expect("account id"),
        display_name: None,
        api_key: Some(SecretString::from("api-secret-59808".to_owned())),
        webhook_login: None,
        webhook_password: None,
        webhook_secret: None,
    })
    .await;
    let replicas = [
        env.start_admin_api(&sim.base_url(), NO_GATEWAY).await,
        env.start_admin_api(&sim.base_url(), NO_GATEWAY).await,
    ];
    let viewer = env.admin_token(Role::Viewer).await;
    for (run, api) in replicas.iter().enumerate() {
        let out = admin(
            &env,
            api,
            Some(&viewer),
            &["listings", "list", "--account-id", "59808"],
            &[],
        )
        .await;
        assert!(out.ok, "run {run}: {}", out.all);
        assert!(
            out.stdout.contains("Harbour Loft"),
            "run {run}: {}",
            out.stdout
        );
        assert!(
            out.stdout.contains("not linked"),
            "run {run}: {}",
            out.stdout
        );
    }
    assert_eq!(
        sim.tokens_issued().await,
        1,
        "the second replica used the token the first stored"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_secret_or_role_is_a_clear_failure_that_never_shows_a_secret() {
    let env = TestEnv::new().await;
    let sim = simulator().await;
    sim.add_account("59809", "the-right-secret").await;
    let api = env.start_admin_api(&sim.base_url(), NO_GATEWAY).await;
    let owner = env.admin_token(Role::Owner).await;
    let viewer = env.admin_token(Role::Viewer).await;
    let connect = [
        "accounts",
        "connect",
        "--account-id",
        "59809",
        "--client-secret-env",
        "SECRET",
    ];

    let wrong = admin(
        &env,
        &api,
        Some(&owner),
        &connect,
        &[("SECRET", "a-wrong-secret-4711")],
    )
    .await;
    assert!(!wrong.ok, "{}", wrong.all);
    assert!(wrong.all.contains("FailedPrecondition"), "{}", wrong.all);
    assert!(!wrong.all.contains("a-wrong-secret-4711"), "{}", wrong.all);
    assert_eq!(env.count("SELECT count(*) FROM channels").await, 0);

    let denied = admin(
        &env,
        &api,
        Some(&viewer),
        &connect,
        &[("SECRET", "the-right-secret")],
    )
    .await;
    assert!(!denied.ok);
    assert!(denied.all.contains("PermissionDenied"), "{}", denied.all);
    assert!(!denied.all.contains("the-right-secret"), "{}", denied.all);

    let anonymous = admin(&env, &api, None, &["accounts", "list"], &[]).await;
    assert!(!anonymous.ok);
    assert!(
        anonymous.all.contains("ADMIN_API_TOKEN"),
        "{}",
        anonymous.all
    );

    let connected = admin(
        &env,
        &api,
        Some(&owner),
        &connect,
        &[("SECRET", "the-right-secret")],
    )
    .await;
    assert!(connected.ok, "{}", connected.all);
    assert!(
        connected.stdout.contains("account 59809 connected"),
        "{}",
        connected.all
    );
    let listed = admin(&env, &api, Some(&viewer), &["accounts", "list"], &[]).await;
    assert!(listed.ok, "{}", listed.all);
    assert!(listed.stdout.contains("api_key 0d"), "{}", listed.stdout);
    assert!(!listed.all.contains("the-right-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_issued_on_the_command_line_works_until_revoked() {
    let env = TestEnv::new().await;
    let sim = simulator().await;
    let api = env.start_admin_api(&sim.base_url(), NO_GATEWAY).await;
    let issued = admin(
        &env,
        &api,
        None,
        &["tokens", "issue", "--name", "alice", "--role", "operator"],
        &[],
    )
    .await;
    assert!(issued.ok, "{}", issued.all);
    let token = SecretString::from(issued.stdout.trim().to_owned());
    let used = admin(&env, &api, Some(&token), &["audit"], &[]).await;
    assert!(used.ok, "{}", used.all);
    let listed = admin(&env, &api, None, &["tokens", "list"], &[]).await;
    assert!(listed.stdout.contains("alice"), "{}", listed.stdout);
    assert!(
        !listed.all.contains(reveal(&token)),
        "a token is shown once"
    );
    let id: String = sqlx::query_scalar("SELECT id::text FROM admin_tokens WHERE name = 'alice'")
        .fetch_one(&env.pool)
        .await
        .expect("token row");
    let revoked = admin(&env, &api, None, &["tokens", "revoke", &id], &[]).await;
    assert!(revoked.ok, "{}", revoked.all);
    let refused = admin(&env, &api, Some(&token), &["audit"], &[]).await;
    assert!(!refused.ok);
    assert!(refused.all.contains("Unauthenticated"), "{}", refused.all);
    let bad_role = admin(
        &env,
        &api,
        None,
        &["tokens", "issue", "--name", "bob", "--role", "admin"],
        &[],
    )
    .await;
    assert!(!bad_role.ok);
    assert!(
        bad_role.all.contains("owner, operator or viewer"),
        "{}",
        bad_role.all
    );
}
