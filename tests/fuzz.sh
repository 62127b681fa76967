#!/usr/bin/env bash
# fuzz.sh -- runs every libFuzzer target of a fuzz build for SECONDS each, starting from
# its corpus in the repo (the CORPUS of engbot_fuzz_target); new inputs go to
# BUILD_DIR/corpus-work/<target>/ (merge them into the repo's corpus with -merge=1, see
# docs/development.md). A crash fails the run and leaves the reproducer in BUILD_DIR/crashes/.
#   ./tests/fuzz.sh [BUILD_DIR=build-fuzz] [SECONDS=20]
# FUZZ_JOBS=N runs N targets at once (default 1); FUZZ_ONLY=regex picks targets by name.
# Long campaigns: FUZZ_JOBS=2 nice -n 19 ./tests/fuzz.sh build-fuzz 1800
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-fuzz}
secs=${2:-20}
jobs=${FUZZ_JOBS:-1}
only=${FUZZ_ONLY:-}
cd "$root"
mkdir -p "$build/crashes"

# One target: runs it, then prints its last status line; returns libFuzzer's exit code.
run_one() {
  local t=$1 name corpus work
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
  if ! "$t" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$build/crashes/$name-" \
       "$work" "$corpus" >"$build/crashes/$name.log" 2>&1; then
    echo "fuzz: $name FAILED; see $build/crashes/$name.log"
    tail -30 "$build/crashes/$name.log"
    return 1
  fi
  echo "fuzz: $name clean: $(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$build/crashes/$name.log" | tail -1 |
    sed -E 's/^#([0-9]+)[^c]*(cov: [0-9]+ ft: [0-9]+ corp: [0-9]+).*/\1 runs, \2/')"
}

targets=()
for t in "$build"/fuzz/*; do
  [ -x "$t" ] && [ -f "$t" ] || continue
  [ -z "$only" ] || [[ "$(basename "$t")" =~ $only ]] || continue
  targets+=("$t")
done
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets in $build/fuzz" >&2; exit 1; }

failed=0
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
  [ "$failed" -eq 0 ] || break
  run_one "$t" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
if [ "$failed" -ne 0 ]; then
  echo "fuzz: a target FAILED (above)"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets ran clean"
