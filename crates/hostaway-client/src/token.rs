//! Access tokens: one per account, fetched with client credentials, cached
//! until shortly before they expire, not used before Hostaway activates them.

use std::time::Duration;

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
}
