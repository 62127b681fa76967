"""deploy/local/run.sh: starts what is built, says what is missing, stops everything on Ctrl-C
or SIGTERM (nothing left running), and -- once the gateway is built -- a scripted chat through
engbot-chat gets the bot's answer."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from engbot_test import BIN, BUILD, SRC  # noqa: E402

RUN_SH = os.path.join(SRC, "deploy", "local", "run.sh")
STACK = ("bot-api-emulator", "session-svc", "cache-svc", "queue-svc", "gateway")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not running: look at its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class LocalRunTest(unittest.TestCase):
    def start(self, build_dir, extra_env=None):
        run_dir = tempfile.mkdtemp(prefix="engbot-localrun-")
        self.addCleanup(shutil.rmtree, run_dir, True)
        env = dict(os.environ, ENGBOT_BUILD_DIR=build_dir, ENGBOT_RUN_DIR=run_dir,
                   ENGBOT_SKIP_BUILD="1")
        env.pop("BOT_TOKEN", None)
        env.update(extra_env or {})
        p = subprocess.Popen(["bash", RUN_SH], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env=env, text=True,
                             start_new_session=True)
        return p, run_dir

    def read_banner(self, p, timeout=90):
        """Reads the start-up lines; returns (text, {name: pid})."""
        lines, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "logs:" in line:
                break
        text = "".join(lines)
        pids = {m.group(1): int(m.group(2))
                for m in re.finditer(r"^\s+(\S+)\s.*?pid (\d+)", text, re.M)}
        return text, pids

    def fake_build(self, names):
        d = tempfile.mkdtemp(prefix="engbot-fakebuild-")
        self.addCleanup(shutil.rmtree, d, True)
        os.mkdir(os.path.join(d, "bin"))
        for n in names:
            os.symlink(os.path.join(BIN, n), os.path.join(d, "bin", n))
        return d

    def stop_and_check(self, p, pids, sig, to_group):
        if to_group:
            os.killpg(p.pid, sig)
        else:
            p.send_signal(sig)
        out, _ = p.communicate(timeout=60)
        for name, pid in pids.items():
            self.assertFalse(alive(pid), f"{name} (pid {pid}) still running after run.sh ended")
        return out

    def test_runs_what_exists_and_ctrl_c_stops_it(self):
        build = self.fake_build(["bot-api-emulator", "engbot-chat"])
        p, run_dir = self.start(build)
        try:
            text, pids = self.read_banner(p)
            self.assertIn("running with the Bot API emulator", text)
            self.assertIn("not built yet, so not running: session-svc cache-svc queue-svc gateway",
                          text)
            self.assertIn("without the gateway nobody answers", text)
            self.assertEqual(list(pids), ["bot-api-emulator"])
            self.assertTrue(os.listdir(os.path.join(run_dir, "files")), "a sample catalogue")
            out = self.stop_and_check(p, pids, signal.SIGINT, to_group=True)
            self.assertIn("stopping (SIGTERM): bot-api-emulator", out)
            self.assertIn("stopped; logs are in", out)
            with open(os.path.join(run_dir, "logs", "bot-api-emulator.log")) as f:
                self.assertIn('"msg":"stopped"', f.read())
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)

    def test_sigterm_stops_the_whole_stack(self):
        present = [n for n in STACK if os.path.exists(os.path.join(BIN, n))]
        build = self.fake_build(present + ["engbot-chat"])
        p, _ = self.start(build)
        try:
            text, pids = self.read_banner(p)
            self.assertEqual(sorted(pids), sorted(present), text)
            for pid in pids.values():
                self.assertTrue(alive(pid))
            out = self.stop_and_check(p, pids, signal.SIGTERM, to_group=False)
            self.assertIn("stopped; logs are in", out)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)

    def test_scripted_chat_gets_an_answer(self):
        missing = [n for n in STACK + ("engbot-chat",) if not os.path.exists(os.path.join(BIN, n))]
        if missing:
            self.skipTest(f"not built yet: {', '.join(missing)} (this test needs the whole stack)")
        p, run_dir = self.start(BUILD, {"ENGBOT_CHAT_ARGS": "--reply-timeout=30s"})
        try:
            out, _ = p.communicate("/start\n/help\n", timeout=240)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("you: /start", out)
        self.assertRegex(out, r"\nbot: \S", "the bot answered through the terminal chat")
        self.assertNotIn("no answer within", out)
        self.assertIn("stopped; logs are in", out)
        _, pids = self.read_banner_from(out)
        for name, pid in pids.items():
            self.assertFalse(alive(pid), f"{name} still running")

    @staticmethod
    def read_banner_from(text):
        pids = {m.group(1): int(m.group(2))
                for m in re.finditer(r"^\s+(\S+)\s.*?pid (\d+)", text, re.M)}
        return text, pids


if __name__ == "__main__":
    unittest.main()
