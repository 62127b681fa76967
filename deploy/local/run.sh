#!/usr/bin/env bash
# run.sh -- run the whole engbot stack on this machine (the README's run command).
#
#   ./deploy/local/run.sh                 no BOT_TOKEN: the Bot API emulator, session-svc,
#                                         cache-svc (on a sample catalogue), queue-svc and the
#                                         gateway, then a terminal chat where you are the user
#   BOT_TOKEN=123:abc ./deploy/local/run.sh
#                                         the same services and gateway against the real Bot
#                                         API (no emulator, no chat); logs go to the terminal
#
# Builds first when needed. Logs: .run/logs/<program>.log; state: .run/data/<program>/;
# the catalogue: .run/files. Ctrl-C stops everything (SIGTERM, then waits; nothing is left
# running). Programs that are not built yet are reported and skipped.
#
# Environment (all optional):
#   ENGBOT_BUILD_DIR   build directory (default ./build)
#   ENGBOT_RUN_DIR     logs, data and the sample catalogue (default ./.run)
#   ENGBOT_FILES_ROOT  serve this directory instead of the sample catalogue
#   ENGBOT_SKIP_BUILD  1: use the binaries as they are
#   ENGBOT_BIND        the address every program listens on (default 127.0.0.1)
#   ENGBOT_CHAT_ARGS   extra flags for engbot-chat (see build/bin/engbot-chat --help)
#   TELEGRAM_API_URL   with BOT_TOKEN: a local Bot API server instead of api.telegram.org
# Ports are picked free at start (port 0) and printed; see docs/local-run.md.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${ENGBOT_BUILD_DIR:-$ROOT/build}
BIN=$BUILD/bin
RUN=${ENGBOT_RUN_DIR:-$ROOT/.run}
LOGS=$RUN/logs
DATA=$RUN/data
FILES=${ENGBOT_FILES_ROOT:-$RUN/files}
BIND=${ENGBOT_BIND:-127.0.0.1}
EMU_TOKEN="110201543:local-emulator-token"
CHAT_USER=1001
SETSID=$(command -v setsid || true)

if [ -n "${BOT_TOKEN:-}" ]; then MODE=telegram; else MODE=emulator; fi
if [ -t 1 ]; then B=$'\033[1m'; D=$'\033[2m'; R=$'\033[0m'; else B=; D=; R=; fi

say() { printf '%s\n' "${B}engbot:${R} $*"; }
warn() { printf '%s\n' "${B}engbot:${R} warning: $*" >&2; }

declare -a NAMES=() PIDS=() MISSING=()
declare -A GRPC_PORT=() HTTP_PORT=()
CHAT_PID=""
STOPPING=0

stop_all() {
  [ "$STOPPING" = 1 ] && return
  STOPPING=1
  trap '' INT TERM
  if [ -n "$CHAT_PID" ] && kill -0 "$CHAT_PID" 2>/dev/null; then
    kill -TERM "$CHAT_PID" 2>/dev/null
    wait "$CHAT_PID" 2>/dev/null
  fi
  [ "${#PIDS[@]}" -eq 0 ] && return
  echo
  say "stopping (SIGTERM): ${NAMES[*]}"
  # The gateway first, the emulator last: nothing in flight loses its peer.
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[$i]}" 2>/dev/null
    local deadline=$((SECONDS + 20))
    while kill -0 "${PIDS[$i]}" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if kill -0 "${PIDS[$i]}" 2>/dev/null; then
      warn "${NAMES[$i]} did not stop within 20 s; killing it"
      kill -KILL "${PIDS[$i]}" 2>/dev/null
    fi
    wait "${PIDS[$i]}" 2>/dev/null
    local rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 143 ]; then warn "${NAMES[$i]} exited with status $rc (see $LOGS/${NAMES[$i]}.log)"; fi
  done
  rm -f "$RUN/run.pids"
  say "stopped; logs are in $LOGS"
}

on_signal() { stop_all; exit 130; }
trap on_signal INT TERM
trap stop_all EXIT

mkdir -p "$LOGS" "$DATA"
exec 9>"$RUN/lock"
if ! flock -n 9; then
  echo "engbot: another run.sh is already using $RUN (stop it first, or set ENGBOT_RUN_DIR)" >&2
  exit 1
fi

# ---- build ----
if [ "${ENGBOT_SKIP_BUILD:-0}" != 1 ]; then
  # Idempotent and quick when everything is there: installs what a fresh machine lacks.
  "$ROOT/deploy/setup-debian.sh" --no-npm || { echo "engbot: setup failed" >&2; exit 1; }
  say "building in $BUILD (log: $LOGS/build.log)"
  {
    [ -f "$BUILD/CMakeCache.txt" ] || cmake -S "$ROOT" -B "$BUILD"
    cmake --build "$BUILD" -j2
  } >"$LOGS/build.log" 2>&1
  if [ $? -ne 0 ]; then
    tail -n 25 "$LOGS/build.log" >&2
    echo "engbot: the build failed (full log: $LOGS/build.log)" >&2
    exit 1
  fi
