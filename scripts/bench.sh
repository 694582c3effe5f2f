#!/usr/bin/env bash
# The one benchmark entry point (issue 13). Prints its tables, then one
# line per ratio or count in a fixed form for tools:
#   ratio tables/bitmap X        instructions per MSR decision, Rust tables / 2-bit floor
#                                (default policy; `ratio tables_strict/bitmap_strict X` and
#                                `ratio tables_large10k/bitmap_large10k X` for policy/strict.toml
#                                and the 10,000-rule sample::large_policy)
#   ratio tables/c_switch X      Rust tables / the `emit --lang c` header (cc -O2)
#   ratio interpreter/tables X
#   ratio compile_10k/compile_1k X   (median wall clock, in process)
#   instructions pv_set_msr N    (and pv_get_rflags_denied, pv_interrupt_allowed)
#   median cpuid_merge_256 X us
# Instruction counts come from callgrind at R and 2R rounds:
# (Ir(2R) - Ir(R)) / (16 R), so setup cost cancels out.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed"; exit 2; }
CC="${CC:-cc}"
target="${CARGO_TARGET_DIR:-target}"
cargo build --quiet --release -p pvgate-conformance --example lookup_cost
cargo build --quiet --release -p pvgate-hyp --example call_cost
cargo build --quiet --release -p pvgate-cli
cargo build --quiet --release -p pvgate-codegen --example compile_cost
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$target/release/pvgate" emit --lang c policy/default.toml > "$work/default.h"
"$CC" -O2 -std=c11 -DPVGATE_HEADER="\"$work/default.h\"" -o "$work/lookup_c" scripts/bench/lookup.c
R=20000
ir() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
per() { # per BIN VARIANT [POLICY]
  local a b
  a=$(ir "$1" "$2" "$R" ${3:-}); b=$(ir "$1" "$2" $((2 * R)) ${3:-})
  python3 -c "print(f'{($b - $a) / (16 * $R):.1f}')"
}
declare -A n
lookup="$target/release/examples/lookup_cost"
for v in tables tables_rule interpreter bitmap; do n[$v]=$(per "$lookup" "$v" default); done
for v in c_switch c_bitmap; do n[$v]=$(per "$work/lookup_c" "$v"); done
for p in strict large; do
  for v in tables tables_rule bitmap; do n[${v}_$p]=$(per "$lookup" "$v" "$p"); done
done
echo "MSR decision, 16 probes (instructions/decision, loop included)"
echo "  tables: the verdict (Policy::msr_verdict); tables_rule: verdict and rule (the rule lookup)"
echo "  default policy, protected VM in setup:"
for v in tables tables_rule interpreter bitmap c_switch c_bitmap; do printf '    %-12s %s\n' "$v" "${n[$v]}"; done
echo "  policy/strict.toml, protected VM in setup:"
for v in tables tables_rule bitmap; do printf '    %-12s %s\n' "$v" "${n[${v}_strict]}"; done
echo "  sample::large_policy(10000), normal VM in setup:"
for v in tables tables_rule bitmap; do printf '    %-12s %s\n' "$v" "${n[${v}_large]}"; done
for v in set_msr get_rflags_denied interrupt_allowed; do
  n[pv_$v]=$(per "$target/release/examples/call_cost" "$v")
done
echo "Whole PV call through Hyp::call (instructions/call, loop included)"
for v in set_msr get_rflags_denied interrupt_allowed; do printf '  %-18s %s\n' "$v" "${n[pv_$v]}"; done
"$target/release/examples/compile_cost" > "$work/compile.txt"
cat "$work/compile.txt"
python3 - "${n[tables]}" "${n[bitmap]}" "${n[c_switch]}" "${n[interpreter]}" \
  "${n[tables_strict]}" "${n[bitmap_strict]}" "${n[tables_large]}" "${n[bitmap_large]}" <<PY
import sys
t, b, c, i, ts, bs, tl, bl = map(float, sys.argv[1:])
print(f"ratio tables/bitmap {t / b:.2f}")
print(f"ratio tables_strict/bitmap_strict {ts / bs:.2f}")
print(f"ratio tables_large10k/bitmap_large10k {tl / bl:.2f}")
print(f"ratio tables/c_switch {t / c:.2f}")
print(f"ratio interpreter/tables {i / t:.1f}")
PY
"$target/release/examples/call_cost" cpuid_merge 2001
for v in set_msr get_rflags_denied interrupt_allowed; do
  printf 'instructions pv_%s %.0f\n' "$v" "${n[pv_$v]}"
done
