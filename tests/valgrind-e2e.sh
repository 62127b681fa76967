#!/usr/bin/env bash
# valgrind-e2e.sh -- one end-to-end run of the whole stack (the gateway's e2e tests: commands,
# browsing, a file by upload then by file_id, search) with the gateway and the three services
# under valgrind memcheck, then a check of every process's report: no memory errors, nothing
# definitely or indirectly lost. Slow (several minutes); not part of CI.
#   tests/valgrind-e2e.sh [BUILD_DIR=build]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
logs=$(mktemp -d /tmp/engbot-valgrind-XXXXXX)
command -v valgrind >/dev/null || { echo "valgrind missing (apt-get install valgrind)"; exit 1; }
tests=${TESTS:-"FullStack.test_start_shows_welcome_and_browser FullStack.test_browse_pagination_up_prev_next_edit_in_place FullStack.test_file_sent_by_upload_then_by_file_id FullStack.test_search_results_and_long_text_split FullStack.test_duplicate_update_id_handled_once"}
mods=()
for t in $tests; do mods+=("test_gateway_e2e.$t"); done
echo "valgrind: logs in $logs"
cd "$root/tests/gateway"
ENGBOT_BUILD="$build" ENGBOT_SRC="$root" PYTHONPATH="$root/tests/lib" \
ENGBOT_WRAPPER="valgrind --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --num-callers=30 --log-file=$logs/%q{VG_NAME}-%p.log" \
ENGBOT_WRAP_ONLY=gateway,session-svc,cache-svc,queue-svc \
  /usr/bin/python3 -m unittest -v "${mods[@]}" || { echo "valgrind: the tests failed under valgrind"; exit 1; }
bad=0
n=0
for f in "$logs"/*.log; do
  [ -e "$f" ] || continue
  n=$((n + 1))
  if grep -qE "Invalid (read|write)|uninitialised|Conditional jump|definitely lost: [1-9]|indirectly lost: [1-9]|Mismatched free|invalid free" "$f"; then
    echo "valgrind: problems in $f:"
    head -60 "$f"
    bad=1
  fi
done
echo "valgrind: $n process reports checked"
[ "$n" -gt 0 ] || { echo "valgrind: no reports written"; exit 1; }
[ "$bad" = 0 ] && echo "valgrind: no memory errors, nothing definitely or indirectly lost"
exit $bad
