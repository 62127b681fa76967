"""Integration tests of cache-svc: the real process on loopback over a real temporary tree.

The catalogue follows files and folders added, removed, renamed and modified while it runs,
within a second with inotify and within one rescan without; a 20 MB file streams back byte for
byte; file_ids survive restarts (SIGTERM and kill -9) and are invalidated by a change of size or
mtime; a file swapped for a symlink after indexing is refused at read time; every path-safety
case gets its status, message and metric; limits answer RESOURCE_EXHAUSTED; buf curl JSON
calls work through reflection; start-up failures exit 2 with one clear line.
"""

import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from engbot_test import (BUILD, SRC, Proc, buf_curl, http_get, metric, run, status_of, unary,
                         wait_until)

import grpc
from engbot.cache.v1 import cache_pb2 as pb

SVC = "/engbot.cache.v1.CacheService/"
FOLDER = pb.ENTRY_KIND_FOLDER
FILE = pb.ENTRY_KIND_FILE


def _sanitized():
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            return bool(re.search(r"^ENGBOT_SANITIZE:STRING=\S+", f.read(), re.M))
    except OSError:
        return False


# Sanitizer builds run several times slower: time limits scale with them.
SCALE = float(os.environ.get("ENGBOT_TEST_TIME_SCALE", "4" if _sanitized() else "1"))

RESP = {
    "ListFolder": pb.ListFolderResponse, "Search": pb.SearchResponse,
    "Resolve": pb.ResolveResponse, "GetFileId": pb.GetFileIdResponse,
    "PutFileId": pb.PutFileIdResponse, "DropFileId": pb.DropFileIdResponse,
    "Invalidate": pb.InvalidateResponse, "GetStats": pb.GetStatsResponse,
}


def call(target, method, req, **kw):
    return unary(target, SVC + method, req, RESP[method], **kw)


def read_file(target, req, timeout=30):
    """ReadFile as a list of messages."""
    ch = target if isinstance(target, grpc.Channel) else grpc.insecure_channel(target)
    try:
        fn = ch.unary_stream(SVC + "ReadFile", request_serializer=lambda m: m.SerializeToString(),
                             response_deserializer=pb.ReadFileResponse.FromString)
        return list(fn(req, timeout=timeout))
    finally:
        if ch is not target:
            ch.close()


def write(root, rel, data):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    return p


def start(root, data, *args, **kw):
    p = Proc("cache-svc", args=[f"--files-root={root}", f"--data-dir={data}", *args], **kw)
    p.wait_serving()
    return p


class CacheBase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="engbot-cache-it-")
        self.root = os.path.join(self.tmp, "files")
        self.data = os.path.join(self.tmp, "data")
        os.makedirs(self.root)
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.alive():
                p.kill9()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def svc(self, *args, **kw):
        p = start(self.root, self.data, *args, **kw)
        self.procs.append(p)
        return p

    def names(self, p, path=""):
        target = p if isinstance(p, grpc.Channel) else p.addr
        r = call(target, "ListFolder", pb.ListFolderRequest(path=path, page_size=500))
        return [e.name for e in r.entries]

    def listed(self, p, path, name):
        try:
            return name in self.names(p, path)
        except grpc.RpcError:
            return False

    def found(self, p, query, path):
        """True when Search (the catalogue alone, never the disk) has path."""
        r = call(p.addr, "Search", pb.SearchRequest(query=query, limit=200))
        return path in [e.path for e in r.entries]

    def invalidations(self, p):
        return dict(call(p.addr, "GetStats", pb.GetStatsRequest()).invalidations)

    def assertStatus(self, fn, code, fragment=None):
        got, details = status_of(fn)
        self.assertEqual(got, code, details)
        if fragment:
            self.assertIn(fragment, details)
        return details


