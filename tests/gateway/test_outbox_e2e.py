"""End-to-end tests of where a reply goes when queue-svc is not simply there (gateway/outbox.c):
restarted, full, answering nothing, down for good. Real processes on loopback (gwstack.Stack),
plus a TCP proxy in front of queue-svc that can swallow its answers.

What they hold the gateway to (docs/gateway.md, "Degraded modes"):
- a restart of queue-svc of a few seconds keeps every chat's replies in order and sends
  nothing directly;
- an Enqueue whose outcome is unknown (queue-svc took it, the answer was lost) is retried, never
  sent directly as well: the reply arrives once;
- a full queue is back-pressure (held, retried, the update unconfirmed), never direct sends;
- only past QUEUE_FALLBACK_AFTER does the gateway send directly, and it returns to the queue.
"""

import socket
import threading
import time
import unittest

from engbot_test import http_get, metric, wait_until
from gwstack import Stack, require

ALL = ("bot-api-emulator", "session-svc", "cache-svc", "queue-svc", "gateway")


def nothing(word):
    """The reply text to `/search <word>` (the catalogue has no such file)."""
    return f"Nothing matches \u201c{word}\u201d"


def texts(s, chat):
    return [e.get("text", "") for e in s.events(chat) if e["method"] == "sendMessage"]


def queue_metric(s, name, labels=None):
    return metric(s.svc["queue"].http_port, name, labels) or 0.0


