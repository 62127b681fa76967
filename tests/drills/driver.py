"""driver -- the drills' load and their bookkeeping.

Driver: many chats (private and group) send a steady stream of user actions through the
emulator's control API, each with a reply that can be told apart:
  search  "/search zq<N>" (or the bare word in a private chat): "Nothing matches “zq<N>”"
  get     "/get spec-NNN.pdf": a sendDocument with that file name (or "No file matches “…”"
          when the file was removed)
  press   the file button "f:<id>" on the chat's /browse keyboard: answerCallbackQuery for that
          callback_query_id, then a sendDocument with the file's name
A quarter of the time a user sends two actions in a row. Groups act about every 3.5 s, close
to Telegram's 20 messages/min for a group, so their lanes in queue-svc often hold a backlog;
prime_groups() makes sure of one right before a fault. A chat
keeps at most MAX_OUTSTANDING actions unanswered (a group GROUP_OUTSTANDING; a user waits for
the bot), so a dead gateway makes a backlog of bounded size. A follower thread reads the transcript as it grows.

Accountant: from the transcript (and the services' RPCs) it checks that every action was
answered exactly once, in order per chat, with the right file bytes, and that sessions and the
queue are intact. See account() for the exact rules.
"""

import http.client
import json
import random
import re
import threading
import time

from drillstack import FILES_DOWN

REPLY_METHODS = ("sendMessage", "sendDocument")
RE_NOTHING = re.compile("Nothing matches \u201c(zq[0-9a-z]+)\u201d")
RE_FOUND = re.compile("\u201c([^\u201d]+)\u201d: [0-9]+ matches")
RE_NOFILE = re.compile("No file (?:matches|is called exactly) \u201c([^\u201d]+)\u201d")
GONE = "That file is no longer available"


