//! Accounts: connect in one call, credentials and their rotation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use domain::AccountId;
use futures::future::BoxFuture;
use hostaway_client::CredentialSource;
use mapping::api::UnifiedWebhookRequest;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use store::accounts::{AccountSummary, NewAccount, Rotation};
use subtle::ConstantTimeEq;
use tonic::Status;

use crate::convert::{
    account as parse_account, hostaway_status, non_empty, store_status, timestamp,
};
use crate::proto;
use crate::service::{Context, Detail};

/// Client secrets under test (a connect or a rotation checking them with
/// Hostaway before they are stored), consulted before the database. One at
/// a time per account (per replica: two replicas connecting one account at
/// once both check, and the second store finds the account there).
#[derive(Clone)]
pub struct PendingSecrets {
    secrets: Arc<Mutex<HashMap<AccountId, SecretString>>>,
    stored: Arc<dyn CredentialSource>,
}

impl std::fmt::Debug for PendingSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingSecrets")
    }
}

impl PendingSecrets {
    /// Pending secrets in front of the stored ones.
    pub fn over(stored: Arc<dyn CredentialSource>) -> Self {
        Self {
            secrets: Arc::default(),
            stored,
        }
    }

    /// Holds `secret` for `account` until the guard is dropped.
    fn hold(&self, account: &AccountId, secret: SecretString) -> Result<PendingGuard, Status> {
        let mut secrets = self
            .secrets
            .lock()
            .map_err(|_| Status::internal("pending secrets poisoned"))?;
        if secrets.contains_key(account) {
            return Err(Status::aborted(format!(
                "the credentials of account {account} are being changed by another call; try again"
            )));
        }
        secrets.insert(account.clone(), secret);
        Ok(PendingGuard {
            secrets: Arc::clone(&self.secrets),
            account: account.clone(),
        })
    }
}

struct PendingGuard {
    secrets: Arc<Mutex<HashMap<AccountId, SecretString>>>,
    account: AccountId,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if let Ok(mut secrets) = self.secrets.lock() {
            secrets.remove(&self.account);
        }
    }
}

impl CredentialSource for PendingSecrets {
    fn client_secret<'a>(&'a self, account: &'a AccountId) -> BoxFuture<'a, Option<SecretString>> {
        Box::pin(async move {
            let pending = self
                .secrets
                .lock()
                .ok()
                .and_then(|secrets| secrets.get(account).cloned());
            match pending {
                Some(secret) => Some(secret),
                None => self.stored.client_secret(account).await,
            }
        })
    }
}

/// Checks a client secret with Hostaway (a token minted with it, the
/// account's listings read) before anything stores it. A token this process
/// holds for the account, minted with another key, is dropped first: the
/// check must mint with this one.
async fn check_secret(
    ctx: &Context,
    account: &AccountId,
    secret: &SecretString,
) -> Result<Vec<mapping::api::Listing>, Status> {
    let _pending = ctx.pending.hold(account, secret.clone())?;
    ctx.hostaway
        .forget_token_unless_minted_with(account, Some(secret))
        .await;
    ctx.hostaway
        .all_listings(account)
        .await
        .map_err(hostaway_status)
}

/// A secret from a request: present, bounded, printable.
fn secret(field: &str, raw: &str) -> Result<Option<SecretString>, Status> {
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.len() > 512 || raw.chars().any(char::is_control) || raw.trim() != raw {
        return Err(Status::invalid_argument(format!(
            "{field}: 1-512 printable characters without surrounding spaces"
        )));
    }
    Ok(Some(SecretString::from(raw.to_owned())))
}

/// A webhook Basic password: 256 random bits, base64url.
fn generate_password() -> SecretString {
    SecretString::from(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(store::crypto::CredentialCipher::random_bytes()),
    )
}

fn same_secret(a: &SecretString, b: &SecretString) -> bool {
    a.expose_secret()
        .as_bytes()
        .ct_eq(b.expose_secret().as_bytes())
        .into()
}

fn validate_email(raw: &str) -> Result<Option<String>, Status> {
    let Some(email) = non_empty(raw) else {
        return Ok(None);
    };
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(Some(email))
    } else {
        Err(Status::invalid_argument(
            "alert_email: not an email address",
        ))
    }
}

