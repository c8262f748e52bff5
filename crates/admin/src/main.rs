//! `hostaway-admin`: the operator's tool.
//!
//! Secrets are never taken as arguments (they would land in shell history and
//! `ps`): they are read from a named environment variable or from stdin.

#![allow(clippy::print_stdout)]

mod api;
mod dlq;
mod outbound;
mod output;

use std::io::Read;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use domain::{AccountId, ListingId, UnitId};
use secrecy::SecretString;
use service_kit::config::{BootstrapAccountArgs, DatabaseArgs, NatsArgs};
use store::accounts::{NewAccount, Rotation};
use store::crypto::CredentialCipher;

#[derive(Debug, Parser)]
#[command(
    name = "hostaway-admin",
    version,
    about = "Operate the Hostaway connector"
)]
struct Cli {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    nats: NatsArgs,
    /// 32 bytes, base64 (needed by commands that read or write credentials).
    #[arg(
        long = "credentials-key",
        env = "CONNECTOR_CREDENTIALS_KEY",
        hide_env_values = true,
        global = true
    )]
    credentials_key: Option<SecretString>,
    #[arg(
        long = "credentials-key-previous",
        env = "CONNECTOR_CREDENTIALS_KEY_PREVIOUS",
        hide_env_values = true,
        global = true
    )]
    credentials_key_previous: Option<SecretString>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply database migrations.
    Migrate {
        /// Create the database first if it does not exist.
        #[arg(long)]
        create_database: bool,
    },
    /// The connector's JetStream streams in this namespace.
    #[command(subcommand)]
    Streams(StreamsCommand),
    /// Credential encryption keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Hostaway accounts and their credentials.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Links between Hostaway listings and TVL units.
    #[command(subcommand)]
    Links(LinksCommand),
    /// Bookings created from Hostaway.
    Bookings {
        #[arg(long)]
        account_id: Option<String>,
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
        limit: i64,
    },
    /// The dead-letter queue.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Webhooks parked until they can be applied (their reservation's
    /// complete record, their listing's link, their account's enabling).
    Parked {
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Events for TVL.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Publish a TVL change by hand (availability, price, listing details).
    #[command(subcommand)]
    Changes(outbound::ChangesCommand),
    /// Outbound sync: status, jobs, reconciliation now.
    #[command(subcommand)]
    Sync(outbound::SyncCommand),
    /// The Hostaway API for one account (HOSTAWAY_API_URL: the real one or hostaway-sim).
    Api {
        #[command(flatten)]
        hostaway: hostaway_client::HostawayApiArgs,
        #[command(subcommand)]
        command: api::ApiCommand,
    },
}

