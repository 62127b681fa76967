#!/usr/bin/env bash
# run-session-bench.sh -- session-svc's benchmark (docs/session-svc.md, "Benchmark"):
#   1. through gRPC, for N = 1k, 100k, 1M sessions: a fresh session-svc (pinned to CPU 1, one
#      completion-queue thread, as in tests/bench/run-layer-bench.sh) is filled with N sessions,
#      then TouchSession and GetSession on random chats from THREADS client threads (pinned to
#      CPU 0) for SECONDS each, then serial round trips; the server's RSS per session;
#   2. the table alone (bench_session_store): memory per session, sweep of 1M expired sessions,
#      snapshot write and load at 1M.
#   tests/session/run-session-bench.sh [BUILD_DIR=build]   env: SIZES="1000 100000 1000000"
#                                                               THREADS=16 SECONDS_PER_RUN=5
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
sizes=${SIZES:-"1000 100000 1000000"}
threads=${THREADS:-16}
secs=${SECONDS_PER_RUN:-5}
work=$(mktemp -d /tmp/engbot-session-bench-XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ncpu=$(nproc)
srv_cpu=$((ncpu > 1 ? 1 : 0))

echo "# session-svc benchmark $(date -u +%FT%TZ) on $(nproc) CPUs, $(git -C "$root" describe --always --dirty)"
for n in $sizes; do
  port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  rm -rf "$work/data"
  taskset -c $srv_cpu "$build/bin/session-svc" --grpc-listen=127.0.0.1:$port \
    --http-listen=127.0.0.1:0 --cq-threads=1 --log-level=warn --data-dir="$work/data" \
    --max-sessions=$((n > 1000000 ? n : 1000000)) 2>"$work/svc.log" &
  pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
    sleep 0.1
  done
  echo "## N=$n"
  taskset -c 0 "$build/bench/bench_session_rpc" 127.0.0.1:$port "$n" "$threads" "$secs" "$pid"
  t0=$(date +%s.%N)
  kill -TERM "$pid"
  wait "$pid" || true
  pid=""
  echo "sigterm_to_exit_s=$(echo "$(date +%s.%N) - $t0" | bc) (drain + final snapshot of $n sessions)"
done
echo "## the table alone"
"$build/bench/bench_session_store" 1000000 2 "$work"