pub(crate) async fn to_message(
    ctx: &Context,
    summary: AccountSummary,
) -> Result<proto::Account, Status> {
    let now = chrono::Utc::now();
    let (version, _) = sync_dispatcher::channel_config::in_force(&ctx.pool, &summary.account)
        .await
        .map_err(store_status)?;
    Ok(proto::Account {
        account_id: summary.account.to_string(),
        display_name: summary.display_name.unwrap_or_default(),
        webhook_login: summary.webhook_login.unwrap_or_default(),
        enabled: summary.enabled,
        credentials: summary
            .set_at
            .each()
            .map(|(name, at)| {
                let age = now - at;
                proto::Credential {
                    name: name.to_owned(),
                    set_at: Some(timestamp(at)),
                    age_days: age.num_days(),
                    rotation_due: age > ctx.settings.rotation_age,
                }
            })
            .collect(),
        rotation_until: summary.rotation_until.map(timestamp),
        config_version: version,
    })
}

/// The account, or NOT_FOUND.
pub(crate) async fn require(ctx: &Context, account: &AccountId) -> Result<AccountSummary, Status> {
    store::accounts::get_account(&ctx.pool, account)
        .await
        .map_err(store_status)?
        .ok_or_else(|| Status::not_found(format!("account {account} not found")))
}

pub async fn get(ctx: &Context, account: &AccountId) -> Result<proto::Account, Status> {
    to_message(ctx, require(ctx, account).await?).await
}

pub async fn list(ctx: &Context) -> Result<(proto::ListAccountsResponse, Detail), Status> {
    let mut accounts = Vec::new();
    for summary in store::accounts::list_accounts(&ctx.pool)
        .await
        .map_err(store_status)?
    {
        accounts.push(to_message(ctx, summary).await?);
    }
    Ok((proto::ListAccountsResponse { accounts }, Detail::Null))
}

pub async fn set_enabled(
    ctx: &Context,
    req: proto::SetAccountEnabledRequest,
) -> Result<(proto::Account, Detail), Status> {
    let account = parse_account(&req.account_id)?;
    store::accounts::set_enabled(&ctx.pool, &account, req.enabled)
        .await
        .map_err(store_status)?;
    Ok((get(ctx, &account).await?, json!({"enabled": req.enabled})))
}

/// Connect in one call; see `ConnectAccount` in `admin.proto`.
pub async fn connect(
    ctx: &Context,
    req: proto::ConnectAccountRequest,
) -> Result<(proto::ConnectAccountResponse, Detail), Status> {
    let account = parse_account(&req.account_id)?;
    let client_secret = secret("client_secret", &req.client_secret)?
        .ok_or_else(|| Status::invalid_argument("client_secret is required"))?;
    let display_name = non_empty(&req.display_name);
    if display_name.as_ref().is_some_and(|n| n.len() > 200) {
        return Err(Status::invalid_argument(
            "display_name: at most 200 characters",
        ));
    }
    let login = non_empty(&req.webhook_login).unwrap_or_else(|| format!("hostaway-{account}"));
    store::accounts::validate_login(&login)
        .map_err(|e| Status::invalid_argument(format!("webhook_login: {e}")))?;
    let alert_email = validate_email(&req.alert_email)?;

    let existing = store::accounts::get_account(&ctx.pool, &account)
        .await
        .map_err(store_status)?;
    if let Some(existing) = &existing {
        let stored = store::accounts::api_key(&ctx.pool, &ctx.cipher, &account)
            .await
            .map_err(store_status)?;
        if stored.is_some_and(|stored| !same_secret(&stored, &client_secret)) {
            return Err(Status::failed_precondition(format!(
                "account {account} is connected with other API credentials: use RotateCredentials"
            )));
        }
        if let Some(current) = &existing.webhook_login
            && current != &login
            && !req.webhook_login.trim().is_empty()
        {
            return Err(Status::failed_precondition(format!(
                "account {account} already uses the webhook login {current:?}"
            )));
        }
    }

    // Minting a token is the check: Hostaway refuses a wrong secret there.
    let listings = check_secret(ctx, &account, &client_secret).await?;

    let created = existing.is_none();
    let has_password = existing.as_ref().is_some_and(|e| e.has_webhook_password);
    let new = NewAccount {
        account: account.clone(),
        display_name,
        api_key: (created || existing.as_ref().is_some_and(|e| !e.has_api_key))
            .then(|| client_secret.clone()),
        webhook_login: existing
            .as_ref()
            .and_then(|e| e.webhook_login.clone())
            .or(Some(login)),
        webhook_password: (!has_password).then(generate_password),
        webhook_secret: None,
    };
    let changes_credentials = new.api_key.is_some() || new.webhook_password.is_some();
    if created {
        store::accounts::add_account(&ctx.pool, &ctx.cipher, new)
            .await
            .map_err(store_status)?;
    } else if changes_credentials || new.display_name.is_some() {
        store::accounts::upsert_account(&ctx.pool, &ctx.cipher, new)
            .await
            .map_err(store_status)?;
    }
    crate::listings::remember(ctx, &account, &listings).await?;
    let hook = ensure_webhook(ctx, &account, alert_email, false).await?;
    let response = proto::ConnectAccountResponse {
        account: Some(get(ctx, &account).await?),
        created,
        listing_count: i32::try_from(listings.len()).unwrap_or(i32::MAX),
        webhook_id: hook.id.clone(),
        webhook_url: hook.url.clone(),
    };
    let detail = json!({
        "created": created,
        "listings": listings.len(),
        "webhookId": hook.id,
        "webhookUrl": hook.url,
    });
    Ok((response, detail))
}

