"""Integration tests of session-svc: the real process on loopback.

grpcurl-style JSON calls through buf curl and server reflection, statuses and messages of bad
requests, cleanup and eviction with short settings, restart and SIGTERM keep every session,
kill -9 during a write load loses at most the sync interval, damaged files are kept aside,
backup and restore, and start-up failures (unwritable data directory, bad settings).
"""

import json
import os
import shutil
import signal
import tempfile
import threading
import time
import unittest

from engbot_test import (Proc, buf_curl, http_get, metric, run, status_of, unary, wait_until)

import grpc
from engbot.session.v1 import session_pb2 as pb
from google.protobuf import wrappers_pb2

SVC = "/engbot.session.v1.SessionService/"


def call(target, method, req, resp_cls, **kw):
    return unary(target, SVC + method, req, resp_cls, **kw)


def touch(ch, chat, user=1):
    return call(ch, "TouchSession", pb.TouchSessionRequest(chat_id=chat, user_id=user),
                pb.TouchSessionResponse)


def get(ch, chat):
    return call(ch, "GetSession", pb.GetSessionRequest(chat_id=chat), pb.GetSessionResponse)


def update(ch, chat, version, **fields):
    req = pb.UpdateSessionRequest(chat_id=chat, expected_version=version)
    for k, v in fields.items():
        if k == "set_state":
            req.set_state.update(v)
        elif k == "delete_state":
            req.delete_state.extend(v)
        elif k == "clear_state":
            req.clear_state = v
        elif k in ("user_id", "browser_message_id"):
            getattr(req, k).CopyFrom(wrappers_pb2.Int64Value(value=v))
        elif k == "page":
            req.page.CopyFrom(wrappers_pb2.UInt32Value(value=v))
        else:
            getattr(req, k).CopyFrom(wrappers_pb2.StringValue(value=v))
    return call(ch, "UpdateSession", req, pb.UpdateSessionResponse)


def start(datadir, *args, **kw):
    p = Proc("session-svc", args=[f"--data-dir={datadir}", *args], **kw)
    p.wait_serving()
    return p


class SessionSvcTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="engbot-session-it-")
        self.data = os.path.join(self.tmp, "data")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.alive():
                p.kill9()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def svc(self, *args, data=None, **kw):
        p = start(data or self.data, *args, **kw)
        self.procs.append(p)
        return p

    # ---- the API as an operator uses it ------------------------------------------------------
    def test_buf_curl_json_calls(self):
        p = self.svc()
        rc, out, err = buf_curl(p.addr, "engbot.session.v1.SessionService/TouchSession",
                                {"chatId": "-1001234567890", "userId": "7"})
        self.assertEqual(rc, 0, err)
        r = json.loads(out)
        self.assertTrue(r["created"])
        self.assertEqual(r["session"]["chatId"], "-1001234567890")
        self.assertEqual(r["session"]["version"], "1")
        rc, out, err = buf_curl(p.addr, "engbot.session.v1.SessionService/UpdateSession",
                                {"chatId": "-1001234567890", "expectedVersion": "1",
                                 "folderId": "docs/pumps", "page": 2,
                                 "setState": {"lang": "en"}})
        self.assertEqual(rc, 0, err)
        s = json.loads(out)["session"]
        self.assertEqual((s["folderId"], s["page"], s["state"], s["version"]),
                         ("docs/pumps", 2, {"lang": "en"}, "2"))
        # Fields not named stay as they are; a wrapper set to "" clears.
        rc, out, err = buf_curl(p.addr, "engbot.session.v1.SessionService/UpdateSession",
                                {"chatId": "-1001234567890", "expectedVersion": "2",
                                 "lastSearch": "gear box", "folderId": ""})
        s = json.loads(out)["session"]
        self.assertEqual(s.get("folderId", ""), "")
        self.assertEqual((s["page"], s["lastSearch"], s["state"]), (2, "gear box", {"lang": "en"}))
        rc, out, err = buf_curl(p.addr, "engbot.session.v1.SessionService/ListSessions", {})
        self.assertEqual(rc, 0, err)
        self.assertEqual([x["chatId"] for x in json.loads(out)["sessions"]], ["-1001234567890"])
        rc, out, err = buf_curl(p.addr, "engbot.session.v1.SessionService/GetStats", {})
        st = json.loads(out)
        self.assertEqual((st["active"], st["createdTotal"], st["maxSessions"],
                          st["inactivityThresholdSeconds"], st["cleanupIntervalSeconds"]),
                         ("1", "1", "1000000", "3600", "600"))
        # Errors come back with the gRPC code and an actionable message.
        rc, out, err = buf_curl(p.addr, "engbot.session.v1.SessionService/UpdateSession",
                                {"chatId": "-1001234567890", "expectedVersion": "1"})
        self.assertNotEqual(rc, 0)
        self.assertIn("aborted", out + err)
        self.assertIn("current version is 3", out + err)
        rc, out, err = buf_curl(p.addr, "engbot.session.v1.SessionService/DeleteSession",
                                {"chatId": "-1001234567890"})
        self.assertEqual(rc, 0, err)
        rc, out, err = buf_curl(p.addr, "engbot.session.v1.SessionService/GetSession",
                                {"chatId": "-1001234567890"})
        self.assertIn("not_found", out + err)
        # Reflection: the service and its comments are there without .proto files.
        rc, out, err = buf_curl(p.addr, extra=["--list-methods"])
        self.assertEqual(rc, 0, err)
        self.assertIn("engbot.session.v1.SessionService/Backup", out)

    def test_bad_requests_get_the_right_status(self):
        p = self.svc("--max-state-keys=2", "--max-state-bytes=16", "--max-text-bytes=16")
        with p.channel() as ch:
            code, msg = status_of(get, ch, 0)
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("chat_id is required", msg)
            code, msg = status_of(get, ch, 42)
            self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
            self.assertIn("no session for chat 42", msg)
            code, msg = status_of(update, ch, 42, 1, page=1)
            self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
            v = touch(ch, 42).session.version
            code, msg = status_of(update, ch, 42, v + 5, page=1)
            self.assertEqual(code, grpc.StatusCode.ABORTED)
            self.assertIn(f"current version is {v}", msg)
            code, msg = status_of(update, ch, 42, v, set_state={"a": "1", "b": "2", "c": "3"})
            self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertIn("MAX_STATE_KEYS", msg)
            code, msg = status_of(update, ch, 42, v, set_state={"a": "x" * 20})
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
            code, msg = status_of(update, ch, 42, v, set_state={"a": "x" * 10, "b": "y" * 10})
            self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertIn("MAX_STATE_BYTES", msg)
            code, msg = status_of(update, ch, 42, v, set_state={"": "x"})
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
            code, msg = status_of(update, ch, 42, v, folder_id="f" * 17)
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("MAX_TEXT_BYTES", msg)
            self.assertEqual(get(ch, 42).session.version, v)  # nothing changed
            code, msg = status_of(call, ch, "ListSessions",
                                  pb.ListSessionsRequest(page_token="nonsense"),
                                  pb.ListSessionsResponse)
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("next_page_token", msg)
            code, msg = status_of(call, ch, "Backup", pb.BackupRequest(name="../../etc/x"),
                                  pb.BackupResponse)
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
            call(ch, "Backup", pb.BackupRequest(name="b.snap"), pb.BackupResponse)
            code, msg = status_of(call, ch, "Backup", pb.BackupRequest(name="b.snap"),
                                  pb.BackupResponse)
            self.assertEqual(code, grpc.StatusCode.ALREADY_EXISTS)
            self.assertEqual(metric(p.http_port, "grpc_server_handled_total",
                                    {"grpc_method": "UpdateSession", "grpc_code": "Aborted"}), 1)

    def test_list_pages_and_idle_filter(self):
        p = self.svc()
        with p.channel() as ch:
            for i in range(1, 26):
                touch(ch, i)
            seen, token, pages = [], "", 0
            while True:
                r = call(ch, "ListSessions", pb.ListSessionsRequest(page_size=10, page_token=token),
                         pb.ListSessionsResponse)
                seen += [s.chat_id for s in r.sessions]
                pages += 1
                token = r.next_page_token
                if not token:
                    break
            self.assertEqual(sorted(seen), list(range(1, 26)))
            self.assertEqual(pages, 3)
            r = call(ch, "ListSessions", pb.ListSessionsRequest(min_idle_seconds=3600),
                     pb.ListSessionsResponse)
            self.assertEqual(len(r.sessions), 0)

    def test_concurrent_calls_on_same_and_different_chats(self):
        p = self.svc()
        with p.channel() as ch:
            fn = ch.unary_unary(SVC + "TouchSession",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=pb.TouchSessionResponse.FromString)
            # 2000 calls in flight at once: 10 on each of 200 chats.
            futs = [fn.future(pb.TouchSessionRequest(chat_id=1000 + i % 200, user_id=1), timeout=30)
                    for i in range(2000)]
            created = sum(f.result().created for f in futs)
            self.assertEqual(created, 200)  # exactly one creation per chat
            touch(ch, 1)
            # Compare-and-swap increments of one counter from 8 threads.
            def incr(n):
                for _ in range(n):
                    while True:
                        s = get(ch, 1).session
                        v = int(s.state.get("n", "0"))
                        code, _ = status_of(update, ch, 1, s.version, set_state={"n": str(v + 1)})
                        if code == grpc.StatusCode.OK:
                            break
                        self.assertEqual(code, grpc.StatusCode.ABORTED)
            ts = [threading.Thread(target=incr, args=(40,)) for _ in range(8)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            s = get(ch, 1).session
            self.assertEqual((s.state["n"], s.version), ("320", 321))
            st = call(ch, "GetStats", pb.GetStatsRequest(), pb.GetStatsResponse)
            self.assertEqual((st.active, st.created_total), (201, 201))

    # ---- limits ---------------------------------------------------------------------------------
    def test_cleanup_removes_only_idle_sessions(self):
        p = self.svc("--inactivity-threshold=1s", "--cleanup-interval=100ms")
        with p.channel() as ch:
            touch(ch, 1)
            touch(ch, 2)
            # Keep chat 2 active while chat 1 idles past the threshold and gets swept.
            def swept():
                touch(ch, 2)
                return metric(p.http_port, "engbot_sessions_expired_total") == 1
            wait_until(swept, timeout=15, interval=0.2, what="chat 1 swept")
            self.assertEqual(status_of(get, ch, 1)[0], grpc.StatusCode.NOT_FOUND)
            self.assertEqual(get(ch, 2).session.chat_id, 2)
            self.assertGreater(metric(p.http_port, "engbot_session_cleanup_runs_total"), 0)
            self.assertGreater(metric(p.http_port, "engbot_session_cleanup_duration_seconds_count"), 0)
            self.assertEqual(metric(p.http_port, "engbot_sessions_active"), 1)

    def test_max_sessions_evicts_least_recently_active(self):
        p = self.svc("--max-sessions=3")
        with p.channel() as ch:
            for chat in (1, 2, 3):
                touch(ch, chat)
                time.sleep(0.002)  # distinct last-activity milliseconds
            touch(ch, 1)
            time.sleep(0.002)
            touch(ch, 4)
            self.assertEqual(status_of(get, ch, 2)[0], grpc.StatusCode.NOT_FOUND)
            for chat in (1, 3, 4):
                get(ch, chat)
            self.assertEqual(metric(p.http_port, "engbot_sessions_evicted_total"), 1)
            st = call(ch, "GetStats", pb.GetStatsRequest(), pb.GetStatsResponse)
            self.assertEqual((st.active, st.evicted_total, st.max_sessions), (3, 1, 3))

    # ---- durability -----------------------------------------------------------------------------
    def test_sigterm_during_writes_loses_nothing(self):
        p = self.svc()
        acked, stop = {}, threading.Event()

        def writer():
            with p.channel() as ch:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        r = touch(ch, i, user=i)
                        r = update(ch, i, r.session.version, set_state={"n": str(i)},
                                   folder_id=f"f{i}")
                        acked[i] = r.session
                    except grpc.RpcError:
                        return
        t = threading.Thread(target=writer)
        t.start()
        wait_until(lambda: len(acked) > 200, timeout=20, what="writes")
        self.assertEqual(p.stop(signal.SIGTERM), 0)
        stop.set()
        t.join(10)
        self.assertTrue(p.has_log(lambda r: r.get("msg") == "snapshot written"))
        q = self.svc()
        with q.channel() as ch:
            for i, want in acked.items():
                got = get(ch, i).session
                self.assertEqual(got, want, f"chat {i}")

    def test_kill9_loses_at_most_the_sync_interval(self):
        sync = 0.2
        p = self.svc(f"--sync-interval={int(sync * 1000)}ms")
        acks, stop = [], threading.Event()

        def writer():
            with p.channel() as ch:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        touch(ch, i)
                    except grpc.RpcError:
                        return
                    acks.append((i, time.monotonic()))
        t = threading.Thread(target=writer)
        t.start()
        wait_until(lambda: len(acks) > 300 and acks[-1][1] - acks[0][1] > 3 * sync, timeout=30,
                   what="write load")
        p.kill9()
        stop.set()
        t.join(10)
        last_ack_id, last_ack_t = acks[-1]
        q = self.svc()
        with q.channel() as ch:
            st = call(ch, "GetStats", pb.GetStatsRequest(), pb.GetStatsResponse)
            recovered = st.active
            # Writes were sequential, so what survived is a prefix of them.
            self.assertTrue(recovered > 0)
            get(ch, recovered)
            self.assertEqual(status_of(get, ch, recovered + 1)[0], grpc.StatusCode.NOT_FOUND)
        # (The write in flight at the kill may have reached the log without its answer.)
        window = last_ack_t - dict(acks)[recovered] if recovered <= last_ack_id else 0.0
        print(f"\nkill -9: {len(acks)} acked, {recovered} recovered, "
              f"lost {max(0, last_ack_id - recovered)} writes = {window * 1000:.0f} ms "
              f"(sync interval {sync * 1000:.0f} ms)")
        # At most the sync interval, plus scheduling slack on a shared 2-core machine.
        self.assertLessEqual(window, sync + 0.5)
        # No error, except the one a kill -9 during a write may leave: a torn last record
        # (never acknowledged), which is set aside and reported by design (docs/session-svc.md).
        # A corrupt record or any other error fails the test.
        def unexpected(r):
            if r.get("level") != "error":
                return False
            why = r.get("why", "")
            return not (r.get("msg", "").startswith("DAMAGED FILE") and "torn" in why)
        self.assertFalse(q.has_log(unexpected), [r for r in q.lines if unexpected(r)])

    def test_damaged_log_is_kept_aside_and_reported(self):
        p = self.svc("--sync-interval=10ms")
        with p.channel() as ch:
            for i in range(1, 21):
                touch(ch, i)
        logs = sorted(f for f in os.listdir(self.data) if f.startswith("changes-"))
        newest = os.path.join(self.data, logs[-1])
        wait_until(lambda: os.path.getsize(newest) > 16 + 20 * 20, what="change log written")
        p.kill9()
        size = os.path.getsize(newest)
        with open(newest, "r+b") as f:  # flip a byte in the middle of a record
            f.seek(size // 2)
            b = f.read(1)
            f.seek(size // 2)
            f.write(bytes([b[0] ^ 0x40]))
        q = self.svc()
        rec = q.wait_log(lambda r: r.get("level") == "error" and "DAMAGED" in r.get("msg", ""))
        self.assertIn("checksum", rec["why"])
        self.assertTrue(os.path.exists(rec["kept_as"]))
        self.assertEqual(metric(q.http_port, "engbot_session_damaged_files_total"), 1)
        with q.channel() as ch:
            n = call(ch, "GetStats", pb.GetStatsRequest(), pb.GetStatsResponse).active
            self.assertTrue(0 < n < 20)  # the good prefix, not nothing
            for i in range(1, n + 1):
                get(ch, i)

    def test_backup_then_restore_from(self):
        p = self.svc()
        rc, out, err = buf_curl(p.addr, "engbot.session.v1.SessionService/TouchSession",
                                {"chatId": "5", "userId": "9"})
        self.assertEqual(rc, 0, err)
        rc, out, err = buf_curl(p.addr, "engbot.session.v1.SessionService/Backup",
                                {"name": "before-upgrade.snap"})
        self.assertEqual(rc, 0, err)
        b = json.loads(out)
        self.assertEqual(b["sessions"], "1")
        self.assertTrue(b["path"].endswith("/backups/before-upgrade.snap"))
        with p.channel() as ch:
            touch(ch, 6)  # after the backup: not in it
        self.assertEqual(p.stop(), 0)
        other = os.path.join(self.tmp, "restored")
        q = self.svc(f"--restore-from={b['path']}", data=other)
        with q.channel() as ch:
            self.assertEqual(get(ch, 5).session.user_id, 9)
            self.assertEqual(status_of(get, ch, 6)[0], grpc.StatusCode.NOT_FOUND)
            touch(ch, 7)
        self.assertEqual(q.stop(), 0)
        # The setting left in place does not restore again over newer changes.
        r = self.svc(f"--restore-from={b['path']}", data=other)
        with r.channel() as ch:
            get(ch, 7)
        self.assertTrue(r.has_log(lambda x: "already restored" in x.get("msg", "")))

    # ---- start-up ------------------------------------------------------------------------------
    def test_ready_only_after_state_is_loaded(self):
        p = self.svc()
        msgs = [r.get("msg") for r in p.lines]
        self.assertLess(msgs.index("sessions loaded"), msgs.index("serving"))
        self.assertEqual(http_get(p.http_port, "/readyz")[0], 200)
        self.assertIsNotNone(metric(p.http_port, "process_resident_memory_bytes"))
        self.assertIsNotNone(metric(p.http_port, "engbot_session_snapshot_bytes"))

    def test_unwritable_data_dir_stops_it_at_start(self):
        blocker = os.path.join(self.tmp, "a-file")
        open(blocker, "w").close()
        bad = os.path.join(blocker, "data")  # a directory under a regular file: never writable
        rc, out, err = run("session-svc", ["--grpc-listen=127.0.0.1:0", "--http-listen=127.0.0.1:0",
                                           f"--data-dir={bad}"], env={"LOG_FORMAT": "json"})
        self.assertEqual(rc, 1, err)
        line = json.loads(err.strip().splitlines()[-1])
        self.assertEqual(line["level"], "error")
        self.assertEqual(line["setting"], "DATA_DIR")
        self.assertIn(bad, line["error"])

    def test_bad_setting_exits_2_naming_it(self):
        rc, out, err = run("session-svc", ["--max-sessions=0"])
        self.assertEqual(rc, 2)
        self.assertIn("--max-sessions", err)
        self.assertIn("'0'", err)
        rc, out, err = run("session-svc", [], env={"INACTIVITY_THRESHOLD": "soon"})
        self.assertEqual(rc, 2)
        self.assertIn("INACTIVITY_THRESHOLD", err)
        rc, out, err = run("session-svc", ["--help"])
        self.assertEqual(rc, 0)
        for setting in ("--inactivity-threshold", "--cleanup-interval", "--max-sessions",
                        "--max-state-keys", "--max-state-bytes", "--snapshot-interval",
                        "--sync-interval", "--data-dir", "--restore-from"):
            self.assertIn(setting, out)
        self.assertIn("default: 1h", out)
        self.assertIn("default: 10m", out)


if __name__ == "__main__":
    unittest.main()
