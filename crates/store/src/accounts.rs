//! Hostaway accounts (the specification's `channels` rows) and their
//! credentials. Secrets are encrypted before they reach SQL and decrypted into
//! `SecretString`s; nothing here returns or logs them in clear.

use chrono::{DateTime, Duration, Utc};
use domain::AccountId;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::StoreError;
use crate::crypto::{CipherError, CredentialCipher};

/// The encrypted fields of `channels.credentials`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StoredCredentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encrypted_api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encrypted_webhook_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encrypted_webhook_password_previous: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encrypted_webhook_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encrypted_webhook_secret_previous: Option<String>,
}

impl StoredCredentials {
    fn from_json(value: serde_json::Value) -> Result<Self, StoreError> {
        serde_json::from_value(value)
            .map_err(|e| StoreError::Invalid(format!("channels.credentials: {e}")))
    }

    fn to_json(&self) -> Result<serde_json::Value, StoreError> {
        serde_json::to_value(self)
            .map_err(|e| StoreError::Invalid(format!("channels.credentials: {e}")))
    }
}

const API_KEY: &str = "api_key";
const WEBHOOK_PASSWORD: &str = "webhook_password";
const WEBHOOK_SECRET: &str = "webhook_secret";

fn context(account: &AccountId, field: &str) -> String {
    format!("{account}/{field}")
}

/// An account as an operator creates it.
#[derive(Debug)]
pub struct NewAccount {
    pub account: AccountId,
    pub display_name: Option<String>,
    /// The Hostaway API client secret (the specification's `HOSTAWAY_API_KEY`).
    pub api_key: Option<SecretString>,
    /// HTTP Basic login and password set on the unified webhook.
    pub webhook_login: Option<String>,
    pub webhook_password: Option<SecretString>,
    /// The specification's HMAC secret (`HOSTAWAY_WEBHOOK_SECRET`).
    pub webhook_secret: Option<SecretString>,
}

/// What may be shown about an account: which credentials exist, never their values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    pub account: AccountId,
    pub display_name: Option<String>,
    pub webhook_login: Option<String>,
    pub has_api_key: bool,
    pub has_webhook_password: bool,
    pub has_webhook_secret: bool,
    pub rotation_until: Option<DateTime<Utc>>,
    pub enabled: bool,
    pub updated_at: DateTime<Utc>,
    /// When each credential was last set (`None`: the account has none).
    pub set_at: CredentialTimes,
}

/// When each of an account's credentials was set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CredentialTimes {
    pub api_key: Option<DateTime<Utc>>,
    pub webhook_password: Option<DateTime<Utc>>,
    pub webhook_secret: Option<DateTime<Utc>>,
}

impl CredentialTimes {
    /// The credentials and when each was set, those that exist.
    pub fn each(&self) -> impl Iterator<Item = (&'static str, DateTime<Utc>)> {
        [
            (API_KEY, self.api_key),
            (WEBHOOK_PASSWORD, self.webhook_password),
            (WEBHOOK_SECRET, self.webhook_secret),
        ]
        .into_iter()
        .filter_map(|(name, at)| at.map(|at| (name, at)))
    }
}

/// What the gateway needs to authenticate one account's webhooks.
#[derive(Debug, Clone)]
pub struct WebhookCredentials {
    pub account: AccountId,
    pub login: Option<String>,
    /// The current password, then the previous one while a rotation lasts.
    pub passwords: Vec<SecretString>,
    /// The current HMAC secret, then the previous one while a rotation lasts.
    pub hmac_secrets: Vec<SecretString>,
    pub enabled: bool,
}

/// Validates a Basic login: printable ASCII without ':' (it separates login
/// from password in the header).
pub fn validate_login(login: &str) -> Result<(), StoreError> {
    if login.is_empty()
        || login.len() > 128
        || !login.bytes().all(|b| b.is_ascii_graphic() && b != b':')
    {
        return Err(StoreError::Invalid(
            "webhook login must be 1-128 printable ASCII characters without ':'".into(),
        ));
    }
    Ok(())
}

