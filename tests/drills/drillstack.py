"""drillstack -- the whole engbot deployment for the drills: the gateway's e2e Stack
(tests/gateway/gwstack.py) with production-like settings, the drills' file catalogue, restarts
with kill -9 / SIGTERM on the same port and data dir, binaries from another build tree (the
rollback drill), RSS sampling of every process, and tmpfs data dirs (the disk-full drill).

Differences from the e2e Stack's defaults, and why:
- queue-svc runs with Telegram's real pace (30/s overall, 1/s per chat with a burst of 3,
  20/min per group) and the emulator enforces the same limits: a drill must show that the bot
  stays within them, not that it can go fast.
- the gateway uses its own defaults (breakers, reconnect, poll timeout) except LEASE_TIME=10s:
  after a gateway kill -9 the jobs it had leased come back after LEASE_TIME (default 2 min);
  10 s keeps a drill short. docs/drills.md says what the user sees with the default.
"""

import hashlib
import os
import signal
import subprocess
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "gateway"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import engbot_test  # noqa: E402
import gwstack  # noqa: E402
from engbot_test import Proc, http_get, metric, wait_until  # noqa: E402

SVC_BIN = {"session": "session-svc", "cache": "cache-svc", "queue": "queue-svc"}

# Every program a drill starts dies with the drill (PR_SET_PDEATHSIG): a drill killed by
# ctest's timeout must not leave a stack running on a shared machine. The harness's Proc
# starts programs with subprocess.Popen; its module gets a Popen that runs each program under
# util-linux's `setpriv --pdeathsig KILL`, which sets the signal and execs the program (same
# pid). Not with preexec_fn: that makes Python fork() instead of vfork(), and fork() runs
# gRPC's pthread_atfork handlers, which abort the drill ("thread_pool.cc: assertion failed:
# state_ == State::kRunning", CI run of 2026-11-30) when an event engine of the harness's own
# grpc channels is being torn down at that moment (grpc/grpc#31885).
_SETPRIV = ("setpriv", "--pdeathsig", "KILL", "--")


class _Popen(subprocess.Popen):
    def __init__(self, args, *rest, **kw):
        assert "preexec_fn" not in kw, "preexec_fn forks: see _SETPRIV"
        super().__init__(list(_SETPRIV) + list(args), *rest, **kw)


engbot_test.subprocess = types.SimpleNamespace(
    **{k: getattr(subprocess, k) for k in dir(subprocess) if not k.startswith("__")})
engbot_test.subprocess.Popen = _Popen
FILES_DOWN = "Files are temporarily unavailable"


def file_bytes(name, version):
    """Deterministic content of a drill file: 2-24 KiB that differ per name and version."""
    seed = hashlib.sha256(f"{name}/{version}".encode()).digest()
    n = 2048 + (seed[0] * 90) + version * 7
    out = bytearray()
    block = seed
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


class Files:
    """The drills' part of the catalogue (FILES_ROOT/drills/...), with every version of every
    file and when it was current (wall clock ms), so the accountant can check what was sent."""

    def __init__(self, root, n=48):
        self.root = root
        self.versions = {}  # name -> [(sha256, from_ms, to_ms or None)]
        self.paths = {}     # name -> relative path
        self.ids = {}       # name -> catalogue id (filled by the stack once cache-svc runs)
        for i in range(n):
            folder = ("alpha", "beta", "gamma")[i % 3]
            self.write(f"drills/{folder}/spec-{i:03d}.pdf", 0)

    def write(self, rel, version):
        name = os.path.basename(rel)
        data = file_bytes(name, version)
        p = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        tmp = os.path.join(os.path.dirname(p), f".tmp-{name}")
        with open(tmp, "wb") as f:
            f.write(data)
        now = time.time() * 1000
        os.rename(tmp, p)  # atomic replace, as an editor or a sync tool does
        self._close(name, now)
        self.versions.setdefault(name, []).append((hashlib.sha256(data).hexdigest(), now, None))
        self.paths[name] = rel
        return name

    def remove(self, name):
        now = time.time() * 1000
        os.remove(os.path.join(self.root, self.paths[name]))
        self._close(name, now)

    def _close(self, name, now):
        vs = self.versions.get(name)
        if vs and vs[-1][2] is None:
            vs[-1] = (vs[-1][0], vs[-1][1], now)

    def names(self):
        return sorted(self.versions)

    def exists_at_all_times(self, name, t0, t1):
        """True when some version of the file was current during the whole of [t0, t1]."""
        for _, a, b in self.versions.get(name, []):
            if a <= t0 and (b is None or b >= t1):
                return True
        return False

    def valid_sha(self, name, sha, t0, t1, slack_ms=3000):
        """True when sha is a version of name that was current at some time in
        [t0 - slack, t1] (the catalogue follows the volume within inotify's delay)."""
        for s, a, b in self.versions.get(name, []):
            if s == sha and a <= t1 and (b is None or b >= t0 - slack_ms):
                return True
        return False


