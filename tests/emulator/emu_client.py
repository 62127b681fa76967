"""emu_client -- a small client for the Bot API emulator, shared by its tests: Bot API calls in
each encoding Telegram accepts (query, form, JSON, multipart) and the control API."""

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from engbot_test import Proc  # noqa: E402

TOKEN = "123456:test-token_A"


def multipart(fields, files):
    """fields: {name: str}; files: {name: (filename, bytes, content_type)} -> (body, ctype)."""
    b = "----emu" + uuid.uuid4().hex
    out = []
    for k, v in fields.items():
        out.append(f"--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n".encode())
        out.append(str(v).encode() + b"\r\n")
    for k, (fn, data, ct) in files.items():
        out.append(f"--{b}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{fn}\"\r\n"
                   f"Content-Type: {ct}\r\n\r\n".encode())
        out.append(data + b"\r\n")
    out.append(f"--{b}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={b}"


def request(url, data=None, ctype=None, method=None, timeout=10):
    """Returns (status, parsed JSON or text). Raises on a dropped connection."""
    req = urllib.request.Request(url, data=data, method=method)
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw = e.read()
        status = e.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


class Emu:
    """One bot-api-emulator process on a free loopback port."""

    def __init__(self, args=(), env=None):
        self.proc = Proc("bot-api-emulator", args=list(args), env=env, grpc=False)
        self.port = self.proc.http_port
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self):
        return self.proc.stop()

    def api(self, method, params=None, how="json", files=None, token=TOKEN, timeout=10):
        """Calls a Bot API method; returns (HTTP status, envelope)."""
        params = dict(params or {})
        url = f"{self.base}/bot{token}/{method}"
        enc = {k: (json.dumps(v) if isinstance(v, (dict, list, bool)) else v)
               for k, v in params.items()}
        if files or how == "multipart":
            body, ct = multipart(enc, files or {})
            return request(url, body, ct, timeout=timeout)
        if how == "json":
            return request(url, json.dumps(params).encode(), "application/json", timeout=timeout)
        if how == "form":
            return request(url, urllib.parse.urlencode(enc).encode(),
                           "application/x-www-form-urlencoded", timeout=timeout)
        return request(url + "?" + urllib.parse.urlencode(enc), timeout=timeout)

    def ok(self, method, params=None, **kw):
        st, env = self.api(method, params, **kw)
        assert st == 200 and env.get("ok") is True, f"{method}: {st} {env}"
        return env["result"]

    def control(self, path, body=None, method=None, timeout=10):
        data = None if body is None else json.dumps(body).encode()
        return request(f"{self.base}/control/{path}", data, "application/json" if data else None,
                       method=method or ("POST" if data is not None else "GET"), timeout=timeout)

    def ctl(self, path, body=None, **kw):
        st, r = self.control(path, body, **kw)
        assert st == 200, f"/control/{path}: {st} {r}"
        return r

    def say(self, text, chat_id=42, **kw):
        """A user's message; returns the control answer."""
        return self.ctl("message", dict({"chat_id": chat_id, "text": text}, **kw))

    def transcript(self, **q):
        st, r = self.control("transcript?" + urllib.parse.urlencode(q))
        assert st == 200
        return r

    def calls(self, method=None):
        q = "?method=" + method if method else ""
        return self.ctl("calls" + q)["calls"]

    def reset(self):
        self.ctl("reset", {})
