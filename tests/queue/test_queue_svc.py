"""Integration tests of queue-svc on the real process (loopback, port 0, a fresh data dir each).

Covers: bad requests get the right status; a full queue answers RESOURCE_EXHAUSTED and recovers
(and drop-oldest drops, counted); concurrent producers and senders with a checker that accounts
for every id (none lost, none acked twice, lane order kept); kill -9 during load then restart
(every acknowledged enqueue is there exactly once, every acknowledged ack stays done); a 429 on
one lane leaves the others flowing; one lane with 1,500 queued jobs does not delay another's
single job; a deadline removes one job; lease expiry, dead letters and the operator calls
(also through buf curl, like grpcurl); SIGTERM answers waiting long polls and keeps the jobs; a
torn WAL tail is reported and kept aside. Conditions are waited for, never slept for.
"""

import glob
import os
import shutil
import signal
import tempfile
import threading
import time
import unittest

import grpc

from engbot_test import Proc, buf_curl, buf_path, metric, status_of, unary, wait_until
from engbot.queue.v1 import queue_pb2 as q

SVC = "/engbot.queue.v1.QueueService/"
FAST = ["--global-rate=0", "--chat-rate=0", "--group-rate=0"]  # rate limits off


class QueueProc:
    """A queue-svc process with its own data directory and a shared channel."""

    def __init__(self, test, args=(), datadir=None):
        self.datadir = datadir or tempfile.mkdtemp(prefix="engbot-queue-data-")
        if datadir is None:
            test.addCleanup(shutil.rmtree, self.datadir, True)
        self.p = Proc("queue-svc", args=[f"--data-dir={self.datadir}"] + list(args))
        test.addCleanup(self._cleanup)
        self.p.wait_serving()
        self.ch = grpc.insecure_channel(self.p.addr)

    def _cleanup(self):
        self.ch.close()
        if self.p.alive():
            self.p.kill9()
        for f in (self.p.p.stdout, self.p.p.stderr):
            f.close()

    def call(self, method, req, resp_cls, timeout=10):
        return unary(self.ch, SVC + method, req, resp_cls, timeout=timeout)

    def status(self, method, req, resp_cls):
        return status_of(self.call, method, req, resp_cls)

    def enqueue(self, lane, payload, key="", kind=q.LANE_KIND_PRIVATE, timeout_ms=0):
        return self.call("Enqueue", q.EnqueueRequest(
            lane_key=lane, lane_kind=kind, method="sendMessage",
            payload=payload if isinstance(payload, bytes) else payload.encode(),
            dedupe_key=key, timeout_ms=timeout_ms), q.EnqueueResponse)

    def lease(self, max_jobs=1, wait_ms=0, lease_ms=0, timeout=None):
        t = timeout or (wait_ms / 1000.0 + 10)
        return self.call("Lease", q.LeaseRequest(max_jobs=max_jobs, wait_ms=wait_ms,
                                                 lease_ms=lease_ms, sender="test"),
                         q.LeaseResponse, timeout=t).jobs

    def ack(self, job):
        return self.call("Ack", q.AckRequest(id=job.id, lease_token=job.lease_token),
                         q.AckResponse)

    def stats(self):
        return self.call("GetStats", q.GetStatsRequest(), q.GetStatsResponse)

    def metric(self, name, labels=None):
        return metric(self.p.http_port, name, labels)


