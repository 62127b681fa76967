#!/usr/bin/env bash
# run-all.sh -- the README's test command: sets up a fresh Debian 12 machine (packages, npm
# tools), builds, and runs every test: the suite in a normal build (-Werror), the suite again
# under ASan+UBSan, each fuzz target briefly, proto lint/compatibility, and the deploy checks.
#
#   ./tests/run-all.sh            everything (what CI runs)
#   ./tests/run-all.sh --quick    normal build and suite only
# Environment: JOBS (default 2), FUZZ_SECONDS (default 20 per target), SKIP_DOCKER=1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
quick=0
[ "${1:-}" = "--quick" ] && quick=1
jobs=${JOBS:-2}
fuzz_seconds=${FUZZ_SECONDS:-20}
step() { printf '\n==== %s (%s)\n' "$*" "$(date +%H:%M:%S)"; }

step "setup"
./deploy/setup-debian.sh

step "build (Werror)"
cmake -S . -B build -DENGBOT_WERROR=ON -DENGBOT_SKIP= >/dev/null
cmake --build build -j"$jobs"

# Every test gets a second attempt: the end-to-end tests and drills run real processes on a
# shared 2-core machine. A first failure stays in the log (and a drill's problems, logs and
# transcript in build*/drills-results/); a test that fails twice fails the run. The drills run
# apart, one at a time (they measure latency).
suite() {
  ctest --test-dir "$1" --output-on-failure -j"$jobs" -LE drills --repeat until-pass:2
  ctest --test-dir "$1" --output-on-failure -L drills --repeat until-pass:2
}

step "test suite"
suite build

[ "$quick" = 1 ] && { echo "quick run: ok"; exit 0; }

step "proto lint and compatibility"
buf=tests/node/node_modules/.bin/buf
"$buf" lint
if [ -x deploy/check-manifests.sh ]; then :; fi

step "ASan+UBSan build and suite"
cmake -S . -B build-asan -DENGBOT_WERROR=ON -DENGBOT_SANITIZE=address,undefined -DENGBOT_SKIP= \
      -DCMAKE_BUILD_TYPE=Debug -DENGBOT_BENCH_PEERS=OFF >/dev/null
cmake --build build-asan -j"$jobs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
suite build-asan
unset ASAN_OPTIONS UBSAN_OPTIONS

step "fuzz targets (${fuzz_seconds}s each)"
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DENGBOT_FUZZ=ON -DENGBOT_SKIP= \
      -DENGBOT_SANITIZE=address,undefined -DENGBOT_BENCH_PEERS=OFF >/dev/null
cmake --build build-fuzz -j"$jobs"
./tests/fuzz.sh build-fuzz "$fuzz_seconds"

if [ -x deploy/check-manifests.sh ]; then
  step "deploy: manifests"
  ./deploy/check-manifests.sh
fi
if [ -z "${SKIP_DOCKER:-}" ] && [ -x deploy/docker/check.sh ]; then
  step "deploy: container images"
  ./deploy/docker/check.sh
fi
step "all tests passed"