class Ctl:
    """A keep-alive HTTP/1.1 client of the emulator's control API (one per thread)."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def call(self, path, body=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
                self.conn.request("POST" if data is not None else "GET", path, body=data,
                                  headers={"Content-Type": "application/json"})
                r = self.conn.getresponse()
                raw = r.read()
                if r.status != 200:
                    raise AssertionError(f"{path}: HTTP {r.status}: {raw[:300]!r}")
                return json.loads(raw or b"{}")
            except (OSError, http.client.HTTPException):
                if self.conn:
                    self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.05)

    def close(self):
        if self.conn:
            self.conn.close()


class Chat:
    def __init__(self, cid, kind, interval):
        self.id = cid
        self.kind = kind  # "private" or "group"
        self.user = cid if cid > 0 else 50000 + (-cid % 1000)
        self.interval = interval
        self.next_due = 0.0
        self.browse_msg = None
        self.actions = []
        self.file_cursor = random.randrange(1000)
        # Held from an action's index to its append: a driver thread and the test's own thread
        # (a checkpoint, the final round) may act in the same chat at once, and two actions
        # with one index would make the accountant match a reply to the wrong action.
        self.mu = threading.Lock()


class Action:
    __slots__ = ("chat", "idx", "kind", "key", "text", "data", "t_ms", "update_id", "cbid",
                 "accepts", "phase", "final", "name")

    def __init__(self, chat, idx, kind, key, phase):
        self.chat, self.idx, self.kind, self.key, self.phase = chat, idx, kind, key, phase
        self.text = self.data = self.cbid = self.name = None
        self.t_ms = 0.0
        self.update_id = 0
        self.final = False
        # Replies that carry no key but are a correct answer to this action in a degraded mode.
        self.accepts = {"files_down"} | ({"gone"} if kind in ("press", "get") else set())


class Driver:
    """The load. chats: n_private private chats and n_group groups; interval: seconds between
    a chat's actions (groups get group_interval: Telegram allows a group 20 messages/min)."""

    MAX_OUTSTANDING = 4
    GROUP_OUTSTANDING = 2  # a group gets a reply every 3 s (Telegram: 20/min)

    def __init__(self, stack, n_private=24, n_group=4, interval=2.5, group_interval=3.5,
                 mix=(("search", 5), ("get", 3), ("press", 2)), first_chat=10001, seed=None,
                 max_outstanding=None, double_p=0.25):
        self.s = stack
        self.files = stack.drill_files
        self.rng = random.Random(seed)
        self.chats = [Chat(first_chat + i, "private", interval) for i in range(n_private)]
        self.chats += [Chat(-(first_chat + 500000 + i), "group", group_interval)
                       for i in range(n_group)]
        self.by_id = {c.id: c for c in self.chats}
        self.mix = [k for k, w in mix for _ in range(w)]
        if max_outstanding:
            self.MAX_OUTSTANDING = max_outstanding
        self.phase = "setup"
        self.counter = 0
        self.lock = threading.Lock()
        self.events = []          # every transcript event, in order
        self.replies = {}         # chat id -> reply events (REPLY_METHODS) seen so far
        self.follow_since = 0
        self._stop = threading.Event()
        self._stop_follow = threading.Event()
        self.threads = []
        self.setup_seq = 0
        self.t_start = self.t_end = None
        self.send_errors = 0
        self.rate_scale = 1.0  # the load may be thinned while it runs (soak)
        self.double_p = double_p

    # ---- the follower --------------------------------------------------------------------
    def start_follower(self):
        t = threading.Thread(target=self._follow, name="follower", daemon=True)
        t.start()
        self.threads.append(t)

    def _follow(self):
        ctl = Ctl(self.s.emu.http_port)
        while not self._stop_follow.is_set():
            try:
                r = ctl.call(f"/control/transcript?since={self.follow_since}&wait_ms=300")
            except Exception:  # noqa: BLE001 -- the emulator is never faulted; retry
                time.sleep(0.2)
                continue
            evs = r.get("events", [])
            with self.lock:
                for e in evs:
                    self.events.append(e)
                    if e["method"] in REPLY_METHODS:
                        self.replies.setdefault(e.get("chat_id"), []).append(e)
                self.follow_since = r.get("next", self.follow_since)
        ctl.close()

    def outstanding(self, chat):
        with self.lock:
            got = len(self.replies.get(chat.id, ()))
        return len(chat.actions) + (1 if chat.browse_msg is not None else 0) - got

    # ---- setup: every chat opens the browser (creates its session, gives a keyboard) -----
    def setup(self, timeout=60, browse=True):
        self.start_follower()
        if not browse:  # (the burst: hundreds of chats that only search)
            self.setup_seq = self.follow_since
            self.setup_done_ms = time.time() * 1000
            return
        ctl = Ctl(self.s.emu.http_port)
        for c in self.chats:
            ctl.call("/control/message", self._msg(c, "/browse"))
        deadline = time.monotonic() + timeout
        pending = set(c.id for c in self.chats)
        while pending and time.monotonic() < deadline:
            with self.lock:
                for cid in list(pending):
                    for e in self.replies.get(cid, ()):
                        if e["method"] == "sendMessage" and e.get("reply_markup"):
                            self.by_id[cid].browse_msg = e["message_id"]
                            pending.discard(cid)
                            break
            time.sleep(0.1)
        ctl.close()
        if pending:
            raise AssertionError(f"setup: no /browse keyboard within {timeout}s for chats "
                                 f"{sorted(pending)[:10]} (gateway tail:\n{self.s.gw.tail(20)})")
        with self.lock:
            self.setup_seq = self.follow_since
        self.setup_done_ms = time.time() * 1000

    def _msg(self, c, text):
        body = {"chat_id": c.id, "chat_type": c.kind, "user_id": c.user, "text": text}
        if c.kind == "group":
            body["title"] = f"Drill group {-c.id}"
        return body

    # ---- the load ------------------------------------------------------------------------
    def start(self, threads=1):
        self.t_start = time.time()
        self.phase = self.phase if self.phase != "setup" else "load"
        for i in range(threads):
            t = threading.Thread(target=self._loop, args=(i, threads), name=f"driver-{i}",
                                 daemon=True)
            t.start()
            self.threads.append(t)

    def _loop(self, k, n):
        ctl = Ctl(self.s.emu.http_port)
        mine = [c for i, c in enumerate(self.chats) if i % n == k]
        now = time.monotonic()
        for c in mine:
            c.next_due = now + self.rng.uniform(0, c.interval)
        while not self._stop.is_set():
            now = time.monotonic()
            for c in mine:
                if c.next_due <= now:
                    c.next_due = now + c.interval * self.rng.uniform(0.5, 1.5) / self.rate_scale
                    # Sometimes a user sends two things in a row (the second before the
                    # first is answered): that is what makes order per chat testable.
                    n = 2 if self.rng.random() < self.double_p else 1
                    cap = self.MAX_OUTSTANDING if c.kind == "private" else self.GROUP_OUTSTANDING
                    for _ in range(n):
                        if self.outstanding(c) < cap:
                            self.act(ctl, c)
            time.sleep(0.01)
        ctl.close()

    def burst(self, rate, seconds, threads=2):
        """Searches at `rate` per second in all, round robin over the chats, for `seconds`,
        ignoring MAX_OUTSTANDING (users who do not wait). Returns (sent, seconds taken)."""
        self.t_start = time.time()

        def run(k):
            ctl = Ctl(self.s.emu.http_port)
            mine = [c for i, c in enumerate(self.chats) if i % threads == k]
            period = threads / float(rate)
            t = time.monotonic()
            end = t + seconds
            i = 0
            while t < end:
                self.act(ctl, mine[i % len(mine)], "search")
                i += 1
                t += period
                left = t - time.monotonic()
                if left > 0:
                    time.sleep(left)
            ctl.close()
        ts = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(threads)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return sum(len(c.actions) for c in self.chats), time.monotonic() - t0

    def stop(self):
        self._stop.set()
        for t in self.threads:
            if t.name.startswith("driver"):
                t.join(10)
        self.t_end = time.time()

    def next_file(self, c):
        names = self.files.names()
        c.file_cursor = (c.file_cursor + 7) % len(names)
        return names[c.file_cursor]

    def act(self, ctl, c, kind=None, final=False, name=None, token=None):
        kind = kind or self.rng.choice(self.mix)
        with self.lock:
            self.counter += 1
            n = self.counter
        if kind == "final":
            # A search that finds one file: the gateway saves it in the session (a search
            # that finds nothing is not saved), so the accountant can read it back.
            i = self.chats.index(c)
            token = token or f"spec-{i % len(self.files.names()):03d}"
            a = Action(c.id, -1, "search", "s:" + token, self.phase)
            a.text = f"/search {token}"
        elif kind == "search":
            token = f"zq{n:x}"
            a = Action(c.id, -1, "search", "s:" + token, self.phase)
            a.text = token if c.kind == "private" and n % 3 == 0 else f"/search {token}"
        elif kind == "get":
            name = name or self.next_file(c)
            a = Action(c.id, -1, "get", "g:" + name, self.phase)
            a.name = name
            a.text = f"/get {name}"
        else:
            name = self.next_file(c)
            fid = self.files.ids.get(name)
            if not fid or c.browse_msg is None:
                return self.act(ctl, c, "search", final)
            a = Action(c.id, -1, "press", "g:" + name, self.phase)
            a.name = name
            a.data = "f:" + fid
        a.final = final
        with c.mu:  # index, send and append as one step: indexes follow the chat's order
            a.idx = len(c.actions)
            a.t_ms = time.time() * 1000
            try:
                if a.kind == "press":
                    r = ctl.call("/control/callback", {"chat_id": c.id, "chat_type": c.kind,
                                                       "user_id": c.user,
                                                       "message_id": c.browse_msg,
                                                       "data": a.data})
                    a.cbid = r.get("callback_query_id")
                else:
                    r = ctl.call("/control/message", self._msg(c, a.text))
                a.update_id = r.get("update_id", 0)
            except Exception:  # noqa: BLE001
                self.send_errors += 1
                return None
            c.actions.append(a)
        return a

    def prime_groups(self, n=2):
        """Each group sends n actions at once: with Telegram's 20/min per group (a reply every
        3 s), at least n-1 of the replies then wait in queue-svc (acknowledged jobs for a fault
        to find)."""
        ctl = Ctl(self.s.emu.http_port)
        for c in self.chats:
            if c.kind == "group":
                for _ in range(n):
                    self.act(ctl, c, "search")
        ctl.close()

    def final_round(self, timeout=60):
        """Every chat sends one last search once the faults are over; the session of each chat
        must then hold that search (checked by the accountant)."""
        ctl = Ctl(self.s.emu.http_port)
        self.phase = "final"
        finals = [self.act(ctl, c, "final", final=True) for c in self.chats]
        ctl.close()
        self.wait_answered(timeout)
        return finals

    def wait_answered(self, timeout=60, idle=6):
        """Waits until every chat's actions have as many replies and queue-svc holds nothing
        (a duplicate can stand in for a missing reply in the count; the queue cannot); gives
        up at the timeout, or when no reply came for idle seconds while queue-svc holds
        nothing (what is missing then will not come)."""
        deadline = time.monotonic() + timeout
        last_n, last_t = -1, time.monotonic()
        while time.monotonic() < deadline:
            if all(self.outstanding(c) <= 0 for c in self.chats) and self._queue_empty():
                return True
            with self.lock:
                n = len(self.events)
            if n != last_n:
                last_n, last_t = n, time.monotonic()
            elif time.monotonic() - last_t > idle and self._queue_empty():
                return False
            time.sleep(0.2)
        return False

    def _queue_empty(self):
        try:
            st = queue_stats(self.s)
            return st.queued == 0 and st.leased == 0
        except Exception:  # noqa: BLE001 -- queue-svc down: nothing more will come from it
            return True

    def close(self):
        self._stop.set()
        self._stop_follow.set()
        for t in self.threads:
            t.join(5)

    def all_actions(self):
        return [a for c in self.chats for a in c.actions]


