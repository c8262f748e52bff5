# syntax=docker/dockerfile:1
#
# One Dockerfile, four images: pick one with --target.
#
#   docker buildx build --target webhook-gateway  -t ghcr.io/tvl/hostaway-connector/webhook-gateway:0.1.0  --push .
#   docker buildx build --target booking-ingestor -t ghcr.io/tvl/hostaway-connector/booking-ingestor:0.1.0 --push .
#   docker buildx build --target sync-dispatcher  -t ghcr.io/tvl/hostaway-connector/sync-dispatcher:0.1.0  --push .
#   docker buildx build --target hostaway-admin   -t ghcr.io/tvl/hostaway-connector/hostaway-admin:0.1.0   --push .
#
# The builder stage compiles all four binaries once (BuildKit caches the
# stage, so the four targets share one compilation). `protoc` is vendored by
# the build (crates/events uses protoc-bin-vendored): no system package is
# installed in either stage. TLS is rustls; the distroless image carries the
# CA certificates the platform verifier reads.
#
# The runtime is distroless (glibc, no shell, no package manager), runs as
# nonroot (65532) and writes nothing to its filesystem, so it runs with a
# read-only root filesystem. No HEALTHCHECK: Kubernetes probes /healthz and
# /readyz on the ops port (deploy/kubernetes/).

FROM rust:1.95-bookworm AS builder
WORKDIR /src
# Everything the workspace needs to resolve (every member's manifest and
# sources, migrations/ for sqlx::migrate!, proto/); .dockerignore keeps
# target/, .git/ and the rest out.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
        --bin webhook-gateway \
        --bin booking-ingestor \
        --bin sync-dispatcher \
        --bin hostaway-admin-api \
        --bin hostaway-admin \
    && mkdir -p /out \
    && cp target/release/webhook-gateway \
          target/release/booking-ingestor \
          target/release/sync-dispatcher \
          target/release/hostaway-admin-api \
          target/release/hostaway-admin \
          /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.source="https://github.com/tvl/hostaway-connector" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="TVL"
# The numeric id of distroless' nonroot user, so that runAsNonRoot can check it.
USER 65532:65532

# Webhooks on 8080, /healthz /readyz /metrics on 9101.
FROM runtime AS webhook-gateway
LABEL org.opencontainers.image.title="webhook-gateway" \
      org.opencontainers.image.description="Authenticates Hostaway webhooks and makes them durable on JetStream"
COPY --from=builder /out/webhook-gateway /usr/local/bin/webhook-gateway
EXPOSE 8080 9101
ENTRYPOINT ["/usr/local/bin/webhook-gateway"]

# A JetStream consumer: only the ops port (9102).
FROM runtime AS booking-ingestor
LABEL org.opencontainers.image.title="booking-ingestor" \
      org.opencontainers.image.description="Turns webhooks on JetStream into TVL bookings and calendar blocks"
COPY --from=builder /out/booking-ingestor /usr/local/bin/booking-ingestor
EXPOSE 9102
ENTRYPOINT ["/usr/local/bin/booking-ingestor"]

# JetStream consumers and Hostaway's API: only the ops port (9103).
FROM runtime AS sync-dispatcher
LABEL org.opencontainers.image.title="sync-dispatcher" \
      org.opencontainers.image.description="Pushes TVL changes to Hostaway and reconciles both ways"
COPY --from=builder /out/sync-dispatcher /usr/local/bin/sync-dispatcher
EXPOSE 9103
ENTRYPOINT ["/usr/local/bin/sync-dispatcher"]

# The operations API: gRPC on 50051, the ops port (9104).
FROM runtime AS hostaway-admin-api
LABEL org.opencontainers.image.title="hostaway-admin-api" \
      org.opencontainers.image.description="The Hostaway connector's operations API (gRPC)"
COPY --from=builder /out/hostaway-admin-api /usr/local/bin/hostaway-admin-api
EXPOSE 50051 9104
ENTRYPOINT ["/usr/local/bin/hostaway-admin-api"]

# The operator's CLI (migrations, streams, accounts): no port.
FROM runtime AS hostaway-admin
LABEL org.opencontainers.image.title="hostaway-admin" \
      org.opencontainers.image.description="Operate the Hostaway connector"
COPY --from=builder /out/hostaway-admin /usr/local/bin/hostaway-admin
ENTRYPOINT ["/usr/local/bin/hostaway-admin"]
CMD ["--help"]
