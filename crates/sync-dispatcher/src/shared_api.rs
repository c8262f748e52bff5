//! The Hostaway client as the replicas of the dispatcher share it, through
//! PostgreSQL (see ADR 0011):
//!
//! - **one budget per account and per egress identity**: every request takes
//!   its place in a sliding-window log (`take_api_budget`), whichever replica
//!   sends it, so 1 or 10 replicas together send at most 20 requests per 10 s
//!   for an account, and the replicas behind one egress IP at most 15;
//! - **one circuit per account**: a replica whose breaker opens opens it for
//!   all, until its reset timeout;
//! - **one token per account**: minted by one replica at a time, stored
//!   encrypted, read by the others.

use std::sync::Arc;
use std::time::Duration;

use domain::AccountId;
use futures::future::BoxFuture;
use hostaway_client::{
    Admission, Budget, ClientConfig, ClientMetrics, CredentialSource, HostawayClient, RateLimit,
    Shared, SharedToken, TokenLock, TokenStore,
};
use secrecy::SecretString;
use store::crypto::CredentialCipher;
use store::{PgPool, Postgres, Transaction};

/// Requests are stamped when they take their place, a little before Hostaway
/// sees them: a window this much longer than Hostaway's keeps the difference
/// in send latency between two requests from ever fitting one too many into
/// Hostaway's 10 s.
pub const WINDOW_MARGIN: Duration = Duration::from_millis(300);

/// A client whose budgets, circuits and tokens are shared with every other
/// replica through `pool`, and which calls each account with the timeout,
/// attempts and circuit settings of its own configuration.
pub fn shared_client(
    config: ClientConfig,
    credentials: Arc<dyn CredentialSource>,
    metrics: ClientMetrics,
    pool: PgPool,
    cipher: Arc<CredentialCipher>,
) -> Result<HostawayClient, reqwest::Error> {
    let shared = Shared {
        budget: Arc::new(SharedBudget {
            pool: pool.clone(),
            egress: config.egress_id.clone(),
            account_limit: config.account_limit,
            egress_limit: config.ip_limit,
        }),
        tokens: Some(Arc::new(SharedTokens {
            pool: pool.clone(),
            cipher,
        })),
        settings: Some(Arc::new(crate::channel_config::StoredSettings::new(pool))),
    };
    HostawayClient::with_shared(config, credentials, metrics, shared)
}

#[derive(Debug)]
pub struct SharedBudget {
    pool: PgPool,
    egress: String,
    account_limit: RateLimit,
    egress_limit: RateLimit,
}

impl Budget for SharedBudget {
    fn take<'a>(&'a self, account: &'a AccountId) -> BoxFuture<'a, Result<Admission, String>> {
        Box::pin(async move {
            // Hostaway's windows are both 10 s; a configured difference takes
            // the longer, the safe side.
            let window = self.account_limit.window.max(self.egress_limit.window) + WINDOW_MARGIN;
            let answer = store::api_shared::take_budget(
                &self.pool,
                account,
                &self.egress,
                self.account_limit.limit,
                self.egress_limit.limit,
                window,
                self.account_limit.window,
            )
            .await
            .map_err(|e| e.to_string())?;
            Ok(if let Some(open) = answer.circuit_open {
                Admission::CircuitOpen(open)
            } else if answer.granted() {
                Admission::Granted {
                    account_left: None,
                    egress_left: None,
                }
            } else {
                Admission::Wait {
                    account: answer.account_wait,
                    egress: answer.egress_wait,
                }
            })
        })
    }

    fn circuit_opened<'a>(
        &'a self,
        account: &'a AccountId,
        open_for: Duration,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(error) = store::api_shared::open_circuit(&self.pool, account, open_for).await
            {
                tracing::warn!(account_id = %account, %error, "the open circuit could not be shared; other replicas find out by themselves");
            }
        })
    }

    fn circuit_closed<'a>(&'a self, account: &'a AccountId) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(error) = store::api_shared::close_circuit(&self.pool, account).await {
                tracing::warn!(account_id = %account, %error, "the closed circuit could not be shared; it stays open for the others until its timeout");
            }
        })
    }
}

#[derive(Debug)]
pub struct SharedTokens {
    pool: PgPool,
    cipher: Arc<CredentialCipher>,
}

fn shared(stored: store::api_shared::StoredToken) -> SharedToken {
    SharedToken {
        secret: stored.secret,
        usable_from: stored.usable_from,
        refresh_at: stored.refresh_at,
        key_fingerprint: stored.key_fingerprint,
    }
}

impl TokenStore for SharedTokens {
    fn load<'a>(
        &'a self,
        account: &'a AccountId,
    ) -> BoxFuture<'a, Result<Option<SharedToken>, String>> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await.map_err(|e| e.to_string())?;
            store::api_shared::load_token(&mut conn, &self.cipher, account)
                .await
                .map(|token| token.map(shared))
                .map_err(|e| e.to_string())
        })
    }

    fn lock<'a>(
        &'a self,
        account: &'a AccountId,
    ) -> BoxFuture<'a, Result<Box<dyn TokenLock + 'a>, String>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(|e| e.to_string())?;
            store::api_shared::lock_token(&mut tx, account)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Box::new(PgTokenLock {
                tx,
                cipher: Arc::clone(&self.cipher),
                account: account.clone(),
            }) as Box<dyn TokenLock + 'a>)
        })
    }

    fn forget<'a>(
        &'a self,
        account: &'a AccountId,
        token: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            store::api_shared::forget_token(
                &self.pool,
                account,
                SharedToken::token_fingerprint(token),
            )
            .await
            .map_err(|e| e.to_string())
        })
    }
}

/// The refresh lock: a transaction holding the account's advisory lock.
struct PgTokenLock {
    tx: Transaction<'static, Postgres>,
    cipher: Arc<CredentialCipher>,
    account: AccountId,
}

impl TokenLock for PgTokenLock {
    fn load(&mut self) -> BoxFuture<'_, Result<Option<SharedToken>, String>> {
        Box::pin(async move {
            store::api_shared::load_token(&mut self.tx, &self.cipher, &self.account)
                .await
                .map(|token| token.map(shared))
                .map_err(|e| e.to_string())
        })
    }

    fn save(self: Box<Self>, token: SharedToken) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            let PgTokenLock {
                mut tx,
                cipher,
                account,
            } = *self;
            let fingerprint = SharedToken::token_fingerprint(&token.secret);
            let stored = store::api_shared::StoredToken {
                secret: token.secret,
                key_fingerprint: token.key_fingerprint,
                usable_from: token.usable_from,
                refresh_at: token.refresh_at,
            };
            store::api_shared::save_token(&mut tx, &cipher, &account, &stored, fingerprint)
                .await
                .map_err(|e| e.to_string())?;
            tx.commit().await.map_err(|e| e.to_string())
        })
    }
}