class BlackholeProxy:
    """A TCP proxy to one address. With swallow on, bytes from the server are read and dropped
    (requests still reach it: it acts on them, the client never hears back); with drop on, bytes
    from the client are dropped too (nothing reaches it). heal() closes every connection (an
    HTTP/2 stream that lost bytes cannot go on) and forwards normally again."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.swallow = False
        self.drop = False
        self.conns = []
        self.lock = threading.Lock()
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.target, timeout=5)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            threading.Thread(target=self._pump, args=(c, u, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, True), daemon=True).start()

    def _pump(self, src, dst, from_server):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                if self.drop or (from_server and self.swallow):
                    continue
                dst.sendall(b)
        except OSError:
            pass
        for x in (src, dst):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def heal(self):
        with self.lock:
            conns, self.conns = self.conns, []
        for x in conns:
            try:
                x.shutdown(socket.SHUT_RDWR)
                x.close()
            except OSError:
                pass
        self.swallow = self.drop = False

    def close(self):
        self.closed = True
        self.ls.close()
        self.heal()


def behind_proxy(test, lease_time):
    """A stack whose gateway reaches queue-svc through a BlackholeProxy (calls that time out
    after 500 ms), with LEASE_TIME lease_time. Returns (stack, proxy)."""
    s = Stack(start_gateway=False)
    test.addCleanup(s.close)
    proxy = BlackholeProxy(s.ports["queue"])
    test.addCleanup(proxy.close)
    s.gw_env.update({"QUEUE_SVC_ADDR": f"127.0.0.1:{proxy.port}", "QUEUE_DEADLINE": "500ms",
                     "LEASE_TIME": lease_time})
    s.start_gateway()
    return s, proxy


class QueueRestart(unittest.TestCase):
    def test_kill9_of_queue_svc_keeps_order_and_sends_nothing_directly(self):
        """A group's replies wait in queue-svc (one a second); queue-svc is killed and comes
        back 2 s later; a message sent meanwhile must be answered after the earlier ones, from
        the queue. (Before the fix it was sent directly at once, overtaking them.)"""
        require(*ALL)
        s = Stack(queue_args=("--chat-rate=0", "--global-rate=0", "--group-rate=1/s",
                              "--group-burst=1"))
        self.addCleanup(s.close)
        chat = -4101
        s.mark(chat)
        for w in ("qa1", "qa2", "qa3"):
            s.say(chat, f"/search {w}", chat_type="group", mark=False)
        s.wait_for(chat, 1)  # qa1 went out; qa2 and qa3 wait behind the group's rate
        wait_until(lambda: s.metric("engbot_gateway_outbox_total", {"path": "queued"}) >= 3, 5,
                   what="three replies queued")
        time.sleep(0.3)  # qa1's Ack is durable
        s.stop_service("queue", kill=True)
        s.say(chat, "/search qa4", chat_type="group", mark=False)
        # Held while queue-svc is down (polled: a slow build, e.g. TSan, takes a while to
        # get the update at all); queue-svc stays down 2 s.
        t_end = time.monotonic() + 2.0
        held = 0
        while time.monotonic() < t_end:
            held = max(held, s.metric("engbot_gateway_outbox_waiting"))
            time.sleep(0.1)
        s.start_service("queue")
        s.wait_for(chat, 4, timeout=20)
        time.sleep(1.5)  # anything sent twice would show by now
        got = texts(s, chat)
        order = [w for t in got for w in ("qa1", "qa2", "qa3", "qa4") if nothing(w) in t]
        self.assertEqual(order, ["qa1", "qa2", "qa3", "qa4"], got)
        self.assertEqual(s.metric("engbot_gateway_outbox_total", {"path": "direct"}), 0)
        self.assertEqual(held, 1, "the reply to qa4 was held for queue-svc")
        self.assertGreaterEqual(
            s.metric("engbot_gateway_enqueue_retries_total", {"reason": "unavailable"}) +
            s.metric("engbot_gateway_enqueue_retries_total", {"reason": "unknown"}), 1)


class UnknownOutcome(unittest.TestCase):
    def test_enqueue_without_answer_is_retried_not_sent_directly(self):
        """queue-svc takes an Enqueue but its answer is lost: the gateway must not send the
        reply directly (queue-svc sends it); retrying the Enqueue finds the duplicate. The
        user gets the reply once."""
        require(*ALL)
        # Jobs leased while the answers are swallowed come back after LEASE_TIME.
        s, proxy = behind_proxy(self, "3s")
        chat = 4201
        s.say(chat, "/help")
        s.wait_for(chat, 1)
        s.mark(chat)
        proxy.swallow = True
        s.say(chat, "/search zz1", mark=False)
        # queue-svc has the job (it answered; the answer is swallowed) ...
        wait_until(lambda: queue_metric(s, "queue_jobs", {"state": "queued"}) +
                   queue_metric(s, "queue_jobs", {"state": "leased"}) == 1, 5,
                   what="queue-svc has the job")
        time.sleep(2)  # ... and the gateway's Enqueue (deadline 500 ms) got no answer
        proxy.heal()
        s.wait_for(chat, 1, timeout=20)
        time.sleep(4)  # past a lease of the job made while the answers were swallowed
        got = [t for t in texts(s, chat) if nothing("zz1") in t]
        self.assertEqual(len(got), 1, texts(s, chat))
        self.assertEqual(s.metric("engbot_gateway_outbox_total", {"path": "direct"}), 0)
        self.assertGreaterEqual(s.metric("engbot_gateway_enqueue_retries_total",
                                         {"reason": "unknown"}), 1)
        self.assertGreaterEqual(s.metric("engbot_gateway_outbox_total", {"path": "duplicate"}), 1)


class LostAck(unittest.TestCase):
    def test_ack_that_gets_no_answer_is_retried_not_sent_again(self):
        """A reply is sent while queue-svc becomes unreachable (nothing gets through either
        way); its Ack fails. The sender retries the Ack once queue-svc is reachable again,
        within the lease, so queue-svc does not send the reply a second time when the lease
        runs out. (Before, the Ack was tried once and the job went out again after LEASE_TIME.)"""
        require(*ALL)
        s, proxy = behind_proxy(self, "8s")
        chat = 4251
        s.say(chat, "/help")
        s.wait_for(chat, 1)
        s.ctl("/control/fault", {"kind": "slow", "method": "sendMessage", "chat_id": chat,
                                 "delay_ms": 1500, "count": 1})
        s.say(chat, "/search ak1")
        t0 = time.monotonic()
        time.sleep(0.5)  # queued, leased, and its sendMessage in flight (1.5 s)
        proxy.drop = True
        time.sleep(2.5)  # the send completed; its Ack got no answer
        proxy.heal()
        s.wait_for(chat, 1, timeout=10)
        time.sleep(max(0.0, 8 + 3 - (time.monotonic() - t0)))  # past the 8 s lease
        got = [t for t in texts(s, chat) if nothing("ak1") in t]
        self.assertEqual(len(got), 1, texts(s, chat))
        self.assertEqual(s.metric("engbot_gateway_queue_settle_failures_total"), 0)
        self.assertEqual(queue_metric(s, "queue_lease_expired_total"), 0)


class QueueFull(unittest.TestCase):
    QARGS = ("--chat-rate=0", "--group-rate=0", "--global-rate=4/s", "--global-burst=1",
             "--queue-max-size=2")

    def _check_all_answered_once(self, s, chats, watch=None):
        seen = False
        deadline = time.monotonic() + 30
        for c in chats:
            while watch and not seen and time.monotonic() < deadline and not texts(s, c):
                seen = watch()
                time.sleep(0.05)
            s.wait_for(c, 1, timeout=30)
        time.sleep(1)
        for c in chats:
            self.assertEqual(len(texts(s, c)), 1, (c, texts(s, c)))
        self.assertEqual(s.metric("engbot_gateway_outbox_total", {"path": "direct"}), 0)
        self.assertGreaterEqual(s.metric("engbot_gateway_enqueue_retries_total",
                                         {"reason": "queue_full"}), 1)
        self.assertGreaterEqual(queue_metric(s, "queue_rejected_total", {"reason": "queue_full"}),
                                1)
        return seen

    def test_full_queue_is_back_pressure_in_polling_mode(self):
        """More replies than the queue holds, drained at 4/s: the extra ones wait (their
        updates unconfirmed, so Telegram keeps them) and go through the queue as it drains;
        none is sent directly, on top of the queue's budget."""
        require(*ALL)
        s = Stack(queue_args=self.QARGS)
        self.addCleanup(s.close)
        chats = list(range(4301, 4311))
        for c in chats:
            s.mark(c)
        for c in chats:
            s.say(c, "/help", mark=False)

        def held_and_unconfirmed():
            # Replies held while the queue is full, and their updates not confirmed: the
            # emulator (Telegram) still has them.
            return (s.metric("engbot_gateway_outbox_waiting") >= 3 and
                    s.ctl("/control/updates").get("pending", 0) >= 1)
        self.assertTrue(self._check_all_answered_once(s, chats, held_and_unconfirmed),
                        "never saw replies held with their updates unconfirmed")

    def test_full_queue_in_webhook_mode_answers_503_then_handles_once(self):
        """In webhook mode a held update's request answers 503 after WEBHOOK_MAX_WAIT, Telegram
        (the emulator) delivers it again, and the reply still goes out once, queued."""
        require(*ALL)
        s = Stack(queue_args=self.QARGS, webhook=True, gw_env={"WEBHOOK_MAX_WAIT": "500ms"})
        self.addCleanup(s.close)
        chats = list(range(4321, 4331))
        for c in chats:
            s.mark(c)
        for c in chats:
            s.say(c, "/help", mark=False)
        self._check_all_answered_once(s, chats)
        self.assertGreaterEqual(s.metric("engbot_gateway_webhook_requests_total",
                                         {"result": "busy"}), 1)


