#!/usr/bin/env bash
# Runs every fuzz target once over its committed seeds (fuzz/corpus/<target>/
# files named with an extension), on the stable toolchain, without fuzzing:
# a target that panics on its seeds, or no longer builds, fails the run.
# This keeps the targets alive between fuzzing sessions (`scripts/fuzz.sh`,
# nightly); `.ci/run` calls it. Exit 1 names the failing targets.
# Usage: scripts/fuzz-seeds.sh
set -uo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-$PWD/target}/fuzz-seeds
if ! CARGO_TARGET_DIR=$target_dir cargo build --quiet --release \
  --manifest-path fuzz/Cargo.toml --bins; then
  echo "fuzz-seeds: the fuzz targets do not build" >&2
  exit 1
fi
failed=()
for dir in fuzz/corpus/*/; do
  target=$(basename "$dir")
  seeds=("$dir"*.*)
  if [ ! -e "${seeds[0]}" ]; then
    echo "fuzz-seeds: $target has no seed files in $dir" >&2
    failed+=("$target")
    continue
  fi
  if "$target_dir/release/$target" "${seeds[@]}" > "$target_dir/$target.log" 2>&1; then
    echo "fuzz-seeds: $target ok (${#seeds[@]} seeds)"
  else
    echo "fuzz-seeds: $target FAILED on its seeds; its output:" >&2
    tail -40 "$target_dir/$target.log" >&2
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz-seeds: failed: ${failed[*]}" >&2
  exit 1
fi
