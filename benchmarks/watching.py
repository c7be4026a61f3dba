"""What watching costs the lesson: the quick demo headless, and watched by the teacher's two screens.

The one-click demo (`python -m lenet preset quick_demo`) is timed from launch to its last run
finished, alternately:
- headless: no dashboard, no browser;
- watched: a dashboard server with two real Chromium tabs on the machine itself, the laptop's
  (1366x768, Live) and the projector's (1920x1080, Live in presentation mode), both drawing every
  refresh as a teacher's browser does.

- watched, from the dashboard's warm pool: the same, but with the worker pool the open dashboard
  keeps started and warm (lenet.worker), as a teacher's click finds it. The plain watched run
  starts its workers cold, as the headless one does, so that the two differ only in watching;
- unwatched, from the warm pool: the dashboard's pool warmed by a tab that is then closed, and the
  demo launched with no tab open. The warm watched run differs from it only in watching, where
  against the headless run it would also gain the workers' start-up.

For the watched runs, the CPU that Chromium (every process of it: browser, renderers, GPU
process) and the dashboard server used, per second of watching. Chromium here draws in software,
as on a laptop without GPU rasterization.

    python -m benchmarks.watching [--rounds 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lenet.presets import PRESETS
from lenet.worker import ENV_STANDBY, STANDING_BY, PoolSettings
from lenet.workspace import ENV_HOME, REPO_ROOT, Workspace

from .sandbox import CHROMIUM, CHROMIUM_ARGS
from .viewers import cpu_seconds, free_port, serve, stop_workers

SCREENS = (  # (viewport, page): the teacher's laptop and the projector
    ({"width": 1366, "height": 768}, "live"),
    ({"width": 1920, "height": 1080}, "live?present=1"),
)


def process_tree(root: int) -> list[int]:
    """`root` and every process descended from it (Chromium's renderers, GPU and utility processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def chromium_cpu_seconds() -> float:
    """CPU seconds used so far by every Chromium process this process started (through Playwright):
    the browser, its renderers, GPU and utility processes. Read it while they run: an exited
    process no longer counts."""
    total = 0.0
    for pid in process_tree(os.getpid()):
        try:
            if "chromium" in os.readlink(f"/proc/{pid}/exe"):
                total += cpu_seconds(pid)
        except (OSError, IndexError):
            pass  # exited between the listing and the read
    return total


def run_cli(home: Path, checkout: Path, *command: str) -> tuple[float, object]:
    """(seconds, its JSON output) of `python -m lenet COMMAND --json` over `home` with `checkout`'s
    code (benchmarks.against runs an older commit's); the queuing commands wait for their runs."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "lenet", *command, "--json"],
        cwd=checkout,
        env={**os.environ, ENV_HOME: str(home)},
        capture_output=True,
        text=True,
        check=True,
    )
    return time.monotonic() - started, json.loads(done.stdout)


def run_demo(home: Path, checkout: Path = REPO_ROOT) -> tuple[float, int]:
    """(seconds from launching the quick demo to its last run finished, how many runs it trained)."""
    seconds, runs = run_cli(home, checkout, "preset", "quick_demo")
    return seconds, len(runs)


def headless(log, checkout: Path = REPO_ROOT) -> dict:
    with tempfile.TemporaryDirectory(prefix="lenet-watching-") as tmp:
        seconds, runs = run_demo(Path(tmp), checkout)
        stop_workers(Path(tmp))
    log(f"  headless: {seconds:.1f} s")
    return {"seconds": seconds, "runs": runs}


def wait_for_warm_pool(home: Path) -> None:
    """Until every worker of the dashboard's pool has warmed up (it says so in the workers' log)."""
    workspace, deadline = Workspace(home), time.monotonic() + 120
    while time.monotonic() < deadline:
        log = workspace.worker_log.read_text() if workspace.worker_log.exists() else ""
        if log.count(STANDING_BY) >= PoolSettings.from_env().parallel_runs:
            return
        time.sleep(0.5)
    raise RuntimeError("the dashboard's warm workers did not start")


def watched(log, warm_pool: bool = False, checkout: Path = REPO_ROOT, watching: bool = True) -> dict:
    """The demo launched beside a dashboard with the two tabs open; `watching=False`: both closed
    before the launch (with `warm_pool`, the pool they warmed stays warm: lenet.worker.STANDBY_S)."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="lenet-watching-") as tmp, sync_playwright() as p:
        home, port = Path(tmp), free_port()
        server = serve(home, port, checkout, **{ENV_STANDBY: str(int(warm_pool))})
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for viewport, page in SCREENS:
                tab = browser.new_context(viewport=viewport).new_page()
                tab.goto(f"http://127.0.0.1:{port}/{page}")
                tab.get_by_text("Nothing has been trained yet").wait_for(timeout=60_000)
            if warm_pool:
                wait_for_warm_pool(home)
            if not watching:
                browser.close()  # Chromium's CPU from here on is 0: no process of it is left
            browser0, server0 = chromium_cpu_seconds(), cpu_seconds(server.pid)
            seconds, runs = run_demo(home, checkout)
            browser_cpu = chromium_cpu_seconds() - browser0
            server_cpu = cpu_seconds(server.pid) - server0
            stop_workers(home)
        finally:
            browser.close()
            server.terminate()
            server.wait(timeout=30)
    result = {
        "seconds": seconds,
        "runs": runs,
        "browser_cpu_per_s": browser_cpu / seconds,  # in cores: 1.0 is one core the whole time
        "server_cpu_per_s": server_cpu / seconds,
    }
    how = ("watched by 2 tabs" if watching else "unwatched") + (", warm pool" if warm_pool else "")
    log(
        f"  {how}: {seconds:.1f} s; Chromium {result['browser_cpu_per_s']:.2f} cores, "
        f"server {result['server_cpu_per_s']:.2f} cores"
    )
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.watching", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="headless + watched pairs (default 1)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    log = (lambda message: print(message, file=sys.stderr)) if args.json else print
    rounds = []
    for r in range(1, args.rounds + 1):
        log(f"round {r}/{args.rounds}: the quick demo ({len(PRESETS['quick_demo'].configs())} runs)")
        rounds.append(
            {
                "headless": headless(log),
                "watched": watched(log),
                "unwatched_warm": watched(log, warm_pool=True, watching=False),
                "watched_warm": watched(log, warm_pool=True),
            }
        )
    summary = {
        "headless_s": statistics.median(r["headless"]["seconds"] for r in rounds),
        "watched_s": statistics.median(r["watched"]["seconds"] for r in rounds),
        "unwatched_warm_s": statistics.median(r["unwatched_warm"]["seconds"] for r in rounds),
        "watched_warm_s": statistics.median(r["watched_warm"]["seconds"] for r in rounds),
        "browser_cpu_per_s": statistics.median(r["watched"]["browser_cpu_per_s"] for r in rounds),
        "server_cpu_per_s": statistics.median(r["watched"]["server_cpu_per_s"] for r in rounds),
        "rounds": rounds,
    }
    summary["watched_over_headless"] = summary["watched_s"] / summary["headless_s"]
    summary["watched_warm_over_headless"] = summary["watched_warm_s"] / summary["headless_s"]
    # each round against its own headless run, one or two minutes before it: between rounds the
    # machine's speed drifts by as much as watching costs (the headless demo took 42-50 s in one sitting)
    for round_ in rounds:
        for kind in ("watched", "watched_warm"):
            round_[f"{kind}_over_headless"] = round_[kind]["seconds"] / round_["headless"]["seconds"]
        # what watching costs with warm workers: against the same pool, unwatched
        unwatched = round_["unwatched_warm"]["seconds"]
        round_["watched_warm_over_unwatched"] = round_["watched_warm"]["seconds"] / unwatched
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"quick demo: headless {summary['headless_s']:.1f} s, watched by 2 Chromium tabs "
        f"{summary['watched_s']:.1f} s ({summary['watched_over_headless']:.2f}x); from the dashboard's "
        f"warm pool {summary['watched_warm_s']:.1f} s ({summary['watched_warm_over_headless']:.2f}x)\n"
        f"per second of watching: Chromium {summary['browser_cpu_per_s']:.2f} cores, "
        f"the dashboard server {summary['server_cpu_per_s']:.2f} cores\n"
        "each round over its own headless run: watched "
        + ", ".join(f"{r['watched_over_headless']:.2f}x" for r in rounds)
        + "; from the warm pool "
        + ", ".join(f"{r['watched_warm_over_headless']:.2f}x" for r in rounds)
        + f"\nthe warm pool unwatched: {summary['unwatched_warm_s']:.1f} s; watched over it, each round: "
        + ", ".join(f"{r['watched_warm_over_unwatched']:.2f}x" for r in rounds)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