fn encrypt_into(
    cipher: &CredentialCipher,
    account: &AccountId,
    new: &NewAccount,
    stored: &mut StoredCredentials,
) -> Result<(), CipherError> {
    if let Some(key) = &new.api_key {
        stored.encrypted_api_key = Some(cipher.encrypt(&context(account, API_KEY), key)?);
    }
    if let Some(password) = &new.webhook_password {
        stored.encrypted_webhook_password =
            Some(cipher.encrypt(&context(account, WEBHOOK_PASSWORD), password)?);
    }
    if let Some(secret) = &new.webhook_secret {
        stored.encrypted_webhook_secret =
            Some(cipher.encrypt(&context(account, WEBHOOK_SECRET), secret)?);
    }
    Ok(())
}

/// Adds an account. Fails with `Conflict` if it exists: changing credentials is
/// a rotation.
pub async fn add_account(
    pool: &PgPool,
    cipher: &CredentialCipher,
    new: NewAccount,
) -> Result<(), StoreError> {
    if let Some(login) = &new.webhook_login {
        validate_login(login)?;
    }
    let mut stored = StoredCredentials::default();
    encrypt_into(cipher, &new.account, &new, &mut stored)?;
    let credentials = stored.to_json()?;
    let result = sqlx::query(
        "INSERT INTO channels (id, hostaway_account_id, display_name, webhook_login, credentials,
             api_key_set_at, webhook_password_set_at, webhook_secret_set_at)
         VALUES ($1, $2, $3, $4, $5,
             CASE WHEN $6 THEN now() END, CASE WHEN $7 THEN now() END, CASE WHEN $8 THEN now() END)
         ON CONFLICT DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(new.account.as_str())
    .bind(&new.display_name)
    .bind(&new.webhook_login)
    .bind(credentials)
    .bind(new.api_key.is_some())
    .bind(new.webhook_password.is_some())
    .bind(new.webhook_secret.is_some())
    .execute(pool)
    .await?;
    if result.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!(
            "account {} or webhook login already exists",
            new.account
        )));
    }
    Ok(())
}

/// Creates the account or overwrites the credentials it is given (the
/// environment bootstrap of a single-account deployment).
pub async fn upsert_account(
    pool: &PgPool,
    cipher: &CredentialCipher,
    new: NewAccount,
) -> Result<(), StoreError> {
    if let Some(login) = &new.webhook_login {
        validate_login(login)?;
    }
    let mut tx = pool.begin().await?;
    let existing: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT credentials FROM channels WHERE hostaway_account_id = $1 FOR UPDATE",
    )
    .bind(new.account.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let mut stored: StoredCredentials = match existing {
        Some(value) => StoredCredentials::from_json(value)?,
        None => StoredCredentials::default(),
    };
    encrypt_into(cipher, &new.account, &new, &mut stored)?;
    let credentials = stored.to_json()?;
    sqlx::query(
        "INSERT INTO channels (id, hostaway_account_id, display_name, webhook_login, credentials,
             api_key_set_at, webhook_password_set_at, webhook_secret_set_at)
         VALUES ($1, $2, $3, $4, $5,
             CASE WHEN $6 THEN now() END, CASE WHEN $7 THEN now() END, CASE WHEN $8 THEN now() END)
         ON CONFLICT (hostaway_account_id) DO UPDATE SET
             display_name = COALESCE(EXCLUDED.display_name, channels.display_name),
             webhook_login = COALESCE(EXCLUDED.webhook_login, channels.webhook_login),
             credentials = EXCLUDED.credentials,
             api_key_set_at = COALESCE(EXCLUDED.api_key_set_at, channels.api_key_set_at),
             webhook_password_set_at = COALESCE(EXCLUDED.webhook_password_set_at, channels.webhook_password_set_at),
             webhook_secret_set_at = COALESCE(EXCLUDED.webhook_secret_set_at, channels.webhook_secret_set_at),
             updated_at = now()",
    )
    .bind(Uuid::now_v7())
    .bind(new.account.as_str())
    .bind(&new.display_name)
    .bind(&new.webhook_login)
    .bind(credentials)
    .bind(new.api_key.is_some())
    .bind(new.webhook_password.is_some())
    .bind(new.webhook_secret.is_some())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// New webhook credentials. The old ones stay valid for `grace`, so Hostaway
/// (or a sender) can be switched over without a rejected delivery.
#[derive(Debug)]
pub struct Rotation {
    pub webhook_password: Option<SecretString>,
    pub webhook_secret: Option<SecretString>,
    pub api_key: Option<SecretString>,
    pub grace: Duration,
}

