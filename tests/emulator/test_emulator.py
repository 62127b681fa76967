"""The Bot API emulator against Telegram's behaviour: each method, long polling and its 409
hand-over, webhook delivery (secret header, retries, per-chat order), limits, faults,
migration, rate limits, bad input, and the control API."""

import http.server
import json
import os
import signal
import socket
import sys
import threading
import time
import unittest
import urllib.error

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from emu_client import TOKEN, Emu, multipart, request  # noqa: E402
from engbot_test import run, wait_until  # noqa: E402

CONFLICT_POLL = ("Conflict: terminated by other getUpdates request; make sure that only one "
                 "bot instance is running")
CONFLICT_WEBHOOK = ("Conflict: can't use getUpdates method while webhook is active; use "
                    "deleteWebhook to delete the webhook first")
WRONG_FILE = "Bad Request: wrong file identifier/HTTP URL specified"
TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"


def bg(fn, *a, **kw):
    """Runs fn in a thread; returns a getter for its result."""
    box = {}

    def go():
        try:
            box["r"] = fn(*a, **kw)
        except Exception as e:  # noqa: BLE001
            box["e"] = e
    t = threading.Thread(target=go, daemon=True)
    t.start()

    def get(timeout=30):
        t.join(timeout)
        assert not t.is_alive(), "background call did not finish"
        if "e" in box:
            raise box["e"]
        return box["r"]
    return get


