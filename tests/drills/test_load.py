"""The burst: ten times Telegram's allowed send rate (30 messages/s) arriving at once. The
queue must absorb it up to its bounds, refuse clearly past them (RESOURCE_EXHAUSTED, counted),
drain at the allowed rate without Telegram answering 429, and keep memory bounded. Every
update is answered exactly once or counted by the gateway as given up; none twice, none out
of order.

Every update is answered in the end, so the drain takes ten times as long as the burst (a
minute of burst is ten minutes of sending at 30/s). CI therefore runs a short variant:
BURST_SECONDS=3 with QUEUE_MAX_SIZE=300, so that the bound is reached within it (900 updates,
about 30 s of drain). `tests/drills/run.sh burst` runs the full minute with queue-svc's own
bounds (QUEUE_MAX_SIZE 10000). Environment: BURST_RATE (300/s), BURST_SECONDS (3), BURST_CHATS
(600), BURST_QUEUE_MAX (300; 0 = queue-svc's default 10000), BURST_DRAIN_TIMEOUT (120 s).
"""

import os
import time
import unittest

import engbot_test
from drillcase import DrillCase
from driver import Driver, account
from sampler import Sampler

RATE = float(os.environ.get("BURST_RATE", "300"))
SECONDS = float(os.environ.get("BURST_SECONDS", "3"))
CHATS = int(os.environ.get("BURST_CHATS", "600"))
QUEUE_MAX = int(os.environ.get("BURST_QUEUE_MAX", "300"))
DRAIN_TIMEOUT = float(os.environ.get("BURST_DRAIN_TIMEOUT", "120"))
TELEGRAM_RATE = 30.0


class Burst(DrillCase):
    def test_burst_ten_times_telegram_rate(self):
        qargs = [f"--queue-max-size={QUEUE_MAX}"] if QUEUE_MAX else []
        s = self.start(queue_args=qargs)
        d = Driver(s, n_private=CHATS, n_group=0, first_chat=200001)
        self.addCleanup(d.close)
        d.setup(browse=False)
        smp = Sampler(s, d, period=0.5).start()
        self.addCleanup(smp.stop)
        rss0 = s.rss_kib()
        d.phase = "burst"
        sent, took = d.burst(RATE, SECONDS)
        t_burst_end = time.time() * 1000
        d.phase = "drain"
        drained = d.wait_answered(DRAIN_TIMEOUT, idle=15)
        smp.stop()
        rep = account(d, check_sessions=False)
        n = rep.numbers
        # Sends per second while the queue drained (after the burst stopped arriving).
        with d.lock:
            sends = [e["ts_ms"] for e in d.events
                     if e["method"] == "sendMessage" and e["ts_ms"] > t_burst_end]
        per_s = {}
        for t in sends:
            per_s[int(t // 1000)] = per_s.get(int(t // 1000), 0) + 1
        full = sorted(per_s.items())[1:-1]  # whole seconds only
        rates = [v for _, v in full]
        gw = {k: s.gw_metric(m, lab) or 0 for k, (m, lab) in {
            "outbox_queued": ("engbot_gateway_outbox_total", {"path": "queued"}),
            "outbox_direct": ("engbot_gateway_outbox_total", {"path": "direct"}),
            "outbox_dropped": ("engbot_gateway_outbox_total", {"path": "dropped"}),
            "skipped_failed": ("engbot_gateway_updates_skipped_total", {"reason": "failed"}),
            "telegram_429": ("engbot_gateway_telegram_429_total", None),
        }.items()}
        q = {r: s.svc_metric("queue", "queue_rejected_total", {"reason": r}) or 0
             for r in ("queue_full", "lane_full", "bytes_full", "deadline")}
        calls = s.ctl("/control/calls")["calls"]
        n.update({
            "burst": {"rate": RATE, "seconds": SECONDS, "chats": CHATS, "sent": sent,
                      "took_s": round(took, 1), "queue_max_size": QUEUE_MAX or 10000},
            "drained": drained,
            "queue_depth_max": smp.max_of("queue_queued"),
            "queue_rejected": q,
            "drain_sends_per_s_mean": round(sum(rates) / len(rates), 1) if rates else None,
            "drain_sends_per_s_max": max(rates) if rates else None,
            "drain_seconds": len(per_s),
            "gateway": gw,
            "emulator_sendMessage": calls.get("sendMessage"),
            "rss_kib_start": rss0,
            "rss_kib_max": {k: smp.max_of(f"rss_{k}_kib")
                            for k in ("emulator", "gateway", "session", "cache", "queue")},
        })
        # The identities and bounds.
        if n["queue_depth_max"] and n["queue_depth_max"] > (QUEUE_MAX or 10000):
            rep.problem(f"queue depth {n['queue_depth_max']} passed QUEUE_MAX_SIZE")
        over = sent - TELEGRAM_RATE * (SECONDS + 5)
        if over > (QUEUE_MAX or 10000) and not sum(q.values()):
            rep.problem("the burst passed the queue's bound but queue-svc refused nothing")
        expired = n["queue_end"]["expired_total"]
        if n["missing"] != gw["skipped_failed"] + expired:
            rep.problem(f"{n['missing']} update(s) unanswered but the gateway counts "
                        f"{gw['skipped_failed']:.0f} as given up and queue-svc expired "
                        f"{expired}: replies lost without a trace")
        if expired:
            rep.problem(f"{expired} accepted replies expired in queue-svc before they could be "
                        f"sent (QUEUE_MAX_SIZE {QUEUE_MAX or 10000} at {TELEGRAM_RATE:.0f}/s "
                        f"takes longer than the gateway's JOB_TIMEOUT): those users got nothing")
        if rates and n["drain_sends_per_s_mean"] > TELEGRAM_RATE * 1.05:
            rep.problem(f"drained at {n['drain_sends_per_s_mean']}/s, above Telegram's "
                        f"{TELEGRAM_RATE:.0f}/s")
        if rates and n["drain_sends_per_s_mean"] < TELEGRAM_RATE * 0.8:
            rep.problem(f"drained at only {n['drain_sends_per_s_mean']}/s (Telegram allows "
                        f"{TELEGRAM_RATE:.0f}/s)")
        n429 = (calls.get("sendMessage") or {}).get("429", 0)
        if n429:
            rep.problem(f"Telegram answered 429 to {n429} sendMessage calls: the bot went "
                        f"over the allowed rate")
        rss_q = n["rss_kib_max"].get("queue") or 0
        bound_kib = 64 * 1024 + (QUEUE_MAX or 10000) * 8  # 64 MiB + 8 KiB a job
        if engbot_test.sanitizers():
            # ASan's shadow memory and quarantine (up to 256 MiB) make RSS meaningless as a
            # bound; the plain build checks it.
            n["rss_bound_checked"] = False
        elif rss_q > bound_kib:
            rep.problem(f"queue-svc resident memory reached {rss_q} KiB (bound {bound_kib})")
        self.record(rep)
        d.close()
        self.assertTrue(rep.ok(), "\n" + rep.text())


if __name__ == "__main__":
    unittest.main()
