//! `hostaway-admin`: the operator's tool.
//!
//! Most commands call the operations API (`hostaway-admin-api`, at
//! ADMIN_API_URL, with the bearer token in ADMIN_API_TOKEN): the token's
//! role decides, and the API audits every change. What must run before the
//! API exists (migrations, streams, master keys, the first token, a
//! single-account bootstrap) talks to PostgreSQL and NATS directly, as does
//! `changes`, which stands in for TVL. Secrets are never taken as arguments
//! (they would land in shell history and `ps`): they are read from a named
//! environment variable or from stdin.

#![allow(clippy::print_stdout)]

mod bootstrap;
mod outbound;
mod output;
mod remote;
mod secrets;

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::SecretString;
use service_kit::config::{BootstrapAccountArgs, DatabaseArgs, NatsArgs};
use store::crypto::CredentialCipher;

use bootstrap::{KeysCommand, StreamsCommand, TokensCommand};
use remote::{
    AccountsCommand, ApiArgs, ConfigCommand, DlqCommand, InboundView, ListingsCommand, SyncCommand,
};

#[derive(Debug, Parser)]
#[command(
    name = "hostaway-admin",
    version,
    about = "Operate the Hostaway connector"
)]
struct Cli {
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    nats: NatsArgs,
    /// 32 bytes, base64 (for `accounts import-env` and `accounts rewrap`).
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
    /// Apply database migrations (database).
    Migrate {
        /// Create the database first if it does not exist.
        #[arg(long)]
        create_database: bool,
    },
    /// The connector's JetStream streams in this namespace (NATS).
    #[command(subcommand)]
    Streams(StreamsCommand),
    /// Credential encryption keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Tokens of the operations API (database).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Hostaway accounts and their credentials (API; import-env and rewrap: database).
    #[command(subcommand)]
    Accounts(AccountsGroup),
    /// An account's listings and their links to TVL units (API).
    #[command(subcommand)]
    Listings(ListingsCommand),
    /// An account's own settings: the specification's HostawayChannelConfig (API).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The dead-letter queue (API).
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Outbound sync: status, pushes and reconciliation on demand (API).
    #[command(subcommand)]
    Sync(SyncCommand),
    /// Events for TVL (API).
    #[command(subcommand)]
    Events(EventsCommand),
    /// Who changed what through the API.
    Audit {
        #[arg(long)]
        account_id: Option<String>,
        /// RFC 3339 or a date.
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// What came in from Hostaway (API).
    #[command(flatten)]
    Inbound(InboundView),
    /// Publish a TVL change by hand, as TVL would (NATS; database for `burst`).
    #[command(subcommand)]
    Changes(outbound::ChangesCommand),
}

#[derive(Debug, Subcommand)]
enum AccountsGroup {
    #[command(flatten)]
    Api(AccountsCommand),
    /// Create or update the account named by HOSTAWAY_ACCOUNT_ID and
    /// friends: a single-account deployment's bootstrap (database).
    ImportEnv {
        #[command(flatten)]
        bootstrap: BootstrapAccountArgs,
    },
    /// Re-encrypt every credential under the active key, after a master key
    /// rotation (database).
    Rewrap,
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
    let api = &cli.api;
    match &cli.command {
        Command::Keys(KeysCommand::Generate) => println!(
            "{}",
            secrecy::ExposeSecret::expose_secret(&CredentialCipher::generate_key())
        ),
        Command::Migrate { create_database } => {
            if *create_database && store::create_database_if_missing(&cli.database.url).await? {
                println!("database created");
            }
            store::migrate(&cli.database.pool()?).await?;
            println!("migrations applied");
        }
        Command::Streams(command) => bootstrap::streams(&cli.nats, command).await?,
        Command::Tokens(command) => bootstrap::tokens(&cli.database.pool()?, command).await?,
        Command::Accounts(AccountsGroup::Api(command)) => remote::accounts(api, command).await?,
        Command::Accounts(AccountsGroup::ImportEnv { bootstrap }) => {
            bootstrap::import_env(&cli.database.pool()?, &cipher(&cli)?, bootstrap).await?
        }
        Command::Accounts(AccountsGroup::Rewrap) => {
            let changed =
                store::accounts::rewrap_all(&cli.database.pool()?, &cipher(&cli)?).await?;
            println!("{changed} account(s) re-encrypted under the active key");
        }
        Command::Listings(command) => remote::listings(api, command).await?,
        Command::Config(command) => remote::config(api, command).await?,
        Command::Dlq(command) => remote::dlq(api, command).await?,
        Command::Sync(command) => remote::sync(api, command).await?,
        Command::Events(EventsCommand::Replay { since, account_id }) => {
            remote::reemit(api, since, account_id.as_deref()).await?
        }
        Command::Audit {
            account_id,
            since,
            limit,
        } => remote::audit(api, account_id.as_deref(), since.as_deref(), *limit).await?,
        Command::Inbound(view) => remote::inbound(api, view).await?,
        Command::Changes(command) => {
            outbound::changes(&cli.nats, &cli.database.pool()?, command).await?
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
}
