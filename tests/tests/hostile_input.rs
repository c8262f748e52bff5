//! Promise 5: bad input gets a clear answer and changes nothing; secrets never
//! appear in responses or logs. Authenticated means kept: once a sender is
//! authenticated, whatever is wrong with its body is kept in the dead-letter
//! queue with its reason (Hostaway never retries a 4xx), and a field TVL can
//! do without never sinks a booking.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use connector_tests::TestEnv;
use connector_tests::payloads::Reservation;
use connector_tests::services::{RunningGateway, metric_value};
use domain::AccountId;
use events::Message as _;
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
        .start_gateway_with(|settings| {
            settings.max_body_bytes = 64 * 1024;
            settings.preauth_max_body_bytes = 16 * 1024;
        })
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

struct Case {
    name: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: StatusCode,
    /// `error` of a refusal, or `problem.reason` of a webhook kept but unusable.
    expect: &'static str,
}

fn case(
    name: &'static str,
    path: &str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: StatusCode,
    expect: &'static str,
) -> Case {
    Case {
        name,
        path: path.to_owned(),
        headers,
        body,
        status,
        expect,
    }
}

fn hmac(secret: &str, ts: i64, signed: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        (
            mapping::signature::SIGNATURE_HEADER,
            mapping::signature::sign(secret.as_bytes(), ts, signed),
        ),
        (mapping::signature::TIMESTAMP_HEADER, ts.to_string()),
    ]
}