class Hook:
    """A webhook receiver: records each request; answers with plan[i] (status, body) or 200."""

    def __init__(self):
        self.requests = []
        self.plan = {}
        self.delay = {}  # chat_id -> seconds to hold the answer
        self.answer = None
        self.lock = threading.Condition()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n))
                with outer.lock:
                    idx = len(outer.requests)
                    outer.requests.append((dict(self.headers), body, time.monotonic()))
                    outer.lock.notify_all()
                chat = (body.get("message") or {}).get("chat", {}).get("id")
                if chat in outer.delay:
                    time.sleep(outer.delay[chat])
                st, text = outer.plan.get(idx, (200, outer.answer or ""))
                data = text.encode()
                self.send_response(st)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/hook"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def wait(self, n, timeout=15):
        with self.lock:
            ok = self.lock.wait_for(lambda: len(self.requests) >= n, timeout)
        assert ok, f"webhook got {len(self.requests)} requests, wanted {n}"
        return self.requests

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class EmulatorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emu(["--webhook-retry-min=100ms", "--webhook-retry-max=400ms",
                       "--callback-ttl=2s", "--upload-limit=64KiB"])

    @classmethod
    def tearDownClass(cls):
        rc = cls.emu.stop()
        assert rc == 0, f"emulator exit status {rc}"

    def setUp(self):
        self.emu.reset()

    def err(self, method, params, status, desc, **kw):
        st, env = self.emu.api(method, params, **kw)
        self.assertEqual(st, status, env)
        self.assertEqual(env["ok"], False)
        self.assertEqual(env["error_code"], status)
        self.assertEqual(env["description"], desc)
        return env

    # ---- envelope, auth, encodings ----
    def test_get_me_in_every_encoding(self):
        for how in ("json", "form", "query", "multipart"):
            me = self.emu.ok("getMe", {}, how=how)
            self.assertEqual(me["id"], 123456)
            self.assertTrue(me["is_bot"])
            self.assertTrue(me["username"])
        self.assertEqual(self.emu.ok("GETME", {})["id"], 123456, "method names are case-insensitive")

    def test_token_and_method_errors(self):
        self.err("getMe", {}, 401, "Unauthorized", token="not-a-token")
        self.err("getMe", {}, 401, "Unauthorized", token="12:bad.token")
        self.err("noSuchMethod", {}, 404, "Not Found")
        st, env = request(f"{self.emu.base}/bot{TOKEN}")
        self.assertEqual((st, env["description"]), (404, "Not Found"))
        e2 = Emu(["--bot-token=777:the-only-one"])
        try:
            self.assertEqual(e2.api("getMe", token=TOKEN)[0], 401)
            self.assertEqual(e2.ok("getMe", {}, token="777:the-only-one")["id"], 777)
            self.assertFalse(e2.proc.has_log(lambda r: "the-only-one" in json.dumps(r)),
                             "the token must never be logged")
        finally:
            e2.stop()

    # ---- getUpdates ----
    def test_message_update_shape_and_offsets(self):
        a = self.emu.say("/start@engbot_emulator_bot hello", chat_id=42, username="ada",
                         first_name="Ada")
        b = self.emu.say("second", chat_id=42)
        c = self.emu.ctl("message", {"chat_id": -100500, "chat_type": "supergroup",
                                     "user_id": 7, "text": "/help"})
        ups = self.emu.ok("getUpdates", {"offset": 0})
        self.assertEqual([u["update_id"] for u in ups], [a["update_id"], b["update_id"],
                                                         c["update_id"]])
        m = ups[0]["message"]
        self.assertEqual(m["chat"], {"id": 42, "first_name": "Ada", "username": "ada",
                                     "type": "private"})
        self.assertEqual(m["from"]["id"], 42)
        self.assertEqual(m["entities"], [{"offset": 0, "length": 26, "type": "bot_command"}])
        self.assertNotIn("entities", ups[1]["message"])
        self.assertEqual(ups[2]["message"]["chat"]["type"], "supergroup")
        self.assertEqual(ups[2]["message"]["from"]["id"], 7)
        # limit, then confirm by offset
        self.assertEqual(len(self.emu.ok("getUpdates", {"limit": 2})), 2)
        self.assertEqual(len(self.emu.ok("getUpdates", {"offset": b["update_id"]})), 2)
        self.assertEqual(self.emu.ok("getUpdates", {"offset": b["update_id"]})[0]["update_id"],
                         b["update_id"], "confirmed updates are forgotten")
        self.assertEqual(self.emu.ok("getUpdates", {"offset": -1})[0]["update_id"],
                         c["update_id"])
        self.assertEqual(len(self.emu.ok("getUpdates", {"offset": 0})), 1,
                         "a negative offset forgets all but the last ones")
        # ids keep growing across a reset
        self.emu.reset()
        self.assertGreater(self.emu.say("again")["update_id"], c["update_id"])

    def test_control_message_validation(self):
        for bad in ({"chat_id": 42, "user_id": 43, "text": "x"},
                    {"chat_id": 42, "chat_type": "group", "text": "x"},
                    {"chat_id": 42, "chat_type": "channel", "text": "x"},
                    {"chat_id": 42, "text": ""}, {"chat_id": "x", "text": "y"}):
            st, r = self.emu.control("message", bad)
            self.assertEqual(st, 400, bad)
            self.assertIn("error", r)
        st, _ = self.emu.control("message", None, method="POST")
        self.assertEqual(st, 400)

    def test_long_poll_wakes_on_update(self):
        t0 = time.monotonic()
        got = bg(self.emu.ok, "getUpdates", {"timeout": 20}, timeout=30)
        time.sleep(0.3)
        self.emu.say("wake up")
        ups = got()
        self.assertEqual(ups[0]["message"]["text"], "wake up")
        self.assertLess(time.monotonic() - t0, 5)
        t0 = time.monotonic()
        self.assertEqual(self.emu.ok("getUpdates", {"timeout": 1, "offset": ups[0]["update_id"] + 1}), [])
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)

    def test_second_poller_terminates_the_first(self):
        first = bg(self.emu.api, "getUpdates", {"timeout": 20}, timeout=30)
        time.sleep(0.3)
        second = bg(self.emu.api, "getUpdates", {"timeout": 20}, timeout=30)
        st, env = first(10)
        self.assertEqual((st, env["error_code"], env["description"]), (409, 409, CONFLICT_POLL))
        self.emu.say("for the new poller")
        st, env = second(10)
        self.assertEqual(st, 200)
        self.assertEqual(env["result"][0]["message"]["text"], "for the new poller")

    def test_allowed_updates_is_sticky(self):
        self.emu.ok("getUpdates", {"allowed_updates": ["callback_query"]})
        self.emu.say("filtered out")
        self.emu.ctl("callback", {"chat_id": 42, "message_id": 1, "data": "x"})
        ups = self.emu.ok("getUpdates", {})
        self.assertEqual([list(u)[1] for u in ups], ["callback_query"])
        self.emu.ok("getUpdates", {"allowed_updates": [], "offset": ups[-1]["update_id"] + 1})
        self.emu.say("back")
        self.assertEqual(self.emu.ok("getUpdates", {})[0]["message"]["text"], "back")

    def test_raw_update(self):
        r = self.emu.ctl("raw_update", {"message": {"weird": True}})
        r2 = self.emu.ctl("raw_update", {"update_id": 999999, "edited_message": "not an object"})
        ups = self.emu.ok("getUpdates", {})
        self.assertEqual(ups[0], {"update_id": r["update_id"], "message": {"weird": True}})
        self.assertEqual(ups[1], {"update_id": 999999, "edited_message": "not an object"})
        self.assertEqual(r2["update_id"], 999999)
        self.assertGreater(self.emu.say("next")["update_id"], 999999)

    # ---- webhooks ----
    def test_webhook_delivery_with_secret_and_info(self):
        hook = Hook()
        try:
            self.emu.say("queued before the webhook")
            r = self.emu.api("setWebhook", {"url": hook.url, "secret_token": "s3cr-et_X",
                                            "max_connections": 5})[1]
            self.assertEqual((r["result"], r["description"]), (True, "Webhook was set"))
            self.assertEqual(self.emu.api("setWebhook", {"url": hook.url, "secret_token": "s3cr-et_X",
                                                         "max_connections": 5})[1]["description"],
                             "Webhook is already set")
            self.err("getUpdates", {}, 409, CONFLICT_WEBHOOK)
            self.emu.say("after", chat_id=43)
            reqs = hook.wait(2)
            for headers, body, _ in reqs:
                self.assertEqual(headers["X-Telegram-Bot-Api-Secret-Token"], "s3cr-et_X")
                self.assertEqual(headers["Content-Type"], "application/json")
                self.assertIn("update_id", body)
            self.assertEqual(sorted(b["message"]["text"] for _, b, _ in reqs),
                             ["after", "queued before the webhook"])
            wait_until(lambda: self.emu.ok("getWebhookInfo")["pending_update_count"] == 0,
                       what="pending drained")
            info = self.emu.ok("getWebhookInfo")
            self.assertEqual((info["url"], info["max_connections"]), (hook.url, 5))
            ctl = self.emu.ctl("webhook")
            self.assertEqual((ctl["url"], ctl["secret_set"], ctl["pending_update_count"]),
                             (hook.url, True, 0))
            r = self.emu.api("deleteWebhook", {})[1]
            self.assertEqual(r["description"], "Webhook was deleted")
            self.assertEqual(self.emu.api("deleteWebhook", {})[1]["description"],
                             "Webhook is already deleted")
            self.assertEqual(self.emu.ok("getWebhookInfo")["url"], "")
            self.assertEqual(self.emu.ok("getUpdates", {}), [])
        finally:
            hook.close()

    def test_webhook_retries_non_2xx_and_keeps_chat_order(self):
        hook = Hook()
        try:
            hook.plan = {0: (500, "oops"), 1: (401, "")}
            self.emu.ok("setWebhook", {"url": hook.url})
            self.emu.say("one", chat_id=50)
            self.emu.say("two", chat_id=50)
            reqs = hook.wait(4)
            texts = [b["message"]["text"] for _, b, _ in reqs]
            self.assertEqual(texts, ["one", "one", "one", "two"],
                             "a failing update holds back its chat and is retried")
            self.assertGreater(reqs[1][2] - reqs[0][2], 0.08, "retries back off")
            info = self.emu.ok("getWebhookInfo")
            self.assertEqual(info["last_error_message"],
                             "Wrong response from the webhook: 401 Unauthorized")
            self.assertGreater(info["last_error_date"], 0)
            wait_until(lambda: self.emu.ok("getWebhookInfo")["pending_update_count"] == 0)
        finally:
            hook.close()

    def test_webhook_one_in_flight_per_chat_others_go_on(self):
        hook = Hook()
        try:
            hook.delay = {60: 1.5}
            self.emu.ok("setWebhook", {"url": hook.url})
            self.emu.say("slow 1", chat_id=60)
            self.emu.say("slow 2", chat_id=60)
            self.emu.say("fast", chat_id=61)
            reqs = hook.wait(2, timeout=5)
            self.assertEqual(sorted(b["message"]["text"] for _, b, _ in reqs[:2]),
                             ["fast", "slow 1"], "the second update of a chat waits")
            reqs = hook.wait(3)
            self.assertEqual(reqs[2][1]["message"]["text"], "slow 2")
        finally:
            hook.close()

    def test_webhook_unreachable_and_answer_method(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/x"
        s.close()
        self.emu.ok("setWebhook", {"url": dead})
        self.emu.say("nobody listens")
        wait_until(lambda: "last_error_message" in self.emu.ok("getWebhookInfo"))
        self.assertEqual(self.emu.ok("getWebhookInfo")["pending_update_count"], 1)
        hook = Hook()
        try:
            hook.answer = json.dumps({"method": "sendMessage", "chat_id": 42, "text": "inline"})
            self.emu.ok("setWebhook", {"url": hook.url})
            hook.wait(1)
            wait_until(lambda: self.emu.transcript(chat_id=42)["events"], what="answer method")
            self.assertEqual(self.emu.transcript(chat_id=42)["events"][0]["text"], "inline")
        finally:
            hook.close()
        self.err("setWebhook", {"url": "ftp://x"}, 400, "Bad Request: bad webhook: Wrong HTTP URL specified")
        self.err("setWebhook", {"url": "http://x", "secret_token": "bad secret!"}, 400,
                 "Bad Request: secret token contains unallowed characters")

    # ---- sendMessage / editMessageText / keyboards ----
    def test_send_message_limits_and_parse_modes(self):
        self.emu.say("hi")
        self.emu.ok("sendMessage", {"chat_id": 42, "text": "a" * 4096})
        self.err("sendMessage", {"chat_id": 42, "text": "a" * 4097}, 400,
                 "Bad Request: message is too long")
        self.emu.ok("sendMessage", {"chat_id": 42, "text": "\U0001F600" * 2048})
        self.err("sendMessage", {"chat_id": 42, "text": "\U0001F600" * 2049}, 400,
                 "Bad Request: message is too long")
        self.emu.ok("sendMessage", {"chat_id": 42, "text": "<b>x</b>" * 1000 + "a" * 3000,
                                    "parse_mode": "HTML"})
        self.err("sendMessage", {"chat_id": 42, "text": ""}, 400, "Bad Request: message text is empty")
        self.err("sendMessage", {"chat_id": 42}, 400, "Bad Request: message text is empty")
        self.err("sendMessage", {"text": "x"}, 400, "Bad Request: chat_id is empty")
        self.err("sendMessage", {"chat_id": 4242, "text": "x"}, 400, "Bad Request: chat not found")
        self.err("sendMessage", {"chat_id": 42, "text": "x", "parse_mode": "BBCode"}, 400,
                 "Bad Request: unsupported parse_mode")
        self.err("sendMessage", {"chat_id": 42, "text": "a <b>bold", "parse_mode": "HTML"}, 400,
                 "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\"")
        self.err("sendMessage", {"chat_id": 42, "text": "a <x>b</x>", "parse_mode": "HTML"}, 400,
                 "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 2")
        self.err("sendMessage", {"chat_id": 42, "text": "file.pdf", "parse_mode": "MarkdownV2"},
                 400, "Bad Request: can't parse entities: Character '.' is reserved and must be "
                 "escaped with the preceding '\\'")
        m = self.emu.ok("sendMessage", {"chat_id": 42, "text": "<b>Pump</b> &lt;A&gt; \U0001F600 <i>x</i>",
                                        "parse_mode": "HTML"})
        self.assertEqual(m["text"], "Pump <A> \U0001F600 x")
        self.assertEqual(m["entities"], [{"offset": 0, "length": 4, "type": "bold"},
                                         {"offset": 12, "length": 1, "type": "italic"}])
        m = self.emu.ok("sendMessage", {"chat_id": 42, "text": "*b* file\\.pdf", "parse_mode": "MarkdownV2"})
        self.assertEqual(m["text"], "b file.pdf")
        st, env = self.emu.api("sendMessage", {"chat_id": 42, "text": "x"}, how="multipart")
        self.assertEqual(st, 200)
        ev = self.emu.transcript(chat_id=42)["events"]
        self.assertEqual([e["method"] for e in ev], ["sendMessage"] * 6)
        self.assertEqual(ev[3]["plain"], "Pump <A> \U0001F600 x")
        self.assertEqual(ev[3]["parse_mode"], "HTML")

    def test_keyboards_and_callback_data_limit(self):
        self.emu.say("hi")
        kb = {"inline_keyboard": [[{"text": "A", "callback_data": "x" * 64}],
                                  [{"text": "site", "url": "https://example.org"}]]}
        m = self.emu.ok("sendMessage", {"chat_id": 42, "text": "pick", "reply_markup": kb})
        self.assertEqual(m["reply_markup"], kb)
        self.assertEqual(self.emu.transcript(chat_id=42)["events"][0]["reply_markup"], kb)
        for markup, desc in (
                ({"inline_keyboard": [[{"text": "A", "callback_data": "x" * 65}]]}, "BUTTON_DATA_INVALID"),
                ({"inline_keyboard": [[{"text": "A", "callback_data": ""}]]}, "BUTTON_DATA_INVALID"),
                ({"inline_keyboard": [[{"text": "A"}]]},
                 "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"),
                ({"inline_keyboard": [{"text": "A", "callback_data": "a"}]},
                 "field \"inline_keyboard\" of the InlineKeyboardMarkup should be an Array of Arrays"),
                ({"inline_keyboard": [[{"callback_data": "a"}]]},
                 "can't parse inline keyboard button: Field \"text\" must be of type String"),
                ({"inline_keyboard": [[{"text": "A", "callback_data": "a"}] * 101]},
                 "reply markup is too long")):
            self.err("sendMessage", {"chat_id": 42, "text": "x", "reply_markup": markup}, 400,
                     "Bad Request: " + desc)
        self.err("sendMessage", {"chat_id": 42, "text": "x", "reply_markup": "{not json"}, 400,
                 "Bad Request: can't parse reply keyboard markup JSON object", how="form")

    def test_edit_message_text(self):
        user_msg = self.emu.say("hi")["message_id"]
        m = self.emu.ok("sendMessage", {"chat_id": 42, "text": "page 1"})
        kb = {"inline_keyboard": [[{"text": "next", "callback_data": "p2"}]]}
        e = self.emu.ok("editMessageText", {"chat_id": 42, "message_id": m["message_id"],
                                            "text": "page 2", "reply_markup": kb})
        self.assertEqual((e["text"], e["reply_markup"]), ("page 2", kb))
        self.assertIn("edit_date", e)
        self.err("editMessageText", {"chat_id": 42, "message_id": m["message_id"], "text": "page 2",
                                     "reply_markup": kb}, 400,
                 "Bad Request: message is not modified: specified new message content and reply "
                 "markup are exactly the same as a current content and reply markup of the message")
        self.err("editMessageText", {"chat_id": 42, "message_id": 9999, "text": "x"}, 400,
                 "Bad Request: message to edit not found")
        self.err("editMessageText", {"chat_id": 42, "message_id": user_msg, "text": "x"}, 400,
                 "Bad Request: message can't be edited")
        self.emu.ok("editMessageReplyMarkup", {"chat_id": 42, "message_id": m["message_id"]})
        ev = self.emu.transcript(chat_id=42)["events"]
        self.assertEqual([x["method"] for x in ev],
                         ["sendMessage", "editMessageText", "editMessageReplyMarkup"])
        self.assertEqual(ev[1]["message_id"], m["message_id"])
        self.emu.ok("deleteMessage", {"chat_id": 42, "message_id": m["message_id"]})
        self.err("deleteMessage", {"chat_id": 42, "message_id": m["message_id"]}, 400,
                 "Bad Request: message to delete not found")

    # ---- documents ----
    def test_send_document_upload_file_id_and_limits(self):
        self.emu.say("hi")
        data = os.urandom(3000)
        m = self.emu.ok("sendDocument", {"chat_id": 42, "caption": "<b>rev C</b>", "parse_mode": "HTML"},
                        files={"document": ("pump housing.pdf", data, "application/pdf")})
        d = m["document"]
        self.assertEqual((d["file_name"], d["file_size"], d["mime_type"]),
                         ("pump housing.pdf", 3000, "application/pdf"))
        self.assertEqual(m["caption"], "rev C")
        again = self.emu.ok("sendDocument", {"chat_id": 42, "document": d["file_id"]})
        self.assertEqual(again["document"]["file_id"], d["file_id"])
        up2 = self.emu.ok("sendDocument", {"chat_id": 42},
                          files={"document": ("same.pdf", data, "application/pdf")})
        self.assertNotEqual(up2["document"]["file_id"], d["file_id"])
        self.assertEqual(up2["document"]["file_unique_id"], d["file_unique_id"])
        # attach:// form
        self.emu.ok("sendDocument", {"chat_id": 42, "document": "attach://f"},
                    files={"f": ("a.txt", b"abc", "text/plain")})
        self.err("sendDocument", {"chat_id": 42, "document": "BQACAgnope"}, 400, WRONG_FILE)
        self.err("sendDocument", {"chat_id": 42, "document": d["file_id"]}, 400, WRONG_FILE,
                 token="999:other-bot")
        self.err("sendDocument", {"chat_id": 42}, 400, "Bad Request: there is no document in the request")
        self.err("sendDocument", {"chat_id": 42}, 413, "Request Entity Too Large",
                 files={"document": ("big.bin", b"x" * (64 * 1024 + 1), "application/octet-stream")})
        self.err("sendDocument", {"chat_id": 42, "caption": "c" * 1025}, 400,
                 "Bad Request: message caption is too long",
                 files={"document": ("a.txt", b"abc", "text/plain")})
        ev = [e for e in self.emu.transcript(chat_id=42)["events"] if e["method"] == "sendDocument"]
        import hashlib
        self.assertEqual(ev[0]["document"]["sha256"], hashlib.sha256(data).hexdigest())
        self.assertEqual([e["document"]["uploaded"] for e in ev], [True, False, True, True])
        self.assertEqual(ev[0]["plain"], "rev C")
        c = self.emu.calls("sendDocument")["sendDocument"]
        self.assertEqual((c["upload_ok"], c["file_id_ok"], c["total"]), (3, 1, 9))
        self.assertEqual(c["400"], 4)
        self.assertEqual(c["413"], 1)
        # getFile and the download
        f = self.emu.ok("getFile", {"file_id": d["file_id"]})
        self.assertEqual(f["file_size"], 3000)
        st, body = request_raw(f"{self.emu.base}/file/bot{TOKEN}/{f['file_path']}")
        self.assertEqual((st, body), (200, data))
        self.err("getFile", {"file_id": "nope"}, 400, "Bad Request: invalid file_id")

    # ---- callback queries ----
    def test_callback_query_and_answer(self):
        self.emu.say("hi")
        kb = {"inline_keyboard": [[{"text": "Drawings", "callback_data": "d:1"}]]}
        m = self.emu.ok("sendMessage", {"chat_id": 42, "text": "browse", "reply_markup": kb})
        r = self.emu.ctl("callback", {"chat_id": 42, "user_id": 42, "message_id": m["message_id"],
                                      "data": "d:1"})
        ups = self.emu.ok("getUpdates", {})
        q = ups[-1]["callback_query"]
        self.assertEqual(q["id"], r["callback_query_id"])
        self.assertEqual(q["data"], "d:1")
        self.assertEqual(q["message"]["reply_markup"], kb)
        self.assertEqual(q["message"]["text"], "browse")
        self.assertEqual(q["from"]["id"], 42)
        self.assertTrue(q["chat_instance"])
        self.emu.ok("answerCallbackQuery", {"callback_query_id": q["id"], "text": "opening"})
        self.err("answerCallbackQuery", {"callback_query_id": q["id"]}, 400, TOO_OLD)
        self.err("answerCallbackQuery", {"callback_query_id": "12345"}, 400, TOO_OLD)
        r2 = self.emu.ctl("callback", {"chat_id": 42, "message_id": m["message_id"], "data": "d:1"})
        time.sleep(2.2)
        self.err("answerCallbackQuery", {"callback_query_id": r2["callback_query_id"]}, 400, TOO_OLD)
        ev = self.emu.transcript(chat_id=42)["events"]
        self.assertEqual(ev[-1]["method"], "answerCallbackQuery")
        self.assertEqual((ev[-1]["callback_query_id"], ev[-1]["text"]), (q["id"], "opening"))

    # ---- faults ----
    def test_fault_429_5xx_409(self):
        self.emu.say("hi")
        self.emu.say("hi", chat_id=43)
        self.emu.ctl("fault", {"kind": "429", "method": "sendMessage", "chat_id": 42,
                               "count": 1, "retry_after": 7})
        env = self.err("sendMessage", {"chat_id": 42, "text": "x"}, 429, "Too Many Requests: retry after 7")
        self.assertEqual(env["parameters"], {"retry_after": 7})
        self.emu.ok("sendMessage", {"chat_id": 42, "text": "x"})
        self.emu.ctl("fault", {"kind": "5xx", "status": 503, "method": "sendMessage", "chat_id": 43})
        self.emu.ok("sendMessage", {"chat_id": 42, "text": "other chat unaffected"})
        self.err("sendMessage", {"chat_id": 43, "text": "x"}, 503, "Service Unavailable")
        self.err("sendMessage", {"chat_id": 43, "text": "x"}, 503, "Service Unavailable")
        self.assertEqual(len(self.emu.ctl("faults")["faults"]), 1)
        self.emu.ctl("fault/clear", {})
        self.emu.ok("sendMessage", {"chat_id": 43, "text": "x"})
        self.emu.ctl("fault", {"kind": "409", "method": "getUpdates", "count": 1})
        self.err("getUpdates", {}, 409, CONFLICT_POLL)
        self.emu.ok("getUpdates", {})
        st, r = self.emu.control("fault", {"kind": "teapot"})
        self.assertEqual(st, 400)
        c = self.emu.calls("sendMessage")["sendMessage"]
        self.assertEqual((c["429"], c["503"], c["ok"]), (1, 2, 3))

    def test_fault_slow_and_drop(self):
        self.emu.say("hi")
        self.emu.ctl("fault", {"kind": "slow", "method": "getMe", "delay_ms": 600, "count": 1})
        t0 = time.monotonic()
        self.emu.ok("getMe")
        self.assertGreaterEqual(time.monotonic() - t0, 0.55)
        self.emu.ctl("fault", {"kind": "drop", "method": "sendMessage", "count": 1})
        with self.assertRaises((urllib.error.URLError, ConnectionError, OSError)):
            self.emu.api("sendMessage", {"chat_id": 42, "text": "lost before"})
        self.emu.ctl("fault", {"kind": "drop", "method": "sendMessage", "count": 1, "after": True})
        with self.assertRaises((urllib.error.URLError, ConnectionError, OSError)):
            self.emu.api("sendMessage", {"chat_id": 42, "text": "sent, answer lost"})
        texts = [e["text"] for e in self.emu.transcript(chat_id=42)["events"]]
        self.assertEqual(texts, ["sent, answer lost"])
        self.assertEqual(self.emu.calls("sendMessage")["sendMessage"]["dropped"], 2)

    def test_migrate(self):
        self.emu.ctl("message", {"chat_id": -500, "chat_type": "group", "user_id": 9, "text": "hi"})
        self.emu.ctl("migrate", {"chat_id": -500, "new_chat_id": -1000000000500})
        env = self.err("sendMessage", {"chat_id": -500, "text": "x"}, 400,
                       "Bad Request: group chat was upgraded to a supergroup chat")
        self.assertEqual(env["parameters"], {"migrate_to_chat_id": -1000000000500})
        m = self.emu.ok("sendMessage", {"chat_id": -1000000000500, "text": "x"})
        self.assertEqual(m["chat"]["type"], "supergroup")
        st, _ = self.emu.control("message", {"chat_id": -500, "chat_type": "group", "text": "old"})
        self.assertEqual(st, 409)

    def test_blocked_by_user(self):
        self.emu.say("hi")
        self.emu.ctl("block", {"chat_id": 42})
        self.err("sendMessage", {"chat_id": 42, "text": "x"}, 403, "Forbidden: bot was blocked by the user")
        self.emu.ctl("block", {"chat_id": 42, "blocked": False})
        self.emu.ok("sendMessage", {"chat_id": 42, "text": "x"})

    # ---- transcript and calls ----
    def test_transcript_long_poll_and_filter(self):
        self.emu.say("a", chat_id=70)
        self.emu.say("b", chat_id=71)
        start = self.emu.transcript()["next"]
        got = bg(self.emu.transcript, chat_id=71, since=start, wait_ms=10000)
        time.sleep(0.3)
        self.emu.ok("sendMessage", {"chat_id": 70, "text": "to 70"})
        time.sleep(0.2)
        self.emu.ok("sendMessage", {"chat_id": 71, "text": "to 71"})
        t = got(5)
        self.assertEqual([e["text"] for e in t["events"]], ["to 71"])
        allev = self.emu.transcript(since=start)
        self.assertEqual([e["text"] for e in allev["events"]], ["to 70", "to 71"])
        self.assertEqual(allev["next"], allev["events"][-1]["seq"])
        self.assertEqual(self.emu.transcript(since=allev["next"])["events"], [])
        e = allev["events"][0]
        for k in ("seq", "ts_ms", "method", "chat_id", "message_id", "text"):
            self.assertIn(k, e)

    # ---- rate limits ----
    def test_rate_limits(self):
        emu = Emu(["--chat-burst=5", "--group-per-minute=3", "--global-per-second=12"])
        try:
            for c in range(1, 9):
                emu.say("hi", chat_id=c)
            emu.ctl("message", {"chat_id": -9, "chat_type": "group", "text": "hi"})
            for _ in range(8):
                emu.ok("sendMessage", {"chat_id": 1, "text": "no limits yet"})
            emu.ctl("ratelimits", {"enabled": True})
            for _ in range(5):
                emu.ok("sendMessage", {"chat_id": 1, "text": "burst"})
            st, env = emu.api("sendMessage", {"chat_id": 1, "text": "too fast"})
            self.assertEqual(st, 429)
            self.assertGreaterEqual(env["parameters"]["retry_after"], 1)
            self.assertEqual(env["description"],
                             f"Too Many Requests: retry after {env['parameters']['retry_after']}")
            for _ in range(3):
                emu.ok("sendMessage", {"chat_id": -9, "text": "group"})
            st, env = emu.api("sendMessage", {"chat_id": -9, "text": "group 4"})
            self.assertEqual(st, 429)
            self.assertGreater(env["parameters"]["retry_after"], 5, "20/min-style group limit")
            emu.ctl("ratelimits", {"enabled": True})  # fresh buckets
            n = 0
            for c in range(2, 9):
                for _ in range(2):
                    st, _ = emu.api("sendMessage", {"chat_id": c, "text": "global"})
                    n += st == 200
            self.assertGreaterEqual(n, 12)
            self.assertLess(n, 14, "the global bucket caps the total")
            emu.ctl("ratelimits", {"enabled": False})
            emu.ok("sendMessage", {"chat_id": 1, "text": "free again"})
        finally:
            emu.stop()

    # ---- bad input ----
    def test_bad_input_never_crashes(self):
        base = f"{self.emu.base}/bot{TOKEN}/sendMessage"
        st, env = request(base, b"{not json", "application/json")
        self.assertEqual((st, env["description"]), (400, "Bad Request: can't parse JSON object"))
        st, env = request(base, b"[1,2]", "application/json")
        self.assertEqual(st, 400)
        st, env = request(base, b"--x\r\nbroken", "multipart/form-data; boundary=x")
        self.assertEqual(st, 400)
        st, env = request(base, b"a", "multipart/form-data")
        self.assertEqual(st, 400)
        st, env = request(base, b"a=" + b"x" * (1 << 20), "application/x-www-form-urlencoded")
        self.assertEqual((st, env["description"]), (413, "Request Entity Too Large"))
        st, env = request(base, json.dumps({"chat_id": 42, "text": "\udcff"}).encode(),
                          "application/json")
        self.assertEqual(st, 400)
        self.emu.say("hi")
        st, env = request(base, b'{"chat_id":42,"text":"\\ud800"}', "application/json")
        self.assertEqual(st, 400)
        st, env = request(base, b"chat_id=42&text=%ff%fe", "application/x-www-form-urlencoded")
        self.assertEqual((st, env["description"]), (400, "Bad Request: strings must be encoded in UTF-8"))
        body, ct = multipart({"chat_id": "42"}, {"document": ("x" * 300 + ".pdf", b"d", "x/y")})
        st, env = request(f"{self.emu.base}/bot{TOKEN}/sendDocument", body, ct)
        self.assertEqual(st, 200)
        for path in ("/control/message", "/control/callback", "/control/fault", "/control/migrate",
                     "/control/raw_update", "/control/ratelimits", "/control/block"):
            for junk in (b"", b"null", b"[]", b"{\"chat_id\":1e400}", b"\x00\xff",
                         b'{"chat_id":"x","message_id":-1,"data":5,"kind":7}'):
                st, _ = request(self.emu.base + path, junk, "application/json", method="POST")
                ok = (200, 400) if path == "/control/raw_update" else (400, 404, 405, 409)
                self.assertIn(st, ok, (path, junk))
        for q in ("since=abc&wait_ms=-5", "chat_id=&since=99999999999999999999", "wait_ms=1"):
            st, _ = request(f"{self.emu.base}/control/transcript?{q}")
            self.assertEqual(st, 200)
        st, _ = request(f"{self.emu.base}/bot{TOKEN}/getUpdates?offset=zz&limit=-3&timeout=x")
        self.assertEqual(st, 200)
        self.assertTrue(self.emu.proc.alive())

    def test_reset_clears_everything(self):
        self.emu.say("hi")
        self.emu.ok("sendMessage", {"chat_id": 42, "text": "x"})
        self.emu.ctl("fault", {"kind": "429"})
        self.emu.reset()
        self.assertEqual(self.emu.calls(), {})
        self.assertEqual(self.emu.ok("getUpdates", {}), [])
        self.assertEqual(self.emu.transcript()["events"], [])
        self.assertEqual(self.emu.ctl("faults")["faults"], [])


def request_raw(url):
    import urllib.request
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read()


class ProgramTest(unittest.TestCase):
    def test_help_and_bad_settings(self):
        rc, out, _ = run("bot-api-emulator", ["--help"])
        self.assertEqual(rc, 0)
        for s in ("--upload-limit", "UPLOAD_LIMIT", "--bot-token", "--ratelimits"):
            self.assertIn(s, out)
        rc, _, err = run("bot-api-emulator", ["--upload-limit=lots"])
        self.assertEqual(rc, 2)
        self.assertIn("--upload-limit", err)

    def test_sigterm_ends_a_waiting_long_poll(self):
        emu = Emu()
        got = bg(emu.api, "getUpdates", {"timeout": 50}, timeout=60)
        time.sleep(0.3)
        t0 = time.monotonic()
        emu.proc.send_signal(signal.SIGTERM)
        self.assertEqual(emu.proc.p.wait(10), 0)
        self.assertLess(time.monotonic() - t0, 5)
        try:
            got(5)
        except Exception:  # noqa: BLE001 -- the poll may be answered or cut off
            pass
        emu.stop()


if __name__ == "__main__":
    unittest.main()
