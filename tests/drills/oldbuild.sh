#!/usr/bin/env bash
# oldbuild.sh -- builds one program of an earlier engbot version from git history, for the
# rollback drill (the local stand-in for `kubectl rollout undo deployment/<svc>`).
#
#   tests/drills/oldbuild.sh <program> <commit-ish>     prints the bin/ directory
#
# The tree is exported with `git archive` into $DRILLS_OLD_DIR/<sha>/src (outside the repo;
# default /var/tmp/engbot-drills-old), made a one-commit git repository tagged with the short
# sha so that the program's --version names it, configured once and built for that one
# target only (-j2). Built binaries are reused: a second call returns at once.
# Remove $DRILLS_OLD_DIR to start over.
set -euo pipefail
prog=${1:?program (session-svc, cache-svc, queue-svc, gateway)}
rev=${2:?commit}
repo=$(cd "$(dirname "$0")/../.." && pwd)
base=${DRILLS_OLD_DIR:-/var/tmp/engbot-drills-old}
sha=$(git -C "$repo" rev-parse --verify --quiet "$rev^{commit}") ||
  { echo "oldbuild: no such commit: $rev" >&2; exit 2; }
short=${sha:0:7}
dir=$base/$short
bin=$dir/build/bin
if [ -x "$bin/$prog" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if [ ! -x "$bin/$prog" ]; then
  if [ ! -f "$dir/src/CMakeLists.txt" ]; then
    rm -rf "$dir/src.tmp"
    mkdir -p "$dir/src.tmp"
    git -C "$repo" archive "$sha" | tar -x -C "$dir/src.tmp"
    git -C "$dir/src.tmp" init -q
    git -C "$dir/src.tmp" -c user.name=drills -c user.email=drills@localhost \
      commit -q --allow-empty -m "engbot $sha (exported for the rollback drill)"
    git -C "$dir/src.tmp" tag "$short"
    mv "$dir/src.tmp" "$dir/src"
  fi
  echo "oldbuild: building $prog at $short in $dir/build (log: $dir/build.log)" >&2
  if ! { cmake -S "$dir/src" -B "$dir/build" -DENGBOT_BENCH_PEERS=OFF \
           -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
         cmake --build "$dir/build" -j"${JOBS:-2}" --target "$prog"; } >"$dir/build.log" 2>&1; then
    tail -20 "$dir/build.log" >&2
    echo "oldbuild: building $prog at $short failed (full log: $dir/build.log)" >&2
    exit 1
  fi
fi
echo "$bin"
