#!/bin/sh
# build-packages.sh FILE -- prints the Debian packages of the "# build" section of
# deploy/packages.txt (from that header to the next "# ..." header), one per line.
# Used by the Dockerfile's build stage so the image builds with exactly the README's packages.
# Fails if the section is missing or empty, so a reorganised list cannot silently
# produce an image built with nothing.
set -eu
f=${1:?usage: build-packages.sh deploy/packages.txt}
out=$(awk '
  /^#[[:space:]]*build([[:space:]]|$)/ { on = 1; next }
  /^#/ { if (on) exit; next }
  on && NF { print $1 }
' "$f")
if [ -z "$out" ]; then
  echo "build-packages.sh: no '# build' section in $f" >&2
  exit 1
fi
printf '%s\n' "$out"
