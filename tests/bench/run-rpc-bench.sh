#!/usr/bin/env bash
# run-layer-bench.sh -- the gRPC layer's unary benchmark, side by side in one run:
#   layer    engbot's C layer (tests/bench/bench_server.c)
#   cpp      gRPC C++ 1.51 async server, one CQ + thread per CPU (tests/bench/peer_cpp.cc)
#   grpcjs   @grpc/grpc-js (tests/bench/peer_grpcjs.js)
#   [svc]    the real session-svc, when built (its TouchSession persists and expires sessions)
# All serve the same RPC, SessionService/TouchSession over an in-memory map under one mutex.
# Load: Debian's h2load (-c 16 -m 32 -t 1), ROUNDS interleaved rounds of SECONDS each, the
# server pinned to CPU 1 and the load generator to CPU 0; serial round trips with
# bench-client (one call in flight) on the same pinning. Prints a Markdown table of medians.
#
#   tests/bench/run-layer-bench.sh [BUILD_DIR=build]      env: ROUNDS=3 SECONDS_PER_RUN=8
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
rounds=${ROUNDS:-3}
secs=${SECONDS_PER_RUN:-8}
work=$(mktemp -d /tmp/engbot-bench-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

command -v h2load >/dev/null || { echo "h2load missing (apt-get install nghttp2-client)"; exit 1; }
ncpu=$(nproc)
srv_cpu=$((ncpu > 1 ? 1 : 0))

# The request body: the 5-byte gRPC frame prefix then the serialized TouchSessionRequest.
PYTHONPATH="$build/gen/py" /usr/bin/python3 - "$work/body.bin" <<'EOF'
import struct, sys
from engbot.session.v1 import session_pb2
m = session_pb2.TouchSessionRequest(chat_id=1000000012345, user_id=7).SerializeToString()
open(sys.argv[1], "wb").write(b"\0" + struct.pack(">I", len(m)) + m)
EOF

port_of() { # waits until something listens on 127.0.0.1:$1
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

start() { # name port -> sets PID
  local name=$1 port=$2
  case $name in
    layer) taskset -c $srv_cpu "$build/bin/bench-server" --grpc-listen=127.0.0.1:$port \
             --http-listen=127.0.0.1:0 --cq-threads=1 --log-level=warn 2>"$work/$name.log" & ;;
    cpp) taskset -c $srv_cpu "$build/bin/peer-cpp" $port 1 2>"$work/$name.log" & ;;
    grpcjs) NODE_PATH="$root/tests/node/node_modules" taskset -c $srv_cpu \
             node "$root/tests/bench/peer_grpcjs.js" $port 2>"$work/$name.log" & ;;
    svc) taskset -c $srv_cpu "$build/bin/session-svc" --grpc-listen=127.0.0.1:$port \
             --http-listen=127.0.0.1:0 --cq-threads=1 --log-level=warn \
             --data-dir="$work/svc-data" 2>"$work/$name.log" & ;;
  esac
  PID=$!
  pids+=("$PID")
  port_of "$port" || { echo "$name did not start"; cat "$work/$name.log"; exit 1; }
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
anon_kb() { awk '/^RssAnon/ {print $2}' "/proc/$1/status"; }

servers=(layer cpp grpcjs)
[ -x "$build/bin/peer-cpp" ] || servers=("${servers[@]/cpp}")
[ -x "$build/bin/session-svc" ] && servers+=(svc)
[ -d "$root/tests/node/node_modules/@grpc/grpc-js" ] || servers=("${servers[@]/grpcjs}")
hz=$(getconf CLK_TCK)
declare -A rps cpu p50 p99 rss anon

port=51000
for name in "${servers[@]}"; do
  [ -n "$name" ] || continue
  port=$((port + 1))
  start "$name" $port
  # Idle memory after one call (the first call maps code paths every server needs).
  taskset -c 0 "$build/bin/bench-client" 127.0.0.1:$port 10 0 >/dev/null
  sleep 1
  rss[$name]=$(rss_kb "$PID")
  anon[$name]=$(anon_kb "$PID")
  out=$(taskset -c 0 "$build/bin/bench-client" 127.0.0.1:$port 20000 2000)
  p50[$name]=$(sed -E 's/.*p50_us=([0-9]+).*/\1/' <<<"$out")
  p99[$name]=$(sed -E 's/.*p99_us=([0-9]+).*/\1/' <<<"$out")
  kill "$PID"; wait "$PID" 2>/dev/null || true
done

for r in $(seq 1 "$rounds"); do
  for name in "${servers[@]}"; do
    [ -n "$name" ] || continue
    port=$((port + 1))
    start "$name" $port
    taskset -c 0 h2load -c 16 -m 32 -t 1 -D 1 -H 'content-type: application/grpc' \
      -H 'te: trailers' -d "$work/body.bin" \
      "http://127.0.0.1:$port/engbot.session.v1.SessionService/TouchSession" >/dev/null 2>&1
    c0=$(cpu_ticks "$PID")
    out=$(taskset -c 0 h2load -c 16 -m 32 -t 1 -D "$secs" -H 'content-type: application/grpc' \
      -H 'te: trailers' -d "$work/body.bin" \
      "http://127.0.0.1:$port/engbot.session.v1.SessionService/TouchSession" 2>&1)
    c1=$(cpu_ticks "$PID")
    n=$(sed -nE 's/^requests: [0-9]+ total, [0-9]+ started, [0-9]+ done, ([0-9]+) succeeded.*/\1/p' <<<"$out")
    v=$(sed -nE 's/^finished in .*, ([0-9.]+) req\/s.*/\1/p' <<<"$out")
    rps[$name]+="$v "
    cpu[$name]+="$(awk -v t=$((c1 - c0)) -v hz="$hz" -v n="$n" 'BEGIN{printf "%.1f", n ? t / hz * 1e6 / n : 0}') "
    kill "$PID"; wait "$PID" 2>/dev/null || true
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
cpp_med=$( [ -n "${rps[cpp]:-}" ] && echo "${rps[cpp]}" | median || echo 0)
js_med=$( [ -n "${rps[grpcjs]:-}" ] && echo "${rps[grpcjs]}" | median || echo 0)
echo
echo "| server | req/s (median of $rounds) | x C++ | x grpc-js | server CPU us/req | serial p50 us | serial p99 us | idle RSS MB | idle anon MB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for name in "${servers[@]}"; do
  [ -n "$name" ] || continue
  m=$(echo "${rps[$name]}" | median)
  c=$(echo "${cpu[$name]}" | median)
  awk -v n="$name" -v m="$m" -v cpp="$cpp_med" -v js="$js_med" -v c="$c" -v p50="${p50[$name]}" \
      -v p99="${p99[$name]}" -v rss="${rss[$name]}" -v an="${anon[$name]}" 'BEGIN{
    xc = "-"; xj = "-";
    if (cpp > 0) xc = sprintf("%.2f", m / cpp);
    if (js > 0) xj = sprintf("%.2f", m / js);
    printf "| %s | %.0f | %s | %s | %s | %s | %s | %.1f | %.1f |\n", n, m, xc, xj, c, p50, p99, rss / 1024, an / 1024 }'
done
echo
echo "rounds: $(for n in "${servers[@]}"; do [ -n "$n" ] && printf '%s=[%s] ' "$n" "${rps[$n]% }"; done)"
echo "machine: $(nproc) CPUs, $(uname -r), $(date -u +%Y-%m-%dT%H:%M:%SZ); h2load -c 16 -m 32 -t 1 -D $secs"
