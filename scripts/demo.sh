#!/usr/bin/env bash
# `just demo`: the connector end to end on this machine, both ways.
#
# Builds the binaries, creates a fresh demo database and NATS namespace,
# starts the Hostaway simulator and the operations API, connects a Hostaway
# account through the API in one call (its secret checked, its webhook
# registered), links its listings to TVL units, and starts the webhook
# gateway, the booking ingestor and the sync dispatcher. Every operator step
# below is `hostaway-admin` calling the operations API with an owner token.
#
# Inbound: posts what Hostaway sends on a busy day (a reservation created,
# repeated, cancelled and then updated late; a legacy webhook; the
# specification's HMAC-signed shape; a double booking; a guest message; a
# listing nobody linked yet, which waits parked until it is linked; a ping; an
# unknown event and an impossible reservation, kept for the dead-letter queue;
# a forgery) and prints the bookings, blocks, conflicts and dead letters that
# result.
#
# Outbound: publishes a burst of TVL availability and price changes, waits for
# the simulator's calendars to match TVL, and prints the API calls made beside
# the fewest possible; then edits a calendar behind the connector's back and
# lets reconciliation heal it, and creates a reservation whose webhook never
# comes and lets polling find it. Set DEMO_KEEP=1 to leave the services running.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FIXTURES="$ROOT/tests/fixtures/hostaway/webhooks"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/debug"
WORK="$ROOT/.demo"
PORT="${DEMO_PORT:-18080}"
GW="http://127.0.0.1:$PORT"
SIM_PORT="${DEMO_SIM_PORT:-18090}"
API_PORT="${DEMO_API_PORT:-18051}"
SIM="http://127.0.0.1:$SIM_PORT"

export DATABASE_URL="${DEMO_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/hostaway_demo}"
export NATS_URL="${DEMO_NATS_URL:-nats://127.0.0.1:4222}"
export NATS_NAMESPACE=demo
export LOG_FORMAT=json RUST_LOG="${RUST_LOG:-info}"
export INGEST_MAX_ATTEMPTS=3 INGEST_RETRY_BASE_MS=200 INGEST_RETRY_MAX_MS=1000
export CREDENTIALS_REFRESH_SECS=5

ACCOUNT=70001
LOGIN=hostaway-demo
export DEMO_WEBHOOK_PASSWORD="demo-password-$RANDOM$RANDOM"
export DEMO_HMAC_SECRET="demo-hmac-$RANDOM$RANDOM"
export DEMO_API_SECRET="demo-api-$RANDOM$RANDOM"
UNIT_MAIN=0190f5a0-0000-7000-8000-00000000a001
UNIT_GARDEN=0190f5a0-0000-7000-8000-00000000a002

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
admin() { "$BIN/hostaway-admin" "$@"; }

step "Building the connector"
cargo build -q -p webhook-gateway -p booking-ingestor -p sync-dispatcher -p hostaway-sim -p admin-api -p admin
mkdir -p "$WORK"

step "Fresh database ($DATABASE_URL) and NATS namespace ($NATS_NAMESPACE)"
psql "${DATABASE_URL%/*}/postgres" -qAtc "DROP DATABASE IF EXISTS ${DATABASE_URL##*/} WITH (FORCE)" >/dev/null
admin migrate --create-database
admin streams delete --yes >/dev/null
admin streams provision
CONNECTOR_CREDENTIALS_KEY=$(admin keys generate)
export CONNECTOR_CREDENTIALS_KEY

step "Starting the Hostaway simulator (:$SIM_PORT) and the operations API (:$API_PORT)"
SIM_DEMO_SECRET="$DEMO_API_SECRET" "$BIN/hostaway-sim" --listen "127.0.0.1:$SIM_PORT" --seed demo >"$WORK/sim.log" 2>&1 &
SIM_PID=$!
HOSTAWAY_API_URL="$SIM/v1" ADMIN_API_LISTEN="127.0.0.1:$API_PORT" OPS_LISTEN=127.0.0.1:19104 \
  ADMIN_WEBHOOK_URL="$GW/webhooks/hostaway" "$BIN/hostaway-admin-api" >"$WORK/admin-api.log" 2>&1 &
