"""bench_gateway -- the whole-pipeline benchmark: Bot API emulator -> gateway -> session-svc,
cache-svc, queue-svc -> emulator, all on loopback, with Telegram-side rate limits off (the
emulator's are off by default; queue-svc's buckets are set to unlimited, since they exist to
keep a real bot under Telegram's limits and would cap the run at 30 messages/s).

For each configuration: updates per second (injected -> last reply recorded by the emulator),
end-to-end latency p50/p99 (one message injected -> its reply recorded), and the gateway's own
handling time p50/p99 (engbot_gateway_update_handling_seconds: update taken by a worker ->
replies handed on; excludes Telegram and the queue's wait; the warm-up is not counted).

The "intake" rows measure what production sees in a burst: queue-svc keeps Telegram's rates
(30 sends/s in all), so the replies wait in the queue and drain at that rate, and updates per
second is injected -> handled (every update's replies durably in queue-svc).

Each row also carries (in the JSON lines on stderr) the CPU each process spent per update
(/proc/<pid>/stat, user+system), its context switches per update (every thread's voluntary and
involuntary switches, /proc/<pid>/task/*/status) and the gRPC calls per update to each service:
where the two cores go.

  ENGBOT_BUILD=build /usr/bin/python3 tests/gateway/bench_gateway.py [--messages N]
      [--chats C] [--threads T] [--workers W] [--only NAME [--exact]] [--env K=V ...]

--env adds a variable to the gateway's environment in every row (an A/B of one setting: run
the command with and without it, alternately, and compare medians).

--pin gives engbot one core of its own: the gateway and the three services on the last CPU,
the emulator, the load generator and this script on the others. It measures what engbot
does on one core, without Telegram's stand-in competing for it.

Results are printed as a Markdown table (paste into docs/gateway.md)."""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from engbot_test import BIN, http_get  # noqa: E402
from gwstack import Stack  # noqa: E402

UNLIMITED_QUEUE = ("--chat-rate=0", "--group-rate=0", "--global-rate=0")
# Intake rows: queue-svc keeps Telegram's rates (its defaults: 30/s in all, 1/s per chat), so
# replies drain the way they would in production; the queue holds them all, long enough.
TELEGRAM_RATE_QUEUE = ("--request-timeout=1h", "--queue-max-size=1000000")
INTAKE = "intake"  # as the reply method: measure intake, not sends (see the docstring)
FAST_DIRECT = {"DIRECT_RATE": "10000", "DIRECT_BURST": "1000", "DIRECT_MAX_INFLIGHT": "64"}

CONFIGS = [
    # name, workload text, reply method, gateway env[, injection rate per second (paced)]
    ("all optimisations on (/browse)", "/browse", "sendMessage", {}),
    ("all optimisations on (/browse), paced at 200/s", "/browse", "sendMessage", {}, 200),
    ("all optimisations on (/browse), paced at 1000/s", "/browse", "sendMessage", {}, 1000),
    ("intake, replies drained at Telegram's 30/s (/browse)", "/browse", INTAKE, {}),
    ("intake, paced at 1000/s (/browse)", "/browse", INTAKE, {}, 1000),
    ("intake, paced at 2000/s (/browse)", "/browse", INTAKE, {}, 2000),
    ("intake, paced at 1000/s, CATALOGUE_CACHE_TTL=0 (/browse)", "/browse", INTAKE,
     {"CATALOGUE_CACHE_TTL": "0"}, 1000),
    ("all on, SENDERS=8 LEASE_BATCH=16 (/browse)", "/browse", "sendMessage",
     {"SENDERS": "8", "LEASE_BATCH": "16"}),
    ("CATALOGUE_CACHE_TTL=0 (/browse)", "/browse", "sendMessage", {"CATALOGUE_CACHE_TTL": "0"}),
    ("USE_SESSIONS=false (/browse)", "/browse", "sendMessage", {"USE_SESSIONS": "false"}),
    ("USE_QUEUE=false (/browse, direct sends)", "/browse", "sendMessage",
     dict({"USE_QUEUE": "false"}, **FAST_DIRECT)),
    ("all optimisations on (/help, no catalogue)", "/help", "sendMessage", {}),
    ("file_id cache on (/get a 256 KiB file)", "/get bench-256k.bin", "sendDocument", {}),
    ("USE_FILE_ID_CACHE=false (/get a 256 KiB file)", "/get bench-256k.bin", "sendDocument",
     {"USE_FILE_ID_CACHE": "false"}),
]


def metrics_text(port):
    return http_get(port, "/metrics")[1]


