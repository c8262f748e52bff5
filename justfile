# Hostaway connector. `just demo` runs the inbound path end to end; `just test`
# runs every test. Both bring PostgreSQL and NATS up first.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Run the inbound path end to end on this machine and print what it did.
demo: services
    scripts/demo.sh

# Run every test (real PostgreSQL, real NATS JetStream).
test: services
    if cargo nextest --version >/dev/null 2>&1; then \
        cargo nextest run --workspace --no-fail-fast; \
    else \
        cargo test --workspace --no-fail-fast; \
    fi

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# The deployment artefacts, offline: Dockerfile (hadolint), kustomize overlays
# (kubernetes-validate, CRD schemas), manifests against the binaries, alert
# rules (promtool) and the dashboard (see deploy/README.md, "Checks").
check-deploy: services
    cargo build --bins
    scripts/check-deploy.sh
    scripts/check-rules.sh

# Licences, bans, sources and advisories of the dependencies (cargo-deny).
deny:
    scripts/supply-chain.sh

# Run the Hostaway simulator on 127.0.0.1:8090 (account 70001, secret `sim-secret`, listings 300101-300103 and 300199).
sim *ARGS:
    cargo run -q -p hostaway-sim -- --seed demo {{ARGS}}

# Start PostgreSQL and NATS (JetStream) where they are installed but stopped.
services:
    scripts/services.sh

# Benchmark the inbound path against raw JetStream publishes (see docs/benchmarks.md).
bench-inbound: services
    cargo run --release -q -p bench -- inbound

# The gateway alone (release, own process) under wrk: 64 connections, unique
# 2 KiB webhooks, SECONDS long; PROFILE=1 records a perf profile of it.
bench-gateway-wrk SECONDS="15": services
    scripts/bench-gateway-wrk.sh {{SECONDS}}

# Benchmark the Hostaway client stack against plain reqwest, on the simulator.
bench-client:
    cargo run --release -q -p bench -- client

# Push a burst of 10,000 TVL changes at Hostaway's real limits; calls and time beside their lower bounds.
bench-outbound *ARGS: services
    cargo run --release -q -p bench -- outbound {{ARGS}}

# The outbound burst with 1, 2 and 3 dispatcher replicas on distinct local
# addresses, and the registry at 10,000 accounts (see docs/benchmarks.md).
bench-scale *ARGS: services
    cargo run --release -q -p bench -- scale {{ARGS}}

# Format the code.
fmt:
    cargo fmt --all

# Run each fuzz target (webhook parsing, record mapping, signatures, API responses) for SECONDS each.
fuzz SECONDS="60":
    scripts/fuzz.sh {{SECONDS}}
