#!/usr/bin/env bash
# setup-debian.sh -- installs what engbot needs on Debian 12 (apt packages from
# deploy/packages.txt, npm test tools into tests/node). Idempotent: skips what is present.
# Uses sudo when not root.
#   --no-npm   only the Debian packages (the run command needs no npm tools)
set -euo pipefail
no_npm=0
[ "${1:-}" = "--no-npm" ] && no_npm=1
here=$(cd "$(dirname "$0")/.." && pwd)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

mapfile -t pkgs < <(grep -v '^\s*#' "$here/deploy/packages.txt" | grep -v '^\s*$')
missing=()
for p in "${pkgs[@]}"; do
  # A machine with its own Node.js (e.g. from NodeSource) keeps it: Debian's packages would
  # conflict with it.
  case $p in nodejs) command -v node >/dev/null && continue ;; npm) command -v npm >/dev/null && continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The prometheus package starts a server we do not want (only promtool is used).
if systemctl is-active --quiet prometheus 2>/dev/null; then
  $sudo systemctl stop prometheus || true
fi

if [ "$no_npm" = 0 ] && { [ ! -x "$here/tests/node/node_modules/.bin/buf" ] || [ ! -d "$here/tests/node/node_modules/@grpc/grpc-js" ]; }; then
  echo "setup: installing npm test tools (buf, grpc-js) into tests/node"
  (cd "$here/tests/node" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
echo "setup: ok"