/// Points the account's unified webhook at the gateway with the stored login
/// and password: created, updated, or left alone when it already is so
/// (Hostaway masks passwords: `update` says the password changed).
pub(crate) async fn ensure_webhook(
    ctx: &Context,
    account: &AccountId,
    alert_email: Option<String>,
    update: bool,
) -> Result<mapping::api::UnifiedWebhook, Status> {
    let (login, password) =
        store::accounts::webhook_basic_credentials(&ctx.pool, &ctx.cipher, account)
            .await
            .map_err(store_status)?
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "account {account} has no webhook login and password"
                ))
            })?;
    let (_, config) = sync_dispatcher::channel_config::in_force(&ctx.pool, account)
        .await
        .map_err(store_status)?;
    let url = ctx.settings.webhook_url.clone();
    // Also the one an operator registered by hand, with the account in the path.
    let with_account = format!("{}/{account}", url.trim_end_matches('/'));
    let existing = ctx
        .hostaway
        .list_unified_webhooks(account)
        .await
        .map_err(hostaway_status)?
        .into_iter()
        .find(|hook| hook.url == url || hook.url == with_account);
    // An alert address set before is kept unless another is given.
    let alert_email = alert_email.or_else(|| {
        existing
            .as_ref()
            .and_then(|hook| hook.alerting_email_address.clone())
    });
    let request = UnifiedWebhookRequest {
        is_enabled: config.webhook.enabled,
        url: existing.as_ref().map_or(url, |hook| hook.url.clone()),
        login: Some(login.clone()),
        password: Some(password),
        alerting_email_address: alert_email.clone(),
    };
    match existing {
        Some(hook)
            if !update
                && hook.is_enabled == config.webhook.enabled
                && hook.login.as_deref() == Some(login.as_str())
                && hook.has_password
                && hook.alerting_email_address == alert_email =>
        {
            Ok(hook)
        }
        Some(hook) => ctx
            .hostaway
            .update_unified_webhook(account, &hook.id, &request)
            .await
            .map_err(hostaway_status),
        None => ctx
            .hostaway
            .create_unified_webhook(account, &request)
            .await
            .map_err(hostaway_status),
    }
}