pub async fn rotate_credentials(
    pool: &PgPool,
    cipher: &CredentialCipher,
    account: &AccountId,
    rotation: Rotation,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let existing: Option<(serde_json::Value, bool)> = sqlx::query_as(
        "SELECT credentials, coalesce(previous_secrets_expire_at <= now(), false)
         FROM channels WHERE hostaway_account_id = $1 FOR UPDATE",
    )
    .bind(account.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((existing, previous_expired)) = existing else {
        return Err(StoreError::NotFound(format!("account {account}")));
    };
    let mut stored: StoredCredentials = StoredCredentials::from_json(existing)?;
    if previous_expired {
        // The new grace period must not bring an expired secret back to life.
        stored.encrypted_webhook_password_previous = None;
        stored.encrypted_webhook_secret_previous = None;
    }
    if let Some(password) = &rotation.webhook_password {
        stored.encrypted_webhook_password_previous = stored.encrypted_webhook_password.take();
        stored.encrypted_webhook_password =
            Some(cipher.encrypt(&context(account, WEBHOOK_PASSWORD), password)?);
    }
    if let Some(secret) = &rotation.webhook_secret {
        stored.encrypted_webhook_secret_previous = stored.encrypted_webhook_secret.take();
        stored.encrypted_webhook_secret =
            Some(cipher.encrypt(&context(account, WEBHOOK_SECRET), secret)?);
    }
    if let Some(key) = &rotation.api_key {
        stored.encrypted_api_key = Some(cipher.encrypt(&context(account, API_KEY), key)?);
    }
    let credentials = stored.to_json()?;
    sqlx::query(
        "UPDATE channels SET credentials = $2, previous_secrets_expire_at = now() + $3, updated_at = now(),
             api_key_set_at = CASE WHEN $4 THEN now() ELSE api_key_set_at END,
             webhook_password_set_at = CASE WHEN $5 THEN now() ELSE webhook_password_set_at END,
             webhook_secret_set_at = CASE WHEN $6 THEN now() ELSE webhook_secret_set_at END
         WHERE hostaway_account_id = $1",
    )
    .bind(account.as_str())
    .bind(credentials)
    .bind(rotation.grace)
    .bind(rotation.api_key.is_some())
    .bind(rotation.webhook_password.is_some())
    .bind(rotation.webhook_secret.is_some())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Undoes a webhook password rotation Hostaway never heard of: `password`
/// (the one Hostaway sends) is current again, set when it was set before,
/// and the one that replaced it is forgotten.
pub async fn restore_webhook_password(
    pool: &PgPool,
    cipher: &CredentialCipher,
    account: &AccountId,
    password: &SecretString,
    set_at: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let existing: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT credentials FROM channels WHERE hostaway_account_id = $1 FOR UPDATE",
    )
    .bind(account.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(existing) = existing else {
        return Err(StoreError::NotFound(format!("account {account}")));
    };
    let mut stored = StoredCredentials::from_json(existing)?;
    stored.encrypted_webhook_password =
        Some(cipher.encrypt(&context(account, WEBHOOK_PASSWORD), password)?);
    stored.encrypted_webhook_password_previous = None;
    sqlx::query(
        "UPDATE channels SET credentials = $2, webhook_password_set_at = $3, updated_at = now()
         WHERE hostaway_account_id = $1",
    )
    .bind(account.as_str())
    .bind(stored.to_json()?)
    .bind(set_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Ends a rotation now: only the current credentials are accepted.
pub async fn finish_rotation(pool: &PgPool, account: &AccountId) -> Result<(), StoreError> {
    let result = sqlx::query(
        "UPDATE channels SET
             credentials = credentials - 'encrypted_webhook_password_previous' - 'encrypted_webhook_secret_previous',
             previous_secrets_expire_at = NULL, updated_at = now()
         WHERE hostaway_account_id = $1",
    )
    .bind(account.as_str())
    .execute(pool)
    .await?;
    if result.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("account {account}")));
    }
    Ok(())
}

/// Enables or disables an account. A disabled account's webhooks are kept,
/// parked; enabling it releases them.
pub async fn set_enabled(
    pool: &PgPool,
    account: &AccountId,
    enabled: bool,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let result = sqlx::query(
        "UPDATE channels SET enabled = $2, updated_at = now() WHERE hostaway_account_id = $1",
    )
    .bind(account.as_str())
    .bind(enabled)
    .execute(&mut *tx)
    .await?;
    if result.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("account {account}")));
    }
    if enabled {
        crate::parked::wake_ready(&mut tx, Some(account), None).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn list_accounts(pool: &PgPool) -> Result<Vec<AccountSummary>, StoreError> {
    summaries(pool, None).await
}

/// One account as [`list_accounts`] shows it.
pub async fn get_account(
    pool: &PgPool,
    account: &AccountId,
) -> Result<Option<AccountSummary>, StoreError> {
    Ok(summaries(pool, Some(account)).await?.pop())
}

async fn summaries(
    pool: &PgPool,
    only: Option<&AccountId>,
) -> Result<Vec<AccountSummary>, StoreError> {
    let rows = sqlx::query(
        "SELECT hostaway_account_id, display_name, webhook_login, credentials,
                previous_secrets_expire_at, enabled, updated_at,
                api_key_set_at, webhook_password_set_at, webhook_secret_set_at
         FROM channels WHERE $1::text IS NULL OR hostaway_account_id = $1
         ORDER BY hostaway_account_id",
    )
    .bind(only.map(AccountId::as_str))
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            let stored: StoredCredentials =
                StoredCredentials::from_json(row.try_get("credentials")?)?;
            let account: String = row.try_get("hostaway_account_id")?;
            let expires: Option<DateTime<Utc>> = row.try_get("previous_secrets_expire_at")?;
            let rotating = stored.encrypted_webhook_password_previous.is_some()
                || stored.encrypted_webhook_secret_previous.is_some();
            Ok(AccountSummary {
                account: AccountId::parse(account)
                    .map_err(|e| StoreError::Invalid(e.to_string()))?,
                display_name: row.try_get("display_name")?,
                webhook_login: row.try_get("webhook_login")?,
                has_api_key: stored.encrypted_api_key.is_some(),
                has_webhook_password: stored.encrypted_webhook_password.is_some(),
                has_webhook_secret: stored.encrypted_webhook_secret.is_some(),
                rotation_until: expires.filter(|_| rotating),
                enabled: row.try_get("enabled")?,
                updated_at: row.try_get("updated_at")?,
                set_at: CredentialTimes {
                    api_key: row.try_get("api_key_set_at")?,
                    webhook_password: row.try_get("webhook_password_set_at")?,
                    webhook_secret: row.try_get("webhook_secret_set_at")?,
                },
            })
        })
        .collect()
}

