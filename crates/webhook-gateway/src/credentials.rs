//! Webhook credentials in memory.
//!
//! A snapshot of every account's webhook credentials is swapped in whole. It is
//! reloaded when PostgreSQL notifies `hostaway_channels_changed` (any write to
//! `channels`), and on a timer as a safety net. When the database is down the
//! last snapshot stays in force.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use domain::AccountId;
use secrecy::SecretString;
use sqlx::postgres::PgListener;
use store::PgPool;
use store::accounts::WebhookCredentials;
use store::crypto::CredentialCipher;
use tokio_util::sync::CancellationToken;

/// One account's webhook credentials.
#[derive(Debug, Clone)]
pub struct AccountAuth {
    pub account: AccountId,
    pub login: Option<String>,
    pub passwords: Vec<SecretString>,
    pub hmac_secrets: Vec<SecretString>,
    /// A disabled account still authenticates: its webhooks are kept, parked
    /// until it is enabled again (Hostaway never retries a 401).
    pub enabled: bool,
}

impl From<WebhookCredentials> for AccountAuth {
    fn from(c: WebhookCredentials) -> Self {
        Self {
            account: c.account,
            login: c.login,
            passwords: c.passwords,
            hmac_secrets: c.hmac_secrets,
            enabled: c.enabled,
        }
    }
}

#[derive(Debug, Default)]
struct Snapshot {
    by_account: HashMap<AccountId, Arc<AccountAuth>>,
    by_login: HashMap<String, Arc<AccountAuth>>,
    loaded_at: Option<Instant>,
}

impl Snapshot {
    fn build(accounts: impl IntoIterator<Item = AccountAuth>) -> Self {
        let mut snapshot = Snapshot::default();
        for auth in accounts {
            let auth = Arc::new(auth);
            if let Some(login) = &auth.login {
                snapshot.by_login.insert(login.clone(), Arc::clone(&auth));
            }
            snapshot.by_account.insert(auth.account.clone(), auth);
        }
        snapshot
    }
}

/// The gateway's view of which accounts exist and how they authenticate.
#[derive(Debug)]
pub struct CredentialCache {
    snapshot: RwLock<Arc<Snapshot>>,
    /// Configured through the environment: always present, even before the
    /// database was ever reachable. An account in the database overrides it.
    bootstrap: Option<AccountAuth>,
}

impl CredentialCache {
    pub fn new(bootstrap: Option<AccountAuth>) -> Self {
        let snapshot = Snapshot::build(bootstrap.clone());
        Self {
            snapshot: RwLock::new(Arc::new(snapshot)),
            bootstrap,
        }
    }

    fn current(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn by_account(&self, account: &AccountId) -> Option<Arc<AccountAuth>> {
        self.current().by_account.get(account).cloned()
    }

    pub fn by_login(&self, login: &str) -> Option<Arc<AccountAuth>> {
        self.current().by_login.get(login).cloned()
    }

    /// Replaces the snapshot with the accounts loaded from the database.
    /// An account whose credentials did not decrypt (`undecryptable`) keeps the
    /// entry it had: refusing its webhooks would answer 401, which Hostaway
    /// never retries, for a fault of ours.
    pub fn replace(&self, loaded: Vec<WebhookCredentials>, undecryptable: &[AccountId]) {
        let previous = self.current();
        let mut accounts: Vec<AccountAuth> = Vec::with_capacity(loaded.len() + 1);
        if let Some(boot) = &self.bootstrap
            && !loaded.iter().any(|c| c.account == boot.account)
        {
            accounts.push(boot.clone());
        }
        accounts.extend(
            undecryptable
                .iter()
                .filter_map(|account| previous.by_account.get(account))
                .map(|auth| auth.as_ref().clone()),
        );
        accounts.extend(loaded.into_iter().map(AccountAuth::from));
        let mut snapshot = Snapshot::build(accounts);
        snapshot.loaded_at = Some(Instant::now());
        match self.snapshot.write() {
            Ok(mut guard) => *guard = Arc::new(snapshot),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(snapshot),
        }
    }

    /// Whether credentials were loaded from PostgreSQL since this process started.
    pub fn loaded_from_database(&self) -> bool {
        self.current().loaded_at.is_some()
    }

    /// Whether any credentials are usable: loaded from the database at least
    /// once, or bootstrapped from the environment.
    pub fn is_usable(&self) -> bool {
        let snapshot = self.current();
        snapshot.loaded_at.is_some() || !snapshot.by_account.is_empty()
    }

    pub fn len(&self) -> usize {
        self.current().by_account.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Seconds since the last successful load from the database.
    pub fn age(&self) -> Option<Duration> {
        self.current().loaded_at.map(|at| at.elapsed())
    }
}

const NOTIFY_CHANNEL: &str = "hostaway_channels_changed";

/// Keeps `cache` current until `stop`: reloads on every notification, every
/// `interval`, and after reconnecting (notifications may have been missed).
pub async fn refresh_loop(
    cache: Arc<CredentialCache>,
    pool: PgPool,
    cipher: Arc<CredentialCipher>,
    interval: Duration,
    metrics: crate::metrics::GatewayMetrics,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let reload = || reload(&cache, &pool, &cipher, &metrics);
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(NOTIFY_CHANNEL).await {
                Ok(()) => listener,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for credential changes");
                    if wait_or_stop(&stop, backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            },
            Err(error) => {
                tracing::warn!(%error, "database unreachable; webhooks are checked against the last credentials");
                if wait_or_stop(&stop, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        backoff = Duration::from_millis(200);
        // Listening first, loading second: no change can fall between the two.
        if reload().await.is_err() {
            if wait_or_stop(&stop, backoff).await {
                return;
            }
            continue;
        }
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {
                    if reload().await.is_err() {
                        break;
                    }
                }
                notification = listener.try_recv() => match notification {
                    Ok(_) => {
                        // Some(_) is a change; None means the connection was
                        // re-established and changes may have been missed.
                        if reload().await.is_err() {
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "credential change listener lost");
                        break;
                    }
                },
            }
        }
        if wait_or_stop(&stop, backoff).await {
            return;
        }
    }
}

async fn reload(
    cache: &CredentialCache,
    pool: &PgPool,
    cipher: &CredentialCipher,
    metrics: &crate::metrics::GatewayMetrics,
) -> Result<(), store::StoreError> {
    match store::accounts::load_webhook_credentials(pool, cipher).await {
        Ok((loaded, failed)) => {
            for (account, error) in &failed {
                tracing::error!(account_id = %account, %error, "account credentials do not decrypt; keeping the ones already in memory");
            }
            let failed: Vec<AccountId> = failed.into_iter().map(|(account, _)| account).collect();
            cache.replace(loaded, &failed);
            metrics.accounts_loaded.set(cache.len() as i64);
            metrics
                .credentials_reloaded_at
                .set(chrono::Utc::now().timestamp());
            tracing::debug!(accounts = cache.len(), "webhook credentials reloaded");
            Ok(())
        }
        Err(error) => {
            tracing::warn!(%error, "credential reload failed; keeping the last credentials");
            Err(error)
        }
    }
}

async fn wait_or_stop(stop: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}
