"""How long after the server is up the first page appears: `make run`'s first impression.

Chromium is started first; then a fresh server (a new process, nothing imported yet) over a fresh
home. Once its health check answers, the browser opens Home; the time until Home's heading and its
"Saved models" table are on screen is the first paint. Repeated a few times on fresh servers.

    python -m benchmarks.first_paint [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from .sandbox import CHROMIUM, CHROMIUM_ARGS
from .viewers import free_port, serve, stop_workers


def first_paint_s(browser) -> float:
    with tempfile.TemporaryDirectory(prefix="lenet-paint-") as tmp:
        port = free_port()
        server = serve(Path(tmp), port)  # returns once /_stcore/health answers
        up = time.perf_counter()
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_role("heading", name="LeNet-5 regularization lab").wait_for(timeout=60_000)
            page.get_by_text("Saved models").wait_for(timeout=60_000)
            painted = time.perf_counter() - up
            page.close()
            return painted
        finally:
            server.terminate()
            server.wait(timeout=30)
            stop_workers(Path(tmp))  # the warm pool the page started, before the next server


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.first_paint", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        times = [first_paint_s(browser) for _ in range(args.repeats)]
        browser.close()
    if args.json:
        print(json.dumps({"median_s": statistics.median(times), "times_s": times}))
    else:
        print(
            f"first paint after the server is up: median {statistics.median(times):.2f} s "
            f"({', '.join(f'{t:.2f}' for t in times)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
