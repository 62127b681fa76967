"""sampler -- a background thread that samples the running stack every `period` seconds:
resident memory of every process (VmRSS from /proc, the same number as
process_resident_memory_bytes), queue-svc's depth and rejections, the gateway's
degraded-mode answers, and from the driver: actions sent, replies seen, and the latency of
the replies that arrived in the interval. The rows go to a CSV for the soak's plot.
"""

import csv
import threading
import time

from driver import REPLY_METHODS, classify, pct

COLUMNS = ["t_s", "rss_emulator_kib", "rss_gateway_kib", "rss_session_kib", "rss_cache_kib",
           "rss_queue_kib", "actions", "replies", "actions_per_s", "replies_per_s",
           "latency_p50_ms", "latency_p99_ms", "unanswered", "queue_queued", "queue_leased",
           "queue_rejected", "telegram_429", "degraded", "new_replies", "degraded_replies",
           "error_rate", "in_fault", "phase"]


class Sampler:
    def __init__(self, stack, driver=None, period=1.0):
        self.s = stack
        self.d = driver
        self.period = period
        self.rows = []
        self._stop = threading.Event()
        self._t = None
        self.t0 = time.time()
        self._seen_events = 0
        self._last_actions = 0
        self._last_replies = 0

    def start(self):
        self._t = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._t.start()
        return self

    def stop(self):
        self._stop.set()
        if self._t:
            self._t.join(10)

    def _run(self):
        while not self._stop.wait(self.period):
            try:
                self.rows.append(self.sample())
            except Exception as e:  # noqa: BLE001 -- a process may be restarting
                self.rows.append({"t_s": round(time.time() - self.t0, 1), "phase": f"error {e}"})

    def sample(self):
        now = time.time()
        row = {"t_s": round(now - self.t0, 1)}
        for name, kib in self.s.rss_kib().items():
            row[f"rss_{name}_kib"] = kib
        row["queue_queued"] = self.s.svc_metric("queue", "queue_jobs", {"state": "queued"})
        row["queue_leased"] = self.s.svc_metric("queue", "queue_jobs", {"state": "leased"})
        rej = 0.0
        for reason in ("queue_full", "lane_full", "bytes_full"):
            rej += self.s.svc_metric("queue", "queue_rejected_total", {"reason": reason}) or 0
        row["queue_rejected"] = rej
        row["telegram_429"] = self.s.gw_metric("engbot_gateway_telegram_429_total")
        row["degraded"] = sum(self.s.gw_metric("engbot_gateway_degraded_total",
                                               {"dependency": dep}) or 0
                              for dep in ("session", "cache", "queue"))
        if self.d:
            d = self.d
            with d.lock:
                new = d.events[self._seen_events:]
                self._seen_events = len(d.events)
            acts = d.all_actions()
            n_act = len(acts)
            n_rep = sum(len(v) for v in d.replies.values())
            dt = self.period
            row["actions"], row["replies"] = n_act, n_rep
            row["actions_per_s"] = round((n_act - self._last_actions) / dt, 2)
            row["replies_per_s"] = round((n_rep - self._last_replies) / dt, 2)
            self._last_actions, self._last_replies = n_act, n_rep
            # Latency of the replies that came in this interval: each chat's replies are
            # paired with its actions in order (the accountant checks that order holds).
            lats = []
            by_chat = {}
            n_new = n_bad = 0
            for e in new:
                if e["method"] in REPLY_METHODS and e["seq"] > d.setup_seq:
                    by_chat.setdefault(e.get("chat_id"), []).append(e)
                    n_new += 1
                    if classify(e)[1] not in ("ok", "notfound"):
                        n_bad += 1
            # Error rate: replies that were a degraded answer ("Files are temporarily
            # unavailable", "no longer available") among the replies of the interval.
            row["new_replies"], row["degraded_replies"] = n_new, n_bad
            row["error_rate"] = round(n_bad / n_new, 4) if n_new else 0.0
            for cid, evs in by_chat.items():
                c = d.by_id.get(cid)
                if not c:
                    continue
                with d.lock:
                    total = len(d.replies.get(cid, ()))
                first = total - len(evs) - (1 if c.browse_msg is not None else 0)
                for k, e in enumerate(evs):
                    i = first + k
                    if 0 <= i < len(c.actions):
                        lats.append(e["ts_ms"] - c.actions[i].t_ms)
            row["latency_p50_ms"] = pct(lats, 50)
            row["latency_p99_ms"] = pct(lats, 99)
            row["unanswered"] = sum(max(0, d.outstanding(c)) for c in d.chats)
            row["phase"] = d.phase
            row["in_fault"] = 1 if d.phase == "fault" else 0
        return row

    def max_of(self, col):
        vals = [r.get(col) for r in self.rows if isinstance(r.get(col), (int, float))]
        return max(vals) if vals else None

    def write_csv(self, path):
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore", restval="")
            w.writeheader()
            for r in self.rows:
                w.writerow(r)
