"""gwstack -- the gateway's end-to-end fixture: the Bot API emulator, session-svc, cache-svc
(over a generated catalogue), queue-svc and the gateway, all real processes on loopback with
port 0, plus helpers to talk to the bot the way a user would (through the emulator's control
API) and to read what it answered (the emulator's transcript).

A component whose binary is not built yet makes the tests that need it skip with the reason.
"""

import json
import os
import shutil
import signal
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import engbot_test
from engbot_test import BIN, Proc, http_get, metric, wait_until

# To run a sanitized gateway against unsanitized services (when another component's sanitizer
# build is broken), point GW_E2E_SERVICES_BIN at that build's bin/.
SERVICES_BIN = os.environ.get("GW_E2E_SERVICES_BIN") or BIN


def _other(name, **kw):
    """A Proc of a program other than the gateway (from SERVICES_BIN)."""
    saved = engbot_test.BIN
    engbot_test.BIN = SERVICES_BIN
    try:
        return Proc(name, **kw)
    finally:
        engbot_test.BIN = saved

TOKEN = "123456789:AAEtestToken_gateway-e2e"
BOT_ID = 123456789
USERNAME = "engbot_emulator_bot"


def have(name):
    return os.path.exists(os.path.join(BIN if name == "gateway" else SERVICES_BIN, name))


def require(*names):
    missing = [n for n in names if not have(n)]
    if missing:
        raise unittest.SkipTest("not built yet: " + ", ".join(missing))


def make_catalogue(root, n_manuals=30, big_file_bytes=0):
    """A small engineering catalogue: folders, 30+ manuals (pagination), names needing HTML
    escaping, an ambiguous name, and optionally one large file."""
    def put(rel, data):
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
    put("drawings/pump-assembly.pdf", b"%PDF-1.4 pump assembly drawing\n" * 200)
    put("drawings/valve <DN50> & seal.dwg", b"DWG valve drawing" * 50)
    put("drawings/old/pump-assembly.pdf", b"%PDF-1.4 older pump assembly\n" * 100)
    put("specs/readme.txt", b"Specifications folder.\n")
    for i in range(n_manuals):
        put(f"manuals/manual-{i:02d}-gearbox-maintenance-procedure-long-name.pdf",
            (f"manual {i}\n" * 100).encode())
    if big_file_bytes:
        put("large/huge-model.step", b"\0" * big_file_bytes)
    return root