API_PID=$!
PIDS="$SIM_PID $API_PID"
cleanup() {
  if [ "${DEMO_KEEP:-0}" != 1 ]; then
    # shellcheck disable=SC2086
    kill -TERM $PIDS 2>/dev/null || true
    # shellcheck disable=SC2086
    wait $PIDS 2>/dev/null || true
  fi
}
trap cleanup EXIT
ready() { # ops port…
  for ops in "$@"; do
    for _ in $(seq 1 100); do
      curl -sf "http://127.0.0.1:$ops/readyz" >/dev/null && break
      sleep 0.2
    done
    curl -sf "http://127.0.0.1:$ops/readyz" >/dev/null || { echo "service on ops port $ops not ready; see $WORK/*.log"; exit 1; }
  done
}
ready 19104
export ADMIN_API_URL="http://127.0.0.1:$API_PORT"
# The first token is issued on the database (tokens are hashed there); the
# rest of the demo runs as its owner.
ADMIN_API_TOKEN=$(admin tokens issue --name demo-owner --role owner 2>/dev/null)
export ADMIN_API_TOKEN

step "Connecting Hostaway account $ACCOUNT in one call: secret checked, listings read, webhook registered"
admin accounts connect --account-id "$ACCOUNT" --name "Demo Rentals" --webhook-login "$LOGIN" \
  --client-secret-env DEMO_API_SECRET
step "The demo plays Hostaway below, so it sets the webhook password it will send, and an HMAC secret (a rotation: registered at Hostaway too)"
admin accounts rotate --account-id "$ACCOUNT" --webhook-password-env DEMO_WEBHOOK_PASSWORD \
  --webhook-secret-env DEMO_HMAC_SECRET
step "The account's listings at Hostaway, and linking them to TVL units"
admin listings list --account-id "$ACCOUNT"
admin listings link --account-id "$ACCOUNT" --listing-id 300101 --unit-id "$UNIT_MAIN"
admin listings link --account-id "$ACCOUNT" --listing-id 300102 --unit-id "$UNIT_GARDEN"
echo "  the unlinked ones now come with the units they resemble:"
admin listings list --account-id "$ACCOUNT"
admin listings link --account-id "$ACCOUNT" --listing-id 300103 --unit-id "$UNIT_MAIN"
admin accounts list

step "Starting the webhook gateway (:$PORT), the booking ingestor and the sync dispatcher"
GATEWAY_LISTEN="127.0.0.1:$PORT" OPS_LISTEN=127.0.0.1:19101 "$BIN/webhook-gateway" >"$WORK/gateway.log" 2>&1 &
PIDS="$PIDS $!"
OPS_LISTEN=127.0.0.1:19102 "$BIN/booking-ingestor" >"$WORK/ingestor.log" 2>&1 &
PIDS="$PIDS $!"
# Reconciliation runs on demand below (hostaway-admin sync trigger) rather
# than on its cron schedules, so the demo shows each step in turn.
HOSTAWAY_API_URL="$SIM/v1" OPS_LISTEN=127.0.0.1:19103 SYNC_SETTLE_MS=1500 \
  SYNC_SCHEDULE_AVAILABILITY=off SYNC_SCHEDULE_PRICING=off SYNC_SCHEDULE_LISTINGS=off SYNC_SCHEDULE_RESERVATIONS=off \
  "$BIN/sync-dispatcher" >"$WORK/dispatcher.log" 2>&1 &
PIDS="$PIDS $!"
ready 19101 19102 19103
echo "all ready (logs in $WORK/)"

post() { # label, body file, curl options…
  local label=$1 file=$2
  shift 2
  local code
  code=$(curl -sS -o "$WORK/response" -w '%{http_code}' -H 'content-type: application/json' \
    --data-binary "@$file" "$@")
  printf '  %-62s %s %s\n' "$label" "$code" "$(cat "$WORK/response")"
}
basic() { post "$1" "$2" -u "$LOGIN:$DEMO_WEBHOOK_PASSWORD" "$GW/webhooks/hostaway"; }
hmac() { # label, body file: the specification's signature over "{timestamp}.{raw body}"
  local ts sig
  ts=$(date +%s)
  sig=$({ printf '%s.' "$ts"; cat "$2"; } | openssl dgst -sha256 -hmac "$DEMO_HMAC_SECRET" -hex | sed 's/^.*= //')
  post "$1" "$2" -H "x-hostaway-timestamp: $ts" -H "x-hostaway-signature: $sig" "$GW/webhooks/hostaway/$ACCOUNT"
}

cat >"$WORK/overlap.json" <<'JSON'
{"object":"reservation","event":"reservation.created","accountId":70001,
 "data":{"id":50000020,"listingMapId":300101,"channelId":2005,"channelName":"bookingcom",
         "guestName":"Jo Overlap","status":"new","arrivalDate":"2026-07-18","departureDate":"2026-07-22",
         "totalPrice":640.5,"currency":"USD","updatedOn":"2026-03-11 12:00:00"}}