fi

# ---- the sample catalogue ----
make_tiny_catalogue() {
  local d=$1
  mkdir -p "$d/drawings/pumps" "$d/datasheets" "$d/standards" "$d/spreadsheets"
  printf '%s\n' '%PDF-1.4' '1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj' \
    '2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj' 'trailer << /Root 1 0 R >>' '%%EOF' \
    >"$d/drawings/pumps/pump-housing-rev-C.pdf"
  cp "$d/drawings/pumps/pump-housing-rev-C.pdf" "$d/datasheets/motor-M12-datasheet.pdf"
  printf 'size,torque_nm\nM6,10\nM8,25\nM10,49\nM12,85\n' >"$d/spreadsheets/bolt-torques.csv"
  printf 'ISO 2768-1 general tolerances (summary)\nf fine, m medium, c coarse, v very coarse\n' \
    >"$d/standards/ISO-2768-summary.txt"
  printf 'Sample engineering catalogue made by deploy/local/run.sh.\n' >"$d/README.txt"
}

if [ "$MODE" = emulator ] || [ -z "${ENGBOT_FILES_ROOT:-}" ]; then
  if [ ! -d "$FILES" ] || [ -z "$(ls -A "$FILES" 2>/dev/null)" ]; then
    mkdir -p "$FILES"
    if [ -f "$ROOT/cache-svc/sample/make-sample.sh" ]; then
      say "making the sample catalogue in $FILES (cache-svc/sample/make-sample.sh)"
      bash "$ROOT/cache-svc/sample/make-sample.sh" "$FILES" >"$LOGS/make-sample.log" 2>&1 ||
        { warn "make-sample.sh failed (see $LOGS/make-sample.log); using a tiny catalogue"; make_tiny_catalogue "$FILES"; }
    else
      say "making a tiny sample catalogue in $FILES"
      make_tiny_catalogue "$FILES"
    fi
  fi
fi

