//! The Hostaway client's secrets, read from the `channels` table (encrypted
//! at rest) each time the client needs a new token; and the watch that drops
//! a cached token as soon as its account's key is rotated, in every running
//! dispatcher.

use std::sync::Arc;
use std::time::Duration;

use domain::AccountId;
use futures::future::BoxFuture;
use hostaway_client::{CredentialFn, CredentialSource, HostawayClient};
use secrecy::SecretString;
use sqlx::postgres::PgListener;
use store::PgPool;
use store::crypto::CredentialCipher;
use tokio_util::sync::CancellationToken;

/// PostgreSQL notifies this channel with the account id whenever an
/// account's stored API key changes (migration `…_keep_every_webhook`).
pub const API_KEY_CHANGED: &str = "hostaway_api_key_changed";

pub fn from_database(pool: PgPool, cipher: Arc<CredentialCipher>) -> Arc<dyn CredentialSource> {
    Arc::new(CredentialFn(move |account: AccountId| {
        let (pool, cipher) = (pool.clone(), Arc::clone(&cipher));
        Box::pin(async move {
            match store::accounts::api_key(&pool, &cipher, &account).await {
                Ok(secret) => secret,
                Err(error) => {
                    tracing::warn!(account_id = %account, %error, "cannot read the account's API key");
                    None
                }
            }
        }) as BoxFuture<'static, Option<SecretString>>
    }))
}

/// Drops the cached token of an account whose stored API key is no longer
/// the one the token was minted with. Runs until `stop`; after a lost
/// connection (notifications may have been missed) every account the client
/// knows is checked.
pub async fn watch_api_keys(
    pool: PgPool,
    cipher: Arc<CredentialCipher>,
    client: HostawayClient,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let listener = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(API_KEY_CHANGED).await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        let mut listener = match listener {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot watch API key changes yet");
                if service_kit::consume::sleep_or_stop(&stop, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        backoff = Duration::from_millis(200);
        // Changes made before listening began.
        for account in client.known_accounts() {
            check(&pool, &cipher, &client, &account).await;
        }
        loop {
            let notification = tokio::select! {
                () = stop.cancelled() => return,
                notification = listener.try_recv() => notification,
            };
            match notification {
                Ok(Some(notification)) => {
                    if let Ok(account) = AccountId::parse(notification.payload()) {
                        check(&pool, &cipher, &client, &account).await;
                    }
                }
                // Reconnected: notifications may have been missed.
                Ok(None) => {
                    for account in client.known_accounts() {
                        check(&pool, &cipher, &client, &account).await;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "API key change watch lost; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn check(
    pool: &PgPool,
    cipher: &CredentialCipher,
    client: &HostawayClient,
    account: &AccountId,
) {
    match store::accounts::api_key(pool, cipher, account).await {
        Ok(key) => {
            if client
                .forget_token_unless_minted_with(account, key.as_ref())
                .await
            {
                tracing::info!(account_id = %account, "API key changed; the cached token is dropped");
            }
        }
        Err(error) => {
            tracing::warn!(account_id = %account, %error, "cannot read the account's API key; its token is dropped");
            client.forget_token_unless_minted_with(account, None).await;
        }
    }
}
