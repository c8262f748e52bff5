#!/usr/bin/env bash
# The gateway under an independent load generator (wrk, Debian's package):
# a release build of webhook-gateway in its own process, with its default
# logging, one account with Basic credentials, 64 connections posting unique
# ~2 KiB reservation.created webhooks for DURATION seconds. Prints wrk's
# report; `just bench-inbound` measures raw JetStream publish on this machine
# for the ratio (docs/benchmarks.md). Set PROFILE=1 to record a perf profile
# of the gateway while it runs (perf report -i "$WORK/gateway.perf").
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-15}"
CONNECTIONS="${CONNECTIONS:-64}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET_DIR/release"
WORK="${WORK:-$(mktemp -d)}"
mkdir -p "$WORK"
PORT=18480
export DATABASE_URL="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/hostaway_bench_wrk}"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
export NATS_NAMESPACE=benchwrk
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

cargo build -q --release -p webhook-gateway -p admin
admin() { "$BIN/hostaway-admin" "$@"; }
psql "${DATABASE_URL%/*}/postgres" -qAtc "DROP DATABASE IF EXISTS ${DATABASE_URL##*/} WITH (FORCE)" >/dev/null 2>&1
admin migrate --create-database >/dev/null
admin streams delete --yes >/dev/null 2>&1 || true
admin streams provision >/dev/null
CONNECTOR_CREDENTIALS_KEY=$(admin keys generate)
export CONNECTOR_CREDENTIALS_KEY
export BENCH_WEBHOOK_PASSWORD="bench-password-$RANDOM$RANDOM"
admin accounts add --account-id 70001 --webhook-login bench \
  --webhook-password-env BENCH_WEBHOOK_PASSWORD >/dev/null

LOG_FORMAT=json GATEWAY_LISTEN="127.0.0.1:$PORT" OPS_LISTEN=127.0.0.1:19481 "$BIN/webhook-gateway" >"$WORK/gateway.log" 2>&1 &
GATEWAY_PID=$!
cleanup() {
  kill "$GATEWAY_PID" 2>/dev/null || true
  wait "$GATEWAY_PID" 2>/dev/null || true
  admin streams delete --yes >/dev/null 2>&1 || true
  psql "${DATABASE_URL%/*}/postgres" -qAtc "DROP DATABASE IF EXISTS ${DATABASE_URL##*/} WITH (FORCE)" >/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:19481/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

AUTH=$(printf 'bench:%s' "$BENCH_WEBHOOK_PASSWORD" | base64 -w0)
cat >"$WORK/post.lua" <<LUA
-- Each request a new reservation (a new webhook id), about 2 KiB.
local counter = 0
local note = string.rep("Late check-in agreed with the guest; towels for four. ", 26)
local thread_id = 0
setup = function(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end
request = function()
  counter = counter + 1
  local id = 20000000 + thread_id * 10000000 + counter
  local listing = 600000 + id % 50
  local body = string.format([[{"object":"reservation","event":"reservation.created","accountId":70001,"data":{"id":%d,"listingMapId":%d,"channelId":2018,"channelName":"airbnbOfficial","reservationId":"%d-guest-1","hostawayReservationId":"%d","guestName":"Avery Example","guestFirstName":"Avery","guestLastName":"Example","guestEmail":"avery.example@example.org","phone":"+440000000001","numberOfGuests":2,"adults":2,"children":0,"infants":null,"pets":0,"arrivalDate":"2026-04-10","departureDate":"2026-04-14","isDatesUnspecified":0,"totalPrice":912.35,"currency":"USD","status":"new","cancelledBy":null,"comment":"","confirmationCode":"HMTEST%d","insertedOn":"2026-03-01 09:12:45","updatedOn":"2026-03-01 09:12:45","hostNote":"%s"}}]], id, listing, id, id, id, note)
  return wrk.format("POST", "/webhooks/hostaway", {
    ["Authorization"] = "Basic $AUTH",
    ["Content-Type"] = "application/json",
  }, body)
end
done = function(summary, latency, requests)
  io.write(string.format("non-2xx or errors: %d\n", summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  for _, p in pairs({50, 99, 99.9}) do
    io.write(string.format("p%s %.2f ms\n", p, latency:percentile(p) / 1000))
  end
end
LUA

echo "wrk: $CONNECTIONS connections, 2 threads, ${DURATION}s against the gateway (pid $GATEWAY_PID, release, default logging)"
if [ "${PROFILE:-0}" = 1 ]; then
  perf record -g -p "$GATEWAY_PID" -o "$WORK/gateway.perf" -- sleep "$DURATION" >/dev/null 2>&1 &
  PERF_PID=$!
fi
# CPU the gateway process used (user + system clock ticks), before and after.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$GATEWAY_PID/stat"; }
published() { curl -fsS "http://127.0.0.1:19481/metrics" | awk '/^hostaway_webhooks_published_total/ {n += $2} END {print n + 0}'; }
ticks_before=$(cpu_ticks)
published_before=$(published)
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/post.lua" "http://127.0.0.1:$PORT/webhooks/hostaway"
ticks=$(( $(cpu_ticks) - ticks_before ))
count=$(( $(published) - published_before ))
awk -v t="$ticks" -v n="$count" -v hz="$(getconf CLK_TCK)" \
  'BEGIN { printf "gateway CPU: %.1f µs a webhook (%d published, %.1f CPU-seconds)\n", t / hz * 1e6 / n, n, t / hz }'
if [ "${PROFILE:-0}" = 1 ]; then
  wait "$PERF_PID" || true
  echo "profile: perf report -i $WORK/gateway.perf"
fi
