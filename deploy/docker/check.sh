#!/usr/bin/env bash
# deploy/docker/check.sh -- builds engbot's four container images with a real Docker engine and
# checks each container the way Kubernetes will run it. One command, exit code 0 = all passed.
#
# With no registry and no installed engine on these machines, it:
#   1. downloads Debian's docker.io, containerd, runc and debootstrap (apt-get download) and
#      unpacks them with dpkg -x into the cache directory: nothing is installed system-wide;
#   2. starts a private dockerd (no bridge, no iptables, data root in the cache directory, sockets
#      in a temp directory), as a child of this script;
#   3. makes a Debian 12 base image with debootstrap (cached as a tarball) and imports it;
#   4. builds deploy/Dockerfile's four targets (BASE_IMAGE/BUILD_IMAGE = that local image), each
#      tagged engbot/<program>:<git describe>;
#   5. checks every image (numeric non-root USER, exec-form ENTRYPOINT, STOPSIGNAL, no build tools
#      inside, --version = the tag) and runs every container read-only, with all capabilities
#      dropped, no-new-privileges, on the host's loopback: gRPC health ("" and "liveness") and a
#      reflection listing with buf curl, /healthz /readyz /metrics, JSON logs, a domain call, state
#      surviving a container restart, session backup + RESTORE_FROM into a new container, the
#      gateway wired to the three service containers, and SIGTERM -> exit 0 within the drain
#      grace. Every container gets the settings of the rendered prod overlay (its ConfigMap),
#      only the listen addresses and the Bot API URL changed to loopback ones;
#   6. removes its containers, stops the daemon, unmounts and deletes its temp directories.
#
# Usage: deploy/docker/check.sh [--skip-if-unavailable] [--cache DIR] [--programs "a b"]
#                               [--ref GIT_REF] [--jobs N] [--keep-images] [--fresh]
#   --skip-if-unavailable  exit 0 (printing SKIPPED and why) when the kernel lacks what any
#                          container engine needs: overlayfs, cgroups, namespaces, seccomp.
#                          Everything else (a download, a build, a check) failing is a failure.
#   --cache DIR            reused between runs: debs, unpacked engine, base image tarball and the
#                          engine's data root (so unchanged layers are not rebuilt).
#                          Default $ENGBOT_DOCKER_CACHE or /var/tmp/engbot-docker.
#   --programs LIST        check only these (default: session-svc cache-svc queue-svc gateway).
#   --ref GIT_REF          build that commit (git archive) instead of the working tree, e.g. a
#                          release tag, or HEAD while others edit the tree.
#   --keep-images          leave this run's engbot/* tags in the cache's image store.
#   --fresh                wipe the cached data root (layer cache) and base image first.
# Environment: BUF (buf CLI; default tests/node/node_modules/.bin/buf, installed with npm ci if
# missing), ENGBOT_BUILD (a host build tree whose bot-api-emulator the gateway check uses, if
# present; default build/).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${ENGBOT_DOCKER_CACHE:-/var/tmp/engbot-docker}
programs="session-svc cache-svc queue-svc gateway"
skip_ok=0
keep_images=0
fresh=0
jobs=2
ref=""

while [ $# -gt 0 ]; do
  case "$1" in
    --skip-if-unavailable) skip_ok=1 ;;
    --cache) cache=$2; shift ;;
    --programs) programs=$2; shift ;;
    --ref) ref=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    --keep-images) keep_images=1 ;;
    --fresh) fresh=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

t_start=$(date +%s)
passed=0
failed=0
failures=()
say() { printf '[docker-check %4ss] %s\n' "$(($(date +%s) - t_start))" "$*"; }
ok() { passed=$((passed + 1)); say "ok   $*"; }
bad() { failed=$((failed + 1)); failures+=("$*"); say "FAIL $*"; }
die() { say "ERROR $*"; exit 1; }
# Long commands run in the background and are waited for, so a SIGTERM/SIGINT (a CI timeout,
# Ctrl-C) reaches the trap at once and the cleanup runs.
bgwait() { "$@" & wait $!; }

# ---------------------------------------------------------------------------------------------
# 0. The kernel features any container engine needs. Only these may be skipped.
missing_features() {
  local m=()
  grep -qw overlay /proc/filesystems 2>/dev/null || modprobe overlay 2>/dev/null ||
    m+=("overlayfs")
  if [ ! -e /sys/fs/cgroup/cgroup.controllers ] && ! grep -q ' cgroup ' /proc/mounts; then
    m+=("cgroups (neither v2 nor v1 mounted)")
  fi
  unshare --mount --uts --ipc --net --pid --fork true 2>/dev/null || m+=("namespaces (unshare failed)")
  grep -Eq '^Seccomp:[[:space:]]*[0-9]' /proc/self/status || m+=("seccomp")
  [ "$(id -u)" -eq 0 ] || m+=("root (dockerd needs it)")
  # Test hook for the skip path: ENGBOT_DOCKER_PRETEND_MISSING=overlayfs acts as if it were.
  [ -z "${ENGBOT_DOCKER_PRETEND_MISSING:-}" ] || m+=("$ENGBOT_DOCKER_PRETEND_MISSING (pretended)")
  printf '%s\n' "${m[@]+"${m[@]}"}"
}
miss=$(missing_features)
if [ -n "$miss" ]; then
  if [ "$skip_ok" -eq 1 ]; then
    say "SKIPPED: this kernel/machine lacks: $(echo "$miss" | paste -sd, -)"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
  fi
  die "this kernel/machine lacks: $(echo "$miss" | paste -sd, -) (use --skip-if-unavailable to skip)"
