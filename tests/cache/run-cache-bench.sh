#!/usr/bin/env bash
# run-cache-bench.sh -- cache-svc's benchmark (docs/cache-svc.md, "Benchmarks"): with FILES
# files (default 100k) in a generated tree, a fresh cache-svc pinned to CPU 1 and the load
# generator (tests/cache/bench_cache.c) pinned to CPU 0:
#   1. memory: resident memory with an empty root and with the tree, the index's own bytes;
#      the first scan's duration;
#   2. Resolve by id (uniform over every file) and ListFolder pages of random folders from
#      THREADS client threads for SECONDS_PER_RUN each, then serial Resolve round trips;
#   3. hit ratio on a Zipf(ZIPF_S) request mix: for each count in ZIPF, a fresh server and that
#      many Resolves by id within FILE_CACHE_DURATION (5 min);
#   4. ReadFile of a 50 MB file against `cat` of it (page cache warm).
#   tests/cache/run-cache-bench.sh [BUILD_DIR=build]
#   env: FILES=100000 THREADS=4 SECONDS_PER_RUN=5 ZIPF="100000 300000" ZIPF_S=1.0
#        TREE=dir (reuse a tree made by `bench_cache tree DIR FILES`)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
files=${FILES:-100000}
threads=${THREADS:-4}
secs=${SECONDS_PER_RUN:-5}
zipf=${ZIPF:-"100000 300000"}
zipf_s=${ZIPF_S:-1.0}
bench=$build/bin/bench_cache
work=$(mktemp -d /tmp/engbot-cache-bench-XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ncpu=$(nproc)
srv_cpu=$((ncpu > 1 ? 1 : 0))

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_svc() { # FILES_ROOT [extra settings...]
  port=$(free_port)
  hport=$(free_port)
  rm -rf "$work/data"
  local t0=$(date +%s%N)
  taskset -c $srv_cpu "$build/bin/cache-svc" --files-root="$1" --data-dir="$work/data" \
    --grpc-listen=127.0.0.1:$port --http-listen=127.0.0.1:$hport --log-level=warn \
    --rescan-interval=1h --max-entries=$((files * 2 + 1000)) "${@:2}" 2>"$work/svc.log" &
  pid=$!
  for _ in $(seq 1 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' 127.0.0.1:$hport/readyz)" = 200 ] && break
    sleep 0.1
  done
  ready_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
}

stop_svc() {
  kill "$pid"
  wait "$pid" || true
  pid=""
}

metric() {
  curl -s 127.0.0.1:$hport/metrics | awk -v m="$1" '$1 == m { print $2 }'
}

tree=${TREE:-$work/tree}
if [ ! -d "$tree" ]; then
  "$bench" tree "$tree" "$files" >/dev/null
fi
[ -f "$tree/big-50MB.step" ] || head -c $((50 * 1024 * 1024)) /dev/urandom > "$tree/big-50MB.step"

echo "# cache-svc benchmark $(date -u +%FT%TZ) on $ncpu CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(git -C "$root" describe --always --dirty)"
mkdir -p "$work/empty"
start_svc "$work/empty"
rss_empty=$(metric process_resident_memory_bytes)
stop_svc

start_svc "$tree"
rss=$(metric process_resident_memory_bytes)
entries=$(metric 'engbot_cache_entries{cache="catalogue"}')
index=$(metric engbot_cache_index_bytes)
scan=$(metric engbot_cache_last_scan_duration_seconds)
echo "## memory and first scan"
echo "entries=$entries first_scan_s=$scan ready_after_ms=$ready_ms"
echo "rss_empty_bytes=$rss_empty rss_bytes=$rss rss_per_entry=$(( (rss - rss_empty) / entries )) index_bytes=$index index_per_entry=$(( index / entries ))"
echo "## throughput and latency ($threads client threads, ${secs}s each)"
taskset -c 0 "$bench" resolve 127.0.0.1:$port "$threads" "$secs" 2>/dev/null
taskset -c 0 "$bench" list 127.0.0.1:$port "$threads" "$secs" 2>/dev/null
taskset -c 0 "$bench" serial 127.0.0.1:$port "$secs" 2>/dev/null
stop_svc

echo "## hit ratio, Zipf s=$zipf_s"
for n in $zipf; do
  start_svc "$tree"
  taskset -c 0 "$bench" zipf 127.0.0.1:$port "$n" "$zipf_s" "$threads" 2>/dev/null
  stop_svc
done

echo "## streaming a 50 MB file"
start_svc "$tree"
taskset -c 0 "$bench" stream 127.0.0.1:$port big-50MB.step 5 "$tree/big-50MB.step"
stop_svc