JSON
cat >"$WORK/unlinked.json" <<'JSON'
{"object":"reservation","event":"reservation.created","accountId":70001,
 "data":{"id":50000030,"listingMapId":300199,"channelId":2018,"channelName":"airbnbOfficial",
         "guestName":"Sam Newlisting","status":"new","arrivalDate":"2026-09-01","departureDate":"2026-09-04",
         "totalPrice":420,"currency":"USD","updatedOn":"2026-03-12 08:00:00"}}
JSON
cat >"$WORK/forged.json" <<'JSON'
{"object":"reservation","event":"reservation.updated","accountId":70001,
 "data":{"id":50000001,"listingMapId":300101,"status":"cancelled","updatedOn":"2030-01-01 00:00:00"}}
JSON
cat >"$WORK/impossible.json" <<'JSON'
{"object":"reservation","event":"reservation.created","accountId":70001,
 "data":{"id":50000040,"listingMapId":300101,"guestName":"Back To Front","status":"new",
         "arrivalDate":"2026-10-10","departureDate":"2026-10-07","updatedOn":"2026-03-12 09:00:00"}}
JSON

step "Hostaway delivers (HTTP status and the gateway's answer)"
basic "reservation.created   (Airbnb, 10-14 Apr)" "$FIXTURES/reservation_created_airbnb.json"
basic "reservation.created   again: Hostaway repeats itself" "$FIXTURES/reservation_created_airbnb.json"
basic "reservation.updated → cancelled, delivered early" "$FIXTURES/reservation_updated_cancelled.json"
basic "reservation.updated → modified, delivered late (older)" "$FIXTURES/reservation_updated_string_ids.json"
basic "legacy webhook: a bare reservation (direct, garden unit)" "$FIXTURES/legacy_bare_reservation.json"
hmac  "specification shape, HMAC-signed (15-20 Jul)" "$FIXTURES/spec_reservation_created.json"
basic "Booking.com reservation on the same unit (18-22 Jul)" "$WORK/overlap.json"
basic "message.received" "$FIXTURES/message_received.json"
basic "a reservation on a listing nobody linked yet" "$WORK/unlinked.json"
basic "the test ping Hostaway sends when a webhook is created" "$FIXTURES/ping.json"
basic "an event this version does not know (kept, not lost)" "$FIXTURES/unknown_event.json"
basic "a stay whose departure is before its arrival (kept, not lost)" "$WORK/impossible.json"
post  "a forged cancellation with a guessed password" "$WORK/forged.json" -u "$LOGIN:guess" "$GW/webhooks/hostaway"

processed() {
  psql "$DATABASE_URL" -qAtc "SELECT count(*) FROM webhook_log WHERE status IN ('processed', 'dead_lettered', 'parked')"
}
wait_for() { # count, what
  for _ in $(seq 1 150); do
    [ "$(processed)" -ge "$1" ] && return 0
    sleep 0.2
  done
  echo "timed out waiting for $2; see $WORK/ingestor.log"
  exit 1
}
wait_for 10 "the ingestor"

step "Parked: the reservation on the unlinked listing waits for its link (retried for hours)"
admin parked
step "Dead letters: what cannot be used is kept with its reason, to replay once fixed"
admin dlq list
step "Linking listing 300199 releases its parked reservation by itself"
admin listings link --account-id "$ACCOUNT" --listing-id 300199 --unit-id "$UNIT_GARDEN"
for _ in $(seq 1 150); do
  [ "$(psql "$DATABASE_URL" -qAtc "SELECT count(*) FROM bookings WHERE external_id = '50000030'")" = 1 ] && break
  sleep 0.2
done

step "Bookings (newest version of each reservation wins; the late update did not undo the cancellation)"
admin bookings
step "Calendar blocks (the cancelled stay released its nights)"
admin blocks
step "Double bookings (both kept; reported as an event, a metric and a log line)"
admin double-bookings
step "Webhook log"
admin webhooks
step "Events published for TVL on NATS ($NATS_NAMESPACE.events.>)"
curl -sf http://127.0.0.1:19102/metrics | grep -E '^hostaway_events_published_total' || true
step "Metrics (excerpt)"
curl -sf http://127.0.0.1:19101/metrics | grep -E '^hostaway_webhooks_(received|rejected|kept_unusable)_total' || true
curl -sf http://127.0.0.1:19102/metrics | grep -E '^hostaway_(webhooks_processed_total|ingest_outcomes_total|double_bookings_total|dlq_messages_total|webhooks_parked_total|webhooks_released_total)' || true

