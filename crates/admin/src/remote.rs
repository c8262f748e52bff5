//! The commands that go through the operations API (`hostaway-admin-api`):
//! what they may do is the token's role (`ADMIN_API_TOKEN`), and every change
//! is in the API's audit trail.

use admin_api::client::AdminClient;
use admin_api::proto;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use domain::UnitId;

use crate::output;
use crate::secrets;

#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The operations API (`hostaway-admin-api`); the token comes from
    /// ADMIN_API_TOKEN.
    #[arg(
        long = "api-url",
        env = "ADMIN_API_URL",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub url: String,
    /// The CA that signed the API's certificate, for an https URL (PEM;
    /// default: the system's roots).
    #[arg(long = "api-ca-file", env = "ADMIN_API_CA_FILE", global = true)]
    pub ca: Option<std::path::PathBuf>,
    /// This client's certificate, when the API requires one (mTLS; PEM).
    #[arg(
        long = "api-client-cert-file",
        env = "ADMIN_API_CLIENT_CERT_FILE",
        requires = "client_key",
        global = true
    )]
    pub client_cert: Option<std::path::PathBuf>,
    #[arg(
        long = "api-client-key-file",
        env = "ADMIN_API_CLIENT_KEY_FILE",
        requires = "client_cert",
        global = true
    )]
    pub client_key: Option<std::path::PathBuf>,
}

impl ApiArgs {
    pub async fn client(&self) -> anyhow::Result<AdminClient> {
        let token = secrets::api_token()?;
        let tls = admin_api::client::ClientTls {
            ca: self.ca.clone(),
            identity: self.client_cert.clone().zip(self.client_key.clone()),
        };
        Ok(admin_api::client::connect_with(&self.url, Some(&token), &tls).await?)
    }
}

/// A refused or failed call, as an operator reads it: the code and the
/// API's message (which never holds a secret).
fn failed(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}

trait Answer<T> {
    fn answer(self) -> anyhow::Result<T>;
}

impl<T> Answer<T> for Result<tonic::Response<T>, tonic::Status> {
    fn answer(self) -> anyhow::Result<T> {
        self.map(tonic::Response::into_inner).map_err(failed)
    }
}

/// `--since`/`--before`: an RFC 3339 instant, or a date (midnight UTC).
pub fn parse_instant(raw: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let raw = raw.trim();
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|at| at.and_utc())
        .context("an RFC 3339 instant (2026-11-01T00:00:00Z) or a date (2026-11-01)")
}

