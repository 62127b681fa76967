#!/usr/bin/env bash
# deploy/check-manifests.sh -- everything about deploy/ that can be checked with no cluster.
# One command; exit code 0 = every check passed. CI runs it (tests/run-all.sh).
#
#   1. yamllint over deploy/ (deploy/.yamllint)
#   2. every kustomize root renders (overlays/*, examples/*), twice identically
#   3. every render validates against the Kubernetes schemas, unknown fields rejected
#      (tools/k8s-validate.mjs), and passes the policy (tools/k8s-policy.mjs)
#   4. the validators fail where they must: tools/testdata/policy-bad (one breakage per policy
#      rule) and tools/testdata/schema-bad
#   5. settings passed to each program are settings it has; alert rules use metrics the
#      programs export, pass `promtool check rules` and their unit tests
#   6. independence: moving one service's image tag, or one setting, changes that service's
#      objects only; the runbook's label selectors pick exactly one service / the canary
#   7. proto/: `buf lint`, and `buf breaking` against the last release (see BUF_AGAINST)
#
# Environment:
#   BUF_AGAINST   git ref that `buf breaking` compares proto/ with. Default: the newest tag
#                 v*, once one exists; before the first release, the first commit that added
#                 proto/ (the interface the services were written against).
#   KEEP_OUT=1    keep the renders in deploy/.out/ (otherwise a temp dir, removed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
k8s="$here/kubernetes"
tools="$here/tools"
t_start=$(date +%s)
passed=0
failed=0
failures=()
say() { printf '[check-manifests %3ss] %s\n' "$(($(date +%s) - t_start))" "$*"; }
ok() { passed=$((passed + 1)); say "ok   $*"; }
bad() { failed=$((failed + 1)); failures+=("$*"); say "FAIL $*"; }
indent() { sed 's/^/      /'; }

if [ "${KEEP_OUT:-}" = 1 ]; then
  out="$here/.out"
  rm -rf "$out"
  mkdir -p "$out"
else
  out=$(mktemp -d /tmp/engbot-manifests.XXXXXX)
  trap 'rm -rf "$out"' EXIT
fi

# ---- tools: kubectl (preinstalled), yamllint + promtool (deploy/packages.txt), node tools
for t in kubectl yamllint promtool node npm git; do
  command -v "$t" >/dev/null || { say "ERROR: $t not found (deploy/setup-debian.sh installs what is missing)"; exit 1; }