def histogram(text, name, label=""):
    """The cumulative buckets [(le, count)] and the count of histogram `name` (the child whose
    labels contain `label`), from a /metrics text."""
    buckets, total = [], 0.0
    for line in text.splitlines():
        if label and label not in line:
            continue
        if line.startswith(name + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            v = float(line.rsplit(" ", 1)[1])
            buckets.append((float("inf") if le == "+Inf" else float(le), v))
        elif line.startswith(name + "_count"):
            total = float(line.rsplit(" ", 1)[1])
    buckets.sort()
    return buckets, total


def quantiles(after, before=None, qs=(0.5, 0.99)):
    """Quantiles (ms) of the observations between two histogram() readings (so the warm-up's
    first connections and first catalogue load are not counted), interpolated within buckets
    the way Prometheus's histogram_quantile does: a figure is only as fine as the buckets."""
    buckets, total = after
    if before:
        prev = dict(before[0])
        buckets = [(le, c - prev.get(le, 0.0)) for le, c in buckets]
        total -= before[1]
    out = []
    for q in qs:
        want, prev_b, prev_c = q * total, 0.0, 0.0
        val = None
        for b, c in buckets:
            if c >= want:
                if b == float("inf"):
                    val = prev_b
                else:
                    frac = (want - prev_c) / (c - prev_c) if c > prev_c else 1.0
                    val = prev_b + (b - prev_b) * frac
                break
            prev_b, prev_c = b, c
        out.append(val * 1000 if val is not None else float("nan"))
    return out


def cpu_seconds(pid):
    """User+system CPU time of a process so far (from /proc; 0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def counter_sum(text, name, label=""):
    """The sum of counter `name` over its children whose labels contain `label`."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and label in line)


HANDLING = "engbot_gateway_update_handling_seconds"
DEP_CALLS = "engbot_gateway_dependency_calls_total"
DEP_CALL = "engbot_gateway_dependency_call_seconds"
DEPS = ("session", "cache", "queue")


def context_switches(pid):
    """Voluntary + involuntary context switches of every live thread of a process so far."""
    n = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/status") as f:
                for line in f:
                    if "ctxt_switches:" in line:
                        n += int(line.split()[-1])
        except OSError:
            pass  # the thread ended
    return n


def pin(procs):
    """--pin: every thread of the engbot processes on the last CPU, the emulator elsewhere
    (threads made later inherit the mask of the thread that makes them)."""
    last = os.cpu_count() - 1
    for p in procs:
        cpus = set(range(last)) if p.name == "bot-api-emulator" else {last}
        for t in os.listdir(f"/proc/{p.p.pid}/task"):
            try:
                os.sched_setaffinity(int(t), cpus)
            except OSError:
                pass  # the thread ended


def run(name, text, method, env, args, rate=0):
    intake = method == INTAKE
    qargs = TELEGRAM_RATE_QUEUE if intake else UNLIMITED_QUEUE
    s = Stack(gw_env=dict({"LOG_LEVEL": "info", "WORKERS": str(args.workers),
                           "DEDUPE_WINDOW": "1000000"}, **env, **args.env),
              queue_args=qargs + (os.environ.get("BENCH_QUEUE_FSYNC", "--fsync=true"),),
              catalogue_kwargs={"n_manuals": 30})
    try:
        with open(os.path.join(s.files, "bench-256k.bin"), "wb") as f:
            f.write(os.urandom(256 * 1024))
        s.ctl("/control/ratelimits", {"enabled": False})
        if args.pin:
            pin(s.procs)
        emu = f"http://127.0.0.1:{s.emu.http_port}"
        load = os.path.join(BIN, "bench-gateway-load")
        # Warm-up: connections, the catalogue, a first upload (file_id runs measure reuse).
        subprocess.run([load, emu, "50", "50", "4", text,
                        "sendMessage" if intake else method, "1", "60"], check=True,
                       capture_output=True)
        port = s.gw.http_port
        if args.pin:
            pin(s.procs)  # again: threads the warm-up started
        m0 = metrics_text(port)  # one reading before, one after
        before = {d: histogram(m0, DEP_CALL, f'dependency="{d}"') for d in DEPS}
        before["handling"] = histogram(m0, HANDLING)
        calls0 = {d: counter_sum(m0, DEP_CALLS, f'dependency="{d}"') for d in DEPS}
        cpu0 = {p.name: cpu_seconds(p.p.pid) for p in s.procs}
        csw0 = {p.name: context_switches(p.p.pid) for p in s.procs}
        n = args.doc_messages if method == "sendDocument" else args.messages
        if intake:
            # Intake: injected -> handled (replies handed to queue-svc), while the sender
            # drains them at Telegram's rate; the load generator waits for no reply (0 each).
            h0 = before["handling"][1]
            t0 = time.monotonic()
            r = subprocess.run([load, emu, str(n), str(args.chats), str(args.threads),
                                text, "sendMessage", "0", "300", str(rate)],
                               capture_output=True, text=True)
            res = json.loads(r.stdout.strip().splitlines()[-1])
            done = h0
            while done < h0 + n and time.monotonic() - t0 < 300:
                done = histogram(metrics_text(port), HANDLING)[1]
                if done < h0 + n:
                    time.sleep(0.05)  # each poll renders /metrics: not too often
            secs = time.monotonic() - t0
            res.update({"replies": int(done - h0), "complete": done >= h0 + n,
                        "seconds": round(secs, 3), "updates_per_s": round(n / secs, 1),
                        "e2e_p50_ms": "", "e2e_p99_ms": "", "e2e_max_ms": ""})
        else:
            r = subprocess.run([load, emu, str(n), str(args.chats), str(args.threads),
                                text, method, "1", "300", str(rate)],
                               capture_output=True, text=True)
            res = json.loads(r.stdout.strip().splitlines()[-1])
        m1 = metrics_text(port)
        res["rpcs_per_update"] = {
            d: round((counter_sum(m1, DEP_CALLS, f'dependency="{d}"') - calls0[d])
                     / max(res["replies"], 1), 2) for d in DEPS}
        # CPU per update, per process: where the two cores go.
        res["cpu_us_per_update"] = {
            p.name: round((cpu_seconds(p.p.pid) - cpu0[p.name]) * 1e6 / max(res["replies"], 1))
            for p in s.procs}
        res["ctxsw_per_update"] = {
            p.name: round((context_switches(p.p.pid) - csw0[p.name]) / max(res["replies"], 1), 1)
            for p in s.procs}
        p50, p99 = quantiles(histogram(m1, HANDLING), before["handling"])
        res.update({"name": name, "handling_p50_ms": p50, "handling_p99_ms": p99})
        for d in DEPS:
            d50, d99 = quantiles(histogram(m1, DEP_CALL, f'dependency="{d}"'), before[d])
            res[f"{d}_call_p50_ms"], res[f"{d}_call_p99_ms"] = d50, d99
        return res
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--doc-messages", type=int, default=500,
                    help="messages of the document workloads (each sends 256 KiB)")
    ap.add_argument("--chats", type=int, default=500)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--only", default="",
                    help="run the configurations whose name contains this (or is it, with --exact)")
    ap.add_argument("--exact", action="store_true")
    ap.add_argument("--pin", action="store_true",
                    help="engbot on the last CPU, the emulator and the load elsewhere")
    ap.add_argument("--env", action="append", default=[], metavar="K=V",
                    help="add K=V to the gateway's environment in every row")
    ap.add_argument("--rate", type=int, default=0,
                    help="inject at this many messages per second in every row chosen "
                         "(instead of its own rate): to find where the tail turns")
    args = ap.parse_args()
    args.env = dict(kv.split("=", 1) for kv in args.env)
    if args.pin:
        os.sched_setaffinity(0, set(range(os.cpu_count() - 1)))  # the load generator inherits it
    rows = []
    for cfg in CONFIGS:
        name = cfg[0]
        if args.only and (name != args.only if args.exact else args.only not in name):
            continue
        rate = args.rate or (cfg[4] if len(cfg) > 4 else 0)
        res = run(*cfg[:4], args, rate=rate)
        if args.rate:
            res["name"] = f"{name} [--rate {args.rate}]"
        print(json.dumps(res), file=sys.stderr)
        rows.append(res)
    print(f"\n{args.messages} messages ({args.doc_messages} for documents) over {args.chats} "
          f"chats, {args.threads} injecting threads, WORKERS={args.workers}"
          + (", engbot pinned to one CPU" if args.pin else "") + "\n")
    print("| configuration | updates/s | e2e p50 ms | e2e p99 ms | handling p50 ms | "
          "handling p99 ms | engbot CPU µs/update | emulator CPU µs/update | complete |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        cpu = r["cpu_us_per_update"]
        ours = sum(v for k, v in cpu.items() if k != "bot-api-emulator")
        print(f"| {r['name']} | {r['updates_per_s']:.0f} | {r['e2e_p50_ms']} | {r['e2e_p99_ms']} | "
              f"{r['handling_p50_ms']:.2f} | {r['handling_p99_ms']:.2f} | {ours} | "
              f"{cpu.get('bot-api-emulator', '')} | {r['complete']} |")
    print("\nengbot CPU: the gateway and the three services together (user+system, per update "
          "handled); the emulator stands in for Telegram. Per process: the JSON lines above.")


if __name__ == "__main__":
    main()