# ---------------------------------------------------------------- outbound
day() { date -u -d "+$1 days" +%F; }
calendar_writes() { curl -sf "$SIM/_sim/requests" | grep -o '"path":"/v1/listings/[0-9]*/calendarIntervals"' | wc -l; }
api_calls() { curl -sf "$SIM/_sim/requests" | grep -o '"path":"[^"]*"' | wc -l; }
in_line() { admin sync status --account-id "$ACCOUNT" | tail -n 1 | grep -Eq '^([0-9]+)/\1 listing'; }
wait_until() { # seconds, what, command…
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq 1 $((seconds * 5))); do
    "$@" && return 0
    sleep 0.2
  done
  echo "timed out waiting for $what; see $WORK/dispatcher.log"
  exit 1
}

step "Outbound: a burst of TVL changes (availability and prices over 90 days, 2 units, 4 Hostaway listings)"
calls_before=$(api_calls)
admin changes burst --count 1500 --days 90 --seed 7
wait_until 180 "Hostaway's calendars to match TVL" in_line
admin sync status --account-id "$ACCOUNT"
echo
printf '  Hostaway API calls for the burst: %s in all; %s calendar writes, where the fewest possible is the total above\n' \
  "$(($(api_calls) - calls_before))" "$(calendar_writes)"
echo "  the other calls (the listings' currency and units were read when connecting through the API):"
curl -sf "$SIM/_sim/requests" | grep -o '"path":"[^"]*"' | tail -n +$((calls_before + 1)) |
  grep -v calendarIntervals | sort | uniq -c | sed 's/^/   /' || true
step "The simulator's calendar of listing 300101, next 7 days (what Airbnb would now show)"
curl -sf "$SIM/_sim/listings/300101/calendar?startDate=$(day 1)&endDate=$(day 7)" | sed 's/},{/},\n {/g'
echo

step "Drift: a manager changes listing 300101 in Hostaway by hand (Hostaway sends no webhook for that)"
curl -sf -X PUT -H 'content-type: application/json' "$SIM/_sim/listings/300101/calendar" \
  -d "{\"startDate\":\"$(day 3)\",\"endDate\":\"$(day 5)\",\"minimumStay\":9,\"price\":999}"
before=$(calendar_writes)
admin sync trigger --account-id "$ACCOUNT" --type availability
admin sync trigger --account-id "$ACCOUNT" --type pricing
# Both kinds drifted on the same days: one write carries them back.
drift_pushed() {
  [ "$(calendar_writes)" -ge "$((before + 1))" ] &&
    ! curl -sf "$SIM/_sim/listings/300101/calendar?startDate=$(day 3)&endDate=$(day 5)" | grep -Eq '"minimumStay":9|"price":999'
}
wait_until 60 "reconciliation to push the drift back" drift_pushed
echo "  listing 300101, days 3-5, after reconciliation:"
curl -sf "$SIM/_sim/listings/300101/calendar?startDate=$(day 3)&endDate=$(day 5)" | sed 's/},{/},\n {/g'
echo
curl -sf http://127.0.0.1:19103/metrics | grep -E '^hostaway_(reconcile_drift_total|sync_ranges_pushed_total)' || true

step "A reservation whose webhook never comes (Hostaway loses some), found by polling"
RES_ID=$(curl -sf -X POST -H 'content-type: application/json' "$SIM/_sim/accounts/$ACCOUNT/reservations?webhook=false" \
  -d "{\"listingMapId\":300102,\"arrivalDate\":\"$(day 20)\",\"departureDate\":\"$(day 23)\",\"guestName\":\"Polly Polled\"}" \
  | grep -o '[0-9][0-9]*')
echo "  reservation $RES_ID created in Hostaway; no webhook sent"
admin sync trigger --account-id "$ACCOUNT" --type reservations
polled_booking() { [ "$(psql "$DATABASE_URL" -qAtc "SELECT count(*) FROM bookings WHERE external_id = '$RES_ID'")" = 1 ]; }
wait_until 60 "the polled reservation to become a booking" polled_booking
admin bookings | grep -E "^RESERVATION|Polly" || true
step "Outbound metrics (excerpt)"
curl -sf http://127.0.0.1:19103/metrics | grep -E '^hostaway_(sync_jobs_total|sync_changes_total|api_requests_total|reservations_polled_total)' || true

if [ "${DEMO_KEEP:-0}" = 1 ]; then
  trap - EXIT
  echo
  echo "Services left running (pids $PIDS): gateway $GW, simulator $SIM, operations API $ADMIN_API_URL,"
  echo "the ingestor and the dispatcher. ADMIN_API_TOKEN=<the owner token above> hostaway-admin … talks to the API."
else
  step "Stopping (SIGTERM: stop taking work, drain, exit)"
fi
