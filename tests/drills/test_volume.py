"""The files volume changing under load: files added, removed and replaced (write to a temp
file and rename, as editors and sync tools do) while users ask for them. Every document sent
must be a version of the file that was current while the request was served (never a stale
file_id for replaced content), a removed file must be answered ("No file matches" / "no longer
available"), and nothing may go unanswered.
"""

import random
import time
import unittest

from drillcase import SCALE, DrillCase


class Volume(DrillCase):
    post_s = 3.0

    def test_files_added_removed_replaced(self):
        def f(s, d):
            files = s.drill_files
            rng = random.Random(7)
            # Files the final round searches for (spec-000.. one per chat) stay put.
            stable = len(d.chats)
            mutable = [n for n in files.names() if int(n[5:8]) >= stable]
            removed, version, ops = set(), {}, {"added": 0, "removed": 0, "replaced": 0,
                                                "restored": 0}
            t_end = time.monotonic() + 5 * SCALE
            k = 0
            while time.monotonic() < t_end:
                op = rng.choice(("replace",) * 7 + ("remove",) * 6 + ("add",) * 3 + ("restore",) * 4)
                if op == "add":
                    k += 1
                    files.write(f"drills/new/added-{k:03d}.pdf", 0)
                    ops["added"] += 1
                elif op == "remove":
                    cand = [n for n in mutable if n not in removed]
                    if cand:
                        n = rng.choice(cand)
                        files.remove(n)
                        removed.add(n)
                        ops["removed"] += 1
                elif op == "restore" and removed:
                    n = rng.choice(sorted(removed))
                    version[n] = version.get(n, 0) + 1
                    files.write(files.paths[n], version[n])
                    removed.discard(n)
                    ops["restored"] += 1
                else:
                    cand = [n for n in mutable if n not in removed]
                    n = rng.choice(cand)
                    version[n] = version.get(n, 0) + 1
                    files.write(files.paths[n], version[n])
                    ops["replaced"] += 1
                time.sleep(0.15)
            # The race made certain: each group asks for a file that is removed a moment later,
            # while the reply still waits in the group's lane (Telegram allows a group 20
            # messages a minute, so a group's replies queue up).
            from driver import Ctl
            ctl = Ctl(s.emu.http_port)
            targeted = []
            for c in [c for c in d.chats if c.kind == "group"]:
                cand = [n for n in mutable if n not in removed]
                n = rng.choice(cand)
                a = d.act(ctl, c, "get", name=n)
                time.sleep(0.3)
                files.remove(n)
                removed.add(n)
                targeted.append({"chat": c.id, "file": n,
                                 "queued_in_lane": d.outstanding(c) - 1 if a else None})
            ctl.close()
            ops["removed_while_queued"] = targeted
            ops["removed_at_end"] = len(removed)
            return ops

        def after(s, d, rep):
            rep.numbers["cache_invalidations"] = {
                t: s.svc_metric("cache", "engbot_cache_invalidations_total", {"trigger": t})
                for t in ("inotify", "rescan", "manual", "existence")}
        # Presses of files that were removed are answered "no longer available"; the driver
        # also asks for files added during the drill by name.
        self.drill(f, after=after)


if __name__ == "__main__":
    unittest.main()
