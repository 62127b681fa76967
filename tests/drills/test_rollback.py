"""Single-service rollback under load: the local stand-in for `kubectl rollout undo
deployment/<svc>`. While the load runs, the service is stopped (SIGTERM, as a rollout does),
its previous version is started on the same port and data dir, serves the gateway for a while,
and then the new version comes back. The old version must read what the new one wrote and
answer the gateway's calls; the new one must read what the old one wrote; the accountant must
find nothing lost.

The previous version is built from git history by oldbuild.sh (outside the repo, cached). There
is no release tag yet, so each service rolls back to the first commit where it was complete
(docs/drills.md says why each); point the drill at a release with DRILL_ROLLBACK_COMMIT (all
services) or DRILL_ROLLBACK_<SESSION|CACHE|QUEUE>_COMMIT.
"""

import os
import subprocess
import time
import unittest

import grpc

from drillcase import SCALE, DrillCase
from engbot_test import http_get, unary

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_COMMITS = {
    # session-svc: the commit that brought the whole service (table, snapshot + change log,
    # sweeper, every RPC); later commits fixed UBSan reports and load speed, not the format.
    "session": "a4fd473",
    # cache-svc: the commit that brought the whole service (catalogue, scanner, inotify,
    # existence cache, file_id store, every RPC).
    "cache": "3b426c7",
    # queue-svc: the commit that brought the whole service (lanes, limits, leases, WAL);
    # the WAL gained fields after it (JobRec.waived, Retry.waived): a real N+1 -> N read.
    "queue": "2a10e10",
}
SERVICE = {"session": "engbot.session.v1.SessionService", "cache": "engbot.cache.v1.CacheService",
           "queue": "engbot.queue.v1.QueueService"}


def commit_for(name):
    return (os.environ.get(f"DRILL_ROLLBACK_{name.upper()}_COMMIT")
            or os.environ.get("DRILL_ROLLBACK_COMMIT") or DEFAULT_COMMITS[name])


