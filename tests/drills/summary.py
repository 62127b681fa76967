#!/usr/bin/env python3
"""summary -- one markdown table from the drills' result files (<build>/drills-results/*.json):
per drill, what the user saw (degraded replies, latency) and what the accountant found.

  /usr/bin/python3 tests/drills/summary.py [results dir]
"""

import glob
import json
import os
import sys


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.environ.get("ENGBOT_BUILD", "build"), "drills-results")
    rows = []
    for path in sorted(glob.glob(os.path.join(d, "test_*.json"))):
        if path.endswith("-transcript.json"):
            continue
        r = json.load(open(path))
        n = r["numbers"]
        f = n.get("fault") or {}
        ph = n.get("latency_ms_by_phase") or {}
        during = ph.get("fault") or ph.get("burst") or {}
        classes = n.get("replies_by_class") or {}
        degraded = sum(v for k, v in classes.items() if k not in ("ok",))
        rows.append([
            os.path.basename(path)[5:-5],
            "ok" if r["ok"] else "FAIL",
            str(n.get("actions")),
            f"{degraded}" + (f" ({', '.join(f'{k} {v}' for k, v in classes.items() if k != 'ok')})"
                             if degraded else ""),
            f"{during.get('p50')} / {during.get('p95')} / {during.get('max')}",
            str(n.get("missing")), str(n.get("duplicates")), str(n.get("out_of_order")),
            str(n.get("wrong_bytes")),
            "lost" if n.get("sessions_lost") else ("ok" if "sessions_checked" in n else "-"),
            (str(f.get("drain_seconds")) if f.get("drain_seconds") is not None else "-"),
        ])
    head = ["drill", "result", "actions", "degraded replies", "latency ms during fault p50/p95/max",
            "missing", "dup", "order", "bad bytes", "sessions", "drain s"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