#[derive(Debug, Subcommand)]
enum StreamsCommand {
    /// Create the streams and the durable consumers, or update them to this
    /// configuration (`NATS_*`, `INGEST_ACK_WAIT_SECS`, `SYNC_*_ACK_WAIT_SECS`):
    /// the services only verify them. Run it (a Kubernetes Job) before the
    /// services, and whenever that configuration changes.
    Provision,
    /// Compare the streams and consumers with this configuration, changing
    /// nothing; exit 1 naming each difference.
    Verify,
    /// Delete the streams and everything on them.
    Delete {
        /// Required: this destroys unprocessed webhooks.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Publish again the current state of every booking changed since an
    /// instant, for a TVL consumer that was down longer than the events
    /// stream keeps events. Each is marked `replayed`; running it twice
    /// publishes each state once.
    Replay {
        /// RFC 3339 (`2026-11-01T00:00:00Z`) or a date (`2026-11-01`, midnight UTC).
        #[arg(long)]
        since: String,
        #[arg(long)]
        account_id: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Print a new random CONNECTOR_CREDENTIALS_KEY.
    Generate,
}

/// Where a secret comes from.
#[derive(Debug, Clone, Args)]
struct SecretSources {
    /// Read the webhook Basic password from this environment variable.
    #[arg(long, value_name = "VAR")]
    webhook_password_env: Option<String>,
    /// Read the specification's HMAC webhook secret from this environment variable.
    #[arg(long, value_name = "VAR")]
    webhook_secret_env: Option<String>,
    /// Read the Hostaway API client secret from this environment variable.
    #[arg(long, value_name = "VAR")]
    api_key_env: Option<String>,
    /// Read the webhook Basic password from stdin (one line).
    #[arg(long, conflicts_with = "webhook_password_env")]
    webhook_password_stdin: bool,
}

impl SecretSources {
    fn read(name: &Option<String>) -> anyhow::Result<Option<SecretString>> {
        match name {
            None => Ok(None),
            Some(var) => {
                let value = std::env::var(var)
                    .with_context(|| format!("environment variable {var} is not set"))?;
                if value.is_empty() {
                    bail!("environment variable {var} is empty");
                }
                Ok(Some(SecretString::from(value)))
            }
        }
    }

    fn password(&self) -> anyhow::Result<Option<SecretString>> {
        if self.webhook_password_stdin {
            let mut line = String::new();
            std::io::stdin().read_to_string(&mut line)?;
            let line = line.trim_end_matches(['\r', '\n']).to_owned();
            if line.is_empty() {
                bail!("no password on stdin");
            }
            return Ok(Some(SecretString::from(line)));
        }
        Self::read(&self.webhook_password_env)
    }
}

#[derive(Debug, Subcommand)]
enum AccountsCommand {
    /// Add an account.
    Add {
        #[arg(long)]
        account_id: String,
        #[arg(long)]
        name: Option<String>,
        /// The unified webhook's Basic login.
        #[arg(long)]
        webhook_login: Option<String>,
        #[command(flatten)]
        secrets: SecretSources,
    },
    /// Create or update the account named by HOSTAWAY_ACCOUNT_ID and friends.
    ImportEnv {
        #[command(flatten)]
        bootstrap: BootstrapAccountArgs,
    },
    /// List accounts (which credentials exist, never their values).
    List,
    /// Set new credentials; the old ones stay valid for the grace period.
    Rotate {
        #[arg(long)]
        account_id: String,
        #[command(flatten)]
        secrets: SecretSources,
        /// How long the previous password/secret is still accepted.
        #[arg(long, default_value_t = 24)]
        grace_hours: i64,
    },
    /// Stop accepting the previous credentials now.
    FinishRotation {
        #[arg(long)]
        account_id: String,
    },
    /// Refuse the account's webhooks.
    Disable {
        #[arg(long)]
        account_id: String,
    },
    Enable {
        #[arg(long)]
        account_id: String,
    },
    /// Re-encrypt every credential under the active key (after a key rotation).
    Rewrap,
}

#[derive(Debug, Subcommand)]
enum LinksCommand {
    /// Link a Hostaway listing to a TVL unit (or move the link).
    Add {
        #[arg(long)]
        account_id: String,
        #[arg(long)]
        listing_id: String,
        #[arg(long)]
        unit_id: UnitId,
    },
    Remove {
        #[arg(long)]
        account_id: String,
        #[arg(long)]
        listing_id: String,
    },
    List {
        #[arg(long)]
        account_id: Option<String>,
    },
}

fn account(raw: &str) -> anyhow::Result<AccountId> {
    AccountId::parse(raw.trim()).context("--account-id")
}

/// `--since`: an RFC 3339 instant, or a date (midnight UTC).
fn parse_since(raw: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let raw = raw.trim();
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|at| at.and_utc())
        .context("--since: an RFC 3339 instant (2026-11-01T00:00:00Z) or a date (2026-11-01)")
}

fn cipher(cli: &Cli) -> anyhow::Result<CredentialCipher> {
    let key = cli
        .credentials_key
        .as_ref()
        .context("CONNECTOR_CREDENTIALS_KEY is required for this command")?;
    CredentialCipher::new(key, cli.credentials_key_previous.as_ref())
        .context("CONNECTOR_CREDENTIALS_KEY")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    service_kit::install_crypto_provider();
    let cli = Cli::parse();
    if let Command::Keys(KeysCommand::Generate) = &cli.command {
        println!(
            "{}",
            secrecy::ExposeSecret::expose_secret(&CredentialCipher::generate_key())
        );
        return Ok(());
    }
    let pool = cli.database.pool()?;
    match &cli.command {
        Command::Keys(_) => {}
        Command::Migrate { create_database } => {
            if *create_database && store::create_database_if_missing(&cli.database.url).await? {
                println!("database created");
            }
            store::migrate(&pool).await?;
            println!("migrations applied");
        }
        Command::Streams(command) => streams(&cli.nats, command).await?,
        Command::Accounts(command) => accounts(&cli, &pool, command).await?,
        Command::Links(command) => links(&pool, command).await?,
        Command::Bookings { account_id } => {
            let account = account_id.as_deref().map(account).transpose()?;
            output::bookings(&store::bookings::list(&pool, account.as_ref()).await?);
        }
        Command::Blocks { unit_id } => {
            output::blocks(&store::bookings::list_blocks(&pool, *unit_id).await?)
        }
        Command::DoubleBookings => {
            output::double_bookings(&store::bookings::list_double_bookings(&pool).await?)
        }
        Command::Webhooks { limit } => {
            output::webhooks(&store::webhook_log::list(&pool, *limit).await?)
        }
        Command::Dlq(command) => dlq::run(&cli.nats, &pool, command).await?,
        Command::Parked { limit } => output::parked(&store::parked::list(&pool, *limit).await?),
        Command::Events(EventsCommand::Replay { since, account_id }) => {
            let since = parse_since(since)?;
            let account = account_id.as_deref().map(account).transpose()?;
            let client = cli.nats.connect("hostaway-admin").await?;
            let publisher = booking_ingestor::outbox::EventPublisher::new(
                async_nats::jetstream::new(client),
                cli.nats.topology()?,
                booking_ingestor::metrics::IngestorMetrics::register(
                    &service_kit::metrics::Metrics::new(),
                )?,
            );
            let done = booking_ingestor::reemit::reemit(
                &pool,
                &publisher,
                since,
                account.as_ref(),
                |so_far| {
                    eprintln!("… {} published", so_far.published);
                },
            )
            .await?;
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
        }
        Command::Changes(command) => outbound::changes(&cli.nats, &pool, command).await?,
        Command::Sync(command) => outbound::sync(&cli.nats, &pool, command).await?,
        Command::Api { hostaway, command } => {
            api::run(hostaway, &pool, cipher(&cli)?, command).await?
        }
    }
    Ok(())
}

async fn accounts(
    cli: &Cli,
    pool: &store::PgPool,
    command: &AccountsCommand,
) -> anyhow::Result<()> {
    match command {
        AccountsCommand::Add {
            account_id,
            name,
            webhook_login,
            secrets,
        } => {
            let new = NewAccount {
                account: account(account_id)?,
                display_name: name.clone(),
                api_key: SecretSources::read(&secrets.api_key_env)?,
                webhook_login: webhook_login.clone(),
                webhook_password: secrets.password()?,
                webhook_secret: SecretSources::read(&secrets.webhook_secret_env)?,
            };
            if new.webhook_password.is_none() && new.webhook_secret.is_none() {
                bail!(
                    "give a webhook password (--webhook-password-env/--webhook-password-stdin) or an HMAC secret (--webhook-secret-env)"
                );
            }
            let id = new.account.clone();
            store::accounts::add_account(pool, &cipher(cli)?, new).await?;
            println!("account {id} added");
        }
        AccountsCommand::ImportEnv { bootstrap } => {
            if !bootstrap.is_set() {
                bail!("HOSTAWAY_ACCOUNT_ID is not set");
            }
            let new = NewAccount {
                account: account(bootstrap.account_id.as_deref().unwrap_or_default())?,
                display_name: None,
                api_key: bootstrap.api_key.clone(),
                webhook_login: bootstrap.webhook_login.clone(),
                webhook_password: bootstrap.webhook_password.clone(),
                webhook_secret: bootstrap.webhook_secret.clone(),
            };
            let id = new.account.clone();
            store::accounts::upsert_account(pool, &cipher(cli)?, new).await?;
            println!("account {id} imported from the environment");
        }
        AccountsCommand::List => output::accounts(&store::accounts::list_accounts(pool).await?),
        AccountsCommand::Rotate {
            account_id,
            secrets,
            grace_hours,
        } => {
            let rotation = Rotation {
                webhook_password: secrets.password()?,
                webhook_secret: SecretSources::read(&secrets.webhook_secret_env)?,
                api_key: SecretSources::read(&secrets.api_key_env)?,
                grace: chrono::Duration::hours((*grace_hours).max(0)),
            };
            if rotation.webhook_password.is_none()
                && rotation.webhook_secret.is_none()
                && rotation.api_key.is_none()
            {
                bail!("nothing to rotate: give at least one new credential");
            }
            let id = account(account_id)?;
            store::accounts::rotate_credentials(pool, &cipher(cli)?, &id, rotation).await?;
            println!(
                "account {id}: new credentials active; previous ones accepted for {grace_hours} h"
            );
        }
        AccountsCommand::FinishRotation { account_id } => {
            let id = account(account_id)?;
            store::accounts::finish_rotation(pool, &id).await?;
            println!("account {id}: only the current credentials are accepted");
        }
        AccountsCommand::Disable { account_id } => {
            store::accounts::set_enabled(pool, &account(account_id)?, false).await?;
            println!("account {account_id} disabled");
        }
        AccountsCommand::Enable { account_id } => {
            store::accounts::set_enabled(pool, &account(account_id)?, true).await?;
            println!("account {account_id} enabled");
        }
        AccountsCommand::Rewrap => {
            let changed = store::accounts::rewrap_all(pool, &cipher(cli)?).await?;
            println!("{changed} account(s) re-encrypted under the active key");
        }
    }
    Ok(())
}

async fn streams(nats: &NatsArgs, command: &StreamsCommand) -> anyhow::Result<()> {
    let topology = nats.topology()?;
    let client = nats.connect("hostaway-admin").await?;
    let js = async_nats::jetstream::new(client);
    match command {
        StreamsCommand::Provision => {
            service_kit::nats::provision(&js, &topology, &nats.stream_settings()).await?;
            service_kit::nats::provision_consumers(&js, &topology, &nats.consumer_settings())
                .await?;
            println!(
                "streams and consumers of namespace {} provisioned",
                topology.namespace()
            );
        }
        StreamsCommand::Verify => {
            let mut problems = Vec::new();
            if let Err(problem) =
                service_kit::nats::verify_streams(&js, &topology, &nats.stream_settings()).await
            {
                problems.push(problem);
            }
            for (stream, config) in
                service_kit::nats::consumer_configs(&topology, &nats.consumer_settings())
            {
                if let Err(problem) = service_kit::nats::bind_consumer(&js, &stream, &config).await
                {
                    problems.push(problem);
                }
            }
            if !problems.is_empty() {
                bail!("{}", problems.join("\n"));
            }
            println!(
                "streams and consumers of namespace {} are as configured",
                topology.namespace()
            );
        }
        StreamsCommand::Delete { yes } => {
            if !yes {
                bail!(
                    "this deletes every message of namespace {}; add --yes",
                    topology.namespace()
                );
            }
            service_kit::nats::delete_streams(&js, &topology).await;
            println!("streams of namespace {} deleted", topology.namespace());
        }
    }
    Ok(())
}

async fn links(pool: &store::PgPool, command: &LinksCommand) -> anyhow::Result<()> {
    match command {
        LinksCommand::Add {
            account_id,
            listing_id,
            unit_id,
        } => {
            let listing = ListingId::parse(listing_id.trim()).context("--listing-id")?;
            store::links::link(pool, &account(account_id)?, &listing, *unit_id).await?;
            println!("listing {listing} of account {account_id} → unit {unit_id}");
        }
        LinksCommand::Remove {
            account_id,
            listing_id,
        } => {
            let listing = ListingId::parse(listing_id.trim()).context("--listing-id")?;
            let removed = store::links::unlink(pool, &account(account_id)?, &listing).await?;
            println!(
                "{}",
                if removed {
                    "link removed"
                } else {
                    "no such link"
                }
            );
        }
        LinksCommand::List { account_id } => {
            let account = account_id.as_deref().map(account).transpose()?;
            output::links(&store::links::list(pool, account.as_ref()).await?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn since_takes_an_instant_or_a_date_and_nothing_else() {
        assert_eq!(
            super::parse_since("2026-11-01").unwrap().to_rfc3339(),
            "2026-11-01T00:00:00+00:00"
        );
        assert_eq!(
            super::parse_since("2026-11-01T10:00:00+02:00")
                .unwrap()
                .to_rfc3339(),
            "2026-11-01T08:00:00+00:00"
        );
        for bad in ["yesterday", "2026-13-01", "", "1700000000"] {
            assert!(super::parse_since(bad).is_err(), "{bad}");
        }
    }
}