def build_old(name):
    """bin/ of the previous version of <name>-svc (built on first use). A failed build fails
    the drill: without the old binary there is no rollback."""
    rev = commit_for(name)
    r = subprocess.run([os.path.join(HERE, "oldbuild.sh"), f"{name}-svc", rev],
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise AssertionError(f"building {name}-svc at {rev} failed:\n{r.stderr[-3000:]}")
    return r.stdout.strip().splitlines()[-1]


def handled(port, service):
    """grpc_server_handled_total{grpc_service=service} as ({method: OK count},
    {"method code": count} of the other codes)."""
    _, text = http_get(port, "/metrics")
    ok, bad = {}, {}
    for line in text.splitlines():
        if not line.startswith("grpc_server_handled_total{"):
            continue
        series, _, value = line.rpartition(" ")
        if f'grpc_service="{service}"' not in series:
            continue
        m = series.split('grpc_method="', 1)[1].split('"', 1)[0]
        code = series.split('grpc_code="', 1)[1].split('"', 1)[0]
        if code == "OK":
            ok[m] = ok.get(m, 0) + float(value)
        elif float(value):
            bad[f"{m} {code}"] = bad.get(f"{m} {code}", 0) + float(value)
    return ok, bad


def state(s, name, d):
    """What the data dir holds, as the running service reports it."""
    if name == "session":
        from engbot.session.v1 import session_pb2 as spb
        out = {}
        for c in d.chats:
            try:
                r = unary(s.addr("session"), "/engbot.session.v1.SessionService/GetSession",
                          spb.GetSessionRequest(chat_id=c.id), spb.GetSessionResponse)
                out[c.id] = (r.session.created_unix_ms, r.session.user_id)
            except grpc.RpcError as e:
                out[c.id] = e.code().name
        return out
    if name == "cache":
        from engbot.cache.v1 import cache_pb2 as cpb
        n = 0
        for fname in d.files.names():
            try:
                unary(s.addr("cache"), "/engbot.cache.v1.CacheService/GetFileId",
                      cpb.GetFileIdRequest(bot_id=123456789, path=d.files.paths[fname]),
                      cpb.GetFileIdResponse)
                n += 1
            except grpc.RpcError:
                pass
        return {"file_ids": n}
    from engbot.queue.v1 import queue_pb2 as qpb
    st = unary(s.addr("queue"), "/engbot.queue.v1.QueueService/GetStats", qpb.GetStatsRequest(),
               qpb.GetStatsResponse)
    return {"queued": st.queued, "leased": st.leased, "version": st.version}


class Rollback(DrillCase):
    old_s = 4.0

    def _rollback(self, name):
        old_bin = build_old(name)
        rev = commit_for(name)

        def fault(s, d):
            info = {"commit": rev, "old_bin": old_bin}
            d.prime_groups()
            before = state(s, name, d)
            t0 = time.monotonic()
            rc = s.stop(name, "term")
            self.assertEqual(rc, 0, f"new {name}-svc exit code at SIGTERM")
            old = s.start(name, bin_dir=old_bin)
            info["undo_seconds"] = round(time.monotonic() - t0, 2)
            d.phase = "old"
            after = state(s, name, d)
            info["state_new_wrote"], info["state_old_read"] = _short(before), _short(after)
            info["old_version_log"] = next((r.get("version") for r in old.lines
                                            if r.get("version")), None)
            deg0 = _degraded(s, name)
            saved = None
            if name == "session":
                # Writes through the old version: each private chat saves a search in its
                # session (UpdateSession on the old binary); the new one must read them back.
                saved = _save_searches(s, d)
                info["saved_by_old"] = sum(1 for v in saved.values() if v)
            time.sleep(self.old_s * SCALE)
            info["old_answered"], info["old_refused"] = handled(old.http_port, SERVICE[name])
            info["gateway_degraded_while_old"] = _degraded(s, name) - deg0
            info["old_warnings"] = [r.get("msg") for r in old.lines
                                    if r.get("level") in ("warn", "error")][:10]
            before_fwd = state(s, name, d)
            t1 = time.monotonic()
            rc = s.stop(name, "term")
            self.assertEqual(rc, 0, f"old {name}-svc exit code at SIGTERM")
            new = s.start(name)
            # queue-svc: whether the new one held its restored jobs (a stale clean-stop mark)
            info["forward_start_notes"] = [r.get("msg") for r in new.lines
                                           if "clean-stop" in r.get("msg", "")
                                           or "holding the restored" in r.get("msg", "")]
            info["forward_seconds"] = round(time.monotonic() - t1, 2)
            d.phase = "forward"
            after_fwd = state(s, name, d)
            info["state_old_wrote"], info["state_new_read"] = _short(before_fwd), _short(after_fwd)
            self._compare(name, before, after, "old read new")
            self._compare(name, before_fwd, after_fwd, "new read old")
            if saved:
                back = _read_searches(s, saved)
                lost = {k: (v, back[k]) for k, v in saved.items() if back[k] != v}
                self.assertFalse(lost, f"searches saved through the old session-svc, read by "
                                       f"the new one (saved, read): {list(lost.items())[:5]}")
                info["read_back_by_new"] = len(saved) - len(lost)
            if not sum(info["old_answered"].values()):
                self.fail(f"the old {name}-svc answered none of the gateway's calls")
            return info
        self.drill(fault)

    def _compare(self, name, a, b, what):
        if name == "session":
            bad = {k: (a[k], b.get(k)) for k in a if isinstance(a[k], tuple) and a[k] != b.get(k)}
            self.assertFalse(bad, f"{what}: sessions differ (created, user): {list(bad.items())[:5]}")
        elif name == "cache":
            self.assertGreaterEqual(b["file_ids"], a["file_ids"],
                                    f"{what}: file_ids lost across the switch: {a} -> {b}")

    def test_rollback_session_svc(self):
        self._rollback("session")

    def test_rollback_cache_svc(self):
        self._rollback("cache")

    def test_rollback_queue_svc(self):
        self._rollback("queue")


def _save_searches(s, d):
    from driver import Ctl
    ctl = Ctl(s.emu.http_port)
    n = len(d.files.names())
    chats = [c for c in d.chats if c.kind == "private"]
    for i, c in enumerate(chats):
        d.act(ctl, c, "final", token=f"spec-{(i + 5) % n:03d}").final = False
    ctl.close()
    t_end = time.monotonic() + 15
    while time.monotonic() < t_end and any(d.outstanding(c) > 0 for c in chats):
        time.sleep(0.1)
    return _read_searches(s, {c.id: None for c in chats})


def _read_searches(s, chats):
    from engbot.session.v1 import session_pb2 as spb
    out = {}
    for cid in chats:
        try:
            out[cid] = unary(s.addr("session"), "/engbot.session.v1.SessionService/GetSession",
                             spb.GetSessionRequest(chat_id=cid), spb.GetSessionResponse).session.last_search
        except grpc.RpcError as e:
            out[cid] = e.code().name
    return out


def _short(st):
    if isinstance(st, dict) and len(st) > 8:
        vals = list(st.values())
        return {"sessions": len(st), "found": sum(1 for v in vals if isinstance(v, tuple))}
    return st


def _degraded(s, name):
    return s.gw_metric("engbot_gateway_degraded_total", {"dependency": name}) or 0.0


if __name__ == "__main__":
    unittest.main()
