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

# Timed by the page's own clock: the mouse-up event, then a check on every animation frame for the
# new 28x28 image shown and the run that drew it (every answer) finished.
_WATCH = """() => {
    const shown = () => {
        const box = [...document.querySelectorAll('[data-testid="stImage"]')]
            .find(e => e.textContent.includes('What the models see'));
        const img = box && box.querySelector('img');
        return img ? img.src : null;
    };
    window.__stroke = {released: null, answered: null};
    document.addEventListener('mouseup', () => {
        const before = shown();
        window.__stroke = {released: performance.now(), answered: null};
        const check = () => {
            const app = document.querySelector('[data-testid="stApp"]');
            if (shown() && shown() !== before && app.dataset.testScriptState === 'notRunning') {
                window.__stroke.answered = performance.now();
            } else {
                requestAnimationFrame(check);
            }
        };
        requestAnimationFrame(check);
    }, true);
}"""


def stroke_latencies(page, strokes: int = 10, timeout_ms: int = 30_000) -> list[float]:
    """Paint `strokes` horizontal strokes of a T-shirt on the open sandbox's canvas; for each, the
    seconds from mouse-up to its answers, by the browser's clock."""
    canvas = page.locator("canvas").last  # fabric.js listens on its upper canvas
    canvas.wait_for(timeout=timeout_ms)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.evaluate(_WATCH)
    latencies = []
    for i in range(strokes):
        y = 50 + i * 20
        half = 95 if y < 110 else 55  # sleeves, then the body
        page.mouse.move(box["x"] + 140 - half, box["y"] + y)
        page.mouse.down()
        page.mouse.move(box["x"] + 140 + half, box["y"] + y, steps=8)
        page.mouse.up()
        page.wait_for_function("() => window.__stroke.answered !== null", timeout=timeout_ms)
        stroke = page.evaluate("window.__stroke")
        latencies.append((stroke["answered"] - stroke["released"]) / 1000)
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