# ---- the accountant -----------------------------------------------------------------------

def classify(ev):
    """(key, class) of a reply event: key identifies the action it answers; class is
    "ok", "files_down", "gone", "notfound" or "other"."""
    m = ev["method"]
    if m == "sendDocument":
        d = ev.get("document") or {}
        return "g:" + d.get("file_name", ""), "ok"
    text = ev.get("plain") or ev.get("text") or ""
    if FILES_DOWN in text:
        return None, "files_down"
    if GONE in text:
        return None, "gone"
    mt = RE_NOTHING.search(text)
    if mt:
        return "s:" + mt.group(1), "ok"
    mt = RE_FOUND.search(text)
    if mt:
        return "s:" + mt.group(1), "ok"
    mt = RE_NOFILE.search(text)
    if mt:
        return "g:" + mt.group(1), "notfound"
    return None, "other"


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


class Report:
    def __init__(self):
        self.bad_chats = set()  # chats whose transcript is evidence of a problem
        self.problems = []
        self.numbers = {}
        self.notes = []

    def problem(self, what):
        self.problems.append(what)

    def ok(self):
        return not self.problems

    def text(self):
        out = ["numbers: " + json.dumps(self.numbers, sort_keys=True)]
        out += ["note: " + n for n in self.notes]
        if self.problems:
            out.append(f"{len(self.problems)} problem(s):")
            out += ["  - " + p for p in self.problems[:40]]
            if len(self.problems) > 40:
                out.append(f"  ... and {len(self.problems) - 40} more")
        return "\n".join(out)


