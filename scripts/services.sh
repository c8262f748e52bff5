#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432) and NATS with JetStream (127.0.0.1:4222)
# are up. Starts them when installed but stopped; installs them from Debian's
# packages when missing and this user can; otherwise says exactly what to do.
# Point DATABASE_URL / TEST_DATABASE_URL and NATS_URL / TEST_NATS_URL elsewhere
# to use servers of your own instead.
set -euo pipefail

say() { printf '[services] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do
    port_open "$port" && return 0
    sleep 0.5
  done
  say "$name did not come up on 127.0.0.1:$port"
  return 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else return 1
  fi
}

install_packages() {
  if ! command -v apt-get >/dev/null 2>&1; then
    return 1
  fi
  say "installing $* from Debian's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
  if port_open 5432; then return 0; fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    install_packages postgresql || {
      say "PostgreSQL is not installed. Install it (Debian/Ubuntu: sudo apt-get install postgresql),"
      say "or set DATABASE_URL and TEST_DATABASE_URL to a server you have."
      exit 1
    }
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  say "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for_port 5432 PostgreSQL
  # The tests and the demo connect as postgres without a password on loopback.
  if ! PGCONNECT_TIMEOUT=3 psql "postgres://postgres@127.0.0.1:5432/postgres" -Atc 'select 1' >/dev/null 2>&1; then
    say "PostgreSQL is up but postgres@127.0.0.1 cannot log in without a password."
    say "Allow trust on loopback in pg_hba.conf, or set DATABASE_URL/TEST_DATABASE_URL with credentials."
  fi
}

ensure_nats() {
  if port_open 4222; then return 0; fi
  if ! command -v nats-server >/dev/null 2>&1; then
    install_packages nats-server || {
      say "nats-server is not installed. Install it (Debian/Ubuntu: sudo apt-get install nats-server,"
      say "or https://docs.nats.io/running-a-nats-service/introduction/installation), or set NATS_URL/TEST_NATS_URL."
      exit 1
    }
  fi
  local store=/var/lib/nats-server log=/var/log/nats-server.log
  if [ "$(id -u)" -ne 0 ]; then
    store="${XDG_STATE_HOME:-$HOME/.local/state}/hostaway-connector/nats"
    log="$store/nats-server.log"
  fi
  mkdir -p "$store" 2>/dev/null || as_root mkdir -p "$store"
  say "starting nats-server with JetStream (store $store)"
  if command -v start-stop-daemon >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server)" -- \
      -a 127.0.0.1 -p 4222 -js -sd "$store" -l "$log"
  else
    nohup nats-server -a 127.0.0.1 -p 4222 -js -sd "$store" -l "$log" >/dev/null 2>&1 &
  fi
  wait_for_port 4222 NATS
}

ensure_postgres
ensure_nats
say "PostgreSQL 127.0.0.1:5432 and NATS 127.0.0.1:4222 are up"
