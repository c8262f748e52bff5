//! Access tokens: one per account, fetched with client credentials, cached
//! until shortly before they expire, not used before Hostaway activates them.

use std::fmt::Debug;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::AccountId;
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

/// A token and when it may be used.
#[derive(Clone)]
pub struct CachedToken {
    pub secret: SecretString,
    /// Hostaway activates a new token a second after issuing it.
    pub usable_from: Instant,
    /// When to fetch a new one (a margin before the real expiry).
    pub refresh_at: Instant,
    /// SHA-256 of the client secret it was minted with (not the secret).
    key_fingerprint: Option<[u8; 32]>,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("secret", &"[REDACTED]")
            .field("usable_from", &self.usable_from)
            .field("refresh_at", &self.refresh_at)
            .finish_non_exhaustive()
    }
}

fn fingerprint(key: &SecretString) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(key.expose_secret().as_bytes()).into()
}

/// Tokens of unknown lifetime are refreshed after a day.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(24 * 3600);

impl CachedToken {
    pub fn new(
        secret: SecretString,
        issued: Instant,
        expires_in: Option<Duration>,
        activation: Duration,
    ) -> Self {
        let lifetime = expires_in.unwrap_or(DEFAULT_LIFETIME);
        // Refresh a little early: a tenth of the lifetime, at most five minutes.
        let margin = (lifetime / 10).min(Duration::from_secs(300));
        Self {
            secret,
            usable_from: issued + activation,
            refresh_at: issued + lifetime.saturating_sub(margin),
            key_fingerprint: None,
        }
    }

    /// Notes the client secret the token was minted with.
    pub fn minted_with(mut self, key: &SecretString) -> Self {
        self.key_fingerprint = Some(fingerprint(key));
        self
    }

    /// Whether it was minted with `key` (unknown: no).
    pub fn was_minted_with(&self, key: &SecretString) -> bool {
        self.key_fingerprint == Some(fingerprint(key))
    }

    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.refresh_at
    }

    /// Whether this is the same token as `other` (to invalidate only the token
    /// a failed request actually used).
    pub fn same_as(&self, other: &SecretString) -> bool {
        self.secret.expose_secret() == other.expose_secret()
    }

    /// This token for the shared store, its instants as wall-clock times.
    pub fn to_shared(&self) -> SharedToken {
        let now = Instant::now();
        let wall = Utc::now();
        let at = |instant: Instant| {
            wall + chrono::Duration::from_std(instant.saturating_duration_since(now))
                .unwrap_or_default()
        };
        SharedToken {
            secret: self.secret.clone(),
            usable_from: at(self.usable_from),
            refresh_at: at(self.refresh_at),
            key_fingerprint: self.key_fingerprint,
        }
    }
}

/// An access token as replicas share it: wall-clock times (each replica has
/// its own monotonic clock), and the fingerprint of the key it was minted with.
#[derive(Clone)]
pub struct SharedToken {
    pub secret: SecretString,
    pub usable_from: DateTime<Utc>,
    pub refresh_at: DateTime<Utc>,
    pub key_fingerprint: Option<[u8; 32]>,
}

impl Debug for SharedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedToken")
            .field("secret", &"[REDACTED]")
            .field("usable_from", &self.usable_from)
            .field("refresh_at", &self.refresh_at)
            .finish_non_exhaustive()
    }
}

impl SharedToken {
    pub fn is_fresh(&self) -> bool {
        Utc::now() < self.refresh_at
    }

    /// Whether it was minted with `key` (unknown: no).
    pub fn was_minted_with(&self, key: &SecretString) -> bool {
        self.key_fingerprint == Some(fingerprint(key))
    }

    /// As this process caches it (on tokio's clock).
    pub fn to_cached(&self) -> CachedToken {
        let now = Instant::now();
        let wall = Utc::now();
        let at = |time: DateTime<Utc>| now + (time - wall).to_std().unwrap_or_default();
        CachedToken {
            secret: self.secret.clone(),
            usable_from: at(self.usable_from),
            refresh_at: at(self.refresh_at),
            key_fingerprint: self.key_fingerprint,
        }
    }

    /// SHA-256 of the token itself, to name it without showing it.
    pub fn token_fingerprint(secret: &SecretString) -> [u8; 32] {
        fingerprint(secret)
    }
}

/// Where replicas share one token per account, so that they do not each
/// mint their own (token requests count against Hostaway's limits, and
/// Hostaway asks for tokens to be reused).
pub trait TokenStore: Send + Sync + Debug {
    fn load<'a>(
        &'a self,
        account: &'a AccountId,
    ) -> BoxFuture<'a, Result<Option<SharedToken>, String>>;

    /// Takes the account's refresh lock, held until the lock is saved or
    /// dropped: of many replicas, one mints while the others wait, then read
    /// what it minted.
    fn lock<'a>(
        &'a self,
        account: &'a AccountId,
    ) -> BoxFuture<'a, Result<Box<dyn TokenLock + 'a>, String>>;

    /// Forgets the stored token if it is `token` (Hostaway refused it).
    fn forget<'a>(
        &'a self,
        account: &'a AccountId,
        token: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// The refresh lock of one account.
pub trait TokenLock: Send {
    /// The stored token, as the lock's holder sees it.
    fn load(&mut self) -> BoxFuture<'_, Result<Option<SharedToken>, String>>;
    /// Stores a freshly minted token and lets the lock go.
    fn save(self: Box<Self>, token: SharedToken) -> BoxFuture<'static, Result<(), String>>;
}
