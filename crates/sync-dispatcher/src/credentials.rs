//! The Hostaway client's secrets, read from the `channels` table (encrypted
//! at rest) each time the client needs a new token.

use std::sync::Arc;

use domain::AccountId;
use futures::future::BoxFuture;
use hostaway_client::{CredentialFn, CredentialSource};
use secrecy::SecretString;
use store::PgPool;
use store::crypto::CredentialCipher;

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
