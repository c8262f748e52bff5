#!/usr/bin/env bash
# `just fuzz [SECONDS]`: runs each coverage-guided fuzz target (libFuzzer via
# cargo-fuzz, on the stable toolchain with `-s none`) for SECONDS (default 60),
# seeded from the fixture corpus (tests/fixtures/hostaway, and
# ../shared/fixtures/hostaway when present). Prints each target's executions;
# a crash stops with the input under fuzz/artifacts/<target>/ (make it a
# regression test, see docs/fuzzing.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_PER_TARGET="${1:-60}"
TARGETS=(webhook_parse record_mapping signature api_responses)
# Its own target directory: fuzz builds use other flags than the workspace's.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/../fuzz-target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

seed() { # target, fixture directories…
  local target=$1 dir
  shift
  mkdir -p "$ROOT/fuzz/corpus/$target"
  for dir in "$@"; do
    [ -d "$dir" ] || continue
    find "$dir" -name '*.json' -exec cp -f {} "$ROOT/fuzz/corpus/$target/" \;
  done
}
OWN="$ROOT/tests/fixtures/hostaway"
SHARED="$ROOT/../shared/fixtures/hostaway"
seed webhook_parse "$OWN/webhooks" "$SHARED"
seed record_mapping "$OWN/reservations" "$OWN/webhooks" "$SHARED"
seed api_responses "$OWN/api" "$SHARED"
mkdir -p "$ROOT/fuzz/corpus/signature"
printf 'secret\n1764324000\nsha256=00\n{"a":1}' >"$ROOT/fuzz/corpus/signature/seed"
printf 'Basic aG9zdGF3YXk6cHc=' >"$ROOT/fuzz/corpus/signature/basic"

cd "$ROOT/fuzz"
for target in "${TARGETS[@]}"; do
  echo "== $target (${SECONDS_PER_TARGET} s)"
  cargo fuzz run -s none -O "$target" "corpus/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
    tee "$ROOT/fuzz/last-$target.log" | grep -E '^(Done|#[0-9]+ +DONE|stat::number_of_executed_units|.*ERROR|.*panicked)' || true
  if grep -q 'ERROR: libFuzzer' "$ROOT/fuzz/last-$target.log"; then
    echo "$target found a crash: see fuzz/artifacts/$target/ and fuzz/last-$target.log"
    exit 1
  fi
done
