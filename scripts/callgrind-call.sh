#!/usr/bin/env bash
# Instructions per whole PV call through hyp, repeatable on a noisy machine:
# callgrind counts instructions, not time. Each variant runs with R and 2R
# rounds of 16 calls; (Ir(2R) - Ir(R)) / (16 R) is the cost of one call.
# The sibling of callgrind-lookup.sh (one gate decision).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed"; exit 2; }
cargo build --quiet --release -p pvgate-hyp --example call_cost
bin="${CARGO_TARGET_DIR:-target}/release/examples/call_cost"
R=20000
ir() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-18s %s\n' variant instructions/call
for v in set_msr get_rflags_denied interrupt_allowed; do
  a=$(ir "$v" "$R"); b=$(ir "$v" $((2 * R)))
  python3 -c "print(f'{\"$v\":<18} {($b - $a) / (16 * $R):.1f}')"
done
