//! `just bench-inbound`: the inbound path measured beside its physical
//! baselines, in one run, on one machine.
//!
//! 1. Gateway: closed-loop HTTP load (N connections) of realistic 2 KiB
//!    webhooks, beside raw JetStream publish+ack of the same bytes at the same
//!    concurrency.
//! 2. Webhook → committed booking: an open-loop steady rate through gateway and
//!    ingestor, timed until the `booking.created` event (published after commit).
//! 3. Ingestor drain: a backlog applied as fast as it goes, beside raw
//!    PostgreSQL upsert+log transactions at the same concurrency.

#![allow(clippy::print_stdout, clippy::expect_used)]

mod client;
mod load;
mod outbound;
mod preload;
mod report;
mod scale;

use std::time::Duration;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Benchmarks of the Hostaway connector")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// The inbound path: gateway, end-to-end latency, ingestor drain.
    Inbound(load::InboundArgs),
    /// The Hostaway client stack against the simulator, beside plain reqwest.
    Client(client::ClientArgs),
    /// A burst of TVL changes pushed at Hostaway's real limits, beside the lower bounds.
    Outbound(outbound::OutboundArgs),
    /// The outbound burst by replica count, and the registry at 10,000 accounts.
    Scale(scale::ScaleArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Inbound(args) => {
            let started = std::time::Instant::now();
            let results = load::inbound(&args).await?;
            report::print(&args, &results);
            println!(
                "\n(total run time {:.0?})",
                started.elapsed().max(Duration::from_secs(0))
            );
        }
        Command::Client(args) => client::run(&args).await?,
        Command::Outbound(args) => outbound::run(&args).await?,
        Command::Scale(args) => scale::run(&args).await?,
    }
    Ok(())
}