class QueueServiceTest(unittest.TestCase):

    # ---- requests -------------------------------------------------------------------------------

    def test_bad_requests_get_the_right_status(self):
        s = QueueProc(self, ["--max-payload=1KiB", "--max-lease-timeout=10s"] + FAST)
        INV, NF, FP = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                       grpc.StatusCode.FAILED_PRECONDITION)
        E, R = q.EnqueueRequest, q.EnqueueResponse
        code, msg = s.status("Enqueue", E(method="sendMessage"), R)
        self.assertEqual((code, msg), (INV, "lane_key is required: the chat id the request goes to"))
        code, msg = s.status("Enqueue", E(lane_key=1, method=""), R)
        self.assertEqual(code, INV)
        self.assertIn("not a Bot API method name", msg)
        code, msg = s.status("Enqueue", E(lane_key=1, method="sendMessage", payload=b"x" * 2000), R)
        self.assertEqual(code, INV)
        self.assertIn("more than MAX_PAYLOAD=1024", msg)
        code, msg = s.status("Enqueue", E(lane_key=1, method="sendMessage", lane_kind=7), R)
        self.assertEqual(code, INV)
        self.assertIn("not a LaneKind", msg)
        self.assertEqual(s.status("Lease", q.LeaseRequest(max_jobs=101), q.LeaseResponse)[0], INV)
        code, msg = s.status("Lease", q.LeaseRequest(lease_ms=20000), q.LeaseResponse)
        self.assertEqual(code, INV)
        self.assertIn("MAX_LEASE_TIMEOUT", msg)
        code, msg = s.status("Ack", q.AckRequest(id=999, lease_token=1), q.AckResponse)
        self.assertEqual(code, NF)
        self.assertIn("job 999 is not in the queue", msg)
        s.enqueue(5, "x")
        job = s.lease()[0]
        code, msg = s.status("Ack", q.AckRequest(id=job.id, lease_token=job.lease_token + 1),
                             q.AckResponse)
        self.assertEqual(code, FP)
        self.assertIn("another lease_token", msg)
        self.assertEqual(s.status("ListLanes", q.ListLanesRequest(page_token="abc"),
                                  q.ListLanesResponse)[0], INV)
        self.assertEqual(s.status("ListLanes", q.ListLanesRequest(page_size=5000),
                                  q.ListLanesResponse)[0], INV)
        self.assertEqual(s.status("PeekLane", q.PeekLaneRequest(), q.PeekLaneResponse)[0], INV)
        code, msg = s.status("PeekLane", q.PeekLaneRequest(lane_key=12345), q.PeekLaneResponse)
        self.assertEqual(code, NF)
        self.assertIn("lane 12345 has no jobs", msg)
        self.assertEqual(s.status("RequeueDeadLetter", q.RequeueDeadLetterRequest(id=77),
                                  q.RequeueDeadLetterResponse)[0], NF)
        self.assertEqual(s.status("PurgeLane", q.PurgeLaneRequest(), q.PurgeLaneResponse)[0], INV)
        # Bytes that are not an EnqueueRequest at all.
        raw = s.ch.unary_unary(SVC + "Enqueue")
        with self.assertRaises(grpc.RpcError) as cm:
            raw(b"\xff\xff\xff\xff", timeout=5)
        self.assertEqual(cm.exception.code(), INV)
        self.assertGreaterEqual(s.metric("queue_rejected_total", {"reason": "invalid"}), 4)
        self.assertEqual(s.ack(job), q.AckResponse())

    def test_full_queue_answers_resource_exhausted_and_recovers(self):
        s = QueueProc(self, ["--queue-max-size=5", "--lane-max-size=3"] + FAST)
        EX = grpc.StatusCode.RESOURCE_EXHAUSTED
        for i in range(3):
            s.enqueue(-100123, f"g{i}")
        code, msg = status_of(s.enqueue, -100123, "g3")
        self.assertEqual(code, EX)
        self.assertEqual(msg, "lane -100123 is full (3 jobs, LANE_MAX_SIZE=3): retry later")
        s.enqueue(2, "b")
        s.enqueue(3, "c")
        code, msg = status_of(s.enqueue, 4, "d")
        self.assertEqual(code, EX)
        self.assertEqual(msg, "queue is full (5 jobs, QUEUE_MAX_SIZE=5): retry later")
        self.assertEqual(s.metric("queue_rejected_total", {"reason": "lane_full"}), 1)
        self.assertEqual(s.metric("queue_rejected_total", {"reason": "queue_full"}), 1)
        # Nothing was dropped to make room: the seed's drop-oldest is opt-in.
        self.assertEqual(s.stats().queued, 5)
        for job in s.lease(max_jobs=3):
            s.ack(job)
        self.assertEqual(s.enqueue(4, "d").state, q.JOB_STATE_QUEUED)
        self.assertEqual(s.enqueue(-100123, "g3").position, 2)

    def test_drop_oldest_is_opt_in_and_counted(self):
        s = QueueProc(self, ["--overflow-policy=drop-oldest", "--lane-max-size=2"] + FAST)
        ids = [s.enqueue(7, f"m{i}", key=f"k{i}").id for i in range(3)]
        peek = s.call("PeekLane", q.PeekLaneRequest(lane_key=7), q.PeekLaneResponse)
        self.assertEqual([j.payload for j in peek.jobs], [b"m1", b"m2"])
        self.assertEqual(s.metric("queue_dropped_total", {"reason": "lane_full"}), 1)
        dup = s.enqueue(7, "m0", key="k0")  # the dropped job's key says what happened to it
        self.assertTrue(dup.duplicate)
        self.assertEqual((dup.id, dup.state), (ids[0], q.JOB_STATE_DROPPED))

    # ---- no job lost, none duplicated --------------------------------------------------------------

    def test_concurrent_producers_and_senders_account_for_every_id(self):
        s = QueueProc(self, ["--lease-timeout=1s", "--lane-max-size=1000"] + FAST)
        producers, per, lanes_per = 4, 250, 8
        lock = threading.Lock()
        ids = {}          # payload -> id
        dups = []         # (payload, id answered for the duplicate)
        lease_log = {}    # lane -> [seq in lease order]
        acked = {}        # payload -> number of successful acks
        abandoned = set()
        errors = []

        def produce(p):
            try:
                for n in range(per):
                    payload = f"{p}:{n}"
                    lane = 1000 * (p + 1) + n % lanes_per
                    r = s.enqueue(lane, payload, key=payload)
                    with lock:
                        ids[payload] = r.id
                    if n % 10 == 0:  # the gateway retrying after a lost answer
                        d = s.enqueue(lane, payload, key=payload)
                        with lock:
                            dups.append((payload, d.id, d.duplicate))
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        done = threading.Event()

        def send(k):
            rnd = 0
            try:
                while not done.is_set():
                    for job in s.lease(max_jobs=8, wait_ms=200):
                        payload = job.payload.decode()
                        p, n = map(int, payload.split(":"))
                        with lock:
                            lease_log.setdefault(job.lane_key, []).append((p, n))
                        rnd += 1
                        if k == 0 and rnd % 23 == 0 and payload not in abandoned:
                            with lock:
                                abandoned.add(payload)  # a sender that died mid-send
                            continue
                        code, _ = status_of(s.ack, job)
                        if code == grpc.StatusCode.OK:
                            with lock:
                                acked[payload] = acked.get(payload, 0) + 1
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
        threads += [threading.Thread(target=send, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        total = producers * per
        try:
            wait_until(lambda: len(acked) == total or errors, timeout=90, what="every job acked")
        finally:
            done.set()
            for t in threads:
                t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(len(ids), total)
        self.assertEqual(len(set(ids.values())), total, "ids are unique")
        self.assertEqual(set(acked), set(ids), "no job lost")
        self.assertEqual([p for p, c in acked.items() if c != 1], [], "no job acked twice")
        for payload, dup_id, dup in dups:
            self.assertTrue(dup)
            self.assertEqual(dup_id, ids[payload])
        self.assertTrue(abandoned, "some leases were abandoned")
        # Each lane went out in order; a job is seen again only when its lease was abandoned.
        for lane, seen in lease_log.items():
            for a, b in zip(seen, seen[1:]):
                if b[1] <= a[1]:
                    self.assertEqual(a, b, f"lane {lane} out of order: {seen}")
                    self.assertIn(f"{a[0]}:{a[1]}", abandoned)
        st = s.stats()
        self.assertEqual((st.queued, st.leased), (0, 0))
        self.assertEqual(st.enqueued_total, total)
        self.assertEqual(st.deduplicated_total, len(dups))
        self.assertEqual(st.acked_total, total)
        self.assertGreaterEqual(st.lease_expired_total, 1)
        self.assertGreater(s.metric("queue_wal_fsync_seconds_count"), 0)
        self.assertGreater(s.metric("queue_wal_batch_records_count"), 0)
        self.assertEqual(s.metric("queue_time_in_queue_seconds_count"), total)

    def test_kill9_during_load_keeps_every_acknowledged_enqueue(self):
        args = ["--wal-compact-bytes=64KiB", "--lane-max-size=10000"] + FAST
        s = QueueProc(self, args)
        lock = threading.Lock()
        enqueued = {}     # payload -> id, answered OK
        acked = set()     # payloads whose ack was answered OK
        in_doubt = set()  # payloads whose ack was sent but not answered (the kill came)
        stop = threading.Event()

        def produce(p):
            n = 0
            while not stop.is_set():
                payload = f"{p}:{n}"
                try:
                    r = s.enqueue(500 + (n % 40), payload, key=payload)
                except grpc.RpcError:
                    return
                with lock:
                    enqueued[payload] = r.id
                n += 1

        def send():
            while not stop.is_set():
                try:
                    for job in s.lease(max_jobs=20, wait_ms=100):
                        with lock:
                            in_doubt.add(job.payload.decode())
                        s.ack(job)
                        with lock:
                            acked.add(job.payload.decode())
                            in_doubt.discard(job.payload.decode())
                except grpc.RpcError:
                    return

        threads = [threading.Thread(target=produce, args=(p,)) for p in range(4)]
        threads.append(threading.Thread(target=send))
        for t in threads:
            t.start()
        # Load until a few compactions happened and plenty is acknowledged, then kill -9.
        wait_until(lambda: len(enqueued) >= 1500 and len(acked) >= 300, timeout=60,
                   what="load")
        compactions = s.metric("queue_wal_compactions_total")
        s.p.kill9()
        stop.set()
        for t in threads:
            t.join(20)
        self.assertGreaterEqual(compactions, 1, "compaction ran during the load")
        with lock:
            enqueued, acked, in_doubt = dict(enqueued), set(acked), set(in_doubt)

        r = QueueProc(self, args, datadir=s.datadir)
        self.assertTrue(r.p.has_log(lambda x: x.get("msg") == "queue restored"))
        found = {}
        for _ in range(10000):
            jobs = r.lease(max_jobs=100, wait_ms=0)
            if not jobs:
                st = r.stats()
                if st.queued == 0 and st.leased == 0:
                    break
                jobs = r.lease(max_jobs=100, wait_ms=500)
            for job in jobs:
                found[job.payload.decode()] = found.get(job.payload.decode(), 0) + 1
                r.ack(job)
        self.assertEqual([p for p, c in found.items() if c > 1], [], "nothing twice")
        # An ack sent as the process died may or may not have been made durable: at most one
        # job (the sender acks one at a time) is in doubt; every other one must be there.
        self.assertLessEqual(len(in_doubt), 1)
        lost = [p for p in enqueued if p not in acked and p not in found and p not in in_doubt]
        self.assertEqual(lost, [], "every acknowledged enqueue is still there")
        back = [p for p in acked if p in found]
        self.assertEqual(back, [], "an acknowledged ack stays done")
        # Ids were kept, and dedupe keys survived: the gateway retrying gets the same job.
        some = next(iter(enqueued))
        lane = 500 + int(some.split(":")[1]) % 40
        again = r.enqueue(lane, some, key=some)
        self.assertTrue(again.duplicate)
        self.assertEqual(again.id, enqueued[some])

    # ---- rate limits and fairness -----------------------------------------------------------------

    def test_429_pause_leaves_other_lanes_flowing(self):
        s = QueueProc(self, ["--chat-rate=0", "--global-rate=0"])
        s.enqueue(1, "a1")
        s.enqueue(1, "a2")
        for i in range(1, 6):
            s.enqueue(2, f"b{i}")
        jobs = {j.payload: j for j in s.lease(max_jobs=10)}
        self.assertEqual(set(jobs), {b"a1", b"b1"})
        r = s.call("Retry", q.RetryRequest(id=jobs[b"a1"].id, lease_token=jobs[b"a1"].lease_token,
                                           retry_after_ms=2000,
                                           error="Too Many Requests: retry after 2"),
                   q.RetryResponse)
        t0 = time.monotonic()
        self.assertEqual(r.state, q.JOB_STATE_QUEUED)
        lanes = s.call("ListLanes", q.ListLanesRequest(), q.ListLanesResponse).lanes
        paused = {l.key: l.paused_until_unix_ms for l in lanes}
        self.assertGreater(paused[1], time.time() * 1000)
        self.assertEqual(paused[2], 0)
        s.ack(jobs[b"b1"])
        got = []
        while len(got) < 4:
            for job in s.lease(max_jobs=10, wait_ms=1000):
                got.append(job.payload)
                s.ack(job)
        self.assertEqual(got, [b"b2", b"b3", b"b4", b"b5"])
        self.assertLess(time.monotonic() - t0, 1.5, "lane 2 flowed during lane 1's pause")
        a = s.lease(max_jobs=10, wait_ms=5000)
        waited = time.monotonic() - t0
        self.assertEqual([j.payload for j in a], [b"a1"])
        self.assertEqual(a[0].attempts, 2)
        self.assertGreaterEqual(waited, 1.9, "lane 1 waited for retry_after")
        self.assertGreaterEqual(s.metric("queue_ratelimit_waits_total",
                                         {"limit": "retry_after"}), 1)
        self.assertEqual(s.metric("queue_retried_total", {"kind": "retry_after"}), 1)

    def test_chat_rate_limit_spaces_one_chat(self):
        s = QueueProc(self, ["--chat-rate=5/s", "--chat-burst=1", "--global-rate=0"])
        for i in range(4):
            s.enqueue(42, f"m{i}")
        times = []
        while len(times) < 4:
            for job in s.lease(wait_ms=2000):
                times.append(time.monotonic())
                s.ack(job)
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertTrue(all(g >= 0.15 for g in gaps), gaps)  # 5/s: 200 ms apart
        self.assertGreaterEqual(s.metric("queue_ratelimit_waits_total", {"limit": "chat"}), 3)

    def test_busy_lane_does_not_delay_another_lanes_single_job(self):
        s = QueueProc(self, ["--global-rate=200/s", "--global-burst=1", "--lane-max-size=5000",
                             "--chat-rate=0"])
        busy = 1500

        def fill(k):
            for i in range(k, busy, 4):
                s.enqueue(1, f"busy{i}", kind=q.LANE_KIND_UNLIMITED)
        fillers = [threading.Thread(target=fill, args=(k,)) for k in range(4)]
        for t in fillers:
            t.start()
        for t in fillers:
            t.join()
        seen = []
        stop = threading.Event()

        def sender():
            while not stop.is_set():
                for job in s.lease(max_jobs=1, wait_ms=200):
                    seen.append((time.monotonic(), job.lane_key))
                    s.ack(job)
        t = threading.Thread(target=sender)
        t.start()
        try:
            wait_until(lambda: len(seen) >= 50, timeout=20, what="the busy lane flowing")
            before = len(seen)
            t0 = time.monotonic()
            s.enqueue(2, "single")
            wait_until(lambda: any(k == 2 for _, k in seen), timeout=20, what="the single job")
        finally:
            stop.set()
            t.join(10)
        at = next(i for i, (_, k) in enumerate(seen) if k == 2)
        delay = seen[at][0] - t0
        self.assertLessEqual(at - before, 3, "jobs of the busy lane that went first")
        self.assertLess(delay, 0.5)
        # A single global FIFO would have put it behind ~1,450 jobs: 7 s at 200/s.
        self.assertGreater(s.stats().queued, 1000)

    # ---- deadlines, leases, dead letters, operators ----------------------------------------------

    def test_deadline_removes_one_job_alone(self):
        s = QueueProc(self, FAST)
        s.enqueue(1, "first", timeout_ms=30000)
        first = s.lease()[0]
        s.enqueue(1, "short", key="k-short", timeout_ms=300)
        s.enqueue(1, "long", timeout_ms=30000)
        for lane in range(2, 6):
            s.enqueue(lane, "other", timeout_ms=30000)
        wait_until(lambda: s.stats().expired_total == 1, timeout=10, what="the expiry")
        peek = s.call("PeekLane", q.PeekLaneRequest(lane_key=1), q.PeekLaneResponse)
        self.assertEqual([j.payload for j in peek.jobs], [b"first", b"long"])
        self.assertEqual(peek.jobs[0].state, q.JOB_STATE_LEASED)
        st = s.stats()
        self.assertEqual((st.queued, st.leased, st.expired_total), (5, 1, 1))
        self.assertEqual(s.metric("queue_expired_total"), 1)
        dup = s.enqueue(1, "short", key="k-short")
        self.assertEqual((dup.duplicate, dup.state), (True, q.JOB_STATE_EXPIRED))
        s.ack(first)
        got = [(j.lane_key, j.payload) for j in s.lease(max_jobs=10, wait_ms=1000)]
        self.assertIn((1, b"long"), got)
        self.assertEqual(len(got), 5)

    def test_lease_expiry_dead_letters_and_operator_calls(self):
        s = QueueProc(self, ["--max-attempts=2", "--retry-backoff-base=50ms"] + FAST)
        jid = s.enqueue(9, "poison").id
        s.enqueue(9, "behind")
        first = s.lease(lease_ms=200)[0]
        self.assertEqual(first.id, jid)
        again = s.lease(wait_ms=3000)  # the unacked lease runs out; the job comes back first
        self.assertEqual([(j.id, j.attempts) for j in again], [(jid, 2)])
        code, _ = status_of(s.ack, first)
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        r = s.call("Retry", q.RetryRequest(id=jid, lease_token=again[0].lease_token,
                                           error="Internal Server Error"), q.RetryResponse)
        self.assertEqual(r.state, q.JOB_STATE_DEAD)
        dl = s.call("ListDeadLetters", q.ListDeadLettersRequest(), q.ListDeadLettersResponse)
        self.assertEqual([j.id for j in dl.jobs], [jid])
        self.assertIn("Internal Server Error", dl.jobs[0].last_error)
        self.assertEqual(dl.jobs[0].state, q.JOB_STATE_DEAD)
        behind = s.lease(wait_ms=1000)[0]
        self.assertEqual(behind.payload, b"behind")
        s.ack(behind)
        back = s.call("RequeueDeadLetter", q.RequeueDeadLetterRequest(id=jid),
                      q.RequeueDeadLetterResponse).job
        self.assertEqual((back.id, back.attempts, back.state), (jid, 0, q.JOB_STATE_QUEUED))
        job = s.lease(wait_ms=1000)[0]
        self.assertEqual(job.id, jid)
        s.call("Fail", q.FailRequest(id=jid, lease_token=job.lease_token,
                                     error="Forbidden: bot was blocked by the user"),
               q.FailResponse)
        self.assertEqual(s.stats().dead, 1)
        self.assertEqual(s.metric("queue_dead_lettered_total", {"reason": "failed"}), 1)
        self.assertEqual(s.metric("queue_dead_lettered_total", {"reason": "max_attempts"}), 1)
        # Purge takes the queued jobs, not the one in flight.
        for i in range(3):
            s.enqueue(77, f"p{i}")
        inflight = s.lease()[0]
        purged = s.call("PurgeLane", q.PurgeLaneRequest(lane_key=77), q.PurgeLaneResponse)
        self.assertEqual(purged.purged, 2)
        lanes = s.call("ListLanes", q.ListLanesRequest(page_size=1), q.ListLanesResponse)
        self.assertEqual([(l.key, l.queued, l.in_flight) for l in lanes.lanes], [(77, 0, 1)])
        s.ack(inflight)
        self.assertEqual(s.stats().lanes, 0)

    def test_list_lanes_pages(self):
        s = QueueProc(self, FAST)
        keys = [-1001, -5, 3, 40, 41, 9000000000]
        for k in keys:
            s.enqueue(k, "x")
        got, token = [], ""
        while True:
            page = s.call("ListLanes", q.ListLanesRequest(page_size=4, page_token=token),
                          q.ListLanesResponse)
            got += [l.key for l in page.lanes]
            token = page.next_page_token
            if not token:
                break
        self.assertEqual(got, sorted(keys))

    @unittest.skipUnless(buf_path(), "buf not installed (npm @bufbuild/buf)")
    def test_operator_commands_with_buf_curl(self):
        s = QueueProc(self, ["--max-attempts=1"] + FAST)
        svc = "engbot.queue.v1.QueueService"
        rc, out, err = buf_curl(s.p.addr, f"{svc}/Enqueue",
                                {"laneKey": "-100123", "method": "sendMessage",
                                 "payload": "eyJ0ZXh0IjoiaGkifQ==", "dedupeKey": "u1"})
        self.assertEqual(rc, 0, err)
        self.assertIn('"id"', out)
        rc, out, err = buf_curl(s.p.addr, f"{svc}/ListLanes", {})
        self.assertEqual(rc, 0, err)
        self.assertIn('"key": "-100123"', out)
        rc, out, err = buf_curl(s.p.addr, f"{svc}/PeekLane", {"laneKey": "-100123"})
        self.assertEqual(rc, 0, err)
        self.assertIn('"method": "sendMessage"', out)
        job = s.lease()[0]
        s.call("Retry", q.RetryRequest(id=job.id, lease_token=job.lease_token, error="boom"),
               q.RetryResponse)
        rc, out, err = buf_curl(s.p.addr, f"{svc}/ListDeadLetters", {})
        self.assertEqual(rc, 0, err)
        self.assertIn('"JOB_STATE_DEAD"', out)
        rc, out, err = buf_curl(s.p.addr, f"{svc}/RequeueDeadLetter", {"id": str(job.id)})
        self.assertEqual(rc, 0, err)
        self.assertIn('"JOB_STATE_QUEUED"', out)
        rc, out, err = buf_curl(s.p.addr, f"{svc}/PurgeLane", {"laneKey": "-100123"})
        self.assertEqual(rc, 0, err)
        self.assertIn('"purged": 1', out)
        rc, out, err = buf_curl(s.p.addr, f"{svc}/GetStats", {})
        self.assertEqual(rc, 0, err)
        self.assertIn('"purgedTotal": "1"', out)
        rc, out, err = buf_curl(s.p.addr, f"{svc}/PeekLane", {"laneKey": "-100123"})
        self.assertNotEqual(rc, 0)
        self.assertIn("has no jobs", out + err)

    # ---- lifecycle ------------------------------------------------------------------------------

    def test_sigterm_answers_waiting_lease_and_keeps_jobs(self):
        s = QueueProc(self, FAST)
        for i in range(3):
            s.enqueue(1, f"j{i}")
        s.lease()  # lane 1 is busy: nothing else is ready
        result = {}

        def waiting():
            t = time.monotonic()
            result["jobs"] = s.lease(wait_ms=20000, timeout=30)
            result["s"] = time.monotonic() - t
        t = threading.Thread(target=waiting)
        t.start()
        wait_until(lambda: s.metric("queue_lease_waiting") == 1, timeout=10, what="a waiting Lease")
        self.assertEqual(s.p.stop(signal.SIGTERM), 0)
        t.join(10)
        self.assertEqual(len(result["jobs"]), 0)
        self.assertLess(result["s"], 5, "the long poll was answered at the drain")
        r = QueueProc(self, FAST + ["--restart-hold=1500ms"], datadir=s.datadir)
        # Health went SERVING only after the replay.
        msgs = [x.get("msg") for x in r.p.lines]
        self.assertLess(msgs.index("queue restored"), msgs.index("serving"))
        st = r.stats()
        self.assertEqual(st.queued, 3)  # the job in flight at the stop is ready again
        # j0's lease was still open at the stop (nobody acked it): its sender may have sent
        # it, so nothing is leased for RESTART_HOLD, then j0 goes out again.
        hold = [x for x in r.p.lines if x.get("msg", "").startswith("started without a clean")]
        self.assertEqual(len(hold), 1, "the restart hold is logged")
        self.assertEqual(len(r.lease()), 0)
        t = time.monotonic()
        self.assertEqual([j.payload for j in r.lease(wait_ms=5000, timeout=10)], [b"j0"])
        self.assertGreater(time.monotonic() - t, 0.5)

    def test_clean_stop_has_no_restart_hold_and_a_crash_does(self):
        s = QueueProc(self, FAST)
        s.enqueue(1, "a")
        self.assertEqual(s.p.stop(signal.SIGTERM), 0)  # nothing leased: a clean stop
        r = QueueProc(self, FAST, datadir=s.datadir)
        self.assertEqual([j.payload for j in r.lease()], [b"a"])  # at once
        self.assertEqual(len(r.lease()), 0)  # nothing more; lane 1 busy
        r.p.kill9()
        c = QueueProc(self, FAST + ["--restart-hold=1s"], datadir=s.datadir)
        self.assertEqual(len(c.lease()), 0)  # held: "a" may have been sent before the crash
        self.assertEqual([j.payload for j in c.lease(wait_ms=5000, timeout=10)], [b"a"])

    def test_torn_wal_tail_is_reported_and_kept_aside(self):
        s = QueueProc(self, FAST)
        for i in range(5):
            s.enqueue(i + 1, f"m{i}")
        s.p.kill9()
        logs = glob.glob(os.path.join(s.datadir, "wal-*.log"))
        self.assertEqual(len(logs), 1)
        with open(logs[0], "ab") as f:  # a record header promising 100 bytes, then 10
            f.write(b"\x64\x00\x00\x00\x12\x34\x56\x78" + b"x" * 10)
        r = QueueProc(self, FAST, datadir=s.datadir)
        self.assertTrue(r.p.has_log(lambda x: x.get("level") == "error"
                                    and "damaged" in x.get("msg", "")))
        self.assertEqual(len(glob.glob(os.path.join(s.datadir, "*.damaged-*"))), 1)
        self.assertEqual(r.stats().queued, 5)

    def test_bad_settings_stop_at_start(self):
        from engbot_test import run
        rc, _, err = run("queue-svc", ["--global-rate=fast"])
        self.assertEqual(rc, 2)
        self.assertIn("global-rate", err)
        self.assertIn("30/s", err)
        rc, _, err = run("queue-svc", ["--overflow-policy=drop-newest"])
        self.assertEqual(rc, 2)
        rc, out, _ = run("queue-svc", ["--help"])
        self.assertEqual(rc, 0)
        for flag in ("--queue-max-size", "--lane-max-size", "--overflow-policy",
                     "--request-timeout", "--dedupe-window", "--max-attempts", "--lease-timeout",
                     "--max-lease-wait", "--max-payload", "--global-rate", "--chat-rate",
                     "--chat-burst", "--group-rate", "--fsync", "--data-dir"):
            self.assertIn(flag, out)


if __name__ == "__main__":
    unittest.main()