INFLIGHT_WINDOW_MS = 1000


def account(drv, check_sessions=True, check_queue=True, allowed_duplicates=0,
            allowed_missing=0, unanswered_presses_in_fault=False, gateway_kills_ms=()):
    """The accountant. Per chat, the reply events after setup are walked in transcript order:
    an event with a key (the search token, the file name) is matched to the earliest
    unanswered action with that key; an event without one (a degraded reply such as "Files are
    temporarily unavailable") to the earliest unanswered action sent before it that accepts
    it. Then:
    - every action has exactly one reply (missing: none; duplicate: a keyed event left over);
    - the matched actions' indexes grow along the transcript (in order per chat);
    - every document's bytes (sha256) are a version of that file that was current while the
      request was being served (never stale, never mixed), and "No file matches" only for a
      file that was absent at some point of that time;
    - every button press got exactly one answerCallbackQuery (with
      unanswered_presses_in_fault, a press made during a Telegram fault may have none: the
      answer is one direct call that the fault may have eaten);
    - with check_sessions: each chat's session exists, was created before the load (not lost
      and re-created) and holds the chat's final search;
    - with check_queue: queue-svc holds nothing (queued, leased, dead letters) at the end.
    gateway_kills_ms: times the gateway was killed (-9). A Telegram call in flight at that
    moment may have taken effect without the gateway learning it (the Bot API has no
    idempotency key), so its job is sent again after the lease expires: a second copy whose
    first copy reached Telegram at most INFLIGHT_WINDOW_MS before a kill (and the second after
    it) is counted as "duplicates_in_flight_at_kill", not as a problem. Any other is one.
    """
    rep = Report()
    files = drv.files
    with drv.lock:
        events = [e for e in drv.events if e["seq"] > drv.setup_seq]
    by_chat = {}
    answers = {}
    for e in events:
        if e["method"] in REPLY_METHODS:
            by_chat.setdefault(e.get("chat_id"), []).append(e)
        elif e["method"] == "answerCallbackQuery":
            answers[e.get("callback_query_id")] = answers.get(e.get("callback_query_id"), 0) + 1
    n_actions = n_missing = n_dup = n_order = n_badsha = n_other = n_unanswered = 0
    classes = {}
    latencies = []
    lat_by_phase = {}
    uploads = by_file_id = 0
    missing_list, dup_list, order_list = [], [], []
    n_dup_inflight, inflight_list = 0, []
    for c in drv.chats:
        acts = c.actions
        n_actions += len(acts)
        matched = [None] * len(acts)
        unmatched_by_key = {}
        for a in acts:
            unmatched_by_key.setdefault(a.key, []).append(a.idx)
        last = -1
        first_by_key = {}
        for e in by_chat.get(c.id, []):
            key, cls = classify(e)
            classes[cls] = classes.get(cls, 0) + 1
            i = None
            if key is not None:
                lst = unmatched_by_key.get(key)
                if lst:
                    i = lst.pop(0)
                    first_by_key[key] = e
                elif key in first_by_key and any(
                        k - INFLIGHT_WINDOW_MS <= first_by_key[key]["ts_ms"] <= k + 100
                        and e["ts_ms"] > k for k in gateway_kills_ms):
                    n_dup_inflight += 1
                    inflight_list.append(f"chat {c.id}: {key} (seq {first_by_key[key]['seq']} "
                                         f"and {e['seq']})")
                    continue
                else:
                    n_dup += 1
                    rep.bad_chats.add(c.id)
                    dup_list.append(f"chat {c.id}: {key} ({e['method']} seq {e['seq']})")
                    continue
            elif cls in ("files_down", "gone"):
                # The earliest unanswered action that accepts it and was sent before it.
                cands = [a.idx for a in acts if matched[a.idx] is None and cls in a.accepts
                         and a.t_ms <= e["ts_ms"] + 50]
                if not cands:
                    n_dup += 1
                    rep.bad_chats.add(c.id)
                    dup_list.append(f"chat {c.id}: unexplained '{cls}' reply seq {e['seq']}")
                    continue
                i = cands[0]
                unmatched_by_key[acts[i].key].remove(i)
            else:
                n_other += 1
                rep.problem(f"chat {c.id}: unexpected reply {e['method']}: "
                            f"{(e.get('plain') or e.get('text') or '')[:120]!r}")
                continue
            a = acts[i]
            matched[i] = e
            if i < last:
                n_order += 1
                rep.bad_chats.add(c.id)
                order_list.append(f"chat {c.id}: reply to action {i} ({a.key}) came after the "
                                  f"reply to action {last}")
            last = max(last, i)
            lat = e["ts_ms"] - a.t_ms
            latencies.append(lat)
            lat_by_phase.setdefault(a.phase, []).append(lat)
            if e["method"] == "sendDocument":
                d = e.get("document") or {}
                if d.get("uploaded"):
                    uploads += 1
                else:
                    by_file_id += 1
                if not files.valid_sha(a.name, d.get("sha256"), a.t_ms, e["ts_ms"]):
                    n_badsha += 1
                    rep.problem(f"chat {c.id}: {a.name} sent with bytes {d.get('sha256', '')[:12]}"
                                f" that were not the file's content while it was requested "
                                f"(uploaded={d.get('uploaded')})")
            if cls == "notfound" and files.exists_at_all_times(a.name, a.t_ms - 3000,
                                                               e["ts_ms"]):
                rep.problem(f"chat {c.id}: 'No file matches {a.name}' although it existed")
        for a in acts:
            if matched[a.idx] is None:
                n_missing += 1
                rep.bad_chats.add(c.id)
                missing_list.append(f"chat {c.id}: action {a.idx} {a.key} ({a.kind}, phase "
                                    f"{a.phase}, update {a.update_id}) got no reply")
        for a in acts:
            if a.kind == "press":
                n = answers.get(a.cbid, 0)
                if n == 0 and unanswered_presses_in_fault and a.phase == "fault":
                    n_unanswered += 1
                elif n != 1:
                    rep.problem(f"chat {c.id}: button press {a.cbid} (phase {a.phase}, "
                                f"t {a.t_ms:.0f}) answered {n} times")
    rep.numbers.update({
        "actions": n_actions, "missing": n_missing, "duplicates": n_dup,
        "out_of_order": n_order, "wrong_bytes": n_badsha, "unexpected": n_other,
        "replies_by_class": classes, "documents_uploaded": uploads,
        "documents_by_file_id": by_file_id,
        "latency_ms_p50": _r(pct(latencies, 50)), "latency_ms_p95": _r(pct(latencies, 95)),
        "latency_ms_max": _r(max(latencies) if latencies else None),
        "presses": sum(1 for a in drv.all_actions() if a.kind == "press"),
    })
    if n_unanswered:
        rep.numbers["presses_unanswered_in_fault"] = n_unanswered
    if gateway_kills_ms:
        rep.numbers["duplicates_in_flight_at_kill"] = n_dup_inflight
    if n_dup_inflight:
        rep.notes.append(f"{n_dup_inflight} reply(ies) sent again after being in flight to "
                         f"Telegram when the gateway was killed: " + "; ".join(inflight_list[:5]))
    rep.numbers["latency_ms_by_phase"] = {
        ph: {"n": len(v), "p50": _r(pct(v, 50)), "p95": _r(pct(v, 95)), "max": _r(max(v))}
        for ph, v in sorted(lat_by_phase.items())}
    if n_missing > allowed_missing:
        rep.problem(f"{n_missing} action(s) got no reply (allowed {allowed_missing}): "
                    + "; ".join(missing_list[:8]))
    elif n_missing:
        rep.notes.append(f"{n_missing} action(s) without reply, allowed here: "
                         + "; ".join(missing_list[:5]))
    if n_dup > allowed_duplicates:
        rep.problem(f"{n_dup} duplicate reply(ies) (allowed {allowed_duplicates}): "
                    + "; ".join(dup_list[:8]))
    elif n_dup:
        rep.notes.append(f"{n_dup} duplicate(s), explained by the fault: " + "; ".join(dup_list[:5]))
    if n_order:
        rep.problem(f"{n_order} reply(ies) out of order: " + "; ".join(order_list[:8]))
    if check_sessions:
        _check_sessions(drv, rep)
    if check_queue:
        _check_queue(drv, rep)
    return rep