/// Every account's webhook credentials, decrypted. An account whose
/// credentials do not decrypt (its key is not configured) is returned in the
/// second list and left out of the first: the others keep working.
pub async fn load_webhook_credentials(
    pool: &PgPool,
    cipher: &CredentialCipher,
) -> Result<(Vec<WebhookCredentials>, Vec<(AccountId, CipherError)>), StoreError> {
    let rows = sqlx::query(
        "SELECT hostaway_account_id, webhook_login, credentials, enabled,
                (previous_secrets_expire_at IS NOT NULL AND previous_secrets_expire_at > now()) AS previous_valid
         FROM channels",
    )
    .fetch_all(pool)
    .await?;
    let mut loaded = Vec::with_capacity(rows.len());
    let mut failed = Vec::new();
    for row in rows {
        let account: String = row.try_get("hostaway_account_id")?;
        let account = AccountId::parse(account).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let stored: StoredCredentials = StoredCredentials::from_json(row.try_get("credentials")?)?;
        let previous_valid: bool = row.try_get("previous_valid")?;
        let decrypt = |field: &str, current: &Option<String>, previous: &Option<String>| {
            let mut out = Vec::new();
            let ctx = context(&account, field);
            if let Some(value) = current {
                out.push(cipher.decrypt(&ctx, value)?);
            }
            if previous_valid && let Some(value) = previous {
                // A previous secret that no longer decrypts must not take the
                // account's current one down with it.
                match cipher.decrypt(&ctx, value) {
                    Ok(secret) => out.push(secret),
                    Err(error) => tracing::warn!(
                        account_id = %account, field, %error,
                        "previous credential does not decrypt; only the current one is accepted"
                    ),
                }
            }
            Ok::<_, CipherError>(out)
        };
        let result = decrypt(
            WEBHOOK_PASSWORD,
            &stored.encrypted_webhook_password,
            &stored.encrypted_webhook_password_previous,
        )
        .and_then(|passwords| {
            decrypt(
                WEBHOOK_SECRET,
                &stored.encrypted_webhook_secret,
                &stored.encrypted_webhook_secret_previous,
            )
            .map(|secrets| (passwords, secrets))
        });
        match result {
            Ok((passwords, hmac_secrets)) => loaded.push(WebhookCredentials {
                account,
                login: row.try_get("webhook_login")?,
                passwords,
                hmac_secrets,
                enabled: row.try_get("enabled")?,
            }),
            Err(error) => failed.push((account, error)),
        }
    }
    Ok((loaded, failed))
}

