#!/usr/bin/env bash
# run-rpc-bench.sh -- unary throughput and latency of one benchmark RPC, side by side in one
# run, on every stack that serves it:
#   RPC=touch    SessionService/TouchSession: layer (tests/bench/bench_server.c: engbot's C
#                layer over an in-memory map), cpp, grpcjs, svc = the real session-svc
#   RPC=resolve  CacheService/Resolve by id: cpp, grpcjs, svc = the real cache-svc on the
#                sample catalogue (cache-svc/sample/make-sample.sh)
#   RPC=enqueue  QueueService/Enqueue: cpp, grpcjs, svc = the real queue-svc with FSYNC=off
#                (the peers keep jobs in memory only), svc-fsync = queue-svc with group commit
#   cpp = gRPC C++ 1.51 async server, one CQ + thread (tests/bench/peer_cpp.cc); grpcjs =
#   @grpc/grpc-js (tests/bench/peer_grpcjs.js). The peers do in memory what the service does.
# Load: Debian's h2load (-c 16 -m 32 -t 1), ROUNDS interleaved rounds of SECONDS each, the
# server pinned to CPU 1 and the load generator to CPU 0; serial round trips with
# bench-client (one call in flight) on the same pinning. Prints a Markdown table of medians.
# h2load counts a gRPC error as a success, so every server is first checked with
# bench-client, which fails on any non-OK status.
#
#   RPC=touch tests/bench/run-rpc-bench.sh [BUILD_DIR=build]   env: ROUNDS=3 SECONDS_PER_RUN=8
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
rpc=${RPC:-touch}
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
py() { PYTHONPATH="$build/gen/py" /usr/bin/python3 "$@"; }

case $rpc in
  touch) path=engbot.session.v1.SessionService/TouchSession; svcbin=session-svc ;;
  resolve) path=engbot.cache.v1.CacheService/Resolve; svcbin=cache-svc ;;
  enqueue) path=engbot.queue.v1.QueueService/Enqueue; svcbin=queue-svc ;;
  *) echo "RPC must be touch, resolve or enqueue"; exit 2 ;;
esac

port_of() { # waits until something listens on 127.0.0.1:$1
  for _ in $(seq 1 150); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

"$root/cache-svc/sample/make-sample.sh" "$work/files" >/dev/null
id=x
if [ "$rpc" = resolve ] && [ -x "$build/bin/cache-svc" ]; then
  # The id every server is asked to resolve: a real one from cache-svc (ids are stable).
  idport=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$build/bin/cache-svc" --grpc-listen=127.0.0.1:$idport --http-listen=127.0.0.1:0 \
    --files-root="$work/files" --data-dir="$work/cache-id" --log-level=warn 2>/dev/null &
  p=$!
  id=$(py "$root/tests/bench/bench_body.py" id 127.0.0.1:$idport Mechanical/BOM/Gearbox-GB1-BOM.csv)
  kill $p; wait $p 2>/dev/null || true
fi
py "$root/tests/bench/bench_body.py" body "$work/body.bin" "$rpc" "$id"

start() { # name port -> sets PID
  local name=$1 port=$2
  case $name in
    layer) taskset -c $srv_cpu "$build/bin/bench-server" --grpc-listen=127.0.0.1:$port \
             --http-listen=127.0.0.1:0 --cq-threads=1 --log-level=warn 2>"$work/$name.log" & ;;
    cpp) taskset -c $srv_cpu "$build/bin/peer-cpp" $port 1 2>"$work/$name.log" & ;;
    grpcjs) NODE_PATH="$root/tests/node/node_modules" taskset -c $srv_cpu \
             node "$root/tests/bench/peer_grpcjs.js" $port 2>"$work/$name.log" & ;;
    svc|svc-fsync)
      local common=(--grpc-listen=127.0.0.1:$port --http-listen=127.0.0.1:0 --cq-threads=1
                    --log-level=warn --data-dir="$work/svc-data-$port")
      case $rpc in
        touch) taskset -c $srv_cpu "$build/bin/session-svc" "${common[@]}" 2>"$work/$name.log" & ;;
        resolve) taskset -c $srv_cpu "$build/bin/cache-svc" "${common[@]}" \
                   --files-root="$work/files" 2>"$work/$name.log" & ;;
        # Telegram's rate limits off: the peers have none, and at 30 sends/s queue-svc refuses
        # (RESOURCE_EXHAUSTED) a job that could not be sent within its time to live.
        enqueue) taskset -c $srv_cpu "$build/bin/queue-svc" "${common[@]}" \
                   --fsync=$([ "$name" = svc ] && echo false || echo true) \
                   --queue-max-size=10000000 --queue-max-bytes=64GiB \
                   --lane-max-size=1000000 --global-rate=0 --chat-rate=0 --group-rate=0 2>"$work/$name.log" & ;;
      esac ;;
  esac
  PID=$!
  pids+=("$PID")
  port_of "$port" || { echo "$name did not start"; cat "$work/$name.log"; exit 1; }
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
anon_kb() { awk '/^RssAnon/ {print $2}' "/proc/$1/status"; }

