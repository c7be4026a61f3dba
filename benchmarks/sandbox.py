"""How long the sandbox takes from mouse-up to its answers, measured in a real browser.

Serves the dashboard over a fresh home (the shipped pretrained models; the real test set if
installed), opens the sandbox in headless Chromium at 1366x768 and paints a T-shirt in 10 strokes.
For each stroke: the time from releasing the mouse until the new 28x28 image is shown and the run
that drew it (every model's answer and probability chart) has finished.

    python -m benchmarks.sandbox [--strokes 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from .viewers import free_port, serve

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]

# true once the image the models see has changed and the script run that showed it has finished
_ANSWERED = """old => {
    const box = [...document.querySelectorAll('[data-testid="stImage"]')]
        .find(e => e.textContent.includes('What the models see'));
    const src = box && box.querySelector('img') && box.querySelector('img').src;
    const app = document.querySelector('[data-testid="stApp"]');
    return Boolean(src) && src !== old && app.dataset.testScriptState === 'notRunning';
}"""
_SHOWN = """() => {
    const box = [...document.querySelectorAll('[data-testid="stImage"]')]
        .find(e => e.textContent.includes('What the models see'));
    return box && box.querySelector('img') ? box.querySelector('img').src : null;
}"""


def stroke_latencies(page, strokes: int = 10, timeout_ms: int = 30_000) -> list[float]:
    """Paint `strokes` horizontal strokes of a T-shirt on the open sandbox's canvas; seconds from
    each mouse-up to its answers."""
    canvas = page.locator("canvas").last  # fabric.js listens on its upper canvas
    canvas.wait_for(timeout=timeout_ms)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    latencies = []
    for i in range(strokes):
        y = 50 + i * 20
        half = 95 if y < 110 else 55  # sleeves, then the body
        shown = page.evaluate(_SHOWN)
        page.mouse.move(box["x"] + 140 - half, box["y"] + y)
        page.mouse.down()
        page.mouse.move(box["x"] + 140 + half, box["y"] + y, steps=8)
        page.mouse.up()
        released = time.perf_counter()
        page.wait_for_function(_ANSWERED, arg=shown, polling="raf", timeout=timeout_ms)
        latencies.append(time.perf_counter() - released)
    return latencies


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sandbox", description=__doc__.split("\n")[0])
    parser.add_argument("--strokes", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="lenet-sandbox-") as tmp:
        port = free_port()
        server = serve(Path(tmp), port)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1366, "height": 768})
                page.goto(f"http://127.0.0.1:{port}/sandbox")
                page.get_by_role("heading", name="Sandbox").first.wait_for(timeout=60_000)
                latencies = stroke_latencies(page, args.strokes)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    median = statistics.median(latencies)
    if args.json:
        print(json.dumps({"median_s": median, "latencies_s": latencies}))
    else:
        print(
            f"mouse-up to answers over {len(latencies)} strokes: median {median:.3f} s, "
            f"min {min(latencies):.3f} s, max {max(latencies):.3f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
