//! `hostaway-admin dlq`: inspect and replay dead letters (the replay itself is
//! `booking_ingestor::dead_letter::replay` for webhooks and
//! `sync_dispatcher::dead_letter::replay` for sync jobs and changes).

use anyhow::{Context, bail};
use async_nats::jetstream;
use clap::Subcommand;
use events::{Message as _, pb};
use service_kit::config::NatsArgs;
use service_kit::dead_letter::Replayed;
use store::PgPool;
use sync_dispatcher::queue::JobQueue;
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Open dead letters (with --all, resolved ones too).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// One dead letter in full (the stored body included).
    Show { id: Uuid },
    /// Send dead letters back to be processed again: one by id, or every
    /// open one (a letter that cannot be replayed is reported and skipped).
    Replay {
        id: Option<Uuid>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Close a dead letter by hand, once it has been dealt with otherwise
    /// (a refused change fixed at its publisher, a malformed message read).
    Resolve { id: Uuid },
}

pub async fn run(nats: &NatsArgs, pool: &PgPool, command: &DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List { all, limit } => {
            let letters = store::dlq::list(pool, *all, *limit).await?;
            println!(
                "{:<36}  {:<19}  {:<24}  {:<32}  {:<8}  {:<20}  STATE",
                "ID", "FAILED AT (UTC)", "JOB", "JOB ID", "ATTEMPTS", "ERROR KIND"
            );
            for l in letters {
                let kind = l.error.get("kind").and_then(|k| k.as_str()).unwrap_or("-");
                let state = if l.resolved_at.is_some() {
                    "resolved".to_owned()
                } else if l.replay_count > 0 {
                    format!("replayed ×{}", l.replay_count)
                } else {
                    "open".to_owned()
                };
                println!(
                    "{:<36}  {:<19}  {:<24}  {:<32}  {:<8}  {:<20}  {state}",
                    l.id,
                    l.failed_at.format("%Y-%m-%d %H:%M:%S"),
                    l.job_name,
                    l.job_id,
                    l.attempts,
                    kind
                );
            }
        }
        DlqCommand::Show { id } => {
            let letter = store::dlq::get(pool, *id)
                .await?
                .with_context(|| format!("dead letter {id} not found"))?;
            let body = pb::InboundWebhook::decode(letter.payload.as_slice())
                .ok()
                .map(|m| String::from_utf8_lossy(&m.raw_body).into_owned());
            let shown = serde_json::json!({
                "id": letter.id,
                "jobId": letter.job_id,
                "jobName": letter.job_name,
                "failedAt": letter.failed_at,
                "attempts": letter.attempts,
                "error": letter.error,
                "data": letter.data,
                "replayCount": letter.replay_count,
                "replayedAt": letter.replayed_at,
                "resolvedAt": letter.resolved_at,
                "body": body,
            });
            println!("{}", serde_json::to_string_pretty(&shown)?);
        }
        DlqCommand::Replay { id, all } => {
            let letters = match (id, all) {
                (Some(id), false) => vec![
                    store::dlq::get(pool, *id)
                        .await?
                        .with_context(|| format!("dead letter {id} not found"))?,
                ],
                (None, true) => store::dlq::list(pool, false, 10_000).await?,
                _ => bail!("give a dead letter id, or --all"),
            };
            let client = nats.connect("hostaway-admin").await?;
            let js = jetstream::new(client.clone());
            let topology = nats.topology()?;
            let queue = JobQueue::new(client, topology.clone(), std::time::Duration::from_secs(5));
            let (mut replayed, mut failed) = (0, 0);
            for letter in letters {
                let outcome = if sync_dispatcher::dead_letter::owns(&letter) {
                    sync_dispatcher::dead_letter::replay(&queue, &js, pool, &letter).await
                } else {
                    booking_ingestor::dead_letter::replay(&js, &topology, pool, &letter).await
                };
                match outcome {
                    Ok(Replayed::Sent(n)) => {
                        println!(
                            "{}: replayed ({} {}, replay #{n})",
                            letter.id, letter.job_name, letter.job_id
                        );
                        replayed += 1;
                    }
                    Ok(Replayed::AlreadyResolved) => {
                        println!("{}: already resolved, skipped", letter.id)
                    }
                    // One letter that cannot go back must not hold the others.
                    Err(error) => {
                        eprintln!("{}: not replayed: {error}", letter.id);
                        failed += 1;
                    }
                }
            }
            println!("{replayed} dead letter(s) replayed");
            if failed > 0 {
                bail!("{failed} dead letter(s) could not be replayed (see above)");
            }
        }
        DlqCommand::Resolve { id } => {
            if store::dlq::resolve(pool, *id).await? {
                println!("{id}: resolved");
            } else {
                println!("{id}: already resolved");
            }
        }
    }
    Ok(())
}