# ---- starting programs ----
# start NAME [VAR=value ...]: starts build/bin/NAME with those environment variables, logs to
# $LOGS/NAME.log (and, against Telegram, to the terminal too), and reads its ports from its
# "listening" log line.
start() {
  local name=$1
  shift
  if [ ! -x "$BIN/$name" ]; then
    MISSING+=("$name")
    return 1
  fi
  : >"$LOGS/$name.log"
  # setsid: a Ctrl-C in the terminal reaches only this script, which stops the programs in
  # order (gateway first) instead of all at once.
  if [ "$MODE" = telegram ]; then
    $SETSID env "$@" LOG_FORMAT=text "$BIN/$name" > >(tee -a "$LOGS/$name.log" | sed -u "s/^/[$name] /") 2>&1 &
  else
    $SETSID env "$@" LOG_FORMAT=json "$BIN/$name" >>"$LOGS/$name.log" 2>&1 &
  fi
  local pid=$!
  NAMES+=("$name")
  PIDS+=("$pid")
  echo "$name $pid" >>"$RUN/run.pids"
  local deadline=$((SECONDS + 30)) line=""
  while [ "$SECONDS" -lt "$deadline" ]; do
    line=$(grep -m1 -E '"msg":"listening"|: listening ' "$LOGS/$name.log" 2>/dev/null || true)
    [ -n "$line" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "engbot: $name exited at start:" >&2
      tail -n 15 "$LOGS/$name.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  if [ -z "$line" ]; then
    warn "$name did not report its ports within 30 s (see $LOGS/$name.log)"
    return 0
  fi
  GRPC_PORT[$name]=$(sed -nE 's/.*"?grpc_port"?[=:]([0-9]+).*/\1/p' <<<"$line")
  HTTP_PORT[$name]=$(sed -nE 's/.*"?http_port"?[=:]([0-9]+).*/\1/p' <<<"$line")
  return 0
}

# Waits for GET /readyz to answer 200; prints a warning with the reason otherwise.
wait_ready() {
  local name=$1 port=${HTTP_PORT[$1]:-} timeout=${2:-30}
  [ -n "$port" ] || return 0
  local deadline=$((SECONDS + timeout)) body=""
  while [ "$SECONDS" -lt "$deadline" ]; do
    if body=$(curl -fsS --max-time 2 "http://$BIND:$port/readyz" 2>/dev/null); then return 0; fi
    sleep 0.2
  done
  body=$(curl -sS --max-time 2 "http://$BIND:$port/readyz" 2>&1)
  warn "$name is not ready after ${timeout} s: ${body:-no answer} (see $LOGS/$name.log)"
  return 1
}

: >"$RUN/run.pids"
listen="$BIND:0"
if [ "$MODE" = emulator ]; then
  start bot-api-emulator HTTP_LISTEN="$listen" BOT_TOKEN="$EMU_TOKEN"
  EMU_PORT=${HTTP_PORT[bot-api-emulator]:-}
  [ -n "$EMU_PORT" ] || { echo "engbot: the Bot API emulator is not built ($BIN/bot-api-emulator)" >&2; exit 1; }
  wait_ready bot-api-emulator 10
fi
mkdir -p "$DATA/session-svc" "$DATA/cache-svc" "$DATA/queue-svc" "$DATA/gateway"
start session-svc GRPC_LISTEN="$listen" HTTP_LISTEN="$listen" DATA_DIR="$DATA/session-svc"
start cache-svc GRPC_LISTEN="$listen" HTTP_LISTEN="$listen" DATA_DIR="$DATA/cache-svc" FILES_ROOT="$FILES"
start queue-svc GRPC_LISTEN="$listen" HTTP_LISTEN="$listen" DATA_DIR="$DATA/queue-svc"
for s in session-svc cache-svc queue-svc; do
  [ -n "${HTTP_PORT[$s]:-}" ] && wait_ready "$s" 30
done

addr() { [ -n "${GRPC_PORT[$1]:-}" ] && echo "$BIND:${GRPC_PORT[$1]}" || echo "$BIND:1"; }
gw_env=(HTTP_LISTEN="$listen" DATA_DIR="$DATA/gateway"
  SESSION_SVC_ADDR="$(addr session-svc)" CACHE_SVC_ADDR="$(addr cache-svc)"
  QUEUE_SVC_ADDR="$(addr queue-svc)")
if [ "$MODE" = emulator ]; then
  gw_env+=(TELEGRAM_API_URL="http://$BIND:$EMU_PORT" BOT_TOKEN="$EMU_TOKEN"
    ADMIN_USER_IDS="$CHAT_USER")
else
  gw_env+=(BOT_TOKEN="$BOT_TOKEN")
  [ -n "${TELEGRAM_API_URL:-}" ] && gw_env+=(TELEGRAM_API_URL="$TELEGRAM_API_URL")
fi
start gateway "${gw_env[@]}" && wait_ready gateway 30

# ---- what runs where ----
echo
if [ "$MODE" = emulator ]; then
  say "running with the Bot API emulator (no Telegram involved)"
else
  say "running against ${TELEGRAM_API_URL:-the Telegram Bot API}"
fi
show() {
  local name=$1 what=$2 line="" i
  for i in "${!NAMES[@]}"; do [ "${NAMES[$i]}" = "$name" ] && line=" pid ${PIDS[$i]}"; done
  [ -n "$line" ] || return 0
  local ports=""
  [ -n "${GRPC_PORT[$name]:-}" ] && ports+=" grpc $BIND:${GRPC_PORT[$name]}"
  [ -n "${HTTP_PORT[$name]:-}" ] && ports+=" http http://$BIND:${HTTP_PORT[$name]}"
  printf '  %-17s%-52s%-11s %s\n' "$name" "$ports" "$line" "${D}$what${R}"
}
show bot-api-emulator "Bot API + /control (docs/bot-api-emulator.md)"
show session-svc "sessions, data in ${DATA#$ROOT/}/session-svc"
show cache-svc "catalogue of ${FILES#$ROOT/}"
show queue-svc "outbound queue, data in ${DATA#$ROOT/}/queue-svc"
show gateway "the bot (/metrics /healthz /readyz)"
if [ "${#MISSING[@]}" -gt 0 ]; then
  say "not built yet, so not running: ${MISSING[*]}"
  case " ${MISSING[*]} " in *" gateway "*) say "without the gateway nobody answers in the chat" ;; esac
fi
say "logs: ${LOGS#$ROOT/}/<program>.log   stop: Ctrl-C$([ "$MODE" = emulator ] && echo ' (or /quit in the chat)')"
echo

if [ "$MODE" = telegram ]; then
  say "talk to your bot in Telegram; the programs' logs follow"
  # Until Ctrl-C, or until a program stops by itself.
  while :; do
    for i in "${!PIDS[@]}"; do
      if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
        warn "${NAMES[$i]} stopped on its own (see $LOGS/${NAMES[$i]}.log)"
        exit 1
      fi
    done
    sleep 1
  done
fi

if [ ! -x "$BIN/engbot-chat" ]; then
  say "engbot-chat is not built; the emulator's control API is at http://$BIND:$EMU_PORT/control/"
  while sleep 1; do :; done
fi
# The chat runs as a job so Ctrl-C reaches this script's trap at once; stdin is handed over
# explicitly (a background job would otherwise read /dev/null).
# shellcheck disable=SC2086
"$BIN/engbot-chat" --emulator-url="http://$BIND:$EMU_PORT" --user-id="$CHAT_USER" ${ENGBOT_CHAT_ARGS:-} <&0 &
CHAT_PID=$!
wait "$CHAT_PID"
rc=$?
CHAT_PID=""
stop_all
exit "$rc"