fn json_bytes(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// Checks the answers, and that none of them leaks a secret.
async fn post_all(gateway: &RunningGateway, cases: Vec<Case>) -> Vec<(&'static str, Value)> {
    let mut answers = Vec::new();
    for case in cases {
        let (status, answer) = gateway.post(&case.path, &case.headers, case.body).await;
        assert_eq!(status, case.status, "{}: {answer}", case.name);
        let said = if status == StatusCode::OK {
            &answer["problem"]["reason"]
        } else {
            &answer["error"]
        };
        assert_eq!(said, case.expect, "{}: {answer}", case.name);
        let text = answer.to_string();
        for secret in [PASSWORD, HMAC_SECRET, "other-password"] {
            assert!(
                !text.contains(secret),
                "{}: the answer leaks a secret",
                case.name
            );
        }
        answers.push((case.name, answer));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_or_oversized_requests_are_refused_and_nothing_is_kept() {
    let (env, gateway) = setup().await;
    let now = chrono::Utc::now().timestamp();
    let body = reservation().to_string();
    let path = "/webhooks/hostaway";
    let path_account = format!("/webhooks/hostaway/{ACCOUNT}");
    let unauthorized = StatusCode::UNAUTHORIZED;
    let good_basic = || vec![basic(LOGIN, PASSWORD)];

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
            good_basic(),
            body.clone().into_bytes(),
            unauthorized,
            "unauthorized",
        ),
        case(
            "impossible account in the URL",
            "/webhooks/hostaway/a.b*",
            good_basic(),
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
            hmac(HMAC_SECRET, now + 330, body.as_bytes()),
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
            "a Bearer token",
            path,
            vec![("authorization", "Bearer x".into())],
            body.clone().into_bytes(),
            unauthorized,
            "unauthorized",
        ),
        case(
            "oversized body",
            &path_account,
            good_basic(),
            vec![b' '; 65 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        case(
            "oversized body before authentication",
            path,
            vec![basic("nobody", "x")],
            vec![b' '; 17 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    post_all(&gateway, cases).await;
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
    assert!(
        logs.contains("webhook refused: unauthorized") && logs.contains("claimed_login"),
        "refusals are logged with the claimed login"
    );
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
async fn every_authenticated_hostile_body_is_kept_in_the_dlq_with_its_reason() {
    let (env, gateway) = setup().await;
    env.link(ACCOUNT, "300101").await;
    let path = "/webhooks/hostaway";
    let path_account = format!("/webhooks/hostaway/{ACCOUNT}");
    let ok = StatusCode::OK;
    let good_basic = || vec![basic(LOGIN, PASSWORD)];
    // Each case its own reservation, so each is its own webhook.
    let with = |id: u64, change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut body = Reservation::new(id, 300_101).webhook(ACCOUNT, "reservation.created");
        change(body["data"].as_object_mut().unwrap());
        json_bytes(body)
    };
    let cases = vec![
        case(
            "a one-digit month",
            &path_account,
            good_basic(),
            with(1, &|d| {
                d.insert("arrivalDate".into(), "2026-4-1".into());
            }),
            ok,
            "invalid_payload",
        ),
        case(
            "a version stamped far in the future",
            &path_account,
            good_basic(),
            with(2, &|d| {
                d.insert("updatedOn".into(), "2099-01-01 00:00:00".into());
            }),
            ok,
            "clock_skew",
        ),
        case(
            "malformed JSON from a known account",
            path,
            good_basic(),
            b"{\"event\": ".to_vec(),
            ok,
            "malformed_body",
        ),
        case(
            "a JSON array",
            &path_account,
            good_basic(),
            b"[1,2,3]".to_vec(),
            ok,
            "malformed_body",
        ),
        case(
            "missing event",
            &path_account,
            good_basic(),
            json_bytes(json!({"accountId": 70001, "data": {"id": 1}})),
            ok,
            "malformed_body",
        ),
        case(
            "missing data",
            &path_account,
            good_basic(),
            json_bytes(json!({"event": "reservation.created", "accountId": 70001})),
            ok,
            "malformed_body",
        ),
        case(
            "reservation without id",
            &path_account,
            good_basic(),
            with(3, &|d| {
                d.remove("id");
                d.remove("hostawayReservationId");
            }),
            ok,
            "invalid_payload",
        ),
        case(
            "departure before arrival",
            &path_account,
            good_basic(),
            with(4, &|d| {
                d.insert("arrivalDate".into(), "2026-04-14".into());
                d.insert("departureDate".into(), "2026-04-10".into());
            }),
            ok,
            "invalid_payload",
        ),
        case(
            "negative amount",
            &path_account,
            good_basic(),
            with(5, &|d| {
                d.insert("totalPrice".into(), json!(-5));
            }),
            ok,
            "invalid_payload",
        ),
        case(
            "absurd amount",
            &path_account,
            good_basic(),
            with(6, &|d| {
                d.insert("totalPrice".into(), json!(1e12));
            }),
            ok,
            "invalid_payload",
        ),
        case(
            "a date that does not exist",
            &path_account,
            good_basic(),
            with(7, &|d| {
                d.insert("arrivalDate".into(), json!("2026-02-30"));
            }),
            ok,
            "invalid_payload",
        ),
        case(
            "no dates at all",
            &path_account,
            good_basic(),
            with(8, &|d| {
                d.remove("arrivalDate");
            }),
            ok,
            "invalid_payload",
        ),
        case(
            "body for another account",
            &path_account,
            good_basic(),
            json_bytes(Reservation::new(9, 1).webhook("70002", "reservation.created")),
            ok,
            "account_mismatch",
        ),
        case(
            "an event this version does not know",
            path,
            good_basic(),
            json_bytes(
                json!({"object": "review", "event": "review.created", "accountId": 70001, "data": {"id": 1}}),
            ),
            ok,
            "unknown_event",
        ),
        case(
            "a message without an id",
            &path_account,
            good_basic(),
            json_bytes(
                json!({"object": "conversationMessage", "event": "message.received", "accountId": 70001, "data": {"body": "hi"}}),
            ),
            ok,
            "invalid_payload",
        ),
    ];
    let kept = cases.len();
    let answers = post_all(&gateway, cases).await;
    assert_eq!(
        metric_value(&gateway.metrics, "hostaway_webhooks_kept_unusable_total"),
        kept as f64
    );

    let ingestor = env.start_ingestor();
    env.count_reaches(
        "every hostile body in the dead-letter queue",
        "SELECT count(*) FROM dead_letter_queue",
        kept as i64,
    )
    .await;
    for (name, answer) in &answers {
        let webhook_id = answer["webhookId"].as_str().expect("a kept webhook's id");
        let letter = store::dlq::list_filtered(&env.pool, &store::dlq::Filter::default(), 100)
            .await
            .unwrap()
            .into_iter()
            .find(|l| l.job_id == webhook_id)
            .unwrap_or_else(|| panic!("{name}: no dead letter"));
        assert_eq!(
            letter.error["kind"], answer["problem"]["reason"],
            "{name}: the ingestor keeps it for the reason the gateway gave"
        );
        assert_eq!(letter.data["accountId"], ACCOUNT, "{name}");
        let body = events::pb::InboundWebhook::decode(letter.payload.as_slice())
            .expect("the original message")
            .raw_body;
        assert!(!body.is_empty(), "{name}: the raw body is kept to replay");
    }
    // Nothing else was written: no booking, no event, every log row dead-lettered.
    assert!(env.bookings().await.is_empty());
    assert_eq!(env.count("SELECT count(*) FROM outbox").await, 0);
    assert_eq!(
        env.count("SELECT count(*) FROM webhook_log WHERE status <> 'dead_lettered'")
            .await,
        0
    );
    assert_eq!(
        env.count("SELECT count(*) FROM webhook_log").await,
        kept as i64,
        "each kept webhook is in the log"
    );
    assert_eq!(
        env.stream_messages(&env.topology.dlq_stream()).await.len(),
        kept
    );
    assert_eq!(
        ingestor.metric("hostaway_dlq_messages_total"),
        kept as f64,
        "counted for the alert"
    );

    // A kept webhook is replayable once the cause is fixed (here: not fixed,
    // so it comes back to the queue with the same reason).
    let unknown = store::dlq::list_filtered(&env.pool, &store::dlq::Filter::default(), 100)
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.error["kind"] == "unknown_event")
        .unwrap();
    booking_ingestor::dead_letter::replay(&env.js, &env.topology, &env.pool, &unknown)
        .await
        .unwrap();
    env.count_reaches(
        "the replay back in the queue, on its own letter",
        "SELECT count(*) FROM dead_letter_queue WHERE (data->>'repeats')::int = 2",
        1,
    )
    .await;
    assert_eq!(
        env.count("SELECT count(*) FROM dead_letter_queue").await,
        kept as i64
    );
    ingestor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_tvl_can_do_without_never_sink_a_booking() {
    let (env, gateway) = setup().await;
    env.link(ACCOUNT, "300101").await;
    let ingestor = env.start_ingestor();
    let post = |body: Value| {
        let gateway = &gateway;
        async move {
            let (status, answer) = gateway.post_basic(LOGIN, PASSWORD, &body).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            assert!(answer.get("problem").is_none(), "{answer}");
        }
    };
    let mut long_name =
        Reservation::new(6_000_001, 300_101).webhook(ACCOUNT, "reservation.created");
    long_name["data"]["guestName"] = json!("N".repeat(600));
    post(long_name).await;
    let mut zero_date =
        Reservation::new(6_000_002, 300_101).webhook(ACCOUNT, "reservation.created");
    zero_date["data"]["cancellationDate"] = json!("0000-00-00 00:00:00");
    zero_date["data"]["guestEmail"] = json!("a\u{0}b@example.org");
    post(zero_date).await;
    let zero_nights = Reservation::new(6_000_003, 300_101)
        .dates("2026-05-01", "2026-05-01")
        .webhook(ACCOUNT, "reservation.created");
    post(zero_nights).await;
    // A booked stay, then an update that would make it a stay of no nights:
    // the booking keeps its dates and its block (only a status frees nights).
    post(
        Reservation::new(6_000_004, 300_101)
            .dates("2026-06-01", "2026-06-03")
            .webhook(ACCOUNT, "reservation.created"),
    )
    .await;
    env.count_reaches(
        "the booked stay",
        "SELECT count(*) FROM bookings WHERE external_id = '6000004'",
        1,
    )
    .await;
    post(
        Reservation::new(6_000_004, 300_101)
            .dates("2026-06-01", "2026-06-01")
            .status("modified")
            .updated("2026-03-02 00:00:00")
            .webhook(ACCOUNT, "reservation.updated"),
    )
    .await;
    post(json!({
        "object": "conversationMessage", "event": "message.received", "accountId": 70001,
        "data": {"id": 88_000_001, "reservationId": 6_000_001, "body": "Hello\u{0} there", "isIncoming": 1}
    }))
    .await;

    env.count_reaches(
        "every webhook processed",
        "SELECT count(*) FROM webhook_log WHERE status = 'processed'",
        6,
    )
    .await;
    let bookings = env.bookings().await;
    assert_eq!(bookings.len(), 4);
    let by_id = |id: &str| bookings.iter().find(|b| b.external_id == id).unwrap();
    assert_eq!(
        by_id("6000001")
            .guest_name
            .as_deref()
            .map(|n| n.chars().count()),
        Some(500),
        "cut, not refused"
    );
    assert_eq!(by_id("6000002").status, "new");
    let zero = by_id("6000003");
    assert_eq!((zero.nights, zero.block_kind.as_deref()), (0, None));
    let kept = by_id("6000004");
    assert_eq!(
        (
            kept.status.as_str(),
            kept.nights,
            kept.block_kind.as_deref()
        ),
        ("modified", 2, Some("booking")),
        "the update applied, but not a stay of no nights over a booked one"
    );
    let adjustments: Vec<String> = sqlx::query_scalar(
        "SELECT adjustments FROM webhook_log WHERE adjustments IS NOT NULL ORDER BY object_id",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    let all = adjustments.join(" | ");
    for flagged in [
        "`guestName` truncated",
        "`cancellationDate` left out",
        "`guestEmail`: NUL",
        "`body`: NUL",
        "`departureDate` left out",
    ] {
        assert!(all.contains(flagged), "{flagged} not flagged in: {all}");
    }
    assert!(
        !all.contains("NNNN") && !all.contains("example.org"),
        "flags never carry values"
    );
    assert!(ingestor.metric("hostaway_mapping_adjustments_total") >= 5.0);
    assert_eq!(env.count("SELECT count(*) FROM dead_letter_queue").await, 0);
    env.outbox_drained().await;
    let messages: Vec<events::pb::GuestMessageReceived> = env
        .stream_messages(&env.topology.events_stream())
        .await
        .into_iter()
        .filter(|(subject, _)| subject.ends_with("guest_message.received"))
        .map(|(_, payload)| events::pb::GuestMessageReceived::decode(payload).unwrap())
        .collect();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body, "Hello there");
    ingestor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_are_answered_200_and_not_kept() {
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
    assert_eq!(env.stream_len(&env.topology.webhooks_stream()).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_has_its_webhooks_parked_until_it_is_enabled() {
    captured_logs();
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, LOGIN, PASSWORD).await;
    env.link(ACCOUNT, "300101").await;
    let account = AccountId::parse(ACCOUNT).unwrap();
    store::accounts::set_enabled(&env.pool, &account, false)
        .await
        .unwrap();
    // One webhook applied before the account was disabled.
    let applied_before =
        Reservation::new(7_000_000, 300_101).webhook(ACCOUNT, "reservation.created");
    let inbound = connector_tests::payloads::inbound(ACCOUNT, &applied_before);
    booking_ingestor::ingest::apply(&env.pool, &inbound)
        .await
        .unwrap();
    let gateway = env.start_gateway().await;
    let ingestor = env.start_ingestor();

    let body = Reservation::new(7_000_001, 300_101).webhook(ACCOUNT, "reservation.created");
    let (status, answer) = gateway.post_basic(LOGIN, PASSWORD, &body).await;
    assert_eq!(status, StatusCode::OK, "kept, never refused: {answer}");
    // Hostaway repeats the one already applied: nothing to wait for.
    let (status, _) = gateway.post_basic(LOGIN, PASSWORD, &applied_before).await;
    assert_eq!(status, StatusCode::OK);
    env.count_reaches(
        "the disabled account's new webhook to be parked",
        "SELECT count(*) FROM parked_webhooks WHERE reason = 'account_disabled' AND due_at IS NULL",
        1,
    )
    .await;
    connector_tests::eventually(
        "both deliveries consumed",
        connector_tests::DEADLINE,
        || async { (env.stream_len(&env.topology.webhooks_stream()).await == 0).then_some(()) },
    )
    .await;
    assert_eq!(
        env.count("SELECT count(*) FROM parked_webhooks").await,
        1,
        "the repeat of an applied webhook is not parked"
    );
    assert_eq!(env.bookings().await.len(), 1, "parked, not applied");

    store::accounts::set_enabled(&env.pool, &account, true)
        .await
        .unwrap();
    env.count_reaches(
        "the parked webhook applied once the account is enabled",
        "SELECT count(*) FROM bookings",
        2,
    )
    .await;
    env.count_reaches("nothing parked", "SELECT count(*) FROM parked_webhooks", 0)
        .await;
    ingestor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_gateway_does_not_wait_for_half_sent_requests() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    captured_logs();
    let env = TestEnv::new().await;
    env.add_basic_account(ACCOUNT, LOGIN, PASSWORD).await;
    let gateway = env
        .start_gateway_with(|settings| settings.shutdown_timeout = Duration::from_secs(20))
        .await;
    // A scanner that stops mid-headers, and an idle keep-alive connection.
    let mut half_sent = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    half_sent
        .write_all(b"POST /webhooks/hostaway HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut idle = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let (status, _) = gateway.post_basic(LOGIN, PASSWORD, &reservation()).await;
    assert_eq!(status, StatusCode::OK);

    assert!(
        gateway.stop_within(Duration::from_secs(10)).await,
        "the gateway stops without waiting its 20 s deadline for requests that will never come"
    );
    for stream in [&mut half_sent, &mut idle] {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "the connection was closed: {read:?}"
        );
    }
}

trait KeyText {
    fn credentials_key_text(&self) -> String;
}

impl KeyText for TestEnv {
    fn credentials_key_text(&self) -> String {
        connector_tests::env::reveal(&self.credentials_key).to_owned()
    }
}