def evidence(drv, chats, limit=6):
    """Actions and reply events of some chats, in order, for the record of a failed drill."""
    out = {}
    with drv.lock:
        events = list(drv.events)
    for cid in sorted(chats)[:limit]:
        c = drv.by_id[cid]
        out[str(cid)] = {
            "actions": [{"i": a.idx, "key": a.key, "kind": a.kind, "phase": a.phase,
                         "t_ms": round(a.t_ms), "update_id": a.update_id} for a in c.actions],
            "events": [{"seq": e["seq"], "ts_ms": e["ts_ms"], "method": e["method"],
                        "key": classify(e)[0], "class": classify(e)[1]}
                       for e in events if e.get("chat_id") == cid and e["seq"] > drv.setup_seq
                       and e["method"] in REPLY_METHODS]}
    return out


def _r(x):
    return None if x is None else round(x)


def _check_sessions(drv, rep):
    import grpc
    from engbot.session.v1 import session_pb2 as spb
    from engbot_test import unary
    addr = drv.s.addr("session")
    lost = wrong = 0
    ch = grpc.insecure_channel(addr)
    try:
        for c in drv.chats:
            finals = [a for a in c.actions if a.final]
            try:
                r = unary(ch, "/engbot.session.v1.SessionService/GetSession",
                          spb.GetSessionRequest(chat_id=c.id), spb.GetSessionResponse)
            except grpc.RpcError as e:
                lost += 1
                rep.problem(f"session of chat {c.id}: {e.code().name} {e.details()}")
                continue
            s = r.session
            if s.created_unix_ms > drv.setup_done_ms:
                lost += 1
                rep.problem(f"session of chat {c.id} was re-created during the drill "
                            f"(created {s.created_unix_ms}, setup ended {drv.setup_done_ms:.0f}):"
                            f" the one made at setup was lost")
            if finals and s.last_search != finals[-1].key[2:]:
                wrong += 1
                rep.problem(f"session of chat {c.id}: last_search {s.last_search!r}, expected "
                            f"{finals[-1].key[2:]!r} (the final search)")
    finally:
        ch.close()
    rep.numbers["sessions_checked"] = len(drv.chats)
    rep.numbers["sessions_lost"] = lost
    rep.numbers["sessions_wrong"] = wrong


