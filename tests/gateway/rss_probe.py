"""rss_probe -- the gateway's resident memory after successive batches of updates through the
whole pipeline (the emulator, the three services and the gateway on loopback; queue-svc's rates
unlimited, every update handled and answered). A leak grows with every batch; a bounded
structure (the update dedupe window, DEDUPE_WINDOW ids) grows until it is full, then stops.

  ENGBOT_BUILD=$PWD/build /usr/bin/python3 tests/gateway/rss_probe.py [BATCH=25000] [BATCHES=8]
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from engbot_test import BIN, rss_kib  # noqa: E402
from gwstack import Stack  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 25000
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    s = Stack(gw_env={"LOG_LEVEL": "info"}, catalogue_kwargs={"n_manuals": 30})
    try:
        s.ctl("/control/ratelimits", {"enabled": False})
        emu = f"http://127.0.0.1:{s.emu.http_port}"
        load = os.path.join(BIN, "bench-gateway-load")
        for k in range(batches):
            r = subprocess.run([load, emu, str(n), "500", "4", "/browse", "sendMessage", "1",
                                "300", "2000"], capture_output=True, text=True)
            res = json.loads(r.stdout.strip().splitlines()[-1])
            time.sleep(1)
            print(f"after {(k + 1) * n} updates: gateway RSS {rss_kib(s.gw.p.pid) / 1024:.2f} MiB "
                  f"(complete {res['complete']}, {res['updates_per_s']:.0f}/s)", flush=True)
    finally:
        s.close()


if __name__ == "__main__":
    main()
