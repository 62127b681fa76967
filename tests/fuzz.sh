#!/usr/bin/env bash
# fuzz.sh -- runs every libFuzzer target of a fuzz build for SECONDS each, starting from
# its corpus in the repo (the CORPUS of engbot_fuzz_target); new inputs go to
# BUILD_DIR/corpus-work/<target>/ (merge them with -merge=1). A crash fails the run and
# leaves the reproducer in build-fuzz/crashes/.
#   ./tests/fuzz.sh [BUILD_DIR=build-fuzz] [SECONDS=20]
# Long campaigns: ./tests/fuzz.sh build-fuzz 1800
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-fuzz}
secs=${2:-20}
cd "$root"
mkdir -p "$build/crashes"
found=0
for t in "$build"/fuzz/*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  corpus=""
  [ -f "$t.corpus" ] && corpus=$(cat "$t.corpus")   # written by engbot_fuzz_target()
  if [ -z "$corpus" ]; then
    corpus="$build/corpus/$name"
    mkdir -p "$corpus"
  fi
  work="$build/corpus-work/$name"
  mkdir -p "$work"
  echo "fuzz: $name for ${secs}s (corpus $corpus)"
  found=$((found + 1))
  if ! "$t" -max_total_time="$secs" -print_final_stats=0 -artifact_prefix="$build/crashes/$name-" \
       "$work" "$corpus" >"$build/crashes/$name.log" 2>&1; then
    echo "fuzz: $name FAILED; see $build/crashes/$name.log"
    tail -30 "$build/crashes/$name.log"
    exit 1
  fi
  grep -E "^Done|stat::number_of_executed_units|#[0-9]+.*DONE" "$build/crashes/$name.log" | tail -1 || true
done
echo "fuzz: $found targets ran clean"
