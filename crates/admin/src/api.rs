//! `hostaway-admin api`: the Hostaway API for one account, through the
//! connector's client (its limits, retries and circuit apply). Point
//! `HOSTAWAY_API_URL` at `hostaway-sim` to try it locally.

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use domain::AccountId;
use hostaway_client::{HostawayApiArgs, HostawayClient};
use mapping::api::UnifiedWebhookRequest;
use store::PgPool;
use store::crypto::CredentialCipher;

#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Fetch a token and count the account's listings: are the API credentials right?
    Check {
        #[arg(long)]
        account_id: String,
    },
    /// The account's listings.
    Listings {
        #[arg(long)]
        account_id: String,
    },
    /// Point the account's unified webhook at this connector, with the webhook
    /// login and password stored for the account (created, or updated if one
    /// already points at `--url`).
    RegisterWebhook {
        #[arg(long)]
        account_id: String,
        /// The gateway's public URL, e.g. https://connector.example.org/webhooks/hostaway
        #[arg(long)]
        url: String,
        #[arg(long)]
        alert_email: Option<String>,
    },
}

fn client(
    api: &HostawayApiArgs,
    pool: &PgPool,
    cipher: Arc<CredentialCipher>,
) -> anyhow::Result<HostawayClient> {
    let metrics = hostaway_client::ClientMetrics::register(&prometheus::Registry::new())?;
    // The dispatchers' budget, circuit and token: an operator's calls count
    // against the account's 20 per 10 s, and reuse its token rather than
    // minting another (ADR 0011). It waits for the budget as long as it takes.
    Ok(sync_dispatcher::shared_api::shared_client(
        api.config(),
        sync_dispatcher::credentials::from_database(pool.clone(), Arc::clone(&cipher)),
        metrics,
        pool.clone(),
        cipher,
    )?)
}

pub async fn run(
    api: &HostawayApiArgs,
    pool: &PgPool,
    cipher: CredentialCipher,
    command: &ApiCommand,
) -> anyhow::Result<()> {
    let cipher = Arc::new(cipher);
    let hostaway = client(api, pool, Arc::clone(&cipher))?;
    match command {
        ApiCommand::Check { account_id } => {
            let account = AccountId::parse(account_id.trim()).context("--account-id")?;
            let page = hostaway
                .list_listings(
                    &account,
                    &hostaway_client::ListingsQuery {
                        limit: 1,
                        offset: 0,
                    },
                )
                .await?;
            println!(
                "account {account}: API credentials work ({} listing(s)) at {}",
                page.count.unwrap_or(page.items.len() as u64),
                api.api_url
            );
        }
        ApiCommand::Listings { account_id } => {
            let account = AccountId::parse(account_id.trim()).context("--account-id")?;
            println!(
                "{:<12}  {:<8}  {:<10}  NAME",
                "LISTING", "CURRENCY", "BASE PRICE"
            );
            for listing in hostaway.all_listings(&account).await? {
                println!(
                    "{:<12}  {:<8}  {:<10}  {}",
                    listing.id.to_string(),
                    listing.currency.map(|c| c.to_string()).unwrap_or_default(),
                    listing.base_price.unwrap_or_default(),
                    listing.name.unwrap_or_default()
                );
            }
        }
        ApiCommand::RegisterWebhook {
            account_id,
            url,
            alert_email,
        } => {
            let account = AccountId::parse(account_id.trim()).context("--account-id")?;
            if !url.starts_with("https://")
                && !url.starts_with("http://127.0.0.1")
                && !url.starts_with("http://localhost")
            {
                bail!("--url must be https (plain http only for a local gateway)");
            }
            let Some((login, password)) =
                store::accounts::webhook_basic_credentials(pool, &cipher, &account).await?
            else {
                bail!(
                    "account {account} has no webhook login and password: `accounts rotate` them first"
                );
            };
            let request = UnifiedWebhookRequest {
                is_enabled: true,
                url: url.clone(),
                login: Some(login),
                password: Some(password),
                alerting_email_address: alert_email.clone(),
            };
            let existing = hostaway
                .list_unified_webhooks(&account)
                .await?
                .into_iter()
                .find(|hook| &hook.url == url);
            let hook = match existing {
                Some(hook) => {
                    hostaway
                        .update_unified_webhook(&account, &hook.id, &request)
                        .await?
                }
                None => hostaway.create_unified_webhook(&account, &request).await?,
            };
            println!(
                "account {account}: unified webhook {} → {} (enabled: {})",
                hook.id, hook.url, hook.is_enabled
            );
        }
    }
    Ok(())
}