class ApiTest(CacheBase):
    """The API on the sample catalogue, with the hostile files a shared volume can hold. One
    process for the whole class (the tree is only read)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="engbot-cache-it-")
        cls.root = os.path.join(cls.tmp, "files")
        cls.data = os.path.join(cls.tmp, "data")
        subprocess.run(["sh", os.path.join(SRC, "cache-svc/sample/make-sample.sh"), cls.root],
                       check=True, capture_output=True)
        outside = write(cls.tmp, "outside/secret.txt", "not for the bot\n")
        os.symlink(outside, os.path.join(cls.root, "escape.pdf"))
        os.symlink(os.path.dirname(outside), os.path.join(cls.root, "escape-dir"))
        os.symlink("Datasheets/Motor-M90.pdf", os.path.join(cls.root, "Motor-latest.pdf"))
        os.symlink("Datasheets", os.path.join(cls.root, "Datasheets-link"))
        os.mkfifo(os.path.join(cls.root, "pipe"))
        write(cls.root, ".env", "BOT_TOKEN=123:abc\n")
        write(cls.root, "Standards/.drafts/next.pdf", "%PDF-1.4\n")
        cls.p = start(cls.root, cls.data, "--rescan-interval=1h")
        cls.ch = grpc.insecure_channel(cls.p.addr)

    @classmethod
    def tearDownClass(cls):
        cls.ch.close()
        cls.p.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.procs = []

    def tearDown(self):
        pass

    def test_list_folders_first_then_files_with_paging(self):
        r = call(self.ch, "ListFolder", pb.ListFolderRequest())
        self.assertEqual(r.folder.path, "")
        self.assertEqual([e.name for e in r.entries],
                         ["Datasheets", "Electrical", "Mechanical", "Standards", "Motor-latest.pdf",
                          "README.md"])
        self.assertEqual([e.kind for e in r.entries], [FOLDER] * 4 + [FILE] * 2)
        d = call(self.ch, "ListFolder", pb.ListFolderRequest(path="Mechanical/Drawings"))
        self.assertEqual([e.name for e in d.entries],
                         ["Bracket-A100.dxf", "Flange-F300 Rev 2.dxf", "Flange-F300 Rev 10.dxf",
                          "Gearbox-GB1-Assembly.pdf", "Shaft-S200.dxf"])
        self.assertEqual(d.entries[0].content_type, "image/vnd.dxf")
        self.assertEqual(d.entries[0].parent_id, d.folder.id)
        # Paging: 2 per page, 3 pages, a page past the end is clamped to the last one.
        pages = [call(self.ch, "ListFolder",
                      pb.ListFolderRequest(folder_id=d.folder.id, page_size=2, page=i))
                 for i in range(3)]
        self.assertEqual([len(x.entries) for x in pages], [2, 2, 1])
        self.assertEqual({x.pages for x in pages}, {3})
        self.assertEqual({x.total for x in pages}, {5})
        last = call(self.ch, "ListFolder",
                    pb.ListFolderRequest(folder_id=d.folder.id, page_size=2, page=99))
        self.assertEqual(last.page, 2)
        self.assertEqual(last.entries[0].name, "Shaft-S200.dxf")

    def test_resolve_by_id_path_and_name(self):
        a = call(self.ch, "Resolve", pb.ResolveRequest(path="Datasheets/Motor-M90.pdf")).entry
        self.assertEqual(a.name, "Motor-M90.pdf")
        self.assertEqual(a.content_type, "application/pdf")
        self.assertLessEqual(len(a.id), 16)
        self.assertEqual(a.size, os.path.getsize(os.path.join(self.root, a.path)))
        b = call(self.ch, "Resolve", pb.ResolveRequest(id=a.id)).entry
        self.assertEqual(b, a)
        c = call(self.ch, "Resolve", pb.ResolveRequest(name="motor-m90.PDF")).entry
        self.assertEqual(c.id, a.id)
        amb = call(self.ch, "Resolve", pb.ResolveRequest(name="Bearing-6204.pdf"))
        self.assertFalse(amb.HasField("entry"))
        self.assertEqual([e.path for e in amb.candidates],
                         ["Datasheets/Archive/Bearing-6204.pdf", "Datasheets/Bearing-6204.pdf"])
        root = call(self.ch, "Resolve", pb.ResolveRequest(path="")).entry
        self.assertEqual(root.kind, FOLDER)
        self.assertEqual(root.child_count, 6)
        # An in-root file symlink is served as the file it points to.
        link = call(self.ch, "Resolve", pb.ResolveRequest(path="Motor-latest.pdf")).entry
        self.assertEqual(link.size, a.size)

    def test_search_ranked_case_insensitive(self):
        r = call(self.ch, "Search", pb.SearchRequest(query="BEARING"))
        self.assertEqual([e.path for e in r.entries],
                         ["Datasheets/Bearing-6204.pdf", "Datasheets/Archive/Bearing-6204.pdf"])
        r = call(self.ch, "Search", pb.SearchRequest(query="flange rev"))
        self.assertEqual([e.name for e in r.entries],
                         ["Flange-F300 Rev 2.dxf", "Flange-F300 Rev 10.dxf"])
        r = call(self.ch, "Search", pb.SearchRequest(query="datasheets", limit=2))
        self.assertEqual(r.entries[0].path, "Datasheets")  # the folder's own name first
        self.assertEqual(len(r.entries), 2)
        self.assertGreater(r.total, 2)
        r = call(self.ch, "Search", pb.SearchRequest(query="datasheets", files_only=True))
        self.assertNotIn(FOLDER, [e.kind for e in r.entries])

    def test_read_small_file(self):
        msgs = read_file(self.ch, pb.ReadFileRequest(path="Datasheets/Bearing-6204.pdf"))
        with open(os.path.join(self.root, "Datasheets/Bearing-6204.pdf"), "rb") as f:
            want = f.read()
        self.assertEqual(b"".join(m.data for m in msgs), want)
        self.assertTrue(msgs[0].HasField("entry"))
        self.assertEqual(msgs[0].entry.size, len(want))
        self.assertTrue(msgs[-1].eof)

    def test_every_refusal_has_status_message_and_metric(self):
        A = self.ch
        IA, PD = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED

        def resolve(**kw):
            return lambda: call(A, "Resolve", pb.ResolveRequest(**kw))

        def read(**kw):
            return lambda: read_file(A, pb.ReadFileRequest(**kw))

        cases = [
            ("dotdot", IA, "'..'", resolve(path="../outside/secret.txt")),
            ("dotdot", IA, "'..'", read(path="Datasheets/../../outside/secret.txt")),
            ("absolute", IA, "absolute", resolve(path="/etc/passwd")),
            ("absolute", IA, "absolute", read(path="/etc/passwd")),
            ("separator", IA, "doubled", resolve(path="Datasheets//Motor-M90.pdf")),
            ("separator", IA, "trailing", resolve(path="Datasheets/")),
            ("encoded", IA, "percent-encoded", resolve(path="%2e%2e/outside/secret.txt")),
            ("encoded", IA, "percent-encoded", resolve(path="Datasheets%2fMotor-M90.pdf")),
            ("backslash", IA, "'\\'", resolve(path="..\\outside\\secret.txt")),
            ("nul", IA, "NUL", resolve(path="Datasheets/Motor-M90.pdf\0/../../etc/passwd")),
            ("nul", IA, "NUL", read(path="README.md\0.pdf")),
            ("nul", IA, "NUL", resolve(name="README.md\0")),
            ("too_long", IA, "bytes long", resolve(path="x" * 300)),
            ("too_long", IA, "bytes long", resolve(path="/".join(["d" * 200] * 6))),
            ("too_deep", IA, "segments", resolve(path="/".join(["d"] * 40))),
            ("control", IA, "control", resolve(path="Datasheets/\x1b[2J.pdf")),
            ("dot", IA, "'.'", resolve(path="./README.md")),
            ("hidden", PD, "hidden", resolve(path=".env")),
            ("hidden", PD, "hidden", read(path=".env")),
            ("hidden", PD, "hidden", resolve(path="Standards/.drafts/next.pdf")),
            ("hidden", PD, "hidden", resolve(name=".env")),
            ("symlink_escape", PD, "outside FILES_ROOT", resolve(path="escape.pdf")),
            ("symlink_escape", PD, "outside FILES_ROOT", read(path="escape.pdf")),
            ("symlink_escape", PD, "outside FILES_ROOT", read(path="escape-dir/secret.txt")),
            ("symlink_folder", PD, "symlinked folders", resolve(path="Datasheets-link")),
            ("symlink_folder", PD, "symlinked folders",
             read(path="Datasheets-link/Motor-M90.pdf")),
            ("special", PD, "fifo", resolve(path="pipe")),
            ("special", PD, "fifo", read(path="pipe")),
        ]
        before = {}
        for reason, *_ in cases:
            before.setdefault(reason, metric(self.p.http_port, "engbot_cache_refused_total",
                                             {"reason": reason}) or 0)
        counts = {}
        for reason, code, fragment, fn in cases:
            with self.subTest(reason=reason, fragment=fragment):
                self.assertStatus(fn, code, fragment)
            counts[reason] = counts.get(reason, 0) + 1
        for reason, n in counts.items():
            got = metric(self.p.http_port, "engbot_cache_refused_total", {"reason": reason})
            self.assertEqual(got - before[reason], n, reason)
        # None of them is listed either.
        names = self.names(self.ch) + self.names(self.ch, "Standards")
        for bad in ("escape.pdf", "escape-dir", "Datasheets-link", "pipe", ".env", ".drafts"):
            self.assertNotIn(bad, names)
        self.assertEqual(metric(self.p.http_port, "engbot_cache_scan_skipped",
                                {"reason": "symlink_escape"}), 2)

    def test_other_bad_requests(self):
        A = self.ch
        IA, NF = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
        self.assertStatus(lambda: call(A, "Resolve", pb.ResolveRequest()), IA, "set one of")
        self.assertStatus(lambda: call(A, "Resolve", pb.ResolveRequest(id="not-an-id!")), IA,
                          "malformed")
        self.assertStatus(lambda: call(A, "Resolve", pb.ResolveRequest(id="zzzzzzzzzzzz")), NF,
                          "no entry has id")
        self.assertStatus(lambda: call(A, "Resolve", pb.ResolveRequest(path="no/such.pdf")), NF)
        self.assertStatus(lambda: call(A, "Resolve", pb.ResolveRequest(name="nothing.pdf")), NF,
                          "no file is named")
        self.assertStatus(lambda: call(A, "ListFolder", pb.ListFolderRequest(path="README.md")),
                          grpc.StatusCode.FAILED_PRECONDITION, "is a file")
        self.assertStatus(lambda: call(A, "Search", pb.SearchRequest(query="  ")), IA, "words")
        self.assertStatus(lambda: call(A, "Search", pb.SearchRequest(query="q" * 300)), IA)
        self.assertStatus(lambda: read_file(A, pb.ReadFileRequest(path="Datasheets")),
                          grpc.StatusCode.FAILED_PRECONDITION, "folder")
        self.assertStatus(lambda: read_file(A, pb.ReadFileRequest(path="README.md", offset=10**9)),
                          grpc.StatusCode.OUT_OF_RANGE, "past the end")
        self.assertStatus(lambda: read_file(A, pb.ReadFileRequest()), IA, "id or a path")
        self.assertStatus(lambda: call(A, "GetFileId", pb.GetFileIdRequest(path="README.md")), IA,
                          "bot_id")
        key = pb.FileKey(bot_id=1, path="README.md", size=1, mtime_unix_ms=1)
        self.assertStatus(lambda: call(A, "PutFileId", pb.PutFileIdRequest(key=key,
                                                                           file_id="bad id!")),
                          IA, "file_id")
        self.assertStatus(lambda: call(A, "PutFileId", pb.PutFileIdRequest(file_id="x")), IA,
                          "key is required")
        self.assertStatus(lambda: call(A, "Invalidate", pb.InvalidateRequest()), IA, "all")
        self.assertStatus(lambda: call(A, "Invalidate", pb.InvalidateRequest(path="../x")), IA)
        self.assertStatus(lambda: call(A, "Invalidate", pb.InvalidateRequest(path="no/such")), NF)

    def test_buf_curl_json_and_metrics(self):
        rc, out, err = buf_curl(self.p.addr, "engbot.cache.v1.CacheService/Resolve",
                                {"path": "Mechanical/Models/Bracket-A100.step"})
        self.assertEqual(rc, 0, err)
        self.assertIn('"contentType": "model/step"', out)
        rc, out, err = buf_curl(self.p.addr, "engbot.cache.v1.CacheService/Search",
                                {"query": "gearbox"})
        self.assertEqual(rc, 0, err)
        self.assertIn("Gearbox-GB1-BOM.csv", out)
        rc, out, err = buf_curl(self.p.addr, "engbot.cache.v1.CacheService/GetStats", {})
        self.assertEqual(rc, 0, err)
        self.assertIn('"inotifyActive": true', out)
        read_file(self.ch, pb.ReadFileRequest(path="README.md"))
        st = call(self.ch, "GetStats", pb.GetStatsRequest())
        self.assertEqual(st.files, 20)  # 19 sample files and one file symlink
        self.assertEqual([c.name for c in st.caches], ["catalogue", "existence", "file_id"])
        self.assertTrue(st.inotify_active)
        port = self.p.http_port
        self.assertGreater(metric(port, "engbot_cache_hits_total", {"cache": "catalogue"}), 0)
        self.assertIsNotNone(metric(port, "engbot_cache_misses_total", {"cache": "existence"}))
        self.assertGreater(metric(port, "engbot_cache_hit_ratio", {"cache": "catalogue"}), 0)
        self.assertEqual(metric(port, "engbot_cache_entries", {"cache": "catalogue"}), 30)
        self.assertIsNotNone(metric(port, "engbot_cache_invalidations_total", {"trigger": "manual"}))
        self.assertEqual(metric(port, "engbot_cache_rescan_duration_seconds_count"), 1)
        self.assertGreater(metric(port, "engbot_cache_bytes_streamed_total"), 0)
        self.assertGreater(metric(port, "engbot_cache_index_bytes"), 0)
        self.assertEqual(metric(port, "engbot_cache_inotify_watches"), 10)  # every folder
        self.assertIsNotNone(metric(port, "grpc_server_handled_total",
                                    {"grpc_method": "Resolve", "grpc_code": "OK"}))


class InotifyTest(CacheBase):
    """Changes while it runs, with inotify and no periodic rescan: seen within a second."""

    LIMIT = 1.0 * SCALE

    def follow(self, p, cond, what):
        t0 = time.monotonic()
        wait_until(cond, timeout=self.LIMIT, interval=0.01, what=what)
        return time.monotonic() - t0

    def test_add_remove_rename_modify_files_and_folders(self):
        write(self.root, "Drawings/a.dxf", "0\nEOF\n")
        p = self.svc("--rescan-interval=0")
        before = self.invalidations(p)
        # A file added.
        write(self.root, "Drawings/b.dxf", "0\nEOF\n")
        self.follow(p, lambda: self.listed(p, "Drawings", "b.dxf"), "b.dxf added")
        # Renamed.
        os.rename(os.path.join(self.root, "Drawings/b.dxf"), os.path.join(self.root, "Drawings/c.dxf"))
        self.follow(p, lambda: self.names(p, "Drawings") == ["a.dxf", "c.dxf"], "b.dxf renamed")
        # Modified: the new size shows.
        write(self.root, "Drawings/c.dxf", "0\nSECTION\n0\nEOF\n")
        self.follow(p, lambda: call(p.addr, "ListFolder", pb.ListFolderRequest(path="Drawings"))
                    .entries[1].size == 16, "c.dxf modified")
        # Removed.
        os.unlink(os.path.join(self.root, "Drawings/c.dxf"))
        self.follow(p, lambda: self.names(p, "Drawings") == ["a.dxf"], "c.dxf removed")
        # Folders created later, nested, with a file: all watched from then on.
        write(self.root, "New/Deeper/Deepest/x.pdf", "%PDF-1.4\n")
        self.follow(p, lambda: self.found(p, "x.pdf", "New/Deeper/Deepest/x.pdf"), "new folders")
        write(self.root, "New/Deeper/Deepest/y.pdf", "%PDF-1.4\n")
        self.follow(p, lambda: self.found(p, "y.pdf", "New/Deeper/Deepest/y.pdf"),
                    "file in a folder created later")
        # A folder renamed: its files move with it, the old path is gone.
        old = call(p.addr, "Resolve", pb.ResolveRequest(path="New/Deeper/Deepest/x.pdf")).entry
        os.rename(os.path.join(self.root, "New"), os.path.join(self.root, "Renamed"))
        self.follow(p, lambda: self.found(p, "x.pdf", "Renamed/Deeper/Deepest/x.pdf")
                    and not self.found(p, "x.pdf", "New/Deeper/Deepest/x.pdf"), "folder renamed")
        self.assertStatus(lambda: call(p.addr, "Resolve", pb.ResolveRequest(id=old.id)),
                          grpc.StatusCode.NOT_FOUND)
        self.assertNotIn("New", self.names(p))
        # Watches follow the rename: a file added under the new name shows up.
        write(self.root, "Renamed/Deeper/z.pdf", "%PDF-1.4\n")
        self.follow(p, lambda: self.found(p, "z.pdf", "Renamed/Deeper/z.pdf"),
                    "file in renamed folder")
        # A folder removed with everything inside.
        shutil.rmtree(os.path.join(self.root, "Renamed"))
        self.follow(p, lambda: self.names(p) == ["Drawings"], "folder removed")
        after = self.invalidations(p)
        self.assertGreaterEqual(after["inotify"] - before["inotify"], 12)
        self.assertEqual(after["rescan"], before["rescan"])  # inotify alone did it
        self.assertEqual(metric(p.http_port, "engbot_cache_inotify_watches"), 2)


class RescanFallbackTest(CacheBase):
    """Inotify disabled (as on a network volume): every change is seen within one rescan."""

    INTERVAL = 1.0

    def test_changes_seen_within_one_rescan(self):
        write(self.root, "Docs/a.pdf", "%PDF-1.4\n")
        p = self.svc("--inotify=false", f"--rescan-interval={int(self.INTERVAL * 1000)}ms")
        st = call(p.addr, "GetStats", pb.GetStatsRequest())
        self.assertFalse(st.inotify_active)
        limit = (self.INTERVAL + 0.5) * SCALE  # one interval plus the scan itself

        def change_then_wait(change, cond, what):
            change()
            t0 = time.monotonic()
            wait_until(cond, timeout=limit, interval=0.02, what=what)
            return time.monotonic() - t0

        change_then_wait(lambda: write(self.root, "Docs/b.pdf", "%PDF-1.4\n"),
                         lambda: self.listed(p, "Docs", "b.pdf"), "added")
        change_then_wait(lambda: os.unlink(os.path.join(self.root, "Docs/a.pdf")),
                         lambda: self.names(p, "Docs") == ["b.pdf"], "removed")
        change_then_wait(lambda: write(self.root, "Later/Sub/c.pdf", "%PDF-1.4\n"),
                         lambda: self.found(p, "c.pdf", "Later/Sub/c.pdf"), "folder added")
        change_then_wait(lambda: os.rename(os.path.join(self.root, "Later"),
                                           os.path.join(self.root, "Moved")),
                         lambda: self.found(p, "c.pdf", "Moved/Sub/c.pdf")
                         and "Later" not in self.names(p), "folder renamed")
        inv = self.invalidations(p)
        self.assertEqual(inv["rescan"], 11)  # 1 + 1 + 3 + (3 removed, 3 added)
        self.assertEqual(inv["inotify"], 0)
        self.assertGreaterEqual(metric(p.http_port, "engbot_cache_rescan_duration_seconds_count"), 3)

    def test_existence_cache(self):
        write(self.root, "Docs/a.pdf", "%PDF-1.4\n")
        write(self.root, "Docs/b.pdf", "%PDF-1.4\n")
        # Nothing but lookups can notice a change here (no inotify, no rescan).
        cached = self.svc("--inotify=false", "--rescan-interval=0", "--file-cache-duration=1h")
        checked = self.svc("--inotify=false", "--rescan-interval=0", "--file-cache-duration=0")
        for p in (cached, checked):
            call(p.addr, "Resolve", pb.ResolveRequest(path="Docs/a.pdf"))
        os.unlink(os.path.join(self.root, "Docs/a.pdf"))
        # Within FILE_CACHE_DURATION the answer comes from memory ...
        self.assertEqual(call(cached.addr, "Resolve", pb.ResolveRequest(path="Docs/a.pdf"))
                         .entry.name, "a.pdf")
        ex = [c for c in call(cached.addr, "GetStats", pb.GetStatsRequest()).caches
              if c.name == "existence"][0]
        self.assertEqual((ex.hits, ex.misses), (1, 1))
        # ... past it, the disk says the file is gone: NOT_FOUND, and it leaves the catalogue.
        self.assertStatus(lambda: call(checked.addr, "Resolve",
                                       pb.ResolveRequest(path="Docs/a.pdf")),
                          grpc.StatusCode.NOT_FOUND, "no longer exists")
        self.assertEqual(self.names(checked, "Docs"), ["b.pdf"])
        self.assertEqual(self.invalidations(checked)["existence"], 1)
        self.assertEqual(metric(checked.http_port, "engbot_cache_misses_total",
                                {"cache": "existence"}), 2)

    def test_manual_invalidate(self):
        write(self.root, "Docs/a.pdf", "%PDF-1.4\n")
        p = self.svc("--inotify=false", "--rescan-interval=1h")
        write(self.root, "Docs/new.pdf", "%PDF-1.4\n")
        write(self.root, "Other/x.pdf", "%PDF-1.4\n")
        self.assertEqual(self.names(p, "Docs"), ["a.pdf"])  # nothing notices on its own
        r = call(p.addr, "Invalidate", pb.InvalidateRequest(path="Docs"))
        self.assertEqual(r.changed, 1)
        self.assertEqual(self.names(p, "Docs"), ["a.pdf", "new.pdf"])
        self.assertNotIn("Other", self.names(p))
        r = call(p.addr, "Invalidate", pb.InvalidateRequest(all=True))
        self.assertEqual(r.changed, 2)  # Other and Other/x.pdf
        self.assertEqual(r.entries, 6)
        os.unlink(os.path.join(self.root, "Docs/a.pdf"))
        r = call(p.addr, "Invalidate", pb.InvalidateRequest(path="Docs/a.pdf"))
        self.assertEqual(r.changed, 1)
        self.assertEqual(self.invalidations(p)["manual"], 4)


class StreamTest(CacheBase):
    SIZE = 20 * 1024 * 1024

    def setUp(self):
        super().setUp()
        self.blob = os.urandom(self.SIZE)
        write(self.root, "Big/model.step", self.blob)

    def test_large_file_streams_byte_for_byte(self):
        p = self.svc("--chunk-size=256KiB")
        t0 = time.monotonic()
        msgs = read_file(p.addr, pb.ReadFileRequest(path="Big/model.step"))
        dt = time.monotonic() - t0
        data = b"".join(m.data for m in msgs)
        self.assertEqual(len(data), self.SIZE)
        self.assertEqual(hashlib.sha256(data).digest(), hashlib.sha256(self.blob).digest())
        self.assertEqual(msgs[0].entry.size, self.SIZE)
        self.assertEqual(msgs[0].entry.content_type, "model/step")
        self.assertFalse(any(m.HasField("entry") for m in msgs[1:]))
        self.assertTrue(all(len(m.data) <= 256 * 1024 for m in msgs))
        self.assertEqual(len(msgs), self.SIZE // (256 * 1024))
        offsets = [m.offset for m in msgs]
        self.assertEqual(offsets, sorted(offsets))
        self.assertEqual(offsets[5], 5 * 256 * 1024)
        self.assertTrue(msgs[-1].eof and not any(m.eof for m in msgs[:-1]))
        print(f"\n    20 MB streamed in {dt:.3f}s ({self.SIZE / dt / 1e6:.0f} MB/s)")
        # From an offset.
        tail = read_file(p.addr, pb.ReadFileRequest(path="Big/model.step", offset=self.SIZE - 100))
        self.assertEqual(b"".join(m.data for m in tail), self.blob[-100:])
        self.assertGreaterEqual(metric(p.http_port, "engbot_cache_bytes_streamed_total"),
                                self.SIZE + 100)

    def test_limits(self):
        p = self.svc("--max-file-size=16MiB", "--max-concurrent-reads=1", "--chunk-size=64KiB")
        write(self.root, "Big/small.pdf", "%PDF-1.4\n")
        self.assertStatus(lambda: read_file(p.addr, pb.ReadFileRequest(path="Big/model.step")),
                          grpc.StatusCode.RESOURCE_EXHAUSTED, "MAX_FILE_SIZE")
        q = self.svc("--max-concurrent-reads=1", "--chunk-size=64KiB")
        ch = grpc.insecure_channel(q.addr)
        fn = ch.unary_stream(SVC + "ReadFile", request_serializer=lambda m: m.SerializeToString(),
                             response_deserializer=pb.ReadFileResponse.FromString)
        held = fn(pb.ReadFileRequest(path="Big/model.step"), timeout=30)
        next(held)  # the stream is open and the client reads no further: the slot stays taken
        self.assertStatus(lambda: read_file(q.addr, pb.ReadFileRequest(path="Big/small.pdf")),
                          grpc.StatusCode.RESOURCE_EXHAUSTED, "MAX_CONCURRENT_READS")
        held.cancel()
        wait_until(lambda: status_of(lambda: read_file(q.addr, pb.ReadFileRequest(
            path="Big/small.pdf")))[0] == grpc.StatusCode.OK, timeout=5 * SCALE,
            what="the slot freed by the cancelled stream")
        ch.close()
        self.assertGreaterEqual(metric(q.http_port, "engbot_cache_reads_rejected_total",
                                       {"limit": "max_concurrent_reads"}), 1)


class FileIdTest(CacheBase):
    BOT = 123456789

    def key_of(self, p, path):
        msgs = read_file(p.addr, pb.ReadFileRequest(path=path))
        e = msgs[0].entry
        return pb.FileKey(bot_id=self.BOT, path=path, size=e.size, mtime_unix_ms=e.mtime_unix_ms)

    def get(self, p, path, bot=BOT):
        return call(p.addr, "GetFileId", pb.GetFileIdRequest(bot_id=bot, path=path))

    def test_file_id_survives_restarts_and_follows_changes(self):
        path = "Datasheets/Bearing-6204.pdf"
        write(self.root, path, "%PDF-1.4 rev A\n")
        p = self.svc()
        NF = grpc.StatusCode.NOT_FOUND
        self.assertStatus(lambda: self.get(p, path), NF, "no file_id")
        key = self.key_of(p, path)
        r = call(p.addr, "PutFileId", pb.PutFileIdRequest(key=key, file_id="BQACAgIAAxkBAAIB"))
        self.assertTrue(r.stored)
        g = self.get(p, path)
        self.assertEqual(g.file_id, "BQACAgIAAxkBAAIB")
        self.assertEqual(g.key, key)
        self.assertStatus(lambda: self.get(p, path, bot=42), NF)  # another bot's is not ours
        # SIGTERM and back.
        self.assertEqual(p.stop(), 0)
        p = self.svc()
        self.assertEqual(self.get(p, path).file_id, "BQACAgIAAxkBAAIB")
        # kill -9 right after an acknowledged put, and back.
        write(self.root, "README.md", "# readme\n")
        rk = self.key_of(p, "README.md") if self.listed_ok(p, "README.md") else None
        self.assertIsNotNone(rk)
        self.assertTrue(call(p.addr, "PutFileId",
                             pb.PutFileIdRequest(key=rk, file_id="readme-id")).stored)
        p.kill9()
        p = self.svc()
        self.assertEqual(self.get(p, "README.md").file_id, "readme-id")
        # A new mtime (same size): the stored id is stale.
        st = os.stat(os.path.join(self.root, path))
        os.utime(os.path.join(self.root, path), ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
        wait_until(lambda: status_of(lambda: self.get(p, path))[0] == NF, timeout=2 * SCALE,
                   what="mtime change invalidates the file_id")
        self.assertIn("changed", status_of(lambda: self.get(p, path))[1])
        # An upload of the old version does not store.
        self.assertFalse(call(p.addr, "PutFileId",
                              pb.PutFileIdRequest(key=key, file_id="late")).stored)
        # A new size: upload, store, get.
        write(self.root, path, "%PDF-1.4 rev B, longer\n")
        wait_until(lambda: self.key_of(p, path).size == 23, timeout=2 * SCALE, what="new size")
        key2 = self.key_of(p, path)
        self.assertTrue(call(p.addr, "PutFileId",
                             pb.PutFileIdRequest(key=key2, file_id="rev-b")).stored)
        self.assertEqual(self.get(p, path).file_id, "rev-b")
        # Telegram rejected it: drop (only that id), and it is gone.
        self.assertFalse(call(p.addr, "DropFileId", pb.DropFileIdRequest(
            bot_id=self.BOT, path=path, file_id="other")).dropped)
        self.assertTrue(call(p.addr, "DropFileId", pb.DropFileIdRequest(
            bot_id=self.BOT, path=path, file_id="rev-b")).dropped)
        self.assertStatus(lambda: self.get(p, path), NF)
        st = call(p.addr, "GetStats", pb.GetStatsRequest())
        fid = [c for c in st.caches if c.name == "file_id"][0]
        self.assertGreaterEqual(fid.hits, 2)  # since the last restart
        self.assertGreaterEqual(fid.misses, 2)
        self.assertEqual(fid.entries, 1)  # README.md's

    def test_stale_file_id_never_served_even_when_nothing_announced_the_change(self):
        write(self.root, "a.pdf", "%PDF-1.4 one\n")
        p = self.svc("--inotify=false", "--rescan-interval=0", "--file-cache-duration=1h")
        key = self.key_of(p, "a.pdf")
        self.assertTrue(call(p.addr, "PutFileId", pb.PutFileIdRequest(key=key, file_id="one")).stored)
        self.assertEqual(self.get(p, "a.pdf").file_id, "one")
        write(self.root, "a.pdf", "%PDF-1.4 two, longer\n")  # no event, no rescan, cache fresh
        self.assertStatus(lambda: self.get(p, "a.pdf"), grpc.StatusCode.NOT_FOUND, "changed")

    def listed_ok(self, p, path):
        return status_of(lambda: call(p.addr, "Resolve", pb.ResolveRequest(path=path)))[0] == \
            grpc.StatusCode.OK

    def test_damaged_store_is_kept_aside_and_reported(self):
        write(self.root, "a.pdf", "%PDF-1.4\n")
        p = self.svc()
        key = self.key_of(p, "a.pdf")
        self.assertTrue(call(p.addr, "PutFileId", pb.PutFileIdRequest(key=key, file_id="A")).stored)
        self.assertEqual(p.stop(), 0)
        p = self.svc()  # the put is now in the snapshot
        self.assertEqual(p.stop(), 0)
        snap = os.path.join(self.data, "fileids.snap")
        with open(snap, "r+b") as f:
            f.seek(-10, os.SEEK_END)  # the last record (a.pdf's), just before the 8-byte seal
            f.write(b"\xff")
        p = self.svc()
        rec = p.wait_log(lambda r: r.get("msg", "").startswith("file_id store file is damaged"))
        self.assertEqual(rec["level"], "error")
        self.assertEqual(metric(p.http_port, "engbot_cache_fileid_store_damaged_total"), 1)
        self.assertTrue(any(".damaged-" in n for n in os.listdir(self.data)))
        self.assertStatus(lambda: self.get(p, "a.pdf"), grpc.StatusCode.NOT_FOUND)  # not trusted


class SymlinkSwapTest(CacheBase):
    """A file or folder replaced by a symlink after indexing is refused at read time, even
    while the catalogue (no inotify, no rescan) and the existence cache still hold it."""

    def test_swap_after_indexing(self):
        write(self.root, "Docs/report.pdf", "%PDF-1.4 the real report\n")
        write(self.root, "Sub/inner.pdf", "%PDF-1.4 inner\n")
        outside = write(self.tmp, "outside/secret.txt", "SECRET outside the root\n")
        p = self.svc("--inotify=false", "--rescan-interval=1h")
        # Indexed, resolved (the existence stamp is fresh) and read once.
        call(p.addr, "Resolve", pb.ResolveRequest(path="Docs/report.pdf"))
        self.assertIn(b"real report", read_file(p.addr, pb.ReadFileRequest(
            path="Docs/report.pdf"))[0].data)
        entry = call(p.addr, "Resolve", pb.ResolveRequest(path="Sub/inner.pdf")).entry
        # Swapped.
        os.unlink(os.path.join(self.root, "Docs/report.pdf"))
        os.symlink(outside, os.path.join(self.root, "Docs/report.pdf"))
        os.rename(os.path.join(self.root, "Sub"), os.path.join(self.tmp, "outside/Sub"))
        os.symlink(os.path.join(self.tmp, "outside/Sub"), os.path.join(self.root, "Sub"))
        # The catalogue has not noticed (nothing tells it) ...
        self.assertIn("report.pdf", self.names(p, "Docs"))
        # ... but reading opens under the root, component by component.
        for req in (pb.ReadFileRequest(path="Docs/report.pdf"), pb.ReadFileRequest(id=entry.id)):
            got, details = status_of(lambda: read_file(p.addr, req))
            self.assertEqual(got, grpc.StatusCode.PERMISSION_DENIED, details)
            self.assertIn("outside FILES_ROOT", details)
        # And the refused entries left the catalogue.
        self.assertNotIn("report.pdf", self.names(p, "Docs"))
        self.assertEqual(metric(p.http_port, "engbot_cache_refused_total",
                                {"reason": "symlink_escape"}), 2)


class LifecycleTest(CacheBase):
    def test_serving_after_first_scan_and_clean_exit(self):
        for i in range(50):
            write(self.root, f"F{i % 5}/file{i}.pdf", "%PDF-1.4\n")
        p = self.svc()
        scanned = [i for i, r in enumerate(p.lines) if r.get("msg") == "first scan done"]
        serving = [i for i, r in enumerate(p.lines) if r.get("msg") == "serving"]
        self.assertTrue(scanned and serving and scanned[0] < serving[0])
        self.assertEqual(p.lines[scanned[0]]["files"], 50)
        self.assertEqual(http_get(p.http_port, "/readyz")[0], 200)
        self.assertEqual(p.stop(), 0)
        self.assertTrue(p.has_log(lambda r: r.get("msg") == "stopped"))

    def test_bad_settings_exit_2_with_one_clear_line(self):
        rc, _, err = run("cache-svc", [f"--files-root={self.tmp}/nope", f"--data-dir={self.data}"])
        self.assertEqual(rc, 2)
        self.assertIn("invalid --files-root=", err)
        self.assertIn("No such file or directory", err)
        rc, _, err = run("cache-svc", [f"--files-root={self.root}", "--max-concurrent-reads=16"])
        self.assertEqual(rc, 2)
        self.assertIn("--max-concurrent-reads", err)
        rc, _, err = run("cache-svc", [f"--files-root={self.root}", "--file-cache-duration=soon"])
        self.assertEqual(rc, 2)
        self.assertIn("FILE_CACHE_DURATION", err.upper().replace("-", "_"))
        rc, out, _ = run("cache-svc", ["--help"])
        self.assertEqual(rc, 0)
        for flag in ("--files-root", "--data-dir", "--file-cache-duration", "--rescan-interval",
                     "--inotify", "--max-entries", "--max-file-size", "--chunk-size",
                     "--max-concurrent-reads", "--max-file-ids"):
            self.assertIn(flag, out)


if __name__ == "__main__":
    unittest.main()
