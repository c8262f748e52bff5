//! Hostile clients cannot starve Hostaway: 5,000 idle (or half-sent)
//! connections and 1,000 bodies trickling at one byte a second, and a valid
//! webhook is still answered 200 within a second, while the gateway's memory
//! stays bounded.
//!
//! The gateway runs as its own process (the binary this package builds), so
//! its memory is read from `/proc` apart from the clients'. It talks to the
//! real NATS (a namespace of its own) and PostgreSQL (a database of its own).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use domain::AccountId;
use secrecy::{ExposeSecret, SecretString};
use store::accounts::NewAccount;
use store::crypto::CredentialCipher;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const ACCOUNT: &str = "70001";
const LOGIN: &str = "hostaway-70001";
const PASSWORD: &str = "slow-clients-pw";
const IDLE: usize = 5_000;
const TRICKLING: usize = 1_000;
/// What the gateway's resident memory must stay under, attack included.
const MEMORY_BOUND_KIB: u64 = 256 * 1024;
const MAX_CONNECTIONS: usize = 4096;

fn basic(login: &str, password: &str) -> String {
    mapping::signature::basic_authorization(login, password)
}

/// The gateway's peak and current resident memory, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// File descriptors the gateway holds (its open connections, and a few more).
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

/// The status of the answer on `stream`, if one comes.
async fn answer_status(stream: &mut tokio::net::tcp::OwnedReadHalf) -> Option<u16> {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        match stream.read(&mut buf[read..]).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => read += n,
        }
    }
    std::str::from_utf8(&buf[9..12]).ok()?.parse().ok()
}

struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    async fn create() -> Self {
        let admin = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!(
            "hwc_slow_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let pool =
            store::connect_lazy(&SecretString::from(admin.clone()), &Default::default()).unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .expect("PostgreSQL must be running (just services)");
        pool.close().await;
        let url = match admin.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("TEST_DATABASE_URL names no database"),
        };
        Self { admin, name, url }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let pool =
                    store::connect_lazy(&SecretString::from(admin), &Default::default()).ok()?;
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&pool)
                .await;
                Some(())
            })
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_cannot_keep_a_valid_webhook_out() {
    service_kit::install_crypto_provider();
    let database = Database::create().await;
    let pool = store::connect_lazy(
        &SecretString::from(database.url.clone()),
        &Default::default(),
    )
    .unwrap();
    store::migrate(&pool).await.unwrap();
    let key = CredentialCipher::generate_key();
    let cipher = CredentialCipher::new(&key, None).unwrap();
    store::accounts::add_account(
        &pool,
        &cipher,
        NewAccount {
            account: AccountId::parse(ACCOUNT).unwrap(),
            display_name: None,
            api_key: None,
            webhook_login: Some(LOGIN.into()),
            webhook_password: Some(SecretString::from(PASSWORD.to_owned())),
            webhook_secret: None,
        },
    )
    .await
    .unwrap();
    let nats_url =
        std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let namespace = format!("slow{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    // What `hostaway-admin streams provision` does before the gateway starts.
    let topology = service_kit::nats::Topology::new(&namespace).unwrap();
    let provisioner = async_nats::connect(&nats_url).await.unwrap();
    service_kit::nats::provision(
        &async_nats::jetstream::new(provisioner),
        &topology,
        &service_kit::nats::StreamSettings::default(),
    )
    .await
    .unwrap();

    let mut gateway = tokio::process::Command::new(env!("CARGO_BIN_EXE_webhook-gateway"))
        .env_clear()
        .env("GATEWAY_LISTEN", "127.0.0.1:0")
        .env("OPS_LISTEN", "127.0.0.1:0")
        .env("NATS_URL", &nats_url)
        .env("NATS_NAMESPACE", &namespace)
        .env("DATABASE_URL", &database.url)
        .env("CONNECTOR_CREDENTIALS_KEY", key.expose_secret())
        .env("GATEWAY_MAX_CONNECTIONS", MAX_CONNECTIONS.to_string())
        .env("GATEWAY_HEADER_READ_TIMEOUT_MS", "2000")
        .env("GATEWAY_BODY_TIMEOUT_MS", "3000")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the gateway binary starts");
    let pid = gateway.id().expect("a pid");
    // Its log is read all along: a full pipe would stall it.
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<String>();
    let stdout = gateway.stdout.take().expect("stdout");
    tokio::spawn(async move {
        let mut addr_tx = Some(addr_tx);
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if value["message"] == "webhook gateway listening"
                && let (Some(tx), Some(addr)) = (addr_tx.take(), value["addr"].as_str())
            {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = tokio::time::timeout(Duration::from_secs(60), addr_rx)
        .await
        .expect("the gateway listens within a minute")
        .expect("its address");
    let http = reqwest::Client::builder().build().unwrap();
    let url = format!("http://{addr}/webhooks/hostaway");
    let body = |id: u64| {
        serde_json::json!({
            "object": "reservation", "event": "reservation.created", "accountId": 70001,
            "data": {"id": id, "listingMapId": 300101, "status": "new",
                     "arrivalDate": "2026-04-10", "departureDate": "2026-04-12",
                     "updatedOn": "2026-03-01 09:12:45"}
        })
        .to_string()
    };
    let deliver = |id: u64| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let started = Instant::now();
            let response = http
                .post(&url)
                .header("authorization", basic(LOGIN, PASSWORD))
                .header("content-type", "application/json")
                .body(body(id))
                .send()
                .await;
            (response.map(|r| r.status().as_u16()), started.elapsed())
        }
    };
    // Ready: credentials loaded and streams provisioned.
    let started = Instant::now();
    loop {
        if let (Ok(200), _) = deliver(1).await {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the gateway accepts a webhook"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, baseline_kib) = memory_kib(pid);

    // The attack. Idle connections: half say nothing, half stop mid-headers.
    let connected = Arc::new(AtomicUsize::new(0));
    // Each with whether it stopped mid-headers.
    let mut idle: Vec<(TcpStream, bool)> = Vec::with_capacity(IDLE);
    for chunk in 0..IDLE / 250 {
        let batch: Vec<_> = (0..250)
            .map(|i| {
                let addr = addr.clone();
                let connected = Arc::clone(&connected);
                tokio::spawn(async move {
                    let mut stream = TcpStream::connect(&addr).await.ok()?;
                    let half_sent = (chunk * 250 + i) % 2 == 1;
                    if half_sent {
                        let _ = stream
                            .write_all(b"POST /webhooks/hostaway HTTP/1.1\r\nHost: x\r\n")
                            .await;
                    }
                    connected.fetch_add(1, Ordering::Relaxed);
                    Some((stream, half_sent))
                })
            })
            .collect();
        for handle in batch {
            if let Ok(Some(stream)) = handle.await {
                idle.push(stream);
            }
        }
    }
    // Bodies trickling at a byte a second: without credentials, with a
    // login nobody has (their body must be read to find the account), and
    // with a wrong password.
    let trickled = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(std::sync::Mutex::new(Vec::<Option<u16>>::new()));
    let mut trickling = Vec::with_capacity(TRICKLING);
    for i in 0..TRICKLING {
        let addr = addr.clone();
        let trickled = Arc::clone(&trickled);
        let answers = Arc::clone(&answers);
        let authorization = match i % 3 {
            0 => String::new(),
            1 => format!("Authorization: {}\r\n", basic("nobody", "x")),
            _ => format!("Authorization: {}\r\n", basic(LOGIN, "wrong")),
        };
        trickling.push(tokio::spawn(async move {
            let Ok(stream) = TcpStream::connect(&addr).await else {
                return;
            };
            let (mut read, mut write) = stream.into_split();
            let head = format!(
                "POST /webhooks/hostaway HTTP/1.1\r\nHost: x\r\n{authorization}Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n"
            );
            if write.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            trickled.fetch_add(1, Ordering::Relaxed);
            let trickle = async move {
                for _ in 0..60 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if write.write_all(b" ").await.is_err() {
                        return;
                    }
                }
            };
            let status = tokio::select! {
                status = answer_status(&mut read) => status,
                () = trickle => None,
            };
            answers.lock().unwrap().push(status);
        }));
    }
    let attack_started = Instant::now();
    while trickled.load(Ordering::Relaxed) < TRICKLING * 9 / 10
        && attack_started.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "attack: {} idle or half-sent connections, {} trickling bodies",
        connected.load(Ordering::Relaxed),
        trickled.load(Ordering::Relaxed)
    );

    // Valid webhooks, each on a fresh connection, while the attack goes on.
    let mut peak_kib = 0;
    for id in 0..5u64 {
        let (status, elapsed) = deliver(100 + id).await;
        assert_eq!(status.ok(), Some(200), "webhook {id} under attack");
        assert!(
            elapsed < Duration::from_secs(1),
            "webhook {id} answered in {elapsed:?} under attack"
        );
        println!("valid webhook {id}: 200 in {elapsed:?}");
        peak_kib = peak_kib.max(memory_kib(pid).1);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let files = open_files(pid);
    println!("gateway file descriptors under attack: {files}");
    assert!(
        files <= MAX_CONNECTIONS + 64,
        "open connections stay under the cap ({files} descriptors)"
    );
    let (hwm_kib, rss_kib) = memory_kib(pid);
    println!(
        "gateway memory: {} MiB before the attack, {} MiB during it (peak {} MiB)",
        baseline_kib / 1024,
        rss_kib.max(peak_kib) / 1024,
        hwm_kib / 1024
    );
    assert!(
        hwm_kib < MEMORY_BOUND_KIB,
        "the gateway's peak memory, {hwm_kib} KiB, stays bounded"
    );

    // Every trickling body got an answer Hostaway would retry or a 401: no
    // 408 or 413 (final for Hostaway), and nobody waited forever.
    for handle in trickling {
        let _ = tokio::time::timeout(Duration::from_secs(30), handle).await;
    }
    let answers = answers.lock().unwrap().clone();
    let count = |code: u16| answers.iter().filter(|a| **a == Some(code)).count();
    println!(
        "trickling bodies answered: {} x 401, {} x 503, {} other",
        count(401),
        count(503),
        answers.len() - count(401) - count(503)
    );
    assert_eq!(
        answers.len(),
        TRICKLING,
        "every trickling body was answered"
    );
    assert_eq!(
        count(401) + count(503),
        TRICKLING,
        "401 for bad credentials, 503 for a body too slow or a full pool: {answers:?}"
    );
    assert!(count(503) > 0 && count(401) > 0);

    // Connections stopped mid-headers were closed by the gateway (timed out,
    // or evicted to make room).
    let mut half_sent_open = 0;
    for (i, (stream, _)) in idle
        .iter_mut()
        .enumerate()
        .filter(|(_, (_, half_sent))| *half_sent)
    {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        if closed.is_err() {
            half_sent_open += 1;
            println!("half-sent connection {i} still open");
        }
    }
    assert_eq!(half_sent_open, 0, "half-sent headers are timed out");
    drop(idle);
    let _ = gateway.kill().await;
    if let Ok(client) = async_nats::connect(&nats_url).await {
        let js = async_nats::jetstream::new(client);
        service_kit::nats::delete_streams(&js, &topology).await;
    }
    pool.close().await;
}
