#!/usr/bin/env python3
"""soak -- steady traffic for a long time with a fault now and then; the resident memory of
every process, the error rate and the latency sampled over time into a CSV, turned into a PNG
by plot_soak.gp. Not a ctest test: run it with `tests/drills/run.sh soak` (an hour by default).

  tests/drills/run.sh soak                       # 60 minutes, a fault every 2 minutes
  SOAK_MINUTES=8 SOAK_FAULT_EVERY=45 tests/drills/run.sh soak
  SOAK_FAULTS=telegram tests/drills/run.sh soak  # only Telegram's faults: no process restarts

The full cycle restarts every process every 8-16 minutes, so no process lives the whole hour;
SOAK_FAULTS=telegram keeps all five alive for it, which is what shows a slow leak.

It prints the accountant's report at the end and writes <out>/soak.csv, <out>/soak.json
(numbers) and, with gnuplot, <out>/soak.png. Exit status 0 when the accountant found nothing.
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from drillstack import DrillStack  # noqa: E402
from driver import Driver, account  # noqa: E402
from sampler import Sampler  # noqa: E402


def faults(which="all"):
    """The cycle of faults, one every --fault-every seconds: (name, fn(stack, driver)).
    which: "all", or "telegram" (only the emulator's faults: no process is restarted)."""
    def kill9(name):
        return lambda s, d: s.restart(name, "kill9", 2.0)

    def term(name):
        return lambda s, d: s.restart(name, "term", 0.5)

    def telegram(kind, seconds, **f):
        def run(s, d):
            if kind == "429":
                for c in d.chats[:3]:
                    s.ctl("/control/fault", dict(f, kind="429", chat_id=c.id))
            else:
                s.ctl("/control/fault", dict(f, kind=kind))
            time.sleep(seconds)
            s.ctl("/control/fault/clear", {})
        return run
    if which == "telegram":
        return [("telegram 429 for 3 chats", telegram("429", 3, count=2, retry_after=2)),
                ("telegram slow 1 s for 3 s", telegram("slow", 3, delay_ms=1000)),
                ("telegram 5xx for 3 s", telegram("5xx", 3, status=502))]
    return [("kill -9 session-svc", kill9("session")),
            ("telegram 429 for 3 chats", telegram("429", 3, count=2, retry_after=2)),
            ("kill -9 cache-svc", kill9("cache")),
            ("telegram slow 1 s for 3 s", telegram("slow", 3, delay_ms=1000)),
            ("SIGTERM queue-svc", term("queue")),
            ("telegram 5xx for 3 s", telegram("5xx", 3, status=502)),
            ("kill -9 gateway", kill9("gateway")),
            ("SIGTERM session-svc", term("session"))]


def median_of(rows, col, lo, hi):
    vals = [r[col] for r in rows if lo <= r.get("t_s", -1) < hi and
            isinstance(r.get(col), (int, float))]
    return statistics.median(vals) if vals else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 60)))
    ap.add_argument("--fault-every", type=float,
                    default=float(os.environ.get("SOAK_FAULT_EVERY", 120)))
    ap.add_argument("--period", type=float, default=float(os.environ.get("SOAK_PERIOD", 5)))
    ap.add_argument("--faults", choices=("all", "telegram"),
                    default=os.environ.get("SOAK_FAULTS", "all"))
    ap.add_argument("--chats", type=int, default=int(os.environ.get("SOAK_CHATS", 24)))
    ap.add_argument("--groups", type=int, default=int(os.environ.get("SOAK_GROUPS", 4)))
    ap.add_argument("--out", default=os.environ.get("SOAK_OUT", os.path.join(
        os.environ.get("ENGBOT_BUILD", "build"), "drills-results")))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    s = DrillStack(gw_env={"LOG_LEVEL": "info"})
    d = Driver(s, n_private=a.chats, n_group=a.groups)
    smp = None
    fault_log = []
    rc = 1
    try:
        d.setup()
        smp = Sampler(s, d, period=a.period).start()
        d.phase = "steady"
        d.start()
        t0 = time.monotonic()
        end = t0 + a.minutes * 60
        cycle = faults(a.faults)
        k = 0
        next_fault = t0 + a.fault_every
        while time.monotonic() < end:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            if time.monotonic() >= next_fault and time.monotonic() < end - 30:
                name, fn = cycle[k % len(cycle)]
                k += 1
                t = round(time.time() - smp.t0, 1)
                print(f"[soak] t={t:.0f}s fault: {name}", flush=True)
                d.phase = "fault"
                fn(s, d)
                d.phase = "steady"
                fault_log.append({"t_s": t, "fault": name})
                next_fault += a.fault_every
        d.stop()
        d.final_round(120)
        smp.stop()
        # As the fault drills: a button press made during a Telegram fault may lose its
        # answerCallbackQuery (one direct call, not retried); the reply itself is checked.
        rep = account(d, unanswered_presses_in_fault=True)
        rows = smp.rows
        dur = rows[-1]["t_s"] if rows else 0
        warm = min(120, dur / 4)
        n = rep.numbers
        n["soak"] = {"minutes": a.minutes, "fault_every_s": a.fault_every, "faults": fault_log,
                     "fault_set": a.faults,
                     "chats": a.chats, "groups": a.groups, "period_s": a.period}
        n["rss_kib_median"] = {
            p: {"after_warmup": median_of(rows, f"rss_{p}_kib", warm, warm + 120),
                "last_2_min": median_of(rows, f"rss_{p}_kib", dur - 120, dur + 1)}
            for p in ("emulator", "gateway", "session", "cache", "queue")}
        lat = [r["latency_p50_ms"] for r in rows if isinstance(r.get("latency_p50_ms"), (int, float))]
        n["latency_p50_ms_median_of_intervals"] = statistics.median(lat) if lat else None
        n["error_rate_overall"] = round(sum(r.get("degraded_replies", 0) or 0 for r in rows)
                                        / max(1, sum(r.get("new_replies", 0) or 0 for r in rows)), 4)
        n["calls"] = {k: v for k, v in s.ctl("/control/calls")["calls"].items()
                      if k != "getUpdates"}
        n["timeline"] = s.timeline
        if rep.bad_chats:
            from driver import evidence
            with open(os.path.join(a.out, "soak-transcript.json"), "w") as f:
                json.dump(evidence(d, rep.bad_chats), f, indent=1)
        csv_path = os.path.join(a.out, "soak.csv")
        smp.write_csv(csv_path)
        with open(os.path.join(a.out, "soak-faults.csv"), "w") as f:
            f.write("t_s,fault\n")
            for x in fault_log:
                f.write(f"{x['t_s']},{x['fault']}\n")
        with open(os.path.join(a.out, "soak.json"), "w") as f:
            json.dump({"numbers": n, "problems": rep.problems, "notes": rep.notes}, f, indent=1)
        print(rep.text())
        print(f"[soak] csv: {csv_path}")
        rc = 0 if rep.ok() else 1
    finally:
        if smp:
            smp.stop()
        d.close()
        s.close()
    return rc


if __name__ == "__main__":
    sys.exit(main())
