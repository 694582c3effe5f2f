#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer): runs every target in
# fuzz/ for SECONDS each (default 30), one after another. Needs a nightly
# toolchain; installs cargo-fuzz when it is missing. A crash stops the run
# with libFuzzer's report and the input saved under fuzz/artifacts/<target>/.
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
case $seconds in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2 ;;
esac

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "SKIPPED: no nightly toolchain (rustup toolchain install nightly); nothing was fuzzed"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  if ! cargo install cargo-fuzz --locked; then
    echo "SKIPPED: cargo-fuzz could not be installed; nothing was fuzzed"
    exit 0
  fi
fi

cd fuzz
for target in $(cargo +nightly fuzz list); do
  printf '\n=== fuzz %s for %s s\n' "$target" "$seconds"
  cargo +nightly fuzz run "$target" -- -max_total_time="$seconds"
done
