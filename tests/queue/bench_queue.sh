#!/bin/bash
# bench_queue.sh -- the queue-svc benchmark matrix of docs/queue-svc.md ("Benchmarks").
#   tests/queue/bench_queue.sh [BUILD_DIR] [SECONDS]
# For each case: a fresh queue-svc on 127.0.0.1:50153 (rate limits off, limits raised, its
# data in a new directory on the disk under /var/tmp), one bench_queue run, the WAL's fsync and
# batch figures from /metrics, then the server is stopped by its PID.
set -u
BUILD=${1:-build}
SECS=${2:-4}
BIN=$BUILD/bin
DATA=$(mktemp -d /var/tmp/queue-bench-XXXXXX)
trap 'rm -rf "$DATA"' EXIT

run() { # run on|off <bench_queue args...>
    local fsync=$1
    shift
    rm -rf "$DATA/q"
    "$BIN/queue-svc" --grpc-listen=127.0.0.1:50153 --http-listen=127.0.0.1:9193 \
        --data-dir="$DATA/q" --fsync="$fsync" --global-rate=0 --chat-rate=0 --group-rate=0 \
        --queue-max-size=10000000 --queue-max-bytes=64GiB --lane-max-size=1000000 \
        --request-timeout=1h --dedupe-window=0 --log-level=warn 2>"$DATA/server.log" &
    local pid=$!
    for _ in $(seq 1 100); do
        curl -sf http://127.0.0.1:9193/readyz >/dev/null && break
        sleep 0.1
    done
    echo "== fsync=$fsync $*"
    "$BIN/bench_queue" --target=127.0.0.1:50153 "$@"
    curl -s http://127.0.0.1:9193/metrics |
        awk '/^queue_wal_fsync_seconds_(sum|count)|^queue_wal_batch_records_(sum|count)/ {v[$1]=$2}
             END { if (v["queue_wal_batch_records_count"] > 0)
                     printf "  wal: %d group commits, %.1f records each, fsync mean %.2f ms\n",
                       v["queue_wal_batch_records_count"],
                       v["queue_wal_batch_records_sum"] / v["queue_wal_batch_records_count"],
                       v["queue_wal_fsync_seconds_count"] ? 1000 * v["queue_wal_fsync_seconds_sum"] / v["queue_wal_fsync_seconds_count"] : 0 }'
    kill -TERM "$pid"
    wait "$pid"
}

uptime
for f in on off; do
    run $f --mode=enqueue --producers=16 --lanes=1 --seconds="$SECS"
    run $f --mode=enqueue --producers=16 --lanes=1000 --seconds="$SECS"
    run $f --mode=drain --producers=16 --senders=4 --batch=10 --lanes=1 --jobs=3000
    run $f --mode=drain --producers=32 --senders=32 --batch=10 --lanes=1000 --jobs=20000
    run $f --mode=latency --rate=300 --senders=4 --batch=10 --lanes=1000 --seconds="$SECS"
done
run on --mode=scale --producers=64 --lanes=1000 --seconds=3
run off --mode=scale --producers=64 --lanes=1000 --seconds=3
uptime
