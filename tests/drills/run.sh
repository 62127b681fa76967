#!/usr/bin/env bash
# run.sh -- one command per drill family (docs/drills.md).
#
#   tests/drills/run.sh faults     every fault drill, DRILL_SCALE=4 (longer load around each)
#   tests/drills/run.sh rollback   each service rolled back to its previous version and forward
#   tests/drills/run.sh burst      ten times Telegram's rate for a full minute, default bounds
#   tests/drills/run.sh soak       an hour of steady traffic with a fault every 2 minutes,
#                                  then the curve: <results>/soak.csv and soak.png
#   tests/drills/run.sh quick      what ctest runs (-L drills), with the short settings
#   tests/drills/run.sh <module[.Class[.test]]>   one drill, e.g. test_faults.Kill9
#
# Environment: ENGBOT_BUILD (build directory, default build), DRILL_SCALE (faults/rollback,
# default 4), DRILLS_RESULTS (default <build>/drills-results), SOAK_MINUTES (60),
# SOAK_FAULT_EVERY (120 s), SOAK_FAULTS (all, or telegram: no restarts), SOAK_PNG (where the soak's PNG goes, default <results>/soak.png),
# BURST_SECONDS (60), BURST_QUEUE_MAX (0 = queue-svc's default), DRILL_ROLLBACK_COMMIT.
# Every process a drill starts is stopped at its end; tmpfs mounts are unmounted.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "$root" && realpath -m "${ENGBOT_BUILD:-build}")
family=${1:-}
[ -n "$family" ] || { sed -n '2,18p' "$0"; exit 2; }

need=(bot-api-emulator gateway session-svc cache-svc queue-svc)
missing=()
for p in "${need[@]}"; do [ -x "$build/bin/$p" ] || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ] || [ ! -d "$build/gen/py" ]; then
  echo "run.sh: building ${missing[*]:-protos} in $build" >&2
  [ -f "$build/CMakeCache.txt" ] || cmake -S "$root" -B "$build" >/dev/null
  cmake --build "$build" -j"${JOBS:-2}" --target "${need[@]}" engbot_py_protos
fi

export ENGBOT_BUILD=$build ENGBOT_SRC=$root PYTHONPATH=$root/tests/lib PYTHONDONTWRITEBYTECODE=1
export DRILLS_RESULTS=${DRILLS_RESULTS:-$build/drills-results}
py=${ENGBOT_PYTHON:-/usr/bin/python3}
cd "$here"
case "$family" in
  faults)
    export DRILL_SCALE=${DRILL_SCALE:-4}
    exec "$py" -m unittest -v test_faults test_telegram test_volume test_diskfull ;;
  rollback)
    export DRILL_SCALE=${DRILL_SCALE:-4}
    exec "$py" -m unittest -v test_rollback ;;
  burst)
    export BURST_SECONDS=${BURST_SECONDS:-60} BURST_QUEUE_MAX=${BURST_QUEUE_MAX:-0}
    export BURST_DRAIN_TIMEOUT=${BURST_DRAIN_TIMEOUT:-900}
    exec "$py" -m unittest -v test_load ;;
  soak)
    mkdir -p "$DRILLS_RESULTS"
    rc=0
    "$py" soak.py --out "$DRILLS_RESULTS" || rc=$?
    png=${SOAK_PNG:-$DRILLS_RESULTS/soak.png}
    if command -v gnuplot >/dev/null; then
      gnuplot -e "csv='$DRILLS_RESULTS/soak.csv'; faults='$DRILLS_RESULTS/soak-faults.csv'; png='$png'; title='engbot soak: ${SOAK_MINUTES:-60} min, a fault every ${SOAK_FAULT_EVERY:-120} s (${SOAK_FAULTS:-all} faults)'" plot_soak.gp
      echo "soak: curve in $png"
    else
      echo "soak: gnuplot not installed; the numbers are in $DRILLS_RESULTS/soak.csv" >&2
    fi
    exit $rc ;;
  quick)
    exec ctest --test-dir "$build" -L drills --output-on-failure ;;
  test_*)
    exec "$py" -m unittest -v "$family" ;;
  *)
    echo "run.sh: unknown family '$family' (faults, rollback, burst, soak, quick, test_...)" >&2
    exit 2 ;;
esac