class Stack:
    """One complete deployment. Keyword arguments tune the gateway (gw_env) and choose which
    services run. Call close() (tests use addCleanup)."""

    def __init__(self, gw_env=None, services=("session", "cache", "queue"), webhook=False,
                 start_gateway=True, catalogue_kwargs=None, emu_env=None,
                 queue_args=("--chat-rate=0", "--group-rate=0", "--global-rate=0")):
        self.queue_args = queue_args
        self.tmp = tempfile.mkdtemp(prefix="engbot-gw-e2e-")
        self.procs = []
        self.svc = {}
        self.ports = {}
        self.gw = None
        self.gw_env = gw_env or {}
        self.webhook = webhook
        self.seen = {}
        try:
            self.emu = self._track(_other("bot-api-emulator", grpc=False,
                                          env=dict({"BOT_TOKEN": TOKEN}, **(emu_env or {})),
                                          workdir=self._dir("emu"), wait_listening=False))
            self.files = make_catalogue(self._dir("files"), **(catalogue_kwargs or {}))
            for s in services:
                self.start_service(s)
            if start_gateway:
                self.start_gateway()
        except BaseException:
            # A program that failed to start must not leave the others running.
            try:
                self.close()
            except AssertionError:
                pass
            raise

    def _dir(self, name):
        d = os.path.join(self.tmp, name)
        os.makedirs(d, exist_ok=True)
        return d

    def _track(self, p, timeout=20):
        """Keeps p for close() first, then waits for its "listening" line (a program that does
        not start is still stopped by close())."""
        self.procs.append(p)
        rec = p.wait_log(lambda r: r.get("msg") == "listening", timeout)
        p.grpc_port, p.http_port = rec.get("grpc_port"), rec.get("http_port")
        return p

    # ---- services ------------------------------------------------------------------------
    def service_args(self, name, port=0, suffix=""):
        args = [f"--grpc-listen=127.0.0.1:{port}", f"--data-dir={self._dir(name + suffix + '-data')}"]
        if name == "cache":
            args.append(f"--files-root={self.files}")
        if name == "queue":
            # Telegram's pace is the emulator's business here (its rate limits are off); tests
            # that need queue-svc's own limits pass them in queue_args.
            args += ["--retry-backoff-base=100ms"] + list(self.queue_args)
        return args

    def start_service(self, name, suffix=""):
        """Starts <name>-svc (again on its old port when it ran before)."""
        binary = f"{name}-svc"
        require(binary)
        key = name + suffix
        p = self._track(_other(binary, args=self.service_args(name, self.ports.get(key, 0), suffix),
                               workdir=self._dir(key + "-work"), wait_listening=False))
        p.wait_serving()
        self.ports[key] = p.grpc_port
        self.svc[key] = p
        return p

    def stop_service(self, name, kill=False):
        p = self.svc.pop(name)
        if kill:
            p.kill9()
        else:
            p.stop()

    def addr(self, name):
        """Address of a service (a closed port when it is not running: the gateway degrades)."""
        if name in self.ports:
            return f"127.0.0.1:{self.ports[name]}"
        return "127.0.0.1:1"

    # ---- gateway -------------------------------------------------------------------------
    def gateway_env(self):
        env = {
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": f"http://127.0.0.1:{self.emu.http_port}",
            "SESSION_SVC_ADDR": self.addr("session"),
            "CACHE_SVC_ADDR": self.addr("cache"),
            "QUEUE_SVC_ADDR": self.addr("queue"),
            "DATA_DIR": self._dir("gw-data"),
            "POLL_TIMEOUT": "2s",
            "LEASE_WAIT": "200ms",
            "BREAKER_OPEN": "300ms",
            "BREAKER_OPEN_MAX": "1s",
            "RECONNECT_MAX": "500ms",
            "DRAIN_GRACE": "5s",
            "ADMIN_USER_IDS": "900",
            "LOG_LEVEL": "info",
        }
        env.update(self.gw_env)
        return env

    def start_gateway(self, extra_env=None, args=()):
        require("gateway")
        env = self.gateway_env()
        env.update(extra_env or {})
        args = list(args)
        if not self.webhook:
            return self._start_gateway(env, args)
        if getattr(self, "gw_port", None):  # a restart keeps the address Telegram was given
            return self._start_gateway(env, args, self.gw_port)
        # Webhook mode needs the port before start (it is in WEBHOOK_URL), and free_port()
        # cannot hold it: a test running beside this one may bind it first. Then the gateway
        # exits naming HTTP_LISTEN, and another port is tried.
        for attempt in range(3):
            try:
                return self._start_gateway(env, args, free_port())
            except AssertionError as e:
                if "address in use" not in str(e) or attempt == 2:
                    raise

    def _start_gateway(self, env, args, port=None):
        if port:
            self.gw_port = port
            args = args + [f"--http-listen=127.0.0.1:{port}"]
            env = dict(env)
            env.setdefault("WEBHOOK_URL", f"http://127.0.0.1:{port}/tg/hook")
        self.gw = self._track(Proc("gateway", args=args, env=env, grpc=False,
                                   workdir=self._dir("gw-work"), wait_listening=False))
        self.gw.wait_log(lambda r: r.get("msg") == "serving", 20)
        return self.gw

    def close(self):
        """Stops everything; fails (after cleaning up) when a program did not exit cleanly in
        time or a sanitizer reported anything."""
        errors = []
        for p in reversed(self.procs):
            try:
                if p.alive():
                    p.stop(timeout=15)
                else:
                    p.check_sanitizers()
            except AssertionError as e:
                errors.append(str(e))
        shutil.rmtree(self.tmp, ignore_errors=True)
        if errors:
            raise AssertionError("\n".join(errors))

    # ---- the emulator's control API ------------------------------------------------------
    def ctl(self, path, body=None, timeout=30, method=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.emu.http_port}{path}", data=data,
                                     headers={"Content-Type": "application/json"},
                                     method=method or ("POST" if data is not None else "GET"))
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{path}: HTTP {e.code}: {e.read().decode()}")

    def mark(self, chat):
        """Remembers the transcript position so wait_for only sees what comes next."""
        t = self.ctl(f"/control/transcript?chat_id={chat}&since=0&wait_ms=0")
        self.seen[chat] = t.get("next", 0)

    def say(self, chat, text, user=None, chat_type="private", mark=True):
        if mark:
            self.mark(chat)
        body = {"chat_id": chat, "chat_type": chat_type, "user_id": user or (chat if chat > 0 else 1000),
                "text": text}
        return self.ctl("/control/message", body)

    def press(self, chat, message_id, data, user=None, chat_type="private", mark=True):
        if mark:
            self.mark(chat)
        body = {"chat_id": chat, "chat_type": chat_type, "user_id": user or (chat if chat > 0 else 1000),
                "message_id": message_id, "data": data}
        return self.ctl("/control/callback", body)

    def events(self, chat, since=None, wait_ms=0):
        s = self.seen.get(chat, 0) if since is None else since
        t = self.ctl(f"/control/transcript?chat_id={chat}&since={s}&wait_ms={wait_ms}",
                     timeout=wait_ms / 1000 + 10)
        return t.get("events", [])

    def wait_for(self, chat, n=1, timeout=15, methods=None, pred=None):
        """Waits until at least n events (of these methods / matching pred) arrived since the
        last mark; returns them all."""
        deadline = time.monotonic() + timeout
        while True:
            evs = [e for e in self.events(chat, wait_ms=200)
                   if (not methods or e["method"] in methods) and (not pred or pred(e))]
            if len(evs) >= n:
                return evs
            if time.monotonic() > deadline:
                raise AssertionError(f"chat {chat}: wanted {n} events, got {len(evs)}: "
                                     f"{json.dumps(evs)[:2000]}\ngateway tail:\n{self.gw.tail(15)}")

    def quiet(self, chat, seconds=1.0, methods=None):
        """The events (of these methods) that arrive within seconds (expecting few or none)."""
        time.sleep(seconds)
        return [e for e in self.events(chat) if not methods or e["method"] in methods]

    def metric(self, name, labels=None):
        return metric(self.gw.http_port, name, labels) or 0.0


def buttons(ev):
    """[(text, callback_data)] of an event's inline keyboard."""
    rm = ev.get("reply_markup") or {}
    if isinstance(rm, str):
        rm = json.loads(rm)
    out = []
    for row in rm.get("inline_keyboard", []):
        for b in row:
            out.append((b.get("text", ""), b.get("callback_data", "")))
    return out


def button(ev, prefix):
    for text, data in buttons(ev):
        if text.startswith(prefix) or data.startswith(prefix):
            return data
    raise AssertionError(f"no button starting with {prefix!r}: {buttons(ev)}")


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p
