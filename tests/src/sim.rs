//! The Hostaway simulator and a client pointed at it.

use std::sync::Arc;

use domain::AccountId;
use hostaway_client::{ClientConfig, ClientMetrics, HostawayClient, StaticCredentials};
use hostaway_sim::{Sim, SimConfig};
use secrecy::SecretString;

pub const ACCOUNT: &str = "70001";
pub const SECRET: &str = "sim-client-secret-never-logged";

#[derive(Debug)]
pub struct SimClient {
    pub sim: Sim,
    pub client: HostawayClient,
    pub registry: prometheus::Registry,
    pub account: AccountId,
}

impl SimClient {
    /// A simulator with account 70001 and a client for it (no request timeout:
    /// the tests that use this run on a paused clock).
    pub async fn start(sim_config: SimConfig, configure: impl FnOnce(&mut ClientConfig)) -> Self {
        service_kit::install_crypto_provider();
        let sim = Sim::start("127.0.0.1:0".parse().expect("addr"), sim_config)
            .await
            .expect("simulator starts");
        sim.add_account(ACCOUNT, SECRET).await;
        let mut config = ClientConfig {
            base_url: sim.base_url(),
            timeout: None,
            ..ClientConfig::default()
        };
        configure(&mut config);
        let account = AccountId::parse(ACCOUNT).expect("account id");
        let credentials =
            StaticCredentials::new().with(account.clone(), SecretString::from(SECRET.to_owned()));
        let registry = prometheus::Registry::new();
        let metrics = ClientMetrics::register(&registry).expect("metrics");
        let client = HostawayClient::new(config, Arc::new(credentials), metrics).expect("client");
        Self {
            sim,
            client,
            registry,
            account,
        }
    }

    /// The sum of a metric family's series (0 when absent).
    pub fn metric(&self, name: &str, label: Option<(&str, &str)>) -> f64 {
        crate::services::metric_sum(&self.registry, name, label)
    }
}