class DrillStack(gwstack.Stack):
    """The emulator (rate limits on), the three services and the gateway. bins maps a service
    name ("session", "cache", "queue", "gateway") to the bin/ directory its binary comes from
    (default: this build)."""

    def __init__(self, gw_env=None, emu_env=None, queue_args=(), service_args=None,
                 n_files=48, start=True, bins=None, services=("session", "cache", "queue")):
        self.bins = dict(bins or {})
        self.extra_args = {k: list(v) for k, v in (service_args or {}).items()}
        self.mounts = []
        self.timeline = []  # (wall ms, what): stops and starts, for the record
        env = {"LEASE_TIME": "10s", "LOG_LEVEL": "info"}
        env.update(gw_env or {})
        emu = {"RATELIMITS": "true", "MAX_TRANSCRIPT": "2000000", "MAX_MESSAGES": "1000000",
               "MAX_UPDATES": "1000000"}
        emu.update(emu_env or {})
        super().__init__(gw_env=env, services=(), start_gateway=False, emu_env=emu,
                         queue_args=tuple(queue_args))
        self.drill_files = Files(self.files, n_files)
        self.wanted = services
        if start:
            try:
                self.start_all()
            except BaseException:
                # Nobody holds this stack yet: stop what did start before failing.
                try:
                    self.close()
                except AssertionError:
                    pass
                raise

    # ---- processes -----------------------------------------------------------------------
    def gateway_env(self):
        env = super().gateway_env()
        # Back to the gateway's own defaults for what governs recovery (the e2e Stack shortens
        # them to keep its tests quick; a drill measures what an operator would get).
        for k in ("POLL_TIMEOUT", "LEASE_WAIT", "BREAKER_OPEN", "BREAKER_OPEN_MAX",
                  "RECONNECT_MAX", "DRAIN_GRACE"):
            env.pop(k, None)
        env.update(self.gw_env)
        return env

    def start_all(self):
        """Starts the services and the gateway. A caller that made the stack with
        start=False and calls this must close() the stack whether or not this raises."""
        for s in self.wanted:
            self.start_service(s)
        if "cache" in self.wanted:
            self.resolve_ids()
        self.start_gateway()

    def service_args(self, name, port=0, suffix=""):
        # The e2e Stack shortens queue-svc's retry backoff for its own tests; drills keep
        # every service's defaults unless a drill says otherwise.
        args = [a for a in super().service_args(name, port, suffix)
                if not a.startswith("--retry-backoff-base=")]
        return args + self.extra_args.get(name, [])

    def data_dir(self, name):
        return self._dir(name + "-data")

    def start_service(self, name, suffix="", bin_dir=None, wait=True):
        """Starts <name>-svc on its old port when it ran before, from bin_dir (default: the
        bins mapping, else this build)."""
        key = name + suffix
        bdir = bin_dir or self.bins.get(name) or gwstack.SERVICES_BIN
        saved = engbot_test.BIN
        engbot_test.BIN = bdir
        try:
            p = Proc(SVC_BIN[name], args=self.service_args(name, self.ports.get(key, 0), suffix),
                     workdir=self._dir(key + "-work"))
        finally:
            engbot_test.BIN = saved
        if wait:
            p.wait_serving(timeout=30)
        self.ports[key] = p.grpc_port
        self.svc[key] = self._track(p)
        return p

    def start_gateway(self, extra_env=None, args=(), bin_dir=None):
        bdir = bin_dir or self.bins.get("gateway")
        if not bdir:
            return super().start_gateway(extra_env, args)
        saved = engbot_test.BIN
        engbot_test.BIN = bdir
        gwstack.BIN = bdir
        try:
            return super().start_gateway(extra_env, args)
        finally:
            engbot_test.BIN = saved
            gwstack.BIN = saved

    def restart(self, name, how, down_s=3.0, bin_dir=None):
        """Stops a component (how: "kill9" or "term"), waits down_s, starts it again on the
        same port and data dir. Returns (exit code or None, seconds it was unreachable)."""
        t0 = time.monotonic()
        rc = self.stop(name, how)
        time.sleep(down_s)
        self.start(name, bin_dir=bin_dir)
        return rc, time.monotonic() - t0

    def mark(self, what):
        self.timeline.append((round(time.time() * 1000), what))

    def stop(self, name, how):
        self.mark(f"stop {name} ({how})")
        if name == "gateway":
            p = self.gw
        else:
            p = self.svc.pop(name)
        if how == "kill9":
            p.kill9()
            return None
        return p.stop(signal.SIGTERM, timeout=30)

    def start(self, name, bin_dir=None):
        self.mark(f"start {name}" + (f" from {bin_dir}" if bin_dir else ""))
        if name == "gateway":
            p = self.start_gateway(bin_dir=bin_dir)
        else:
            p = self.start_service(name, bin_dir=bin_dir)
        self.mark(f"{name} serving")
        if name != "gateway":
            self.wait_gateway_sees(name)
        return p

    def wait_gateway_sees(self, name, timeout=40):
        """Waits until the gateway's /readyz shows the service up again (its breaker closed)
        and then until a call of the gateway to it succeeds (the load makes calls; the two can
        be seconds apart); marks both, in seconds after the service was serving. Returns the
        seconds to the first successful call, or None when the gateway is not running or did
        not get there within the timeout."""
        if not self.gw or not self.gw.alive():
            return None
        t0 = time.monotonic()
        ok_metric = ("engbot_gateway_dependency_calls_total",
                     {"dependency": name, "track": "stable", "result": "ok"})
        base = self.gw_metric(*ok_metric) or 0.0
        seen_up = None
        while time.monotonic() - t0 < timeout:
            if seen_up is None:
                try:
                    _, body = http_get(self.gw.http_port, "/readyz", timeout=2)
                except OSError:
                    body = ""
                if f"{name}=up" in body:
                    seen_up = round(time.monotonic() - t0, 2)
                    self.mark(f"gateway /readyz shows {name} up after {seen_up} s")
            if (self.gw_metric(*ok_metric) or 0.0) > base:
                secs = round(time.monotonic() - t0, 2)
                self.mark(f"gateway's first successful call to {name} after {secs} s")
                return secs
            time.sleep(0.05)
        self.mark(f"gateway made no successful call to {name} within {timeout} s")
        return None

    def procs_now(self):
        """{name: Proc} of what runs now."""
        out = {"emulator": self.emu}
        out.update({k: v for k, v in self.svc.items() if v.alive()})
        if self.gw and self.gw.alive():
            out["gateway"] = self.gw
        return out

    def rss_kib(self):
        """{name: VmRSS in KiB} of every running process (from /proc: works for any binary)."""
        out = {name: engbot_test.rss_kib(p.p.pid) for name, p in self.procs_now().items()}
        return {name: kib for name, kib in out.items() if kib is not None}

    def svc_metric(self, name, metric_name, labels=None):
        p = self.svc.get(name)
        if not p or not p.alive():
            return None
        try:
            return metric(p.http_port, metric_name, labels)
        except OSError:
            return None

    def gw_metric(self, metric_name, labels=None):
        if not self.gw or not self.gw.alive():
            return None
        try:
            return metric(self.gw.http_port, metric_name, labels)
        except OSError:
            return None

    def readyz(self, name):
        p = self.gw if name == "gateway" else self.svc.get(name)
        if not p or not p.alive():
            return None, "not running"
        try:
            return http_get(p.http_port, "/readyz", timeout=3)
        except OSError as e:
            return None, str(e)

    # ---- the catalogue -------------------------------------------------------------------
    def resolve_ids(self):
        """Catalogue ids of the drill files (for button presses), through cache-svc."""
        from engbot.cache.v1 import cache_pb2 as cpb
        addr = self.addr("cache")
        for name in self.drill_files.names():
            rel = self.drill_files.paths[name]

            def get():
                try:
                    return engbot_test.unary(addr, "/engbot.cache.v1.CacheService/Resolve",
                                             cpb.ResolveRequest(path=rel), cpb.ResolveResponse)
                except Exception:  # noqa: BLE001 -- not indexed yet
                    return None
            r = wait_until(get, 10, 0.1, f"cache-svc resolves {rel}")
            self.drill_files.ids[name] = r.entry.id

    # ---- tmpfs data dirs (disk full) -----------------------------------------------------
    def mount_tmpfs(self, path, size):
        """Mounts a tmpfs of size on path; returns an error text when not permitted."""
        os.makedirs(path, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return (r.stderr or r.stdout).strip() or f"mount exited {r.returncode}"
        self.mounts.append(path)
        return None

    def close(self):
        """Stops every process, unmounts the tmpfs mounts, then lets the e2e Stack check the
        exits and delete the tree."""
        errors = []
        # SIGTERM to everything at once (each drains on its own), then wait for each.
        running = [p for p in self.procs if p.alive()]
        for p in running:
            p.send_signal(signal.SIGTERM)
        for p in reversed(running):
            try:
                p.stop(timeout=30)
            except AssertionError as e:
                errors.append(str(e))
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-l", m], capture_output=True)
        self.mounts = []
        try:
            super().close()
        except AssertionError as e:
            errors.append(str(e))
        if errors:
            raise AssertionError("\n".join(errors))