done
if [ ! -d "$tools/node_modules/kubernetes-models" ] || [ "$tools/package-lock.json" -nt "$tools/node_modules/.package-lock.json" ]; then
  say "npm ci in deploy/tools (kubernetes-models, @kubernetes/client-node, yaml)"
  (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
buf="$repo/tests/node/node_modules/.bin/buf"
if [ ! -x "$buf" ]; then
  say "npm ci in tests/node (buf)"
  (cd "$repo/tests/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
say "kubectl $(kubectl version --client -o json 2>/dev/null | sed -n 's/.*"gitVersion": "\([^"]*\)".*/\1/p' | head -1)," \
  "kustomize $(kubectl version --client -o json 2>/dev/null | sed -n 's/.*"kustomizeVersion": "\([^"]*\)".*/\1/p'), $(yamllint --version)," \
  "$(promtool --version 2>&1 | head -1 | cut -d' ' -f1-3), node $(node --version), buf $("$buf" --version)"

# ---- 1. yamllint
if (cd "$here" && yamllint -c .yamllint -f parsable .) >"$out/yamllint.txt" 2>&1; then
  ok "yamllint deploy/"
else
  bad "yamllint deploy/"
  indent <"$out/yamllint.txt"
fi

# ---- 2. render
roots=()
for d in "$k8s"/overlays/* "$k8s"/examples/*; do [ -f "$d/kustomization.yaml" ] && roots+=("$d"); done
renders=()
for d in "${roots[@]}"; do
  rel=${d#"$k8s/"}
  f="$out/render-$(echo "$rel" | tr / _).yaml"
  if kubectl kustomize "$d" >"$f" 2>"$out/err.txt" && kubectl kustomize "$d" | cmp -s - "$f"; then
    ok "render $rel ($(grep -c '^kind:' "$f") objects)"
    renders+=("$f")
  else
    bad "render $rel"
    indent <"$out/err.txt"
  fi
done

# ---- 3. schema + strict fields, policy (one node process each for all renders)
if node "$tools/k8s-validate.mjs" "${renders[@]}" >"$out/v.txt" 2>&1; then
  ok "schema+strict, ${#renders[@]} renders: $(tail -1 "$out/v.txt" | sed 's/^k8s-validate: //') objects"
else
  bad "schema+strict"
  grep -v '^ok' "$out/v.txt" | indent
fi
if node "$tools/k8s-policy.mjs" "${renders[@]}" >"$out/p.txt" 2>&1; then
  ok "policy, ${#renders[@]} renders: $(tail -1 "$out/p.txt" | sed 's/^k8s-policy: //')"
else
  bad "policy"
  grep -v '^ok' "$out/p.txt" | indent
fi

# The runbook's helper pod, filled in the way the runbook does it.
sed -e "s|IMAGE|registry.example.com/engbot/queue-svc:0.1.0|" -e "s|CLAIM|queue-svc-data|" \
  "$k8s/ops/data-pod.yaml" >"$out/data-pod.yaml"
if node "$tools/k8s-validate.mjs" "$out/data-pod.yaml" >"$out/v.txt" 2>&1; then
  ok "schema+strict ops/data-pod.yaml (the runbook's backup helper pod)"
else
  bad "schema+strict ops/data-pod.yaml"
  indent <"$out/v.txt"
fi

# ---- 4. the validators reject bad manifests
badr="$out/policy-bad.yaml"
if kubectl kustomize "$tools/testdata/policy-bad" >"$badr" 2>"$out/err.txt"; then
  { echo "---"; cat "$tools/testdata/policy-bad/after-render.yaml"; } >>"$badr"
  if node "$tools/k8s-policy.mjs" "$badr" >"$out/p.txt" 2>&1; then
    bad "policy accepted tools/testdata/policy-bad"
  else
    missing=()
    while read -r rule; do
      case "$rule" in ''|'#'*) continue ;; esac
      grep -qF "[$rule]" "$out/p.txt" || missing+=("$rule")
    done <"$tools/testdata/policy-bad/expected-rules.txt"
    if [ "${#missing[@]}" -eq 0 ]; then
      ok "policy rejects tools/testdata/policy-bad with all $(grep -cv '^#' "$tools/testdata/policy-bad/expected-rules.txt") rules ($(grep -c '^     \[' "$out/p.txt") findings)"
    else
      bad "policy on tools/testdata/policy-bad missed rules: ${missing[*]}"
      indent <"$out/p.txt"
    fi
  fi
else
  bad "render tools/testdata/policy-bad"
  indent <"$out/err.txt"
fi
if node "$tools/k8s-validate.mjs" "$tools/testdata/schema-bad/rendered.yaml" >"$out/v.txt" 2>&1; then
  bad "k8s-validate accepted tools/testdata/schema-bad"
else
  missing=()
  while read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    grep -qF -- "$line" "$out/v.txt" || missing+=("$line")
  done <"$tools/testdata/schema-bad/expected-errors.txt"
  if [ "${#missing[@]}" -eq 0 ]; then
    ok "k8s-validate rejects tools/testdata/schema-bad (wrong types, unknown fields, CRD fields, unknown kind)"
  else
    bad "k8s-validate on tools/testdata/schema-bad missed: ${missing[*]}"
    indent <"$out/v.txt"
  fi
fi

# ---- 5. settings, metrics, alert rules
if node "$tools/k8s-crosscheck.mjs" settings "$repo" "${renders[@]}" >"$out/s.txt" 2>&1; then
  ok "settings: every ConfigMap key and env name is a setting of its program ($(grep -c '^ok' "$out/s.txt") containers)"
  grep '^skip' "$out/s.txt" | indent || true
else
  bad "settings unknown to their program"
  grep -v '^ok' "$out/s.txt" | indent
fi
rules_src="$k8s/components/monitoring/prometheusrule.yaml"
if node "$tools/k8s-crosscheck.mjs" metrics "$repo" "$rules_src" >"$out/m.txt" 2>&1; then
  ok "alert rules use only exported metrics ($(grep -c '^ok' "$out/m.txt") rules)"
else
  bad "alert rules use metrics no program exports"
  grep -v '^ok' "$out/m.txt" | indent
fi
mkdir -p "$out/rules"
node --input-type=module -e "
import fs from 'node:fs'; import YAML from '$tools/node_modules/yaml/dist/index.js';
const r = YAML.parse(fs.readFileSync(process.argv[1], 'utf8'));
fs.writeFileSync(process.argv[2], YAML.stringify({ groups: r.spec.groups }));
" "$rules_src" "$out/rules/alerts.rules.yaml"
cp "$k8s/components/monitoring/alerts-test.yaml" "$out/rules/"
if promtool check rules "$out/rules/alerts.rules.yaml" >"$out/r.txt" 2>&1 &&
   promtool test rules "$out/rules/alerts-test.yaml" >>"$out/r.txt" 2>&1; then
  ok "promtool check rules + test rules ($(sed -n 's/.*SUCCESS: \([0-9]*\) rules found.*/\1/p' "$out/r.txt") rules, components/monitoring/alerts-test.yaml)"
else
  bad "promtool on the alert rules"
  indent <"$out/r.txt"
fi

# ---- 6. one service moves alone
cp -r "$k8s" "$out/k8s-copy"
prod_new="$out/prod-tag.yaml"
if "$here/set-image.sh" "$out/k8s-copy/overlays/prod" engbot/session-svc 9.9.9 >/dev/null &&
   kubectl kustomize "$out/k8s-copy/overlays/prod" >"$prod_new" &&
   node "$tools/k8s-crosscheck.mjs" changed "$out/render-overlays_prod.yaml" "$prod_new" Deployment/session-svc >"$out/c.txt"; then
  ok "set-image.sh session-svc: $(sed 's/^ok   //' "$out/c.txt")"
else
  bad "moving session-svc's tag changed more than session-svc"
  indent <"$out/c.txt" 2>/dev/null || true
fi
rm -rf "$out/k8s-copy"
cp -r "$k8s" "$out/k8s-copy"
sed -i 's/^LOG_LEVEL=info$/LOG_LEVEL=debug/' "$out/k8s-copy/base/queue-svc/settings.env"
if kubectl kustomize "$out/k8s-copy/overlays/prod" >"$out/prod-setting.yaml" 2>"$out/err.txt" &&
   node "$tools/k8s-crosscheck.mjs" changed "$out/render-overlays_prod.yaml" "$out/prod-setting.yaml" \
     Deployment/queue-svc ConfigMap/queue-svc-settings >"$out/c.txt"; then
  ok "a queue-svc setting: $(sed 's/^ok   //' "$out/c.txt") (new ConfigMap name = new revision)"
else
  bad "changing a queue-svc setting changed more than queue-svc"
  cat "$out/c.txt" "$out/err.txt" 2>/dev/null | indent
fi
rm -rf "$out/k8s-copy"
one_svc=(ConfigMap/session-svc-settings Deployment/session-svc NetworkPolicy/session-svc
         PersistentVolumeClaim/session-svc-data PodDisruptionBudget/session-svc Service/session-svc
         Service/session-svc-headless ServiceAccount/session-svc)
if node "$tools/k8s-crosscheck.mjs" select "$out/render-overlays_prod.yaml" app.kubernetes.io/name=session-svc \
     "${one_svc[@]}" >"$out/c.txt"; then
  ok "runbook selector app.kubernetes.io/name=session-svc picks session-svc's 8 objects only"
else
  bad "label selector for one service"
  indent <"$out/c.txt"
fi
canary=(Deployment/session-svc-canary PersistentVolumeClaim/session-svc-data-canary
        PodDisruptionBudget/session-svc-canary Service/session-svc-canary
        Service/session-svc-headless-canary ServiceAccount/session-svc-canary)
if node "$tools/k8s-crosscheck.mjs" select "$out/render-examples_prod-canary-session-svc.yaml" engbot.dev/track=canary \
     "${canary[@]}" >"$out/c.txt"; then
  ok "runbook selector engbot.dev/track=canary picks the canary's 6 objects only"
else
  bad "label selector for the canary"
  indent <"$out/c.txt"
fi

# ---- 7. proto compatibility
against=${BUF_AGAINST:-}
if [ -z "$against" ]; then
  against=$(git -C "$repo" describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null || true)
  [ -n "$against" ] || against=$(git -C "$repo" log --diff-filter=A --format=%H --reverse -- proto | head -1)
fi
if (cd "$repo" && "$buf" lint) >"$out/b.txt" 2>&1; then
  ok "buf lint proto/"
else
  bad "buf lint proto/"
  indent <"$out/b.txt"
fi
if [ -z "$against" ]; then
  bad "buf breaking: no git ref to compare with (set BUF_AGAINST)"
elif mkdir -p "$out/against" && git -C "$repo" archive "$against" -- buf.yaml proto | tar -x -C "$out/against"; then
  if (cd "$repo" && "$buf" breaking --against "$out/against") >"$out/b.txt" 2>&1; then
    ok "buf breaking proto/ against $against ($(git -C "$repo" log -1 --format='%h %cs' "$against"))"
  else
    bad "buf breaking proto/ against $against: an incompatible change (see docs/deploy.md, 'Compatibility')"
    indent <"$out/b.txt"
  fi
else
  bad "buf breaking: cannot read proto/ at $against"
fi

# The gate itself: a field's type changed in a copy of proto/ must fail it.
mkdir -p "$out/broken" && cp -r "$repo/buf.yaml" "$repo/proto" "$out/broken/"
sess="$out/broken/proto/engbot/session/v1/session.proto"
if grep -q 'int64 chat_id = 1;' "$sess" && sed -i '0,/int64 chat_id = 1;/s//string chat_id = 1;/' "$sess"; then
  if (cd "$out/broken" && "$buf" breaking --against "$repo") >"$out/b.txt" 2>&1; then
    bad "buf breaking accepted a changed field type (int64 -> string)"
  else
    ok "buf breaking rejects a changed field type: $(head -1 "$out/b.txt" | cut -c1-100)"
  fi
else
  bad "buf breaking self-test: session.proto has no 'int64 chat_id = 1;' to change"
fi

say "done in $(($(date +%s) - t_start)) s"
[ "$failed" -eq 0 ] || printf 'failed: %s\n' "${failures[@]}"
echo "check-manifests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
