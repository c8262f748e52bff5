//! The figures, as markdown for docs/benchmarks.md.

use crate::load::{InboundArgs, Results};

fn ms(micros: u64) -> String {
    format!("{:.2}", micros as f64 / 1000.0)
}

pub fn print(args: &InboundArgs, r: &Results) {
    println!("\n## Inbound benchmark\n");
    println!(
        "Body {} bytes; {} connections / in flight; {} s measured after {} s warm-up.\n",
        r.body_bytes, args.concurrency, args.duration, args.warmup
    );
    if let Some(g) = &r.gateway {
        gateway(g);
    }
    println!(
        "\n**Webhook → committed booking** at {} webhooks/s for {} s ({} sent, {} announced): \
         p50 {} ms, p99 {} ms, p99.9 {} ms, max {} ms.\n",
        args.rate,
        args.e2e_duration,
        r.e2e_sent,
        r.e2e.len(),
        ms(r.e2e.value_at_quantile(0.5)),
        ms(r.e2e.value_at_quantile(0.99)),
        ms(r.e2e.value_at_quantile(0.999)),
        ms(r.e2e.max())
    );
    println!(
        "| drain of a backlog, {} in parallel | webhooks or tx /s | ratio |",
        args.ingest_concurrency
    );
    println!("|---|---:|---:|");
    println!(
        "| raw PostgreSQL upsert + log insert per transaction (baseline) | {:.0} | 1.00 |",
        r.raw_upsert.rate()
    );
    println!(
        "| ingestor: one transaction per webhook, then events published | {:.0} | {:.2} |",
        r.drain_single.rate(),
        r.drain_single.rate() / r.raw_upsert.rate()
    );
    println!(
        "| **ingestor: up to {} webhooks per transaction**, then events published | {:.0} | **{:.2}** |",
        args.ingest_batch,
        r.drain.rate(),
        r.drain.rate() / r.raw_upsert.rate()
    );
}

fn gateway(r: &crate::load::GatewayResults) {
    println!("| measurement | rate (/s) | p50 ms | p99 ms | p99.9 ms | errors | ratio |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let row = |name: &str, t: &crate::load::Throughput, ratio: String| {
        println!(
            "| {name} | {:.0} | {} | {} | {} | {} | {ratio} |",
            t.rate(),
            ms(t.latency.value_at_quantile(0.5)),
            ms(t.latency.value_at_quantile(0.99)),
            ms(t.latency.value_at_quantile(0.999)),
            t.errors
        );
    };
    row(
        "raw JetStream publish+ack (baseline A)",
        &r.raw_publish,
        "1.00".into(),
    );
    row(
        "plain HTTP POST, same client (baseline C)",
        &r.plain_http,
        format!("{:.2}", r.plain_http.rate() / r.raw_publish.rate()),
    );
    row(
        "gateway: auth + validate + publish + ack, HTTP",
        &r.gateway,
        format!("{:.2}", r.gateway.rate() / r.raw_publish.rate()),
    );
    row(
        "gateway, one webhook at a time on one connection (idle)",
        &r.idle,
        "".into(),
    );
    println!(
        "\nGateway ÷ plain HTTP with the same client: {:.2} (the baselines' minimal HMAC+publish gateway: 0.29 of /plain).\n",
        r.gateway.rate() / r.plain_http.rate()
    );
}
