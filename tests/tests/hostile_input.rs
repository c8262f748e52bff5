//! Promise 5: bad input gets a clear answer and changes nothing; secrets never
//! appear in responses or logs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use connector_tests::TestEnv;
use connector_tests::payloads::Reservation;
use connector_tests::services::RunningGateway;
use domain::AccountId;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use store::accounts::NewAccount;

const ACCOUNT: &str = "70001";
const LOGIN: &str = "hostaway-70001";
const PASSWORD: &str = "pw-Zq8#wW2-never-in-logs";
const HMAC_SECRET: &str = "hmac-K7e!b4-never-in-logs";

/// Every log line of this test binary, at debug level.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter("debug")
            .with_writer(move || LogSink(Arc::clone(&sink)))
            .try_init();
        buffer
    })
    .clone()
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn setup() -> (TestEnv, RunningGateway) {
    captured_logs();
    let env = TestEnv::new().await;
    env.add_account(NewAccount {
        account: AccountId::parse(ACCOUNT).unwrap(),
        display_name: None,
        api_key: Some(SecretString::from("api-secret-never-in-logs".to_owned())),
        webhook_login: Some(LOGIN.into()),
        webhook_password: Some(SecretString::from(PASSWORD.to_owned())),
        webhook_secret: Some(SecretString::from(HMAC_SECRET.to_owned())),
    })
    .await;
    env.add_basic_account("70002", "hostaway-70002", "other-password")
        .await;
    let gateway = env
        .start_gateway_with(|settings| settings.max_body_bytes = 64 * 1024)
        .await;
    (env, gateway)
}

fn reservation() -> Value {
    Reservation::new(4_000_001, 300_101).webhook(ACCOUNT, "reservation.created")
}

fn basic(login: &str, password: &str) -> (&'static str, String) {
    (
        "authorization",
        mapping::signature::basic_authorization(login, password),
    )
}

