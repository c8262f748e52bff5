//! What runs before the operations API exists, or beneath it: migrations,
//! the JetStream streams, master keys, API tokens, the single-account
//! bootstrap. These talk to PostgreSQL and NATS directly.

use admin_api::auth::Role;
use anyhow::{Context, bail};
use clap::Subcommand;
use service_kit::config::{BootstrapAccountArgs, NatsArgs};
use store::accounts::NewAccount;
use store::crypto::CredentialCipher;
use uuid::Uuid;

use crate::output;

#[derive(Debug, Subcommand)]
pub enum StreamsCommand {
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
pub enum TokensCommand {
    /// Issue a token of the operations API; it is printed once, only its
    /// hash is kept.
    Issue {
        /// Who holds it (shown in the audit trail).
        #[arg(long)]
        name: String,
        /// owner (credentials, connect, rotation), operator (replays,
        /// triggers, configuration, links) or viewer (reads).
        #[arg(long)]
        role: String,
    },
    /// Revoke a token now.
    Revoke { id: Uuid },
    /// Tokens, live and revoked (never their values).
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new random CONNECTOR_CREDENTIALS_KEY.
    Generate,
}

pub async fn streams(nats: &NatsArgs, command: &StreamsCommand) -> anyhow::Result<()> {
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

pub async fn tokens(pool: &store::PgPool, command: &TokensCommand) -> anyhow::Result<()> {
    match command {
        TokensCommand::Issue { name, role } => {
            let role = Role::parse(role.trim()).context("--role: owner, operator or viewer")?;
            let (id, token) = admin_api::auth::issue_token(pool, name, role).await?;
            eprintln!("token {id} ({role}) for {name}; shown once, keep it in a secret store:");
            println!("{}", secrecy::ExposeSecret::expose_secret(&token));
        }
        TokensCommand::Revoke { id } => {
            if store::admin::revoke_token(pool, *id).await? {
                println!("token {id} revoked");
            } else {
                bail!("no live token {id}");
            }
        }
        TokensCommand::List => output::tokens(&store::admin::list_tokens(pool).await?),
    }
    Ok(())
}

/// `accounts import-env`: the account named by HOSTAWAY_ACCOUNT_ID and
/// friends, created or updated (a single-account deployment's bootstrap).
pub async fn import_env(
    pool: &store::PgPool,
    cipher: &CredentialCipher,
    bootstrap: &BootstrapAccountArgs,
) -> anyhow::Result<()> {
    if !bootstrap.is_set() {
        bail!("HOSTAWAY_ACCOUNT_ID is not set");
    }
    let account =
        domain::AccountId::parse(bootstrap.account_id.as_deref().unwrap_or_default().trim())
            .context("HOSTAWAY_ACCOUNT_ID")?;
    let new = NewAccount {
        account: account.clone(),
        display_name: None,
        api_key: bootstrap.api_key.clone(),
        webhook_login: bootstrap.webhook_login.clone(),
        webhook_password: bootstrap.webhook_password.clone(),
        webhook_secret: bootstrap.webhook_secret.clone(),
    };
    store::accounts::upsert_account(pool, cipher, new).await?;
    println!("account {account} imported from the environment");
    Ok(())
}
