#!/usr/bin/env bash
# Instructions per MSR decision, repeatable on a noisy machine: callgrind
# counts instructions, not time. Each variant runs with R and 2R rounds of
# 16 decisions; (Ir(2R) - Ir(R)) / (16 R) is the cost of one decision.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed"; exit 2; }
cargo build --quiet --release -p pvgate-conformance --example lookup_cost
bin=target/release/examples/lookup_cost
R=20000
ir() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-12s %s\n' variant instructions/decision
for v in tables interpreter bitmap; do
  a=$(ir "$v" "$R"); b=$(ir "$v" $((2 * R)))
  python3 -c "print(f'{\"$v\":<12} {($b - $a) / (16 * $R):.1f}')"
done