pub async fn rotate(
    ctx: &Context,
    req: proto::RotateCredentialsRequest,
) -> Result<(proto::Account, Detail), Status> {
    let account = parse_account(&req.account_id)?;
    let api_key = secret("client_secret", &req.client_secret)?;
    let mut webhook_password = secret("webhook_password", &req.webhook_password)?;
    let webhook_secret = secret("webhook_secret", &req.webhook_secret)?;
    let overlap = if req.overlap_seconds == 0 {
        ctx.settings.default_overlap
    } else {
        chrono::Duration::seconds(i64::from(req.overlap_seconds))
    };
    if overlap > chrono::Duration::days(30) {
        return Err(Status::invalid_argument("overlap_seconds: at most 30 days"));
    }
    let summary = require(ctx, &account).await?;
    if api_key.is_none() && webhook_password.is_none() && webhook_secret.is_none() {
        if summary.webhook_login.is_none() {
            return Err(Status::failed_precondition(
                "the account has no webhook login: give the credentials to rotate",
            ));
        }
        webhook_password = Some(generate_password());
    }
    if let Some(key) = &api_key {
        // Checked before it replaces the one that works.
        check_secret(ctx, &account, key).await?;
    }
    let rotated: Vec<&str> = [
        ("api_key", api_key.is_some()),
        ("webhook_password", webhook_password.is_some()),
        ("webhook_secret", webhook_secret.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, rotated)| rotated.then_some(name))
    .collect();
    let new_password = webhook_password.is_some();
    // The password Hostaway sends now, to put back if Hostaway refuses the new one.
    let sent_now = if new_password && summary.has_api_key {
        store::accounts::webhook_basic_credentials(&ctx.pool, &ctx.cipher, &account)
            .await
            .map_err(store_status)?
            .map(|(_, password)| password)
    } else {
        None
    };
    store::accounts::rotate_credentials(
        &ctx.pool,
        &ctx.cipher,
        &account,
        Rotation {
            webhook_password,
            webhook_secret,
            api_key,
            grace: overlap,
        },
    )
    .await
    .map_err(store_status)?;
    // Hostaway sends the new password from now on; the old one is still
    // accepted for deliveries already under way.
    let webhook = if new_password && summary.has_api_key {
        match ensure_webhook(ctx, &account, None, true).await {
            Ok(hook) => Some(hook.id),
            Err(status) => {
                // Hostaway still sends the old password: it is made current
                // again, so a retry starts from what Hostaway has.
                if let Some(password) = sent_now {
                    store::accounts::restore_webhook_password(
                        &ctx.pool,
                        &ctx.cipher,
                        &account,
                        &password,
                        summary.set_at.webhook_password,
                    )
                    .await
                    .map_err(store_status)?;
                }
                return Err(Status::new(
                    status.code(),
                    format!(
                        "Hostaway did not take the new webhook password ({}); the previous one is in force again",
                        status.message()
                    ),
                ));
            }
        }
    } else {
        None
    };
    let detail = json!({
        "rotated": rotated,
        "overlapSeconds": overlap.num_seconds(),
        "webhookUpdated": webhook,
    });
    Ok((get(ctx, &account).await?, detail))
}

pub async fn finish_rotation(
    ctx: &Context,
    req: proto::FinishRotationRequest,
) -> Result<(proto::Account, Detail), Status> {
    let account = parse_account(&req.account_id)?;
    store::accounts::finish_rotation(&ctx.pool, &account)
        .await
        .map_err(store_status)?;
    Ok((get(ctx, &account).await?, Detail::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_from_requests_are_bounded_and_printable() {
        assert!(secret("s", "").unwrap().is_none());
        assert!(secret("s", "abc").unwrap().is_some());
        for bad in [" abc", "abc\n", "a\u{0}b", &"x".repeat(513)] {
            let error = secret("client_secret", bad).unwrap_err();
            assert_eq!(error.code(), tonic::Code::InvalidArgument);
            assert!(!error.message().contains(bad), "a secret is never echoed");
        }
    }

    #[test]
    fn generated_passwords_differ_and_are_long() {
        let (a, b) = (generate_password(), generate_password());
        assert_eq!(a.expose_secret().len(), 43);
        assert!(!same_secret(&a, &b));
    }

    #[test]
    fn alert_emails_are_checked() {
        assert_eq!(validate_email("").unwrap(), None);
        assert_eq!(
            validate_email("ops@example.org").unwrap().as_deref(),
            Some("ops@example.org")
        );
        for bad in ["ops", "@example.org", "ops@example", "o ps@example.org"] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }
}
