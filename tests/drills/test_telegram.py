"""Telegram misbehaving under load (the emulator's faults): 429 with retry_after for some chats,
5xx on every method for a while, slow answers, dropped connections, 409 on getUpdates.
Nothing may be lost; replies are delayed, never reordered; a duplicate is allowed only where
Telegram took a message and the bot never heard back (a connection dropped after the send:
the Bot API has no idempotency key, so a retry sends it twice).
"""

import time
import unittest

from drillcase import SCALE, DrillCase


def fault(s, **f):
    return s.ctl("/control/fault", f)


def clear(s):
    s.ctl("/control/fault/clear", {})


def fired(s, method):
    """Calls of method the emulator answered with an error or dropped, by outcome."""
    c = s.ctl("/control/calls")["calls"].get(method, {})
    return {k: v for k, v in c.items() if k not in ("total", "ok", "upload", "file_id",
                                                    "upload_ok", "file_id_ok")}


class TelegramFaults(DrillCase):
    def test_429_for_some_chats(self):
        """Four private chats and a group get 429 (retry_after 2 s) on their next sends; the
        others must not wait for them."""
        def f(s, d):
            chats = [c.id for c in d.chats[:4]] + [d.chats[-1].id]
            for cid in chats:
                fault(s, kind="429", chat_id=cid, count=3, retry_after=2)
            time.sleep(4 * SCALE)
            clear(s)
            return {"chats": chats, "sendMessage": fired(s, "sendMessage"),
                    "sendDocument": fired(s, "sendDocument")}

        def after(s, d, rep):
            # The chats without faults kept their usual latency while the others waited.
            hit = set(rep.numbers["fault"]["chats"])
            lat = [e_lat for c in d.chats if c.id not in hit and c.kind == "private"
                   for e_lat in _latencies(d, c, "fault")]
            rep.numbers["latency_ms_fault_phase_other_private_chats_max"] = max(lat) if lat else None
        self.drill(f, after=after)

    def test_5xx_for_a_while(self):
        """Every method (getUpdates, sends, uploads, callback answers) answers 502 for 3 s."""
        def f(s, d):
            fault(s, kind="5xx", status=502)
            time.sleep(3 * SCALE)
            clear(s)
            return {"getUpdates": fired(s, "getUpdates"), "sendMessage": fired(s, "sendMessage"),
                    "sendDocument": fired(s, "sendDocument"),
                    "answerCallbackQuery": fired(s, "answerCallbackQuery")}
        # A callback answer is one direct call, not retried: a press during the outage keeps
        # its spinner until Telegram gives up (the file still comes). Counted, not failed.
        self.drill(f, acct_kw={"unanswered_presses_in_fault": True})

    def test_slow_answers(self):
        """Every Bot API call takes 1.5 s longer for 3 s."""
        def f(s, d):
            fault(s, kind="slow", delay_ms=1500)
            time.sleep(3 * SCALE)
            clear(s)
            return {"delay_ms": 1500}
        self.drill(f)

    def test_dropped_connections(self):
        """Connections dropped without an answer: 6 sends before they take effect, 3 after
        (the message is delivered, the bot never hears), and 2 getUpdates after they were
        answered (the updates come again and must be recognised)."""
        def f(s, d):
            fault(s, kind="drop", method="sendMessage", count=6)
            fault(s, kind="drop", method="sendDocument", count=2)
            fault(s, kind="drop", method="getUpdates", count=2, after=True)
            time.sleep(2 * SCALE)
            fault(s, kind="drop", method="sendMessage", count=3, after=True)
            time.sleep(2 * SCALE)
            left = s.ctl("/control/faults")
            clear(s)
            return {"sendMessage": fired(s, "sendMessage"),
                    "sendDocument": fired(s, "sendDocument"),
                    "getUpdates": fired(s, "getUpdates"), "faults_left": left}
        # The three sends dropped after they took effect are the only duplicates allowed.
        self.drill(f, acct_kw={"allowed_duplicates": 3,
                               "unanswered_presses_in_fault": False})

    def test_409_conflict(self):
        """getUpdates answers 409 three times (another instance polling)."""
        def f(s, d):
            fault(s, kind="409", method="getUpdates", count=3)
            t0 = time.monotonic()
            while fired(s, "getUpdates").get("409", 0) < 3 and time.monotonic() - t0 < 30:
                time.sleep(0.2)
            return {"getUpdates": fired(s, "getUpdates"),
                    "conflict_seconds": round(time.monotonic() - t0, 1)}
        self.drill(f)


def _latencies(d, c, phase):
    """Latencies (ms) of chat c's actions of a phase, from its replies in order."""
    with d.lock:
        evs = [e for e in d.replies.get(c.id, []) if e["seq"] > d.setup_seq]
    acts = [a for a in c.actions]
    return [e["ts_ms"] - a.t_ms for a, e in zip(acts, evs) if a.phase == phase]


if __name__ == "__main__":
    unittest.main()
