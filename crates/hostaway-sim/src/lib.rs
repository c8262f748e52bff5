//! `hostaway-sim`: Hostaway as the connector meets it, in one process.
//!
//! - the API endpoints the client uses, with Hostaway's envelopes, 0/1
//!   booleans, error bodies (`message` or `result`), `afterId` paging in the
//!   documented order, and `calendarIntervals` refusing more than 200 ranges;
//! - OAuth client credentials: tokens activate a second after issue, expire,
//!   and are refused with 403 when stale;
//! - 429 at the real limits: 20 requests per 10 s per account and 15 per 10 s
//!   per client address, counted over a sliding window;
//! - faults settable at run time ([`Faults`]): a share of 5xx, added latency,
//!   timeouts, dropped connections, a forced 429 storm;
//! - listings and reservations with every key real ones carry (144 and 123,
//!   `src/records/`: the simulator's own values in Hostaway's shapes);
//! - multi-unit listings (`listingUnits`), opened and closed only with
//!   `desiredUnitsToSell` (`isAvailable` does nothing there);
//! - a webhook sender that creates, modifies and cancels reservations and
//!   delivers unified webhooks (Basic or HMAC) to the target a test sets, or
//!   else to every enabled unified webhook the account registered,
//!   optionally duplicated, reordered or delayed, retrying like Hostaway
//!   (5xx, 429, network errors);
//! - state tests and the demo read back: calendars, requests per account,
//!   deliveries.
//!
//! Time is tokio's: tests may pause it.

mod api;
mod control;
pub mod faults;
pub mod limits;
pub mod sender;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Mutex;

pub use faults::Faults;
pub use sender::{DeliveryOptions, WebhookAuth, WebhookTarget};
pub use state::{Delivery, RequestRecord, SimState};

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Requests per window per account (Hostaway: 20).
    pub account_limit: usize,
    /// Requests per window per client address (Hostaway: 15).
    pub ip_limit: usize,
    pub window: Duration,
    /// How long a new token lives.
    pub token_lifetime: Duration,
    /// A token is refused until this long after issue (Hostaway: 1 s).
    pub token_activation: Duration,
    /// Answer the token endpoint wrapped in `{status, result}` (as one client
    /// reports) instead of bare.
    pub wrapped_token_response: bool,
    /// Add `Retry-After` (seconds) to 429s (the docs document none).
    pub retry_after_header: bool,
    /// Seed of the fault dice, for reproducible runs.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            account_limit: 20,
            ip_limit: 15,
            window: Duration::from_secs(10),
            token_lifetime: Duration::from_secs(730 * 24 * 3600),
            token_activation: Duration::from_secs(1),
            wrapped_token_response: false,
            retry_after_header: false,
            seed: 1,
        }
    }
}

/// A running simulator.
#[derive(Debug, Clone)]
pub struct Sim {
    addr: SocketAddr,
    pub state: Arc<Mutex<SimState>>,
    pub faults: Arc<std::sync::Mutex<Faults>>,
    pub config: SimConfig,
    /// The server task (absent on handles made for the simulator's own endpoints).
    task: Option<Arc<tokio::task::JoinHandle<()>>>,
}

impl Sim {
    /// Starts on `addr` (port 0 picks one) and serves until dropped or stopped.
    pub async fn start(addr: SocketAddr, config: SimConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(SimState::new(config.clone())));
        let faults = Arc::new(std::sync::Mutex::new(Faults::default()));
        let shared = api::Shared {
            state: Arc::clone(&state),
            faults: Arc::clone(&faults),
            rng: Arc::new(std::sync::Mutex::new(fastrand::Rng::with_seed(config.seed))),
            config: config.clone(),
        };
        let app = api::router(shared.clone()).merge(control::router(shared));
        let task = tokio::spawn(async move {
            let service = app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(error) = axum::serve(listener, service).await {
                tracing::error!(%error, "simulator stopped");
            }
        });
        Ok(Self {
            addr,
            state,
            faults,
            config,
            task: Some(Arc::new(task)),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL the client is configured with: `http://…/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    pub fn stop(&self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }

    /// A handle sharing a running simulator's state (for its own endpoints).
    pub(crate) fn from_shared(shared: &api::Shared) -> Self {
        Self {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            state: Arc::clone(&shared.state),
            faults: Arc::clone(&shared.faults),
            config: shared.config.clone(),
            task: None,
        }
    }

    /// Makes every issued token stale now, as if Hostaway expired or revoked
    /// them early: the next request with one gets a 403.
    pub async fn expire_tokens(&self) {
        let now = tokio::time::Instant::now();
        for token in self.state.lock().await.tokens.values_mut() {
            token.expires_at = now;
        }
    }

    /// Revokes the account's tokens, as a key rotation at Hostaway might: a
    /// request with one is answered 401.
    pub async fn revoke_tokens(&self, account: &str) {
        for token in self.state.lock().await.tokens.values_mut() {
            if token.account == account {
                token.revoked = true;
            }
        }
    }

    /// Tokens issued so far.
    pub async fn tokens_issued(&self) -> usize {
        self.state.lock().await.tokens.len()
    }

    pub async fn add_account(&self, account: &str, secret: &str) {
        self.state.lock().await.add_account(account, secret);
    }

    /// Adds a listing (fields over Hostaway-like defaults); returns its id.
    pub async fn add_listing(
        &self,
        account: &str,
        fields: serde_json::Map<String, serde_json::Value>,
    ) -> Option<u64> {
        self.state.lock().await.add_listing(account, fields)
    }

    /// Changes days of a listing behind the connector's back, as a manager
    /// editing the calendar in Hostaway would (no request is recorded).
    /// `interval` is a `calendarIntervals` item.
    pub async fn edit_calendar(
        &self,
        listing: u64,
        interval: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), String> {
        let change = api::parse_interval(interval)?;
        let mut state = self.state.lock().await;
        let account = state
            .listing_account(listing)
            .map(str::to_owned)
            .ok_or_else(|| format!("no listing {listing}"))?;
        api::apply_interval(&mut state, &account, listing, &change);
        Ok(())
    }

    /// Every request so far (of one account, with `Some`).
    pub async fn requests(&self, account: Option<&str>) -> Vec<RequestRecord> {
        self.state.lock().await.requests_of(account)
    }

    pub async fn deliveries(&self) -> Vec<Delivery> {
        self.state.lock().await.deliveries.clone()
    }

    /// The most requests any sliding window saw: per account (with `Some`),
    /// or from one client address.
    pub async fn max_requests_in_window(&self, account: Option<&str>) -> usize {
        let window = self.config.window;
        let requests = self.requests(account).await;
        match account {
            Some(_) => {
                let times: Vec<_> = requests.iter().map(|r| r.at).collect();
                limits::max_in_window(&times, window)
            }
            None => {
                let mut by_peer: std::collections::HashMap<
                    std::net::IpAddr,
                    Vec<tokio::time::Instant>,
                > = std::collections::HashMap::new();
                for r in &requests {
                    by_peer.entry(r.peer).or_default().push(r.at);
                }
                by_peer
                    .values()
                    .map(|times| limits::max_in_window(times, window))
                    .max()
                    .unwrap_or(0)
            }
        }
    }
}