/// The API client secret of one account (for the Hostaway client).
pub async fn api_key(
    pool: &PgPool,
    cipher: &CredentialCipher,
    account: &AccountId,
) -> Result<Option<SecretString>, StoreError> {
    let value: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT credentials FROM channels WHERE hostaway_account_id = $1")
            .bind(account.as_str())
            .fetch_optional(pool)
            .await?;
    let Some(value) = value else {
        return Err(StoreError::NotFound(format!("account {account}")));
    };
    let stored: StoredCredentials = StoredCredentials::from_json(value)?;
    stored
        .encrypted_api_key
        .map(|v| cipher.decrypt(&context(account, API_KEY), &v))
        .transpose()
        .map_err(StoreError::from)
}

/// The account's current webhook Basic login and password (to register the
/// connector's unified webhook in Hostaway).
pub async fn webhook_basic_credentials(
    pool: &PgPool,
    cipher: &CredentialCipher,
    account: &AccountId,
) -> Result<Option<(String, SecretString)>, StoreError> {
    let row: Option<(Option<String>, serde_json::Value)> = sqlx::query_as(
        "SELECT webhook_login, credentials FROM channels WHERE hostaway_account_id = $1",
    )
    .bind(account.as_str())
    .fetch_optional(pool)
    .await?;
    let Some((login, value)) = row else {
        return Err(StoreError::NotFound(format!("account {account}")));
    };
    let stored = StoredCredentials::from_json(value)?;
    let password = stored
        .encrypted_webhook_password
        .map(|v| cipher.decrypt(&context(account, WEBHOOK_PASSWORD), &v))
        .transpose()?;
    Ok(login.zip(password))
}

/// Re-encrypts every credential stored under a previous key with the active
/// one. Returns how many accounts changed.
pub async fn rewrap_all(pool: &PgPool, cipher: &CredentialCipher) -> Result<usize, StoreError> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query("SELECT hostaway_account_id, credentials FROM channels FOR UPDATE")
        .fetch_all(&mut *tx)
        .await?;
    let mut changed = 0;
    for row in rows {
        let account: String = row.try_get("hostaway_account_id")?;
        let account = AccountId::parse(account).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut stored: StoredCredentials =
            StoredCredentials::from_json(row.try_get("credentials")?)?;
        let mut touched = false;
        for (field, slot) in [
            (API_KEY, &mut stored.encrypted_api_key),
            (WEBHOOK_PASSWORD, &mut stored.encrypted_webhook_password),
            (
                WEBHOOK_PASSWORD,
                &mut stored.encrypted_webhook_password_previous,
            ),
            (WEBHOOK_SECRET, &mut stored.encrypted_webhook_secret),
            (
                WEBHOOK_SECRET,
                &mut stored.encrypted_webhook_secret_previous,
            ),
        ] {
            if let Some(value) = slot.as_ref().filter(|v| cipher.needs_rewrap(v)) {
                let ctx = context(&account, field);
                let plain = cipher.decrypt(&ctx, value)?;
                *slot = Some(cipher.encrypt(&ctx, &plain)?);
                touched = true;
            }
        }
        if touched {
            let credentials = stored.to_json()?;
            sqlx::query("UPDATE channels SET credentials = $2, updated_at = now() WHERE hostaway_account_id = $1")
                .bind(account.as_str())
                .bind(credentials)
                .execute(&mut *tx)
                .await?;
            changed += 1;
        }
    }
    tx.commit().await?;
    Ok(changed)
}
