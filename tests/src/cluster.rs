//! A NATS JetStream cluster of real `nats-server` processes on loopback,
//! for the durability tests: a node can be killed the way a crash would.
//!
//! The binary is `NATS_SERVER_BIN`, else `nats-server` on the `PATH` (`just
//! services` installs it).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;

use crate::eventually;

/// One server of the cluster.
#[derive(Debug)]
struct Node {
    name: String,
    client_port: u16,
    process: Option<Child>,
}

#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
}

/// A loopback port free now (the server binds it a moment later).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

fn binary() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".to_owned())
}

impl NatsCluster {
    /// Starts `size` clustered servers with JetStream and waits until the
    /// cluster can hold a stream replicated on every node.
    pub async fn start(size: usize) -> Self {
        let dir = std::env::temp_dir().join(format!("hwc-cluster-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let cluster_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let routes = cluster_ports
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::with_capacity(size);
        for (i, cluster_port) in cluster_ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let client_port = free_port();
            let store = dir.join(&name);
            let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log file");
            let process = Command::new(binary())
                .args(["-a", "127.0.0.1", "-p", &client_port.to_string(), "-js"])
                .arg("-sd")
                .arg(&store)
                .args(["--server_name", &name, "--cluster_name", "hwc"])
                .args(["--cluster", &format!("nats://127.0.0.1:{cluster_port}")])
                .args(["--routes", &routes])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|error| {
                    panic!(
                        "cannot start {} ({error}): install nats-server (`just services`) or set NATS_SERVER_BIN",
                        binary()
                    )
                });
            nodes.push(Node {
                name,
                client_port,
                process: Some(process),
            });
        }
        let cluster = Self { nodes, dir };
        cluster.wait_until_replicated(size).await;
        cluster
    }

    async fn wait_until_replicated(&self, size: usize) {
        let client = eventually(
            "the cluster to accept clients",
            Duration::from_secs(30),
            || async { async_nats::connect(self.urls().as_slice()).await.ok() },
        )
        .await;
        let js = jetstream::new(client);
        // A stream on every node only once the meta leader knows them all.
        eventually(
            "the cluster to place a replicated stream",
            Duration::from_secs(60),
            || {
                let js = js.clone();
                async move {
                    let created = js
                        .create_stream(jetstream::stream::Config {
                            name: "CLUSTER_PROBE".into(),
                            subjects: vec!["cluster.probe".into()],
                            num_replicas: size,
                            ..Default::default()
                        })
                        .await
                        .is_ok();
                    created.then_some(())
                }
            },
        )
        .await;
        let _ = js.delete_stream("CLUSTER_PROBE").await;
    }

    /// Every server's client URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("nats://127.0.0.1:{}", node.client_port))
            .collect()
    }

    /// The server leading `stream` now.
    pub async fn leader_of(&self, js: &jetstream::Context, stream: &str) -> String {
        eventually(
            "the stream to have a leader",
            Duration::from_secs(30),
            || async {
                let mut handle = js.get_stream(stream).await.ok()?;
                let info = handle.info().await.ok()?;
                info.cluster.as_ref()?.leader.clone()
            },
        )
        .await
    }

    /// Kills a server with SIGKILL: no goodbye to its peers or clients.
    pub fn kill(&mut self, name: &str) {
        let node = self
            .nodes
            .iter_mut()
            .find(|node| node.name == name)
            .unwrap_or_else(|| panic!("no server named {name}"));
        if let Some(mut process) = node.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut process) = node.process.take() {
                let _ = process.kill();
                let _ = process.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One `nats-server` with JetStream that enforces the connector's per-service
/// users and permissions (deploy/nats/permissions.conf, included unchanged).
#[derive(Debug)]
pub struct SecuredNats {
    process: Option<Child>,
    port: u16,
    dir: PathBuf,
    pub users: crate::env::NatsUsers,
}

impl SecuredNats {
    pub const USERS: [&str; 7] = [
        "gateway",
        "ingestor",
        "dispatcher",
        "admin-api",
        "provisioner",
        "admin",
        "tvl",
    ];

    /// Starts the server with `permissions` (a file in the format of
    /// deploy/nats/permissions.conf) and a fresh password per user.
    pub async fn start(permissions: &std::path::Path) -> Self {
        let dir = std::env::temp_dir().join(format!("hwc-secured-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("server directory");
        std::fs::copy(permissions, dir.join("permissions.conf")).expect("permissions copied");
        let port = free_port();
        std::fs::write(
            dir.join("server.conf"),
            format!(
                "listen: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\ninclude ./permissions.conf\n",
                dir.join("js").display()
            ),
        )
        .expect("server configuration");
        let passwords: std::collections::HashMap<String, String> = Self::USERS
            .iter()
            // NATS reads an environment value as a configuration value: one
            // that starts with a digit would be taken for a number.
            .map(|user| {
                (
                    (*user).to_owned(),
                    format!("pw{}", uuid::Uuid::new_v4().simple()),
                )
            })
            .collect();
        let log = std::fs::File::create(dir.join("server.log")).expect("log file");
        let mut command = Command::new(binary());
        command
            .arg("-c")
            .arg(dir.join("server.conf"))
            .stdout(Stdio::null())
            .stderr(log);
        for (user, password) in &passwords {
            command.env(
                format!(
                    "NATS_{}_PASSWORD",
                    user.to_ascii_uppercase().replace('-', "_")
                ),
                password,
            );
        }
        let process = command.spawn().unwrap_or_else(|error| {
            panic!(
                "cannot start {} ({error}): install nats-server (`just services`) or set NATS_SERVER_BIN",
                binary()
            )
        });
        let server = Self {
            process: Some(process),
            port,
            dir,
            users: crate::env::NatsUsers { passwords },
        };
        // The client keeps trying until the server listens.
        let admin = service_kit::nats::connect(
            &server.users.url(&server.url(), "admin"),
            None,
            "hostaway-admin",
        )
        .await
        .expect("admin client");
        eventually(
            "the secured server to serve its admin",
            Duration::from_secs(30),
            || async {
                admin
                    .request("$JS.API.INFO", "".into())
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Every permission the server refused so far, as it logged them.
    pub fn violations(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("server.log"))
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains("Violation"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for SecuredNats {
    fn drop(&mut self) {
        // What the server refused, beside a failure's message.
        for violation in self.violations() {
            eprintln!("nats-server: {violation}");
        }
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