servers=(cpp grpcjs)
[ "$rpc" = touch ] && servers=(layer cpp grpcjs)
[ -x "$build/bin/peer-cpp" ] || servers=("${servers[@]/cpp}")
[ -d "$root/tests/node/node_modules/@grpc/grpc-js" ] || servers=("${servers[@]/grpcjs}")
[ -x "$build/bin/$svcbin" ] && servers+=(svc)
[ "$rpc" = enqueue ] && [ -x "$build/bin/$svcbin" ] && servers+=(svc-fsync)
hz=$(getconf CLK_TCK)
declare -A rps cpu p50 p99 rss anon

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for name in "${servers[@]}"; do
  [ -n "$name" ] || continue
  port=$(free_port)
  start "$name" $port
  # Correctness first (h2load would count errors as successes), then idle memory after the
  # first calls mapped the code paths every server needs.
  taskset -c 0 "$build/bin/bench-client" 127.0.0.1:$port 10 0 1000 "$rpc" "$id" >/dev/null ||
    { echo "$name answers $rpc with an error"; exit 1; }
  sleep 1
  rss[$name]=$(rss_kb "$PID")
  anon[$name]=$(anon_kb "$PID")
  out=$(taskset -c 0 "$build/bin/bench-client" 127.0.0.1:$port 20000 2000 1000 "$rpc" "$id")
  p50[$name]=$(sed -E 's/.*p50_us=([0-9]+).*/\1/' <<<"$out")
  p99[$name]=$(sed -E 's/.*p99_us=([0-9]+).*/\1/' <<<"$out")
  kill "$PID"; wait "$PID" 2>/dev/null || true
done

for r in $(seq 1 "$rounds"); do
  for name in "${servers[@]}"; do
    [ -n "$name" ] || continue
    port=$(free_port)
    start "$name" $port
    taskset -c 0 h2load -c 16 -m 32 -t 1 -D 1 -H 'content-type: application/grpc' \
      -H 'te: trailers' -d "$work/body.bin" "http://127.0.0.1:$port/$path" >/dev/null 2>&1
    c0=$(cpu_ticks "$PID")
    out=$(taskset -c 0 h2load -c 16 -m 32 -t 1 -D "$secs" -H 'content-type: application/grpc' \
      -H 'te: trailers' -d "$work/body.bin" "http://127.0.0.1:$port/$path" 2>&1)
    c1=$(cpu_ticks "$PID")
    n=$(sed -nE 's/^requests: [0-9]+ total, [0-9]+ started, [0-9]+ done, ([0-9]+) succeeded.*/\1/p' <<<"$out")
    v=$(sed -nE 's/^finished in .*, ([0-9.]+) req\/s.*/\1/p' <<<"$out")
    rps[$name]+="$v "
    cpu[$name]+="$(awk -v t=$((c1 - c0)) -v hz="$hz" -v n="$n" 'BEGIN{printf "%.1f", n ? t / hz * 1e6 / n : 0}') "
    # The server must still answer correctly after the load.
    taskset -c 0 "$build/bin/bench-client" 127.0.0.1:$port 3 0 1000 "$rpc" "$id" >/dev/null ||
      { echo "$name fails after the load"; exit 1; }
    kill "$PID"; wait "$PID" 2>/dev/null || true
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
cpp_med=$( [ -n "${rps[cpp]:-}" ] && echo "${rps[cpp]}" | median || echo 0)
js_med=$( [ -n "${rps[grpcjs]:-}" ] && echo "${rps[grpcjs]}" | median || echo 0)
echo
echo "RPC: $path"
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
echo "machine: $(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%M:%SZ); h2load -c 16 -m 32 -t 1 -D $secs"
