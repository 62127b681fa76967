"""engbot-chat against the emulator, with a scripted stand-in for the bot (a Bot API client
in this test): messages go in as a user's, replies, keyboards and documents come out as
text, #N presses a button, and script mode exits at EOF with the right status."""

import os
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from emu_client import Emu  # noqa: E402
from engbot_test import BIN  # noqa: E402


class FakeBot:
    """Polls the emulator and answers: /start -> a keyboard; a press -> edit + answer;
    'file' -> a document; 'quiet' -> nothing."""

    def __init__(self, emu):
        self.emu = emu
        self.stop = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        offset = 0
        while not self.stop:
            st, env = self.emu.api("getUpdates", {"offset": offset, "timeout": 1}, timeout=5)
            if st != 200:
                continue
            for u in env["result"]:
                offset = u["update_id"] + 1
                self.handle(u)

    def handle(self, u):
        if "message" in u:
            m = u["message"]
            chat, text = m["chat"]["id"], m["text"]
            if text == "/start":
                kb = {"inline_keyboard": [[{"text": "Drawings", "callback_data": "dir:1"},
                                           {"text": "Docs", "callback_data": "dir:2"}],
                                          [{"text": "Website", "url": "https://example.org"}]]}
                self.emu.ok("sendMessage", {"chat_id": chat, "text": "<b>Welcome</b> &amp; pick:",
                                            "parse_mode": "HTML", "reply_markup": kb})
            elif text == "file":
                self.emu.ok("sendDocument", {"chat_id": chat, "caption": "here it is"},
                            files={"document": ("pump-housing.pdf", b"%PDF" + b"x" * 2044,
                                                "application/pdf")})
            elif text != "quiet":
                self.emu.ok("sendMessage", {"chat_id": chat, "text": f"echo: {text}"})
        elif "callback_query" in u:
            q = u["callback_query"]
            self.emu.ok("answerCallbackQuery", {"callback_query_id": q["id"]})
            self.emu.ok("editMessageText", {"chat_id": q["message"]["chat"]["id"],
                                            "message_id": q["message"]["message_id"],
                                            "text": f"opened {q['data']}"})


class ChatTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emu()
        cls.bot = FakeBot(cls.emu)

    @classmethod
    def tearDownClass(cls):
        cls.bot.stop = True
        cls.bot.t.join(5)
        cls.emu.stop()

    def chat(self, script, *args):
        r = subprocess.run([os.path.join(BIN, "engbot-chat"), f"--emulator-url={self.emu.base}",
                            "--reply-timeout=3s", "--settle=300ms"] + list(args),
                           input=script, capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout, r.stderr

    def test_conversation(self):
        rc, out, err = self.chat("/start\n#2\n#3\n#9\nfile\nhello there\n")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("you: /start", out)
        self.assertIn("bot: Welcome & pick:", out)
        self.assertIn("[1] Drawings   [2] Docs", out)
        self.assertIn("[3] Website", out)
        self.assertIn("you pressed [2] Docs", out)
        self.assertIn("bot (edited): opened dir:2", out)
        self.assertIn("(button \"Website\" opens https://example.org)", out)
        self.assertIn("(no button #9: the last keyboard has 3)", out)
        self.assertIn("bot: received file pump-housing.pdf (2.0 KB)", out)
        self.assertIn("here it is", out)
        self.assertIn("bot: echo: hello there", out)
        self.assertLess(out.index("Welcome"), out.index("opened dir:2"))

    def test_group_switch(self):
        rc, out, err = self.chat("/group\nhi all\n/private\nhi me\n", "--user-id=2002",
                                 "--group-id=-7007")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("[group] bot: echo: hi all", out)
        self.assertIn("\nbot: echo: hi me", out)
        ups = self.emu.ctl("transcript")["events"]
        self.assertIn(-7007, [e.get("chat_id") for e in ups])

    def test_no_answer_fails(self):
        rc, out, _ = self.chat("quiet\n")
        self.assertEqual(rc, 1)
        self.assertIn("(no answer within 3000 ms)", out)

    def test_unreachable_emulator(self):
        r = subprocess.run([os.path.join(BIN, "engbot-chat"), "--emulator-url=http://127.0.0.1:1"],
                           input="", capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot reach the emulator", r.stderr)


if __name__ == "__main__":
    unittest.main()
