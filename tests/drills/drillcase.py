"""drillcase -- the shape every drill shares: start the stack, open the chats, run the load,
do the fault while the load runs, let it recover, drain, final round, account, write the
numbers down.

DRILL_SCALE (default 1) stretches the load phases (run.sh's long variants use 4 or more).
Each drill's numbers go to $DRILLS_RESULTS (default <build>/drills-results/<name>.json) and
to the test's output.
"""

import faulthandler
import json
import os
import shutil
import warnings
import time
import unittest

from drillstack import DrillStack
from driver import Driver, account
from engbot_test import BUILD

warnings.simplefilter("ignore", ResourceWarning)  # the harness leaves pipes to the GC
SCALE = float(os.environ.get("DRILL_SCALE", "1"))
RESULTS = os.environ.get("DRILLS_RESULTS", os.path.join(BUILD, "drills-results"))


def require_built(*names):
    missing = [n for n in names if not os.path.exists(os.path.join(BUILD, "bin", n))]
    if missing:
        raise unittest.SkipTest("not built: " + ", ".join(missing))


class DrillCase(unittest.TestCase):
    stack_kw = {}
    driver_kw = {}
    pre_s = 1.5     # load before the fault
    post_s = 2.0    # load after recovery
    drain_s = 60.0  # how long the backlog may take to be answered after the load stops

    def setUp(self):
        require_built("bot-api-emulator", "gateway", "session-svc", "cache-svc", "queue-svc")
        self.t0 = time.time()
        # A drill that hangs is killed by ctest at its TIMEOUT with nothing to show: print
        # every thread's stack shortly before that.
        limit = float(os.environ.get("DRILL_TIMEOUT", "0"))
        if limit > 20:
            faulthandler.dump_traceback_later(limit - 10, exit=False)
            self.addCleanup(faulthandler.cancel_dump_traceback_later)

    def start(self, **kw):
        skw = dict(self.stack_kw)
        skw.update(kw)
        s = DrillStack(**skw)
        self.addCleanup(s.close)
        self.stack = s
        return s

    def load(self, s, **kw):
        dkw = dict(self.driver_kw)
        dkw.update(kw)
        d = Driver(s, **dkw)
        self.addCleanup(d.close)
        self.driver = d
        d.setup()
        return d

    def drill(self, fault, stack_kw=None, driver_kw=None, acct_kw=None, pre_s=None,
              post_s=None, after=None):
        """Runs one drill: fault(stack, driver) runs while the load goes on and returns a dict
        of what it did (written down with the numbers). after(stack, driver, report) may add
        checks of its own. Returns (report, info)."""
        tm = {}
        t = time.time()
        s = self.start(**(stack_kw or {}))
        tm["stack_start"] = time.time() - t
        t = time.time()
        d = self.load(s, **(driver_kw or {}))
        tm["chats_setup"] = time.time() - t
        d.start()
        time.sleep((self.pre_s if pre_s is None else pre_s) * SCALE)
        d.phase = "fault"
        t_fault = time.time()
        info = fault(s, d) or {}
        info["fault_seconds"] = round(time.time() - t_fault, 1)
        d.phase = "after"
        time.sleep((self.post_s if post_s is None else post_s) * SCALE)
        d.stop()
        # The final round goes out at once, behind whatever is still unanswered: every chat's
        # last action is then its final search, and one wait covers the drain and the round.
        t = time.time()
        d.final_round(self.drain_s)
        info["drained"] = all(d.outstanding(c) <= 0 for c in d.chats)
        info["drain_seconds"] = round(time.time() - t, 1)
        tm["drain_and_final_round"] = time.time() - t
        t = time.time()
        kw = dict(acct_kw or {})
        if kw.pop("gateway_inflight", False):
            kw["gateway_kills_ms"] = [t for t, what in s.timeline
                                      if what == "stop gateway (kill9)"]
        rep = account(d, **kw)
        tm["account"] = time.time() - t
        rep.numbers["timing_s"] = {k: round(v, 1) for k, v in tm.items()}
        rep.numbers["fault"] = info
        rep.numbers["seconds"] = round(time.time() - self.t0, 1)
        rep.numbers["calls"] = {k: v for k, v in s.ctl("/control/calls")["calls"].items()
                                if k != "getUpdates"}
        rep.numbers["gateway"] = gateway_numbers(s)
        rep.numbers["timeline"] = s.timeline
        if after:
            after(s, d, rep)
        self.record(rep)
        self.assertTrue(rep.ok(), "\n" + rep.text())
        return rep, info

    def record(self, rep):
        name = self.id().split(".")[-1]
        os.makedirs(RESULTS, exist_ok=True)
        if not rep.ok() and getattr(self, "stack", None):
            # Evidence: every process's log (the stack's tree is deleted at cleanup).
            logs = os.path.join(RESULTS, name + "-logs")
            shutil.rmtree(logs, ignore_errors=True)
            os.makedirs(logs)
            for i, p in enumerate(self.stack.procs):
                try:
                    shutil.copy(p.logpath, os.path.join(logs, f"{i:02d}-{p.name}.log"))
                except OSError:
                    pass
            rep.notes.append(f"logs of every process: {logs}")
            drv = getattr(self, "driver", None)
            if drv and rep.bad_chats:
                from driver import evidence
                ev = os.path.join(RESULTS, name + "-transcript.json")
                with open(ev, "w") as f:
                    json.dump(evidence(drv, rep.bad_chats), f, indent=1)
                rep.notes.append(f"actions and replies of the chats concerned: {ev}")
        with open(os.path.join(RESULTS, name + ".json"), "w") as f:
            json.dump({"test": self.id(), "ok": rep.ok(), "numbers": rep.numbers,
                       "notes": rep.notes, "problems": rep.problems, "scale": SCALE}, f,
                      indent=1, sort_keys=True)
        print(f"\n[{name}] " + rep.text(), flush=True)


def gateway_numbers(s):
    """What the (current) gateway counted: degraded answers and how replies went out."""
    out = {}
    for dep in ("session", "cache", "queue"):
        v = s.gw_metric("engbot_gateway_degraded_total", {"dependency": dep})
        if v:
            out["degraded_" + dep] = v
    for path in ("queued", "duplicate", "direct", "dropped"):
        v = s.gw_metric("engbot_gateway_outbox_total", {"path": path})
        if v:
            out["outbox_" + path] = v
    for reason in ("duplicate", "failed"):
        v = s.gw_metric("engbot_gateway_updates_skipped_total", {"reason": reason})
        if v:
            out["skipped_" + reason] = v
    v = s.gw_metric("engbot_gateway_telegram_429_total")
    if v:
        out["telegram_429"] = v
    return out
