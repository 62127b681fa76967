#!/bin/sh
# runtime-packages.sh BINARY... -- prints the Debian packages that hold the shared libraries the
# binaries load (ldd, then dpkg -S), one per line, sorted. Runs in the Dockerfile's build stage;
# the runtime stage installs exactly these, so each image carries only what its program needs.
set -eu
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for bin in "$@"; do
  if ldd "$bin" | grep -q 'not found'; then
    echo "runtime-packages.sh: $bin has unresolved libraries:" >&2
    ldd "$bin" | grep 'not found' >&2
    exit 1
  fi
  ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
  while read -r lib; do
    real=$(readlink -f "$lib")
    pkg=""
    # Debian 12 is usr-merged: dpkg knows a file under one of its two names.
    for p in "$lib" "$real" "/usr$lib" "${lib#/usr}" "/usr$real" "${real#/usr}"; do
      pkg=$(dpkg -S "$p" 2>/dev/null | head -n1 | cut -d: -f1) && [ -n "$pkg" ] && break
    done
    if [ -z "$pkg" ]; then
      echo "runtime-packages.sh: no Debian package owns $lib (needed by $bin)" >&2
      exit 1
    fi
    echo "$pkg"
  done >>"$tmp"
done
sort -u "$tmp"
