#!/usr/bin/env bash
# set-image.sh OVERLAY IMAGE TAG -- moves one image's tag in an overlay's kustomization.yaml
# (the `newTag:` under `- name: IMAGE` in `images:`), leaving every other line as it is, so the
# commit that releases one service touches one line and `git revert` of it undoes exactly that.
#   deploy/set-image.sh deploy/kubernetes/overlays/prod engbot/session-svc 0.1.1
#   deploy/set-image.sh deploy/kubernetes/overlays/prod engbot/session-svc-canary 0.1.2
set -euo pipefail
if [ $# -ne 3 ]; then
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
file="$1/kustomization.yaml"
image=$2
tag=$3
[ -f "$file" ] || { echo "set-image.sh: no $file" >&2; exit 2; }
if ! printf '%s' "$tag" | grep -Eq '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$' || [ "$tag" = latest ]; then
  echo "set-image.sh: '$tag' is not an immutable image tag" >&2
  exit 2
fi
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
awk -v image="$image" -v tag="$tag" '
  # `- name: IMAGE` opens the entry; its newTag line (before the next `- ` item) is replaced.
  /^[[:space:]]*- name:[[:space:]]*/ {
    n = $0; sub(/^[[:space:]]*- name:[[:space:]]*/, "", n); sub(/[[:space:]]*(#.*)?$/, "", n)
    inside = (n == image)
  }
  inside && /^[[:space:]]*newTag:/ {
    match($0, /^[[:space:]]*newTag:/)
    print substr($0, 1, RLENGTH) " " tag
    done++; inside = 0; next
  }
  { print }
  END { if (done != 1) exit 3 }
' "$file" >"$tmp" || { echo "set-image.sh: no images entry with name $image and a newTag in $file" >&2; exit 1; }
cat "$tmp" >"$file"
echo "$file: $image -> $tag"
