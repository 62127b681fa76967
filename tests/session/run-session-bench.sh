#!/usr/bin/env bash
# run-session-bench.sh -- session-svc's benchmark (docs/session-svc.md, "Benchmark"):
#   1. through gRPC, for N = 1k, 100k, 1M sessions: a fresh session-svc (pinned to CPU 1, one
#      completion-queue thread, as in tests/bench/run-layer-bench.sh) is filled with N sessions,
#      then TouchSession and GetSession on random chats from THREADS client threads (pinned to
#      CPU 0) for SECONDS each, then serial round trips; the server's RSS per session;
#      then the server's capacity without our client in the way: Debian's h2load (-c 16 -m 32,
#      pinned to CPU 0, SECONDS_PER_RUN) on TouchSession and GetSession of one chat in the table,
#      the load used by tests/bench/run-layer-bench.sh for the C++ and grpc-js peers;
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
  if command -v h2load >/dev/null; then
    PYTHONPATH="$build/gen/py" /usr/bin/python3 - "$work" "$n" <<'PY'
import struct, sys
from engbot.session.v1 import session_pb2 as pb
work, n = sys.argv[1], int(sys.argv[2])
chat = -1000000000000 - (12345 % n)
for name, m in (("touch", pb.TouchSessionRequest(chat_id=chat, user_id=7)),
                ("get", pb.GetSessionRequest(chat_id=chat))):
    b = m.SerializeToString()
    open(f"{work}/{name}.bin", "wb").write(b"\0" + struct.pack(">I", len(b)) + b)
PY
    for m in touch get; do
      method=$([ $m = touch ] && echo TouchSession || echo GetSession)
      out=$(taskset -c 0 h2load -c 16 -m 32 -t 1 -D "$secs" -H 'content-type: application/grpc' \
              -H 'te: trailers' -d "$work/$m.bin" \
              "http://127.0.0.1:$port/engbot.session.v1.SessionService/$method" 2>&1)
      rps=$(echo "$out" | sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p')
      ok=$(echo "$out" | sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p')
      echo "h2load $m c=16 m=32 rps=$rps succeeded=$ok"
    done
  fi
  t0=$(date +%s.%N)
  kill -TERM "$pid"
  wait "$pid" || true
  pid=""
  echo "sigterm_to_exit_s=$(echo "$(date +%s.%N) - $t0" | bc) (drain + final snapshot of $n sessions)"
done
echo "## the table alone"
"$build/bench/bench_session_store" 1000000 2 "$work"