fn with_data(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut body = reservation();
    change(body["data"].as_object_mut().unwrap());
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_request_gets_its_status_and_writes_nothing() {
    let (env, gateway) = setup().await;
    let now = chrono::Utc::now().timestamp();
    let body = reservation().to_string();
    let path = "/webhooks/hostaway";
    let path_account = format!("/webhooks/hostaway/{ACCOUNT}");

    struct Case {
        name: &'static str,
        path: String,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
        status: StatusCode,
        error: &'static str,
    }
    let case =
        |name, path: &str, headers: Vec<(&'static str, String)>, body: Vec<u8>, status, error| {
            Case {
                name,
                path: path.to_owned(),
                headers,
                body,
                status,
                error,
            }
        };
    let hmac = |secret: &str, ts: i64, signed: &[u8]| {
        vec![
            (
                mapping::signature::SIGNATURE_HEADER,
                mapping::signature::sign(secret.as_bytes(), ts, signed),
            ),
            (mapping::signature::TIMESTAMP_HEADER, ts.to_string()),
        ]
    };
    let unauthorized = StatusCode::UNAUTHORIZED;
    let bad = StatusCode::BAD_REQUEST;
    let good_basic = || vec![basic(LOGIN, PASSWORD)];
    let json_bytes = |v: Value| v.to_string().into_bytes();

    let cases = vec![
        case(
            "no credentials",
            path,
            vec![],
            body.clone().into_bytes(),
            unauthorized,
            "unauthorized",
        ),
        case(
            "wrong Basic password",
            path,
            vec![basic(LOGIN, "wrong")],
            body.clone().into_bytes(),
            unauthorized,
            "unauthorized",
        ),
        case(
            "another account's password",
            path,
            vec![basic(LOGIN, "other-password")],
            body.clone().into_bytes(),
            unauthorized,
            "unauthorized",
        ),
        case(
            "unknown account in the body",
            path,
            vec![basic("nobody", PASSWORD)],
            json_bytes(Reservation::new(1, 1).webhook("99999", "reservation.created")),
            unauthorized,
            "unauthorized",
        ),
        case(
            "unknown account in the URL",
            "/webhooks/hostaway/99999",
            vec![basic(LOGIN, PASSWORD)],
            body.clone().into_bytes(),
            unauthorized,
            "unauthorized",
        ),
        case(
            "impossible account in the URL",
            "/webhooks/hostaway/a.b*",
            vec![basic(LOGIN, PASSWORD)],
            body.clone().into_bytes(),
            unauthorized,
            "unauthorized",
        ),
        case(
            "HMAC without timestamp",
            &path_account,
            vec![(
                mapping::signature::SIGNATURE_HEADER,
                mapping::signature::sign(HMAC_SECRET.as_bytes(), now, body.as_bytes()),
            )],
            body.clone().into_bytes(),
            unauthorized,
            "unauthorized",
        ),
        case(
            "HMAC with the wrong secret",
            &path_account,
            hmac("guess", now, body.as_bytes()),
            body.clone().into_bytes(),
            unauthorized,
            "unauthorized",
        ),
        case(
            "HMAC over another body",
            &path_account,
            hmac(HMAC_SECRET, now, b"{}"),
            body.clone().into_bytes(),
            unauthorized,
            "unauthorized",
        ),
        case(
            "HMAC stale timestamp",
            &path_account,
            hmac(HMAC_SECRET, now - 301, body.as_bytes()),
            body.clone().into_bytes(),
            unauthorized,
            "unauthorized",
        ),
        case(
            "HMAC future timestamp",
            &path_account,
            hmac(HMAC_SECRET, now + 301, body.as_bytes()),
            body.clone().into_bytes(),
            unauthorized,
            "unauthorized",
        ),
        case(
            "HMAC garbage signature",
            &path_account,
            vec![
                (mapping::signature::SIGNATURE_HEADER, "zz".into()),
                (mapping::signature::TIMESTAMP_HEADER, now.to_string()),
            ],
            body.clone().into_bytes(),
            unauthorized,
            "unauthorized",
        ),
        case(
            // A 400 here would reveal that the login does not exist.
            "malformed JSON, account unknown until parsed",
            path,
            vec![basic("nobody", "x")],
            b"{not json".to_vec(),
            unauthorized,
            "unauthorized",
        ),
        case(
            "a one-digit month",
            &path_account,
            good_basic(),
            json_bytes(with_data(|d| {
                d.insert("arrivalDate".into(), "2026-4-1".into());
            })),
            bad,
            "invalid_payload",
        ),
        case(
            "a version stamped far in the future",
            &path_account,
            good_basic(),
            json_bytes(with_data(|d| {
                d.insert("updatedOn".into(), "2099-01-01 00:00:00".into());
            })),
            bad,
            "invalid_payload",
        ),
        case(
            "malformed JSON from a known account",
            path,
            good_basic(),
            b"{\"event\": ".to_vec(),
            bad,
            "malformed_body",
        ),
        case(
            "a JSON array",
            &path_account,
            good_basic(),
            b"[1,2,3]".to_vec(),
            bad,
            "malformed_body",
        ),
        case(
            "missing event",
            &path_account,
            good_basic(),
            json_bytes(json!({"accountId": 70001, "data": {"id": 1}})),
            bad,
            "malformed_body",
        ),
        case(
            "missing data",
            &path_account,
            good_basic(),
            json_bytes(json!({"event": "reservation.created", "accountId": 70001})),
            bad,
            "malformed_body",
        ),
        case(
            "reservation without id",
            &path_account,
            good_basic(),
            json_bytes(with_data(|d| {
                d.remove("id");
                d.remove("hostawayReservationId");
            })),
            bad,
            "invalid_payload",
        ),
        case(
            "departure before arrival",
            &path_account,
            good_basic(),
            json_bytes(with_data(|d| {
                d.insert("arrivalDate".into(), "2026-04-14".into());
                d.insert("departureDate".into(), "2026-04-10".into());
            })),
            bad,
            "invalid_payload",
        ),
        case(
            "negative amount",
            &path_account,
            good_basic(),
            json_bytes(with_data(|d| {
                d.insert("totalPrice".into(), json!(-5));
            })),
            bad,
            "invalid_payload",
        ),
        case(
            "absurd amount",
            &path_account,
            good_basic(),
            json_bytes(with_data(|d| {
                d.insert("totalPrice".into(), json!(1e12));
            })),
            bad,
            "invalid_payload",
        ),
        case(
            "amount that is not a number",
            &path_account,
            good_basic(),
            json_bytes(with_data(|d| {
                d.insert("totalPrice".into(), json!("NaN"));
            })),
            bad,
            "invalid_payload",
        ),
        case(
            "absurd guest count",
            &path_account,
            good_basic(),
            json_bytes(with_data(|d| {
                d.insert("numberOfGuests".into(), json!(100_000));
            })),
            bad,
            "invalid_payload",
        ),
        case(
            "a date that does not exist",
            &path_account,
            good_basic(),
            json_bytes(with_data(|d| {
                d.insert("arrivalDate".into(), json!("2026-02-30"));
            })),
            bad,
            "invalid_payload",
        ),
        case(
            "body for another account",
            &path_account,
            good_basic(),
            json_bytes(Reservation::new(1, 1).webhook("70002", "reservation.created")),
            bad,
            "account_mismatch",
        ),
        case(
            "oversized body",
            &path_account,
            good_basic(),
            vec![b' '; 65 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];

    for case in cases {
        let (status, answer) = gateway.post(&case.path, &case.headers, case.body).await;
        assert_eq!(status, case.status, "{}: {answer}", case.name);
        assert_eq!(answer["error"], case.error, "{}: {answer}", case.name);
        let text = answer.to_string();
        for secret in [PASSWORD, HMAC_SECRET, "other-password"] {
            assert!(
                !text.contains(secret),
                "{}: the answer leaks a secret",
                case.name
            );
        }
    }
    assert_eq!(
        env.stream_len(&env.topology.webhooks_stream()).await,
        0,
        "nothing was published"
    );

    // The same request for an unknown account and with a wrong password: the
    // same answer, to the byte.
    let wrong_password = gateway
        .post(&path_account, &[basic(LOGIN, "wrong")], body.clone())
        .await;
    let unknown_account = gateway
        .post(
            "/webhooks/hostaway/70009",
            &[basic(LOGIN, "wrong")],
            body.clone(),
        )
        .await;
    assert_eq!(wrong_password, unknown_account);

    // The valid request still goes through: the cases above failed for their
    // own reasons.
    let (status, _) = gateway
        .post(&path_account, &good_basic(), body.clone())
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = gateway
        .post(
            &path_account,
            &hmac(HMAC_SECRET, now, body.as_bytes()),
            body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        env.stream_len(&env.topology.webhooks_stream()).await,
        1,
        "the same webhook twice is one message"
    );

    let logs = String::from_utf8(captured_logs().lock().unwrap().clone()).unwrap();
    assert!(logs.contains("webhook refused"), "rejections are logged");
    for secret in [
        PASSWORD,
        HMAC_SECRET,
        "other-password",
        "api-secret-never-in-logs",
        &env.credentials_key_text(),
    ] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_and_unknown_events_are_answered_200_and_not_published() {
    let (env, gateway) = setup().await;
    let (status, answer) = gateway
        .post(
            "/webhooks/hostaway",
            &[basic(LOGIN, PASSWORD)],
            r#"{"data":"test"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["ping"], true);
    // An unauthenticated ping is still refused.
    let (status, _) = gateway
        .post("/webhooks/hostaway", &[], r#"{"data":"test"}"#)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let unknown = json!({"object": "review", "event": "review.created", "accountId": 70001, "data": {"id": 1}});
    let (status, answer) = gateway.post_basic(LOGIN, PASSWORD, &unknown).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["ignored"], "unknown event");
    assert_eq!(env.stream_len(&env.topology.webhooks_stream()).await, 0);
    let logs = String::from_utf8(captured_logs().lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("review.created"),
        "the unknown event is logged by name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_is_refused_like_an_unknown_one() {
    let (env, gateway) = setup().await;
    store::accounts::set_enabled(&env.pool, &AccountId::parse(ACCOUNT).unwrap(), false)
        .await
        .unwrap();
    // NOTIFY reaches the gateway without a restart.
    connector_tests::eventually(
        "the gateway to reload without the disabled account",
        connector_tests::DEADLINE,
        || async {
            (connector_tests::services::metric_value(
                &gateway.metrics,
                "hostaway_gateway_accounts_loaded",
            ) == 1.0)
                .then_some(())
        },
    )
    .await;
    let (status, answer) = gateway.post_basic(LOGIN, PASSWORD, &reservation()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer["error"], "unauthorized");
    assert_eq!(env.stream_len(&env.topology.webhooks_stream()).await, 0);
}

trait KeyText {
    fn credentials_key_text(&self) -> String;
}

impl KeyText for TestEnv {
    fn credentials_key_text(&self) -> String {
        connector_tests::env::reveal(&self.credentials_key).to_owned()
    }
}
