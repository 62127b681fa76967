#!/bin/sh
# runtime-packages.sh BINARY... -- prints the Debian packages that hold the shared libraries the
# binaries load (ldd, then one dpkg-query -S for all of them), one per line, sorted. Runs in the
# Dockerfile's build stage; the runtime stage installs exactly these, so each image carries only
# what its program needs. Fails when a library is unresolved or owned by no package.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for bin in "$@"; do
  if ldd "$bin" | grep -q 'not found'; then
    echo "runtime-packages.sh: $bin has unresolved libraries:" >&2
    ldd "$bin" | grep 'not found' >&2
    exit 1
  fi
  ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
done | sort -u >"$tmp/libs"
# Debian 12 is usr-merged: dpkg knows each file under one of its names (/lib/... or
# /usr/lib/..., the symlink or its target). Ask for every variant at once.
while read -r lib; do
  real=$(readlink -f "$lib")
  for p in "$lib" "$real"; do
    echo "$p"
    case "$p" in /usr/*) echo "${p#/usr}" ;; *) echo "/usr$p" ;; esac
  done
done <"$tmp/libs" | sort -u >"$tmp/paths"
xargs dpkg-query -S <"$tmp/paths" 2>/dev/null >"$tmp/owners" || true
while read -r lib; do
  real=$(readlink -f "$lib")
  pkg=$(awk -v a="$lib" -v b="$real" '
    { path = $0; sub(/^[^:]*(:[^:]*)?: /, "", path); pkg = $0; sub(/[:,].*$/, "", pkg) }
    { p = path; q = path; sub(/^\/usr/, "", q) }
    p == a || p == b || q == a || q == b || "/usr" q == a || "/usr" q == b { print pkg; exit }
  ' "$tmp/owners")
  if [ -z "$pkg" ]; then
    echo "runtime-packages.sh: no Debian package owns $lib" >&2
    exit 1
  fi
  echo "$pkg"
done <"$tmp/libs" | sort -u
