#!/usr/bin/env bash
# report.sh -- regenerates every benchmark figure in one run, side by side on this machine,
# into docs/benchmark-results.md (raw tables, overwritten) and docs/bench-*.png (plots):
#   1. per-service RPCs against the C++ and grpc-js peers (tests/bench/run-rpc-bench.sh, for
#      TouchSession, Resolve and Enqueue), with serial latency and idle memory;
#   2. session-svc at 1k/100k/1M sessions, memory per session, sweep (tests/session/...);
#   3. cache-svc: 100k files, Zipf hit ratio, streaming vs cat (tests/cache/...);
#   4. queue-svc: group commit on/off, lanes, scaling with producers (tests/queue/...);
#   5. the whole pipeline with each optimisation on and off (tests/gateway/bench_gateway.py).
# docs/benchmarks.md is the written analysis of the last run.
#
#   tests/bench/report.sh [BUILD_DIR=build]     env: QUICK=1 (shorter runs, for a smoke test)
# Takes about 25 minutes (QUICK=1: about 8). Run it on a quiet machine: close other work.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
out=${OUT:-$root/docs/benchmark-results.md}
docs=$(dirname "$out")
quick=${QUICK:-0}
work=$(mktemp -d /tmp/engbot-report-XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$root"

if [ "$quick" = 1 ]; then
  export ROUNDS=1 SECONDS_PER_RUN=3 SIZES="1000 100000" FILES=20000 ZIPF="20000"
  qsecs=2 gwmsg=1000
else
  export ROUNDS=${ROUNDS:-3} SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
  qsecs=4 gwmsg=4000
fi

section() { printf '\n## %s\n\n' "$1" >>"$out"; echo "report: $1 ($(date +%H:%M:%S))"; }
fence() { { echo '```'; cat; echo '```'; } >>"$out"; }

{
  echo "# Benchmark results (generated)"
  echo
  echo "Written by \`tests/bench/report.sh\` on $(date -u +%Y-%m-%dT%H:%M:%SZ) at"
  echo "$(git describe --always --dirty) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')),"
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the start. Analysis: [benchmarks.md](benchmarks.md)."
} >"$out"

section "1. RPCs against the C++ and grpc-js peers"
for rpc in touch resolve enqueue; do
  RPC=$rpc tests/bench/run-rpc-bench.sh "$build" | tee "$work/rpc-$rpc.txt" | sed -n '/^RPC:/,$p' >>"$out"
  echo >>"$out"
done

section "2. session-svc"
tests/session/run-session-bench.sh "$build" 2>&1 | fence

section "3. cache-svc"
tests/cache/run-cache-bench.sh "$build" 2>&1 | fence

section "4. queue-svc"
tests/queue/bench_queue.sh "$build" "$qsecs" 2>&1 | tee "$work/queue.txt" | fence

section "5. The whole pipeline"
ENGBOT_BUILD="$build" /usr/bin/python3 tests/gateway/bench_gateway.py --messages "$gwmsg" 2>&1 | fence

# ---- plots ---------------------------------------------------------------------------------
if command -v gnuplot >/dev/null; then
  # req/s per stack and RPC, from the Markdown tables of section 1.
  for rpc in touch resolve enqueue; do
    awk -F'|' -v rpc="$rpc" '/^\| [a-z]/ && $2 !~ /server/ {gsub(/ /, "", $2); gsub(/ /, "", $3); print rpc, $2, $3}' \
      "$work/rpc-$rpc.txt"
  done >"$work/rps.dat"
  gnuplot <<EOF
set terminal pngcairo size 900,480 font "sans,10" noenhanced
set output "$docs/bench-rpc.png"
set title "Unary RPC throughput on one core (h2load -c 16 -m 32), median of $ROUNDS runs"
set ylabel "requests/s"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set yrange [0:*]
set grid ytics
set key below horizontal
set xtics nomirror
\$d << EOD
$(awk '{v[$1","$2]=$3; r[$1]=1; s[$2]=1} END {
  n = split("layer svc svc-fsync cpp grpcjs", order, " ");
  split("touch resolve enqueue", rs, " ");
  for (k = 1; k <= 3; k++) {
    printf "%s", rs[k];
    for (i = 1; i <= n; i++) { x = v[rs[k]","order[i]]; printf " %s", (x == "" ? "0" : x) }
    printf "\n";
  } }' "$work/rps.dat")
EOD
plot \$d using 2:xtic(1) title "engbot layer (bench-server)", '' using 3 title "engbot service", '' using 4 title "queue-svc with fsync (group commit)", '' using 5 title "C++ grpc 1.51 (async)", '' using 6 title "grpc-js 1.14"
EOF
  # Queue throughput against producers (group commit), from section 4's scale runs.
  awk '/^== fsync=/ {f = ($0 ~ /fsync=on/) ? "on" : "off"; scale = ($0 ~ /mode=scale/)}
       scale && /^enqueue: [0-9]+ producers/ {p = $2; r = $NF; if (r == "jobs/s") r = $(NF-1); print f, p, r}' \
      "$work/queue.txt" >"$work/scale.dat" || true
  if [ -s "$work/scale.dat" ]; then
    gnuplot <<EOF
set terminal pngcairo size 720,420 font "sans,10" noenhanced
set output "$docs/bench-queue-scale.png"
set title "queue-svc Enqueue throughput vs concurrent producers (1000 lanes)"
set xlabel "concurrent producers"
set ylabel "acknowledged enqueues/s"
set logscale x 2
set grid
set key top left
plot "< grep '^on' $work/scale.dat" using 2:3 with linespoints title "fsync on (group commit)", \
     "< grep '^off' $work/scale.dat" using 2:3 with linespoints title "fsync off"
EOF
  fi
fi
echo "report: done -> $out"
