//! Where the client secrets (the specification's API keys) come from.

use std::collections::HashMap;

use domain::AccountId;
use futures::future::BoxFuture;
use secrecy::SecretString;

/// Gives an account's Hostaway API client secret. Implemented over the
/// `channels` table by the services that own the database.
pub trait CredentialSource: Send + Sync + std::fmt::Debug {
    /// `None` when the account has no API secret configured.
    fn client_secret<'a>(&'a self, account: &'a AccountId) -> BoxFuture<'a, Option<SecretString>>;
}

/// Secrets looked up by a function (over a database, a secret manager, …).
pub struct CredentialFn<F>(pub F);

impl<F> std::fmt::Debug for CredentialFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialFn")
    }
}

impl<F> CredentialSource for CredentialFn<F>
where
    F: Fn(AccountId) -> BoxFuture<'static, Option<SecretString>> + Send + Sync,
{
    fn client_secret<'a>(&'a self, account: &'a AccountId) -> BoxFuture<'a, Option<SecretString>> {
        (self.0)(account.clone())
    }
}

/// Secrets held in memory (tests, the simulator, a single account from the
/// environment).
#[derive(Default, Clone)]
pub struct StaticCredentials {
    secrets: HashMap<AccountId, SecretString>,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("accounts", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl StaticCredentials {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, account: AccountId, secret: SecretString) -> Self {
        self.secrets.insert(account, secret);
        self
    }
}

impl CredentialSource for StaticCredentials {
    fn client_secret<'a>(&'a self, account: &'a AccountId) -> BoxFuture<'a, Option<SecretString>> {
        Box::pin(async move { self.secrets.get(account).cloned() })
    }
}