fn timestamp(raw: &str) -> anyhow::Result<prost_types::Timestamp> {
    let at = parse_instant(raw)?;
    Ok(prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    })
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Connect an account in one call (owner): check the API client secret
    /// with Hostaway, store it encrypted, generate the webhook password and
    /// register the unified webhook. Calling it again changes nothing.
    Connect {
        /// Hostaway's account id (its API client id).
        #[arg(long)]
        account_id: String,
        #[arg(long)]
        name: Option<String>,
        /// The webhook's Basic login (default: hostaway-{account id}).
        #[arg(long)]
        webhook_login: Option<String>,
        /// Where Hostaway sends alerts about failing deliveries.
        #[arg(long)]
        alert_email: Option<String>,
        /// Read the API client secret from this environment variable.
        #[arg(
            long,
            value_name = "VAR",
            required_unless_present = "client_secret_stdin"
        )]
        client_secret_env: Option<String>,
        /// Read the API client secret from stdin (one line).
        #[arg(long, conflicts_with = "client_secret_env")]
        client_secret_stdin: bool,
    },
    /// Accounts, which credentials they have and how old (never their values).
    List,
    Show {
        #[arg(long)]
        account_id: String,
    },
    /// Accept the account's webhooks again (those kept meanwhile are applied).
    Enable {
        #[arg(long)]
        account_id: String,
    },
    /// Keep the account's webhooks parked, unapplied, until it is enabled.
    Disable {
        #[arg(long)]
        account_id: String,
    },
    /// New credentials (owner); the previous webhook password or secret stays
    /// accepted for the overlap. With none given, a new webhook password is
    /// generated and registered at Hostaway.
    Rotate {
        #[arg(long)]
        account_id: String,
        #[arg(long, value_name = "VAR")]
        client_secret_env: Option<String>,
        #[arg(long, value_name = "VAR")]
        webhook_password_env: Option<String>,
        /// The specification's HMAC secret.
        #[arg(long, value_name = "VAR")]
        webhook_secret_env: Option<String>,
        /// How long the previous password/secret is still accepted.
        #[arg(long, default_value_t = 24)]
        overlap_hours: u32,
    },
    /// Stop accepting the previous credentials now (owner).
    FinishRotation {
        #[arg(long)]
        account_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ListingsCommand {
    /// The account's listings at Hostaway, linked or not, with units
    /// suggested for the unlinked ones.
    List {
        #[arg(long)]
        account_id: String,
    },
    /// Link a listing to a TVL unit (or move its link).
    Link {
        #[arg(long)]
        account_id: String,
        #[arg(long)]
        listing_id: String,
        #[arg(long)]
        unit_id: UnitId,
    },
    Unlink {
        #[arg(long)]
        account_id: String,
        #[arg(long)]
        listing_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The account's configuration in force (version 0: the defaults).
    Show {
        #[arg(long)]
        account_id: String,
    },
    /// Change settings (operator); the rest stays as it is. Refused, naming
    /// every problem, if the result is invalid.
    Set(ConfigEdits),
}

#[derive(Debug, Args)]
pub struct ConfigEdits {
    #[arg(long)]
    account_id: String,
    /// Sync types to turn on: availability, pricing, listing_details, reservations.
    #[arg(long, value_delimiter = ',')]
    enable_sync: Vec<String>,
    /// Sync types to turn off.
    #[arg(long, value_delimiter = ',')]
    disable_sync: Vec<String>,
    /// Cron, or "off".
    #[arg(long)]
    availability_schedule: Option<String>,
    #[arg(long)]
    pricing_schedule: Option<String>,
    #[arg(long)]
    listings_schedule: Option<String>,
    /// The unified webhook at Hostaway on or off.
    #[arg(long)]
    webhook_enabled: Option<bool>,
    #[arg(long)]
    webhook_retry_attempts: Option<u32>,
    #[arg(long)]
    webhook_retry_backoff_ms: Option<u32>,
    #[arg(long)]
    api_timeout_ms: Option<u32>,
    #[arg(long)]
    api_max_retries: Option<u32>,
    #[arg(long)]
    rate_limit_rpm: Option<u32>,
    #[arg(long)]
    rate_limit_burst: Option<u32>,
    #[arg(long)]
    circuit_breaker_enabled: Option<bool>,
    #[arg(long)]
    circuit_breaker_threshold: Option<u32>,
    #[arg(long)]
    circuit_breaker_reset_ms: Option<u32>,
}

#[derive(Debug, Args)]
pub struct LetterFilter {
    #[arg(long)]
    account_id: Option<String>,
    /// The job name's prefix: webhook, webhook:reservation.updated, sync, change…
    #[arg(long)]
    kind: Option<String>,
    /// The error's kind, exactly (listing_not_linked, invalid_payload…).
    #[arg(long)]
    reason: Option<String>,
    /// Failed at or after (RFC 3339 or a date).
    #[arg(long)]
    since: Option<String>,
    /// Failed before.
    #[arg(long)]
    until: Option<String>,
}

impl LetterFilter {
    fn is_empty(&self) -> bool {
        self.account_id.is_none()
            && self.kind.is_none()
            && self.reason.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }

    fn to_message(&self, include_resolved: bool) -> anyhow::Result<proto::DeadLetterFilter> {
        Ok(proto::DeadLetterFilter {
            account_id: self.account_id.clone().unwrap_or_default(),
            kind: self.kind.clone().unwrap_or_default(),
            reason: self.reason.clone().unwrap_or_default(),
            failed_after: self.since.as_deref().map(timestamp).transpose()?,
            failed_before: self.until.as_deref().map(timestamp).transpose()?,
            include_resolved,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Open dead letters (with --all, resolved ones too), oldest first.
    List {
        #[command(flatten)]
        filter: LetterFilter,
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One dead letter in full (the stored body included).
    Show { id: String },
    /// Send dead letters back to be processed again: by id, or every open
    /// one matching the filter (--all-open: every open one).
    Replay {
        ids: Vec<String>,
        #[command(flatten)]
        filter: LetterFilter,
        #[arg(long)]
        all_open: bool,
    },
    /// Close dead letters dealt with otherwise: by id or by filter.
    Resolve {
        ids: Vec<String>,
        #[command(flatten)]
        filter: LetterFilter,
        #[arg(long)]
        all_open: bool,
    },
    /// Delete resolved dead letters that failed before an instant.
    Purge {
        #[arg(long)]
        before: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Per linked listing: days TVL wants that Hostaway is not known to
    /// have, the jobs; the account's circuit and budget.
    Status {
        #[arg(long)]
        account_id: String,
        #[arg(long)]
        listing_id: Option<String>,
    },
    /// Queue a push or a reconciliation for an account or one listing.
    Trigger {
        #[arg(long)]
        account_id: String,
        #[arg(long)]
        listing_id: Option<String>,
        /// availability, pricing, listing_details or reservations.
        #[arg(long = "type")]
        sync_type: String,
        /// push (what differs from what Hostaway is known to have) or
        /// reconcile (read Hostaway back first).
        #[arg(long, default_value = "reconcile")]
        mode: String,
    },
}

pub async fn accounts(api: &ApiArgs, command: &AccountsCommand) -> anyhow::Result<()> {
    let mut client = api.client().await?;
    match command {
        AccountsCommand::Connect {
            account_id,
            name,
            webhook_login,
            alert_email,
            client_secret_env,
            client_secret_stdin,
        } => {
            let secret = if *client_secret_stdin {
                secrets::from_stdin("client secret")?
            } else {
                secrets::from_env(client_secret_env.as_deref())?
                    .context("give --client-secret-env or --client-secret-stdin")?
            };
            let connected = client
                .connect_account(proto::ConnectAccountRequest {
                    account_id: account_id.clone(),
                    client_secret: secrecy::ExposeSecret::expose_secret(&secret).to_owned(),
                    display_name: name.clone().unwrap_or_default(),
                    webhook_login: webhook_login.clone().unwrap_or_default(),
                    alert_email: alert_email.clone().unwrap_or_default(),
                })
                .await
                .answer()?;
            println!(
                "account {account_id} {}: {} listing(s); unified webhook {} → {}",
                if connected.created {
                    "connected"
                } else {
                    "already connected (nothing changed)"
                },
                connected.listing_count,
                connected.webhook_id,
                connected.webhook_url
            );
        }
        AccountsCommand::List => {
            let accounts = client
                .list_accounts(proto::ListAccountsRequest {})
                .await
                .answer()?;
            output::accounts(&accounts.accounts);
        }
        AccountsCommand::Show { account_id } => {
            let account = client
                .get_account(proto::GetAccountRequest {
                    account_id: account_id.clone(),
                })
                .await
                .answer()?;
            output::accounts(&[account]);
        }
        AccountsCommand::Enable { account_id } | AccountsCommand::Disable { account_id } => {
            let enabled = matches!(command, AccountsCommand::Enable { .. });
            client
                .set_account_enabled(proto::SetAccountEnabledRequest {
                    account_id: account_id.clone(),
                    enabled,
                })
                .await
                .answer()?;
            println!(
                "account {account_id} {}",
                if enabled { "enabled" } else { "disabled" }
            );
        }
        AccountsCommand::Rotate {
            account_id,
            client_secret_env,
            webhook_password_env,
            webhook_secret_env,
            overlap_hours,
        } => {
            let reveal = |var: &Option<String>| -> anyhow::Result<String> {
                Ok(secrets::from_env(var.as_deref())?
                    .map(|s| secrecy::ExposeSecret::expose_secret(&s).to_owned())
                    .unwrap_or_default())
            };
            let account = client
                .rotate_credentials(proto::RotateCredentialsRequest {
                    account_id: account_id.clone(),
                    client_secret: reveal(client_secret_env)?,
                    webhook_password: reveal(webhook_password_env)?,
                    webhook_secret: reveal(webhook_secret_env)?,
                    overlap_seconds: overlap_hours.saturating_mul(3600).max(1),
                })
                .await
                .answer()?;
            println!(
                "account {account_id}: new credentials in force; the previous ones are accepted until {}",
                output::instant(account.rotation_until.as_ref())
            );
        }
        AccountsCommand::FinishRotation { account_id } => {
            client
                .finish_rotation(proto::FinishRotationRequest {
                    account_id: account_id.clone(),
                })
                .await
                .answer()?;
            println!("account {account_id}: only the current credentials are accepted");
        }
    }
    Ok(())
}

pub async fn listings(api: &ApiArgs, command: &ListingsCommand) -> anyhow::Result<()> {
    let mut client = api.client().await?;
    match command {
        ListingsCommand::List { account_id } => {
            let listings = client
                .list_listings(proto::ListListingsRequest {
                    account_id: account_id.clone(),
                })
                .await
                .answer()?;
            output::listings(&listings.listings);
        }
        ListingsCommand::Link {
            account_id,
            listing_id,
            unit_id,
        } => {
            client
                .link_listing(proto::LinkListingRequest {
                    account_id: account_id.clone(),
                    listing_id: listing_id.clone(),
                    unit_id: unit_id.to_string(),
                })
                .await
                .answer()?;
            println!("listing {listing_id} of account {account_id} → unit {unit_id}");
        }
        ListingsCommand::Unlink {
            account_id,
            listing_id,
        } => {
            let removed = client
                .unlink_listing(proto::UnlinkListingRequest {
                    account_id: account_id.clone(),
                    listing_id: listing_id.clone(),
                })
                .await
                .answer()?
                .removed;
            println!(
                "{}",
                if removed {
                    "link removed"
                } else {
                    "no such link"
                }
            );
        }
    }
    Ok(())
}

fn apply(edits: &ConfigEdits, config: &mut proto::ChannelConfig) -> anyhow::Result<()> {
    let sync = config.sync.get_or_insert_with(Default::default);
    for kind in &edits.enable_sync {
        if !sync.enabled_types.contains(kind) {
            sync.enabled_types.push(kind.clone());
        }
    }
    sync.enabled_types
        .retain(|t| !edits.disable_sync.contains(t));
    for (value, slot) in [
        (
            &edits.availability_schedule,
            &mut sync.availability_schedule,
        ),
        (&edits.pricing_schedule, &mut sync.pricing_schedule),
        (&edits.listings_schedule, &mut sync.listings_schedule),
    ] {
        if let Some(value) = value {
            slot.clone_from(value);
        }
    }
    let webhook = config.webhook.get_or_insert_with(Default::default);
    set(&mut webhook.enabled, edits.webhook_enabled);
    set(
        &mut webhook.retry_max_attempts,
        edits.webhook_retry_attempts,
    );
    set(
        &mut webhook.retry_backoff_ms,
        edits.webhook_retry_backoff_ms,
    );
    let api = config.api.get_or_insert_with(Default::default);
    set(&mut api.timeout_ms, edits.api_timeout_ms);
    set(&mut api.max_retries, edits.api_max_retries);
    let rate = config.rate_limit.get_or_insert_with(Default::default);
    set(&mut rate.max_requests_per_minute, edits.rate_limit_rpm);
    set(&mut rate.burst_capacity, edits.rate_limit_burst);
    let breaker = config.circuit_breaker.get_or_insert_with(Default::default);
    set(&mut breaker.enabled, edits.circuit_breaker_enabled);
    set(
        &mut breaker.failure_threshold,
        edits.circuit_breaker_threshold,
    );
    set(
        &mut breaker.reset_timeout_ms,
        edits.circuit_breaker_reset_ms,
    );
    if let Some(both) = edits
        .enable_sync
        .iter()
        .find(|t| edits.disable_sync.contains(t))
    {
        bail!("--enable-sync and --disable-sync both name {both}");
    }
    Ok(())
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

pub async fn config(api: &ApiArgs, command: &ConfigCommand) -> anyhow::Result<()> {
    let mut client = api.client().await?;
    let account_id = match command {
        ConfigCommand::Show { account_id } => account_id,
        ConfigCommand::Set(edits) => &edits.account_id,
    };
    let current = client
        .get_channel_config(proto::GetChannelConfigRequest {
            account_id: account_id.clone(),
        })
        .await
        .answer()?;
    let config = match command {
        ConfigCommand::Show { .. } => current,
        ConfigCommand::Set(edits) => {
            let mut wanted = current.clone();
            apply(edits, &mut wanted)?;
            client
                .update_channel_config(proto::UpdateChannelConfigRequest {
                    account_id: account_id.clone(),
                    config: Some(wanted),
                    expected_version: current.version,
                    force: false,
                })
                .await
                .answer()?
        }
    };
    output::config(&config);
    Ok(())
}

pub async fn dlq(api: &ApiArgs, command: &DlqCommand) -> anyhow::Result<()> {
    let mut client = api.client().await?;
    // By ids, by a filter, or (said explicitly) every open letter.
    let chosen = |ids: &Vec<String>,
                  filter: &LetterFilter,
                  all_open: bool|
     -> anyhow::Result<Option<proto::DeadLetterFilter>> {
        match (ids.is_empty(), filter.is_empty(), all_open) {
            (false, true, false) => Ok(None),
            (true, false, false) | (true, true, true) => Ok(Some(filter.to_message(false)?)),
            _ => bail!("give dead letter ids, or filter flags, or --all-open (one of them)"),
        }
    };
    match command {
        DlqCommand::List { filter, all, limit } => {
            let letters = client
                .list_dead_letters(proto::ListDeadLettersRequest {
                    filter: Some(filter.to_message(*all)?),
                    limit: *limit,
                })
                .await
                .answer()?;
            output::dead_letters(&letters.letters);
        }
        DlqCommand::Show { id } => {
            let letter = client
                .get_dead_letter(proto::GetDeadLetterRequest { id: id.clone() })
                .await
                .answer()?;
            output::dead_letter(&letter);
        }
        DlqCommand::Replay {
            ids,
            filter,
            all_open,
        } => {
            let filter = chosen(ids, filter, *all_open)?;
            let outcomes = client
                .replay_dead_letters(proto::ReplayDeadLettersRequest {
                    ids: ids.clone(),
                    filter,
                })
                .await
                .answer()?;
            report(&outcomes, "replayed")?;
        }
        DlqCommand::Resolve {
            ids,
            filter,
            all_open,
        } => {
            let filter = chosen(ids, filter, *all_open)?;
            let outcomes = client
                .resolve_dead_letters(proto::ResolveDeadLettersRequest {
                    ids: ids.clone(),
                    filter,
                })
                .await
                .answer()?;
            report(&outcomes, "resolved")?;
        }
        DlqCommand::Purge { before } => {
            let purged = client
                .purge_dead_letters(proto::PurgeDeadLettersRequest {
                    failed_before: Some(timestamp(before)?),
                })
                .await
                .answer()?
                .purged;
            println!("{purged} resolved dead letter(s) purged");
        }
    }
    Ok(())
}

fn report(outcomes: &proto::DeadLetterOutcomes, done: &str) -> anyhow::Result<()> {
    for outcome in &outcomes.outcomes {
        if outcome.message.is_empty() {
            println!("{}: {}", outcome.id, outcome.outcome);
        } else {
            println!("{}: {} ({})", outcome.id, outcome.outcome, outcome.message);
        }
    }
    println!("{} dead letter(s) {done}", outcomes.done);
    if outcomes.failed > 0 {
        bail!(
            "{} dead letter(s) could not be {done} (see above)",
            outcomes.failed
        );
    }
    Ok(())
}

pub async fn sync(api: &ApiArgs, command: &SyncCommand) -> anyhow::Result<()> {
    let mut client = api.client().await?;
    match command {
        SyncCommand::Status {
            account_id,
            listing_id,
        } => {
            let status = client
                .get_sync_status(proto::GetSyncStatusRequest {
                    account_id: account_id.clone(),
                    listing_id: listing_id.clone().unwrap_or_default(),
                })
                .await
                .answer()?;
            output::sync_status(&status);
        }
        SyncCommand::Trigger {
            account_id,
            listing_id,
            sync_type,
            mode,
        } => {
            let queued = client
                .trigger_sync(proto::TriggerSyncRequest {
                    account_id: account_id.clone(),
                    listing_id: listing_id.clone().unwrap_or_default(),
                    sync_type: sync_type.clone(),
                    mode: mode.clone(),
                })
                .await
                .answer()?
                .queued;
            println!(
                "{sync_type} {mode} for account {account_id}: {queued} job(s) queued (others already waiting)"
            );
        }
    }
    Ok(())
}

pub async fn reemit(api: &ApiArgs, since: &str, account_id: Option<&str>) -> anyhow::Result<()> {
    let mut client = api.client().await?;
    let done = client
        .reemit_booking_events(proto::ReemitBookingEventsRequest {
            since: Some(timestamp(since).context("--since")?),
            account_id: account_id.unwrap_or_default().to_owned(),
        })
        .await
        .answer()?;
    println!(
        "{} booking event(s) published again since {since}",
        done.published
    );
    if done.failed > 0 {
        bail!(
            "{} event(s) were not acknowledged by JetStream; run the command again (it publishes each state once)",
            done.failed
        );
    }
    Ok(())
}

pub async fn audit(
    api: &ApiArgs,
    account_id: Option<&str>,
    since: Option<&str>,
    limit: u32,
) -> anyhow::Result<()> {
    let mut client = api.client().await?;
    let entries = client
        .list_audit_entries(proto::ListAuditEntriesRequest {
            account_id: account_id.unwrap_or_default().to_owned(),
            since: since.map(timestamp).transpose().context("--since")?,
            limit,
        })
        .await
        .answer()?;
    output::audit(&entries.entries);
    Ok(())
}

/// The read-only views of what came in from Hostaway.
#[derive(Debug, Subcommand)]
pub enum InboundView {
    /// Bookings created from Hostaway, by arrival.
    Bookings {
        #[arg(long)]
        account_id: Option<String>,
        #[arg(long, default_value_t = 1_000)]
        limit: u32,
    },
    /// Live calendar blocks.
    Blocks {
        #[arg(long)]
        unit_id: Option<UnitId>,
    },
    /// Overlapping bookings detected on one unit.
    DoubleBookings,
    /// The most recent webhooks and what became of them.
    Webhooks {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Webhooks parked until they can be applied (their reservation's
    /// complete record, their listing's link, their account's enabling).
    Parked {
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

pub async fn inbound(api: &ApiArgs, view: &InboundView) -> anyhow::Result<()> {
    let mut client = api.client().await?;
    match view {
        InboundView::Bookings { account_id, limit } => {
            let bookings = client
                .list_bookings(proto::ListBookingsRequest {
                    account_id: account_id.clone().unwrap_or_default(),
                    limit: *limit,
                })
                .await
                .answer()?;
            output::bookings(&bookings.bookings);
        }
        InboundView::Blocks { unit_id } => {
            let blocks = client
                .list_blocks(proto::ListBlocksRequest {
                    unit_id: unit_id.map(|u| u.to_string()).unwrap_or_default(),
                })
                .await
                .answer()?;
            output::blocks(&blocks.blocks);
        }
        InboundView::DoubleBookings => {
            let found = client
                .list_double_bookings(proto::ListDoubleBookingsRequest {})
                .await
                .answer()?;
            output::double_bookings(&found.double_bookings);
        }
        InboundView::Webhooks { limit } => {
            let webhooks = client
                .list_webhooks(proto::ListWebhooksRequest { limit: *limit })
                .await
                .answer()?;
            output::webhooks(&webhooks.webhooks);
        }
        InboundView::Parked { limit } => {
            let parked = client
                .list_parked_webhooks(proto::ListParkedWebhooksRequest { limit: *limit })
                .await
                .answer()?;
            output::parked(&parked.webhooks);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_rfc3339_or_dates_and_nothing_else() {
        assert_eq!(
            parse_instant("2026-11-01").unwrap().to_rfc3339(),
            "2026-11-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_instant("2026-11-01T10:00:00+02:00")
                .unwrap()
                .to_rfc3339(),
            "2026-11-01T08:00:00+00:00"
        );
        for bad in ["yesterday", "2026-13-01", "", "1700000000"] {
            assert!(parse_instant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn configuration_edits_change_only_what_they_name() {
        let mut config = proto::ChannelConfig {
            sync: Some(proto::SyncSettings {
                enabled_types: vec!["availability".into(), "pricing".into()],
                availability_schedule: "*/15 * * * *".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let edits = ConfigEdits {
            account_id: "1".into(),
            enable_sync: vec!["listing_details".into()],
            disable_sync: vec!["pricing".into()],
            availability_schedule: None,
            pricing_schedule: Some("off".into()),
            listings_schedule: None,
            webhook_enabled: Some(false),
            webhook_retry_attempts: None,
            webhook_retry_backoff_ms: None,
            api_timeout_ms: Some(5_000),
            api_max_retries: None,
            rate_limit_rpm: None,
            rate_limit_burst: None,
            circuit_breaker_enabled: None,
            circuit_breaker_threshold: None,
            circuit_breaker_reset_ms: None,
        };
        apply(&edits, &mut config).unwrap();
        let sync = config.sync.unwrap();
        assert_eq!(sync.enabled_types, ["availability", "listing_details"]);
        assert_eq!(sync.availability_schedule, "*/15 * * * *");
        assert_eq!(sync.pricing_schedule, "off");
        assert!(!config.webhook.unwrap().enabled);
        assert_eq!(config.api.unwrap().timeout_ms, 5_000);
    }
}