def queue_stats(stack):
    from engbot.queue.v1 import queue_pb2 as qpb
    from engbot_test import unary
    return unary(stack.addr("queue"), "/engbot.queue.v1.QueueService/GetStats",
                 qpb.GetStatsRequest(), qpb.GetStatsResponse)


def _check_queue(drv, rep):
    from engbot.queue.v1 import queue_pb2 as qpb
    from engbot_test import unary
    st = queue_stats(drv.s)
    rep.numbers["queue_end"] = {"queued": st.queued, "leased": st.leased, "dead": st.dead,
                                "expired_total": st.expired_total,
                                "dropped_total": st.dropped_total}
    if st.queued or st.leased:
        lanes = unary(drv.s.addr("queue"), "/engbot.queue.v1.QueueService/ListLanes",
                      qpb.ListLanesRequest(page_size=20), qpb.ListLanesResponse)
        rep.problem(f"queue-svc still holds {st.queued} queued and {st.leased} leased jobs: "
                    + "; ".join(f"lane {ln.key}: {ln.queued} queued, {ln.in_flight} in flight, "
                                f"paused until {ln.paused_until_unix_ms}" for ln in lanes.lanes))
    if st.dead:
        dl = unary(drv.s.addr("queue"), "/engbot.queue.v1.QueueService/ListDeadLetters",
                   qpb.ListDeadLettersRequest(page_size=10), qpb.ListDeadLettersResponse)
        rep.problem(f"{st.dead} dead letter(s): " + "; ".join(
            f"{j.method} lane {j.lane_key}: {j.last_error}" for j in dl.jobs))
    if st.expired_total or st.dropped_total:
        rep.problem(f"queue-svc expired {st.expired_total} and dropped {st.dropped_total} jobs")