class Fallback(unittest.TestCase):
    def test_direct_sends_only_after_queue_fallback_after_then_back_to_queue(self):
        require(*ALL)
        s = Stack(gw_env={"QUEUE_FALLBACK_AFTER": "3s"})
        self.addCleanup(s.close)
        chat = 4401
        s.say(chat, "/help")
        s.wait_for(chat, 1)
        s.stop_service("queue")
        wait_until(lambda: "queue=down" in http_get(s.gw.http_port, "/readyz")[1], 10,
                   what="readyz shows queue down")
        t0 = time.monotonic()
        s.say(chat, "/search fb1")
        s.wait_for(chat, 1, timeout=15)
        held = time.monotonic() - t0
        # Held until queue-svc had been down QUEUE_FALLBACK_AFTER, then sent directly.
        self.assertGreater(held, 1.0)
        # Counted once Telegram's answer is in: a moment after the emulator shows the message.
        wait_until(lambda: s.metric("engbot_gateway_outbox_total", {"path": "direct"}) >= 1, 5,
                   what="the reply counted as sent directly")
        self.assertEqual(s.metric("engbot_gateway_queue_fallback"), 1)
        self.assertGreaterEqual(s.metric("engbot_gateway_degraded_total",
                                         {"dependency": "queue"}), 1)
        # Degraded: the next one goes out at once.
        t0 = time.monotonic()
        s.say(chat, "/search fb2")
        s.wait_for(chat, 1, timeout=10)
        self.assertLess(time.monotonic() - t0, 2.5)
        s.start_service("queue")
        wait_until(lambda: "queue=up" in http_get(s.gw.http_port, "/readyz")[1], 15,
                   what="queue back")
        queued = s.metric("engbot_gateway_outbox_total", {"path": "queued"})
        s.say(chat, "/search fb3")
        s.wait_for(chat, 1)
        wait_until(lambda: s.metric("engbot_gateway_outbox_total", {"path": "queued"}) > queued,
                   5, what="queued again")
        self.assertEqual(s.metric("engbot_gateway_queue_fallback"), 0)


if __name__ == "__main__":
    unittest.main()