fi

mkdir -p "$cache"
exec 9>"$cache/lock"
if ! flock -n 9; then
  say "another check holds $cache/lock; waiting (up to 30 min)"
  flock -w 1800 9 || die "could not lock $cache"
fi

# ---------------------------------------------------------------------------------------------
# 1. The engine, from Debian's packages, unpacked (not installed).
engine_pkgs="docker.io containerd runc debootstrap"
extra_libs="libdevmapper1.02.1 libseccomp2"
root="$cache/root"
if [ ! -x "$root/usr/sbin/dockerd" ] || [ ! -f "$root/.unpacked" ]; then
  say "downloading $engine_pkgs (apt-get download, into $cache/debs)"
  rm -rf "$cache/debs" "$root"
  mkdir -p "$cache/debs" "$root"
  dl() { (cd "$cache/debs" && bgwait apt-get download -q -o APT::Sandbox::User=root "$@" >/dev/null); }
  if ! dl $engine_pkgs $extra_libs; then
    say "apt-get download failed; running apt-get update once"
    bgwait apt-get update -qq >/dev/null
    dl $engine_pkgs $extra_libs || die "apt-get download $engine_pkgs failed"
  fi
  for f in "$cache"/debs/*.deb; do dpkg -x "$f" "$root"; done
  ls "$cache/debs" >"$root/.unpacked"
fi
engine_path="$root/usr/bin:$root/usr/sbin:$PATH"
engine_ld=""
if LD_LIBRARY_PATH= ldd "$root/usr/sbin/dockerd" "$root/usr/sbin/runc" | grep -c 'not found' >/dev/null; then
  engine_ld="$root/lib/x86_64-linux-gnu:$root/usr/lib/x86_64-linux-gnu"
fi
docker_bin="$root/usr/bin/docker"

buf=${BUF:-$repo/tests/node/node_modules/.bin/buf}
if [ ! -x "$buf" ]; then
  say "buf not found; npm ci in tests/node"
  (cd "$repo/tests/node" && bgwait npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
    die "npm ci in tests/node failed"
fi

# ---------------------------------------------------------------------------------------------
# 2. A private dockerd. Sockets and exec state in a short temp path; cleaned up on any exit.
run=$(mktemp -d /tmp/engbot-dk.XXXXXX)
export DOCKER_HOST="unix://$run/docker.sock"
dockerd_pid=""
host_procs=()
created_etc_docker=0
created_run_docker=0
[ -e /etc/docker ] || created_etc_docker=1
[ -e /run/docker ] || created_run_docker=1
docker() { PATH="$engine_path" "$docker_bin" "$@"; }

cleanup() {
  local rc=$?
  set +e
  if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
    local ids
    ids=$(docker ps -aq --filter "label=engbot.check=$$" 2>/dev/null)
    [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1
    if [ "$keep_images" -eq 0 ] && [ -n "${tag:-}" ]; then
      for p in $programs; do docker rmi "engbot/$p:$tag" >/dev/null 2>&1; done
    fi
    # Bound the layer cache kept between runs.
    docker builder prune -f --keep-storage 6gb >/dev/null 2>&1
    docker image prune -f >/dev/null 2>&1
    kill -TERM "$dockerd_pid" 2>/dev/null
    for _ in $(seq 1 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$dockerd_pid" 2>/dev/null
    wait "$dockerd_pid" 2>/dev/null
  fi
  for pid in "${host_procs[@]+"${host_procs[@]}"}"; do kill "$pid" 2>/dev/null; done
  # containerd shims re-parent themselves to init: end the ones of this run (their command
  # lines name this run's own temp directory) by pid.
  for d in /proc/[0-9]*; do
    if grep -qF "$run/" <<<"$(tr '\0' ' ' 2>/dev/null <"$d/cmdline")"; then kill -KILL "${d#/proc/}" 2>/dev/null; fi
  done
  # Mounts the engine left under this run's directories or the data root (none after a clean
  # shutdown), deepest first.
  awk '{print $2}' /proc/mounts | grep -E "^($run|$cache/data)(/|$)" | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$run"
  [ "$created_etc_docker" -eq 1 ] && rm -rf /etc/docker
  [ "$created_run_docker" -eq 1 ] && rm -rf /run/docker
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$fresh" -eq 1 ]; then
  say "--fresh: removing the cached data root and base image"
  rm -rf "$cache/data" "$cache/base"
fi
mkdir -p "$cache/data" "$run/exec"
# The identity key dockerd 20.10 keeps goes into this run's directory, not /etc/docker.
printf '{"deprecated-key-path": "%s"}\n' "$run/key.json" >"$run/daemon.json"
say "starting dockerd (data root $cache/data)"
PATH="$engine_path" LD_LIBRARY_PATH="$engine_ld" "$root/usr/sbin/dockerd" \
  --config-file "$run/daemon.json" --data-root "$cache/data" --exec-root "$run/exec" \
  -H "$DOCKER_HOST" --pidfile "$run/dockerd.pid" \
  --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
  --userland-proxy=false --storage-driver=overlay2 >"$run/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 1 120); do
  docker version >/dev/null 2>&1 && break
  kill -0 "$dockerd_pid" 2>/dev/null || break
  sleep 0.5
done
if ! docker version >/dev/null 2>&1; then
  tail -20 "$run/dockerd.log" >&2
  die "dockerd did not start (log above)"
fi
say "dockerd $(docker version -f '{{.Server.Version}}') up ($(docker info -f '{{.Driver}}, cgroup v{{.CgroupVersion}}'))"

# ---------------------------------------------------------------------------------------------
# 3. The base image: Debian 12 minbase from debootstrap, trimmed the way the -slim images are.
base_tag="engbot-local/debian:bookworm-slim"
base_tar="$cache/base/bookworm-slim.tar"
if [ ! -f "$base_tar" ]; then
  say "debootstrap bookworm (minbase) -> $base_tar (about a minute)"
  rm -rf "$cache/base"
  mkdir -p "$cache/base"
  rootfs="$run/rootfs"
  mirror=$(awk '/^URIs:/ {print $2; exit} /^deb / {print $2; exit}' \
    /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  DEBOOTSTRAP_DIR="$root/usr/share/debootstrap" PATH="$engine_path" \
    bgwait "$root/usr/sbin/debootstrap" --variant=minbase \
    --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
    bookworm "$rootfs" "$mirror" >"$run/debootstrap.log" 2>&1 ||
    { tail -20 "$run/debootstrap.log" >&2; die "debootstrap failed"; }
  # The same apt sources as this machine (Debian's own lines only), so images build here.
  rm -f "$rootfs/etc/apt/sources.list"
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/debian.sources"
  else
    echo "deb $mirror bookworm main" >"$rootfs/etc/apt/sources.list"
  fi
  if grep -rqs 'Check-Valid-Until "false"' /etc/apt/apt.conf.d/; then
    echo 'Acquire::Check-Valid-Until "false";' >"$rootfs/etc/apt/apt.conf.d/99engbot-local"
  fi
  # What Debian's -slim images leave out.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright -type f -delete 2>/dev/null || true
  rm -rf "$rootfs/usr/share/man/"* "$rootfs/usr/share/info/"* "$rootfs/usr/share/locale/"* \
    "$rootfs/var/lib/apt/lists/"* "$rootfs/var/cache/apt/"*.bin "$rootfs/var/log/"*.log
  tar -C "$rootfs" --numeric-owner -cf "$base_tar.tmp" .
  mv "$base_tar.tmp" "$base_tar"
  rm -rf "$rootfs"
fi
if ! docker image inspect "$base_tag" >/dev/null 2>&1; then
  say "importing $base_tag"
  bgwait docker import "$base_tar" "$base_tag" >/dev/null
fi

# ---------------------------------------------------------------------------------------------
# 4. Build: one target per program, one tag per image.
if [ -n "$ref" ]; then
  ctx="$run/src"
  mkdir -p "$ctx"
  git -C "$repo" archive "$ref" | tar -x -C "$ctx" || die "git archive $ref failed"
  version=$(git -C "$repo" describe --tags --always "$ref")
else
  ctx=$repo
  version=$(git -C "$repo" describe --tags --always --dirty 2>/dev/null || echo 0.0.0-nogit)
fi
dockerfile=${ENGBOT_DOCKERFILE:-$ctx/deploy/Dockerfile}
tag=$(printf '%s' "$version" | tr -c 'A-Za-z0-9_.-' '-' | cut -c1-120)
build_ok=()
for p in $programs; do
  t0=$(date +%s)
  say "building engbot/$p:$tag"
  if DOCKER_BUILDKIT=1 bgwait docker build --network=host --progress=plain \
      -f "$dockerfile" --target "$p" \
      --build-arg BASE_IMAGE="$base_tag" --build-arg BUILD_IMAGE="$base_tag" \
      --build-arg VERSION="$version" --build-arg JOBS="$jobs" \
      --label "engbot.check.run=$$" -t "engbot/$p:$tag" "$ctx" >"$run/build-$p.log" 2>&1; then
    ok "build engbot/$p:$tag ($(($(date +%s) - t0)) s, $(docker image inspect -f '{{.Size}}' "engbot/$p:$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
    build_ok+=("$p")
  else
    bad "build engbot/$p:$tag (last lines of the build log follow)"
    tail -30 "$run/build-$p.log" | sed 's/^/    /'
  fi
done

# ---------------------------------------------------------------------------------------------
# 5. Checks.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
bufcurl() { "$buf" curl --protocol grpc --http2-prior-knowledge --timeout 5s "$@"; }
grpc_call() { # grpc_call PORT SERVICE/METHOD JSON
  bufcurl --emit-defaults -d "$3" "http://127.0.0.1:$1/$2"
}
health() { grpc_call "$1" grpc.health.v1.Health/Check "{\"service\":\"$2\"}" 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin).get("status",""))' 2>/dev/null || true; }
wait_health() { # wait_health PORT SERVICE SECONDS CONTAINER
  local end=$(($(date +%s) + $3)) st=""
  while [ "$(date +%s)" -lt "$end" ]; do
    st=$(health "$1" "$2")
    [ "$st" = SERVING ] && return 0
    [ "$(docker inspect -f '{{.State.Running}}' "$4" 2>/dev/null)" = true ] || return 1
    sleep 0.3
  done
  return 1
}
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$1$2" || true; }
json_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

service_of() { # the gRPC service a program serves, from its proto
  case "$1" in
    session-svc) echo engbot.session.v1.SessionService ;;
    cache-svc) echo engbot.cache.v1.CacheService ;;
    queue-svc) echo engbot.queue.v1.QueueService ;;
    interop-server) echo grpc.testing.TestService ;; # the gRPC layer's conformance server
  esac
}

image_checks() { # static checks of one image
  local p=$1 img="engbot/$1:$tag" v
  [ "$(docker image inspect -f '{{.Config.User}}' "$img")" = "65532:65532" ] &&
    ok "$p: USER is numeric non-root 65532:65532" || bad "$p: USER is not 65532:65532"
  [ "$(docker image inspect -f '{{json .Config.Entrypoint}}' "$img")" = "[\"/usr/local/bin/$p\"]" ] &&
    [ "$(docker image inspect -f '{{json .Config.Cmd}}' "$img")" = "null" ] &&
    ok "$p: exec-form ENTRYPOINT [/usr/local/bin/$p], no shell, no CMD" ||
    bad "$p: ENTRYPOINT/CMD not the exec form of the program"
  [ "$(docker image inspect -f '{{.Config.StopSignal}}' "$img")" = "SIGTERM" ] &&
    ok "$p: STOPSIGNAL SIGTERM" || bad "$p: STOPSIGNAL is not SIGTERM"
  # Nothing of the build stage in the runtime image.
  local cid files
  cid=$(docker create "$img" 2>/dev/null)
  files=$(docker export "$cid" | tar -t)
  docker rm "$cid" >/dev/null
  if grep -Eq '^(usr/bin/(cc|gcc|cmake|protoc|protoc-c|git|make)|usr/include/grpc/)$' <<<"$files"; then
    bad "$p: build tools or headers in the runtime image"
  else
    ok "$p: no compiler, cmake, protoc, git or headers in the runtime image ($(echo "$files" | wc -l) paths)"
  fi
  # The runbook's helper pod runs `sleep` from the service's image and `kubectl cp` runs `tar`.
  if docker run --rm --read-only --cap-drop=ALL --network=none --entrypoint sleep "$img" 0 2>/dev/null &&
     docker run --rm --read-only --cap-drop=ALL --network=none --entrypoint tar "$img" --version >/dev/null 2>&1; then
    ok "$p: sleep and tar run from the image (runbook helper pod, kubectl cp)"
  else
    bad "$p: sleep or tar missing from the image"
  fi
  v=$(docker run --rm --read-only --cap-drop=ALL --network=none "$img" --version 2>&1 | head -1)
  case "$v" in
    *"$version"*) ok "$p: --version says $v" ;;
    *) bad "$p: --version says '$v', expected $version" ;;
  esac
}

# The settings a program gets in production: the data of its ConfigMap in the rendered prod
# overlay, one env file per program (settings-<program>.env).
prod_settings() {
  kubectl kustomize "$ctx/deploy/kubernetes/overlays/prod" >"$run/prod.yaml" || return 1
  python3 - "$run/prod.yaml" "$run" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
cms = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
for d in docs:
    if d["kind"] != "Deployment" or d["metadata"]["name"].endswith("-canary"):
        continue
    for c in d["spec"]["template"]["spec"]["containers"]:
        env = {}
        for ef in c.get("envFrom", []):
            env.update(cms.get(ef.get("configMapRef", {}).get("name"), {}))
        with open(f"{sys.argv[2]}/settings-{c['name']}.env", "w") as f:
            for k, v in env.items():
                f.write(f"{k}={v}\n")
PY
}

start() { # start NAME IMAGE [-e KEY=VALUE | docker run args...]: read-only, no capabilities,
          # loopback; the program's prod settings with the -e values replacing theirs
  local name=$1 img=$2 prog env args=()
  shift 2
  prog=${img#engbot/}
  prog=${prog%%:*}
  env="$run/env-$name.list"
  cp "$run/settings-$prog.env" "$env" 2>/dev/null || : >"$env"
  while [ $# -gt 0 ]; do
    if [ "$1" = -e ]; then
      grep -v "^${2%%=*}=" "$env" >"$env.tmp" || true
      mv "$env.tmp" "$env"
      printf '%s\n' "$2" >>"$env"
      shift 2
    else
      args+=("$1")
      shift
    fi
  done
  docker run -d --name "$name" --label "engbot.check=$$" --network=host --read-only \
    --cap-drop=ALL --security-opt=no-new-privileges --pids-limit=512 --memory=512m \
    --env-file "$env" "${args[@]+"${args[@]}"}" "$img" >/dev/null
}

grace_ms_of() { # the DRAIN_GRACE a container runs with, in ms (default 10s)
  local v
  v=$(docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$1" | sed -n 's/^DRAIN_GRACE=//p')
  v=${v:-10s}
  case "$v" in
    *ms) echo "${v%ms}" ;;
    *s) echo $((${v%s} * 1000)) ;;
    *m) echo $((${v%m} * 60000)) ;;
    *) echo "$v" ;;
  esac
}

stop_check() { # stop_check P CONTAINER: SIGTERM (the image's STOPSIGNAL), exit 0 within the grace
  local p=$1 c=$2 t0 t1 rc grace
  grace=$(grace_ms_of "$c")
  t0=$(date +%s%N)
  docker stop -t $((grace / 1000 + 10)) "$c" >/dev/null
  t1=$(date +%s%N)
  rc=$(docker inspect -f '{{.State.ExitCode}}' "$c")
  local ms=$(((t1 - t0) / 1000000))
  if [ "$rc" = 0 ] && [ "$ms" -le $((grace + 2000)) ]; then
    ok "$p: SIGTERM -> exit 0 in ${ms} ms (DRAIN_GRACE ${grace} ms)"
  else
    bad "$p: SIGTERM -> exit code $rc after ${ms} ms (DRAIN_GRACE ${grace} ms)"
    docker logs --tail 15 "$c" 2>&1 | sed 's/^/    /'
  fi
  grep -q '"msg":"signal received: draining"' <<<"$(docker logs "$c" 2>&1)" &&
    ok "$p: logged the drain" || bad "$p: no drain log line"
}

runtime_checks() { # runtime_checks P GPORT HPORT CONTAINER
  local p=$1 gp=$2 hp=$3 c=$4 svc list pid uid
  svc=$(service_of "$p")
  if wait_health "$gp" "" 60 "$c"; then
    ok "$p: gRPC health \"\" SERVING (read-only root, cap-drop ALL, non-root, loopback)"
  else
    bad "$p: gRPC health \"\" not SERVING within 60 s"
    docker logs --tail 20 "$c" 2>&1 | sed 's/^/    /'
    return
  fi
  [ "$(health "$gp" liveness)" = SERVING ] && ok "$p: gRPC health \"liveness\" SERVING" ||
    bad "$p: gRPC health \"liveness\" not SERVING"
  list=$(bufcurl --list-services "http://127.0.0.1:$gp" 2>&1 || true)
  if grep -qx "$svc" <<<"$list" && grep -qx grpc.health.v1.Health <<<"$list" &&
     grep -qx grpc.reflection.v1.ServerReflection <<<"$list"; then
    ok "$p: reflection lists $(echo "$list" | paste -sd' ' -)"
  else
    bad "$p: reflection listing lacks $svc: $list"
  fi
  [ "$(http_code "$hp" /healthz)" = 200 ] && [ "$(http_code "$hp" /readyz)" = 200 ] &&
    ok "$p: HTTP /healthz and /readyz 200" || bad "$p: /healthz or /readyz not 200"
  grep -q "^engbot_build_info{.*version=\"$version\"" <<<"$(curl -s --max-time 5 "http://127.0.0.1:$hp/metrics")" &&
    ok "$p: /metrics has engbot_build_info version=$version" || bad "$p: /metrics lacks engbot_build_info for $version"
  docker logs "$c" 2>&1 | python3 -c '
import json, sys
n = 0
for l in sys.stdin:
    json.loads(l); n += 1
assert n > 0' 2>/dev/null && ok "$p: logs are JSON lines" || bad "$p: logs are not JSON lines"
  pid=$(docker inspect -f '{{.State.Pid}}' "$c")
  uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
  caps=$(awk '/^CapEff:/ {print $2}' "/proc/$pid/status")
  [ "$uid" = 65532 ] && [ "$caps" = 0000000000000000 ] &&
    ok "$p: process runs as uid 65532 with no effective capabilities" ||
    bad "$p: process uid $uid CapEff $caps"
}

# session-svc: a session written, the container restarted, the session still there; a Backup
# restored into a fresh container with RESTORE_FROM.
session_domain() { # P GPORT HPORT DATA
  local p=$1 gp=$2 hp=$3 data=$4 c="engbot-check-$1-$$" out path
  out=$(grpc_call "$gp" engbot.session.v1.SessionService/TouchSession '{"chat_id":"-1001234567890123","user_id":"4242"}' 2>&1) &&
    ok "$p: TouchSession (64-bit chat id)" || { bad "$p: TouchSession: $out"; return; }
  out=$(grpc_call "$gp" engbot.session.v1.SessionService/Backup '{"name":"docker-check.snap"}' 2>&1) &&
    ok "$p: Backup -> $(echo "$out" | json_field 'd.get("path")')" || bad "$p: Backup: $out"
  # `kubectl cp` runs tar in the container: the runbook copies backups off the volume that way.
  if grep -qx docker-check.snap <<<"$(docker exec "$c" tar -cf - -C /var/lib/engbot/backups docker-check.snap 2>/dev/null | tar -t)"; then
    ok "$p: the backup can be copied out with tar in the container (what kubectl cp does)"
  else
    bad "$p: tar in the container cannot read the backup (kubectl cp would fail)"
  fi
  stop_check "$p" "$c"
  docker start "$c" >/dev/null
  if wait_health "$gp" "" 60 "$c"; then
    out=$(grpc_call "$gp" engbot.session.v1.SessionService/GetSession '{"chat_id":"-1001234567890123"}' 2>&1 || true)
    grep -q '"4242"' <<<"$out" && ok "$p: session survived the container restart" ||
      bad "$p: session lost across restart: $out"
  else
    bad "$p: not SERVING after restart"
  fi
  # Restore into a new, empty data volume.
  local data2="$run/data-$p-restored" gp2 hp2 c2="engbot-check-$p-restored-$$"
  mkdir -p "$data2/backups"
  cp "$data/backups/docker-check.snap" "$data2/backups/" 2>/dev/null || true
  chown -R 65532:65532 "$data2"
  gp2=$(free_port); hp2=$(free_port)
  start "$c2" "engbot/$p:$tag" -e GRPC_LISTEN="127.0.0.1:$gp2" -e HTTP_LISTEN="127.0.0.1:$hp2" \
    -e RESTORE_FROM=/var/lib/engbot/backups/docker-check.snap \
    --mount "type=bind,src=$data2,dst=/var/lib/engbot"
  if wait_health "$gp2" "" 60 "$c2"; then
    out=$(grpc_call "$gp2" engbot.session.v1.SessionService/GetSession '{"chat_id":"-1001234567890123"}' 2>&1 || true)
    grep -q '"4242"' <<<"$out" && ok "$p: Backup restored into a new container with RESTORE_FROM" ||
      bad "$p: restored service lacks the session: $out"
  else
    bad "$p: service started with RESTORE_FROM not SERVING"
    docker logs --tail 10 "$c2" 2>&1 | sed 's/^/    /'
  fi
  docker rm -f "$c2" >/dev/null
}

# queue-svc: an enqueued job survives a container restart; the data directory copied while the
# service is stopped (the runbook's queue backup) restores into a new container.
queue_domain() { # P GPORT HPORT DATA
  local p=$1 gp=$2 hp=$3 data=$4 c="engbot-check-$1-$$" out
  out=$(grpc_call "$gp" engbot.queue.v1.QueueService/Enqueue \
    '{"lane_key":"-1001234567890123","lane_kind":"LANE_KIND_GROUP","method":"sendMessage","payload":"e30=","dedupe_key":"docker-check","timeout_ms":600000}' 2>&1) &&
    ok "$p: Enqueue" || { bad "$p: Enqueue: $out"; return; }
  stop_check "$p" "$c"
  tar -C "$data" -cf "$run/queue-backup.tar" .
  docker start "$c" >/dev/null
  if wait_health "$gp" "" 60 "$c"; then
    out=$(grpc_call "$gp" engbot.queue.v1.QueueService/PeekLane '{"lane_key":"-1001234567890123"}' 2>&1 || true)
    grep -q 'docker-check' <<<"$out" && ok "$p: job survived the container restart" ||
      bad "$p: job lost across restart: $out"
  else
    bad "$p: not SERVING after restart"
  fi
  local data2="$run/data-$p-restored" gp2 hp2 c2="engbot-check-$p-restored-$$"
  mkdir -p "$data2" && tar -C "$data2" -xf "$run/queue-backup.tar" && chown -R 65532:65532 "$data2"
  gp2=$(free_port); hp2=$(free_port)
  start "$c2" "engbot/$p:$tag" -e GRPC_LISTEN="127.0.0.1:$gp2" -e HTTP_LISTEN="127.0.0.1:$hp2" \
    --mount "type=bind,src=$data2,dst=/var/lib/engbot"
  if wait_health "$gp2" "" 60 "$c2"; then
    out=$(grpc_call "$gp2" engbot.queue.v1.QueueService/PeekLane '{"lane_key":"-1001234567890123"}' 2>&1 || true)
    grep -q 'docker-check' <<<"$out" && ok "$p: copied data directory restored into a new container" ||
      bad "$p: restored queue lacks the job: $out"
  else
    bad "$p: restored queue not SERVING"
  fi
  docker rm -f "$c2" >/dev/null
}

# cache-svc: the read-only files volume is listed; the file_id store is written to DATA_DIR.
cache_domain() { # P GPORT HPORT DATA
  local p=$1 gp=$2 out
  out=$(grpc_call "$gp" engbot.cache.v1.CacheService/ListFolder '{}' 2>&1 || true)
  grep -q 'readme.txt' <<<"$out" && ok "$p: ListFolder sees the read-only files volume" ||
    bad "$p: ListFolder: $out"
}

declare -A gports hports
if prod_settings; then
  ok "containers get the settings of the rendered prod overlay ($(ls "$run"/settings-*.env | wc -l) programs)"
else
  bad "cannot render deploy/kubernetes/overlays/prod for the containers' settings"
fi
for p in "${build_ok[@]+"${build_ok[@]}"}"; do
  image_checks "$p"
done

# The three services, each in its own container.
for p in "${build_ok[@]+"${build_ok[@]}"}"; do
  [ "$p" = gateway ] && continue
  data="$run/data-$p"
  mkdir -p "$data" && chown 65532:65532 "$data" && chmod 0700 "$data"
  gp=$(free_port); hp=$(free_port)
  gports[$p]=$gp; hports[$p]=$hp
  extra=()
  if [ "$p" = cache-svc ]; then
    files="$run/files"
    mkdir -p "$files/docs" && echo "engbot docker check" >"$files/readme.txt" &&
      echo "spec" >"$files/docs/spec.txt" && chmod -R a+rX "$files"
    extra+=(--mount "type=bind,src=$files,dst=/srv/engbot/files,readonly")
  fi
  c="engbot-check-$p-$$"
  say "starting $c (gRPC 127.0.0.1:$gp, HTTP 127.0.0.1:$hp)"
  start "$c" "engbot/$p:$tag" -e GRPC_LISTEN="127.0.0.1:$gp" -e HTTP_LISTEN="127.0.0.1:$hp" \
    --mount "type=bind,src=$data,dst=/var/lib/engbot" "${extra[@]+"${extra[@]}"}"
  runtime_checks "$p" "$gp" "$hp" "$c"
  case "$p" in
    session-svc) session_domain "$p" "$gp" "$hp" "$data" ;;
    queue-svc) queue_domain "$p" "$gp" "$hp" "$data" ;;
    cache-svc) cache_domain "$p" "$gp" "$hp" "$data" ;;
  esac
done

# The gateway, wired to the service containers and (when a host build has it) the Bot API
# emulator, its token from a read-only file as a Kubernetes Secret would mount it. With all
# three services up it also runs the runbook's canary: a second session-svc container serves
# the chats in CANARY_CHAT_IDS, and the gateway's metrics show the split.
emu_tx() { # emu_tx CHAT: the emulator's transcript of the bot's actions in one chat
  curl -s --max-time 15 "http://127.0.0.1:$emu_port/control/transcript?chat_id=$1&since=0&wait_ms=10000"
}
if grep -qx gateway <<<"$(printf '%s\n' "${build_ok[@]+"${build_ok[@]}"}")"; then
  p=gateway c="engbot-check-gateway-$$"
  hp=$(free_port)
  secret="$run/secret"
  mkdir -p "$secret"
  token="123456:docker-check-token-$$-must-not-leak"
  printf '%s' "$token" >"$secret/bot-token"
  chgrp 65532 "$secret/bot-token" && chmod 0440 "$secret/bot-token"
  gdata="$run/data-gateway"
  mkdir -p "$gdata" && chown 65532:65532 "$gdata"
  # The token file where the Deployment mounts the Secret (prod's BOT_TOKEN_FILE).
  args=(-e HTTP_LISTEN="127.0.0.1:$hp"
        --mount "type=bind,src=$secret,dst=/var/run/secrets/engbot,readonly"
        --mount "type=bind,src=$gdata,dst=/var/lib/engbot")
  for s in session-svc cache-svc queue-svc; do
    [ -n "${gports[$s]:-}" ] || continue
    var=$(echo "${s%-svc}" | tr a-z A-Z)_SVC_ADDR
    args+=(-e "$var=127.0.0.1:${gports[$s]}")
  done
  emu="${ENGBOT_BUILD:-$repo/build}/bin/bot-api-emulator"
  emu_port=""
  if [ -x "$emu" ]; then
    emu_port=$(free_port)
    "$emu" --http-listen "127.0.0.1:$emu_port" --bot-token "$token" >"$run/emulator.log" 2>&1 &
    host_procs+=($!)
    args+=(-e TELEGRAM_API_URL="http://127.0.0.1:$emu_port")
  else
    say "no $emu on the host: the gateway runs without a Bot API (no end-to-end or canary check)"
    args+=(-e TELEGRAM_API_URL="http://127.0.0.1:9")
  fi
  e2e=0
  [ -n "$emu_port" ] && [ "${#gports[@]}" -eq 3 ] && e2e=1
  canary_chat=777000777 stable_chat=424242
  if [ "$e2e" = 1 ]; then
    cdata="$run/data-session-svc-canary"
    mkdir -p "$cdata" && chown 65532:65532 "$cdata"
    cgp=$(free_port); chp=$(free_port)
    start "engbot-check-session-svc-canary-$$" "engbot/session-svc:$tag" \
      -e GRPC_LISTEN="127.0.0.1:$cgp" -e HTTP_LISTEN="127.0.0.1:$chp" \
      --mount "type=bind,src=$cdata,dst=/var/lib/engbot"
    wait_health "$cgp" "" 60 "engbot-check-session-svc-canary-$$" ||
      bad "session-svc canary container not SERVING"
    args+=(-e SESSION_SVC_CANARY_ADDR="127.0.0.1:$cgp" -e CANARY_CHAT_IDS="$canary_chat")
  fi
  start "$c" "engbot/$p:$tag" "${args[@]}"
  end=$(($(date +%s) + 30))
  while [ "$(date +%s)" -lt "$end" ] && [ "$(http_code "$hp" /healthz)" != 200 ]; do sleep 0.3; done
  [ "$(http_code "$hp" /healthz)" = 200 ] && ok "gateway: /healthz 200 (read-only, cap-drop ALL, non-root)" ||
    { bad "gateway: /healthz not 200"; docker logs --tail 20 "$c" 2>&1 | sed 's/^/    /'; }
  if [ "$e2e" = 1 ]; then
    end=$(($(date +%s) + 30))
    while [ "$(date +%s)" -lt "$end" ] && [ "$(http_code "$hp" '/readyz?strict=1')" != 200 ]; do sleep 0.5; done
    [ "$(http_code "$hp" '/readyz?strict=1')" = 200 ] &&
      ok "gateway: /readyz?strict=1 200: every dependency reachable between containers" ||
      bad "gateway: /readyz?strict=1 $(http_code "$hp" '/readyz?strict=1') with every dependency up"
    for chat in $stable_chat $canary_chat; do
      curl -s --max-time 5 -XPOST "http://127.0.0.1:$emu_port/control/message" \
        -d "{\"chat_id\":$chat,\"user_id\":$chat,\"text\":\"/start\"}" >/dev/null
    done
    for chat in $stable_chat $canary_chat; do
      tx=$(emu_tx "$chat")
      grep -q '"method":"sendMessage"' <<<"$tx" && ok "end to end: /start in chat $chat answered (emulator -> gateway -> services -> emulator)" ||
        bad "end to end: no reply in chat $chat: $tx"
    done
    has_session() { grpc_call "$1" engbot.session.v1.SessionService/GetSession "{\"chat_id\":\"$2\"}" >/dev/null 2>&1; }
    if has_session "$cgp" $canary_chat && ! has_session "$cgp" $stable_chat &&
       has_session "${gports[session-svc]}" $stable_chat && ! has_session "${gports[session-svc]}" $canary_chat; then
      ok "canary: chat $canary_chat's session is on the canary session-svc, chat $stable_chat's on stable"
    else
      bad "canary: sessions not split by CANARY_CHAT_IDS"
    fi
    m=$(curl -s --max-time 5 "http://127.0.0.1:$hp/metrics")
    canary_updates=$(echo "$m" | awk '/^engbot_gateway_updates_by_track_total\{track="canary"\}/ {print $2}')
    canary_calls=$(echo "$m" | awk '/^engbot_gateway_dependency_calls_total\{.*dependency="session".*track="canary".*result="ok"/ {print $2}')
    if [ "${canary_updates:-0}" != 0 ] && [ "${canary_calls:-0}" != 0 ]; then
      ok "canary metrics: engbot_gateway_updates_by_track_total{track=\"canary\"} $canary_updates, session calls to the canary ok $canary_calls"
    else
      bad "canary metrics missing: updates_by_track canary='$canary_updates', dependency calls canary ok='$canary_calls'"
    fi
  fi
  grep -q "^engbot_build_info{.*version=\"$version\"" <<<"$(curl -s --max-time 5 "http://127.0.0.1:$hp/metrics")" &&
    ok "gateway: /metrics has engbot_build_info version=$version" || bad "gateway: /metrics lacks engbot_build_info"
  pid=$(docker inspect -f '{{.State.Pid}}' "$c")
  [ "$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")" = 65532 ] && ok "gateway: runs as uid 65532" ||
    bad "gateway: not uid 65532"
  stop_check gateway "$c"
  if grep -qF "${token#*:}" <<<"$(docker logs "$c" 2>&1)"; then bad "gateway: the bot token appears in its logs"
  else ok "gateway: the bot token never appears in its logs"; fi
  [ "$e2e" = 1 ] && stop_check session-svc-canary "engbot-check-session-svc-canary-$$"
fi

# The services last: SIGTERM each (the gateway is gone, nothing in flight).
for p in "${build_ok[@]+"${build_ok[@]}"}"; do
  [ "$p" = gateway ] && continue
  stop_check "$p" "engbot-check-$p-$$"
done

elapsed=$(($(date +%s) - t_start))
say "done in ${elapsed} s"
if [ "$failed" -gt 0 ]; then
  printf 'failed: %s\n' "${failures[@]}"
fi
echo "docker-check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
