"""What a class watching the teacher's URL costs the teacher's machine.

A real dashboard server (`streamlit run app.py`, the repository's config) over a fresh
home, with an experiment of 10 runs on the Live page: 8 finished (40 epochs each) and 2 training.
Then phases of equal length with 0, 1 and N simulated viewers (`FakeBrowser`: the frontend's own
websocket protocol and fragment timers, from a network namespace of its own like a student's
laptop: benchmarks/netns.py, so as root), one real Chromium tab there that also renders every
refresh (what a viewer costs when its browser shares the machine, as the teacher's tabs do), and
0 again to see drift. For each phase: the server's CPU per Live refresh per viewer, the browsers'
CPU, and the images per second the two training runs achieve.

    python -m benchmarks.viewers [--viewers 20] [--phase-s 30] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from lenet import experiments
from lenet.records import ACTIVE, RunStatus
from lenet.train import TrainConfig
from lenet.worker import ensure_workers
from lenet.workspace import ENV_HOME, REPO_ROOT, Workspace
from ui import feed
from ui.shared import VIEWER_REFRESH_S

from .fake_browser import FakeBrowser
from .netns import HOST_ADDRESS, peer_namespace

FINISHED_RUNS, TRAINING_RUNS = 8, 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(home: Path, port: int, checkout: Path = REPO_ROOT, **env: str) -> subprocess.Popen:
    """The dashboard as `make run` starts it, over `home`, with `env` added to this environment;
    `checkout`: the repository whose dashboard it is (benchmarks.against runs an older one)."""
    server = subprocess.Popen(
        [sys.executable, "serve.py", "--server.headless", "true"]  # as `make run` starts it
        + ["--server.port", str(port), "--server.address", "0.0.0.0"],
        cwd=checkout,
        env={**os.environ, ENV_HOME: str(home), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
            return server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the dashboard server did not start") from None
            time.sleep(0.3)


def stop_workers(home: Path) -> None:
    """The pool's workers wait a minute for more work; end them so the next round starts alike.
    Found by their environment rather than the store: an older commit's store may not read alike."""
    wanted = f"{ENV_HOME}={home}".encode()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):  # exited meanwhile, or not ours to read
            ours = entry.name.isdigit() and b"lenet\0worker" in (entry / "cmdline").read_bytes()
            if ours and wanted in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), 15)
    time.sleep(1)


def prepare(workspace: Workspace, log) -> int:
    """The experiment on screen: 8 runs trained to the end, then 2 long ones training."""
    store = workspace.store
    experiment_id = experiments.launch_sweep(
        store,
        "l2",
        "weight_decay",
        [0.0, 0.001, 0.003, 0.01],
        seeds=2,
        overrides={"epochs": 40, "train_limit": 1000},
    )
    for seed in range(TRAINING_RUNS):  # long enough to outlast every phase
        config = TrainConfig.for_variant("l2", weight_decay=0.03, epochs=50, seed=seed)
        store.enqueue(config, experiment_id=experiment_id)
    ensure_workers(workspace)
    while (finished := len(store.list_runs((RunStatus.FINISHED,)))) < FINISHED_RUNS:
        log(f"  training the finished part of the experiment: {finished}/{FINISHED_RUNS}")
        time.sleep(5)
    while len(store.list_runs((RunStatus.RUNNING,))) < TRAINING_RUNS:
        time.sleep(0.5)
    return experiment_id


def images_trained(workspace: Workspace) -> int:
    runs = workspace.store.list_runs((RunStatus.RUNNING,))
    return sum(run.global_step * run.config.batch_size for run in runs)


class FeedPoller:
    """What Live's elements ask of the server, as a viewer's tab asks it (ui/feed_view.py): the bars
    every 2 s, the per-epoch charts every 3 s and the per-step ones every 6 s, each only if changed."""

    PACE_S = {"epochs": 3.0, "steps": 6.0}

    def __init__(self, url: str, query: str):
        self.url = f"{url}{feed.LIVE_PATH}?{query}&present=0"
        self.drawn = {kind: "" for kind in self.PACE_S}
        self.asked = dict.fromkeys(self.PACE_S, 0.0)

    def poll(self) -> None:
        now = time.monotonic()
        due = [kind for kind, pace in self.PACE_S.items() if now - self.asked[kind] >= pace - 0.1]
        charts = ",".join(f"{kind}:{self.drawn[kind]}" for kind in due)
        with urllib.request.urlopen(self.url + (f"&charts={charts}" if charts else ""), timeout=10) as answer:
            state = json.load(answer)
        for kind in due:
            self.asked[kind] = now
            if kind in state["charts"]:
                self.drawn[kind] = state["charts"][kind]["revision"]


class Viewers:
    """N fake browsers on the Live page, each polling Live's feed and ticking its fragment timers
    (the sidebar's) like a browser tab."""

    def __init__(self, url: str, query: str, count: int):
        self.browsers = [FakeBrowser(url, page="live", query=query) for _ in range(count)]
        self.feeds = {browser: FeedPoller(url, query) for browser in self.browsers}
        for browser in self.browsers:
            browser.open()
        self.refreshes = 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._tick, args=(b,), daemon=True) for b in self.browsers]
        for thread in self.threads:
            thread.start()

    def _tick(self, browser: FakeBrowser) -> None:
        while not self.done.is_set():
            started = time.monotonic()
            browser.refresh_fragments()
            self.feeds[browser].poll()
            with self.lock:
                self.refreshes += 1
            interval = min([*browser.timers.values(), VIEWER_REFRESH_S])
            self.done.wait(max(0.0, interval - (time.monotonic() - started)))

    def close(self) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join()
        for browser in self.browsers:
            browser.close()


class RenderingViewer:
    """A real Chromium tab on the Live page, on the other device: it draws every refresh."""

    def __init__(self, url: str, query: str, peer, folder: Path):
        from playwright.sync_api import sync_playwright

        from .sandbox import CHROMIUM, CHROMIUM_ARGS

        self.playwright = sync_playwright().start()
        chromium = peer.executable(CHROMIUM, folder)
        self.browser = self.playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        self.page = self.browser.new_page(viewport={"width": 1366, "height": 768})
        self.page.goto(f"{url}/live?{query}")

    def close(self) -> None:
        self.browser.close()
        self.playwright.stop()


def run_crowd(url: str, query: str, count: int, seconds: float) -> None:
    """The crowd's side, inside the namespace: 'ready' once every page has loaded, then after
    `seconds` one JSON line with its refreshes and its own CPU seconds over that time."""
    crowd = Viewers(url, query, count)
    time.sleep(2)  # past the first full page loads
    refreshes0, cpu0 = crowd.refreshes, cpu_seconds(os.getpid())
    print("ready", flush=True)
    time.sleep(seconds)
    result = {"refreshes": crowd.refreshes - refreshes0, "cpu_s": cpu_seconds(os.getpid()) - cpu0}
    crowd.close()
    print(json.dumps(result), flush=True)


def measure(workspace, server_pid, url, query, viewers, seconds, peer, folder, rendering=False) -> dict:
    """One phase: `viewers` simulated viewers (or one rendering tab) on the other device."""
    from .watching import chromium_cpu_seconds

    crowd, tab = None, None
    if rendering:
        tab = RenderingViewer(url, query, peer, folder)
        time.sleep(5)  # past the first full page load
    elif viewers:
        crowd_args = [url, query, str(viewers), str(seconds)]
        command = [sys.executable, "-m", "benchmarks.viewers", "--crowd", *crowd_args]
        crowd = subprocess.Popen(peer.command(command), cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        if crowd.stdout.readline().strip() != "ready":
            raise RuntimeError("the simulated viewers did not start")
    cpu0, images0, t0 = cpu_seconds(server_pid), images_trained(workspace), time.monotonic()
    browsers0 = chromium_cpu_seconds()
    if crowd:
        measured = json.loads(crowd.stdout.readline())
        crowd.wait()
    else:
        time.sleep(seconds)
        measured = {"refreshes": 0, "cpu_s": 0.0}
    cpu1, images1, t1 = cpu_seconds(server_pid), images_trained(workspace), time.monotonic()
    browsers1 = chromium_cpu_seconds()
    if tab:
        tab.close()
    server_cpu, refreshes = cpu1 - cpu0, measured["refreshes"]
    return {
        "viewers": f"{viewers} rendering" if rendering else viewers,
        "images_per_s": (images1 - images0) / (t1 - t0),
        "server_cpu_share": server_cpu / (t1 - t0),  # of one core
        # the simulated browsers (on a student's laptop in a real room) or the real Chromium tab
        "browsers_cpu_share": (measured["cpu_s"] + browsers1 - browsers0) / (t1 - t0),
        "refreshes_per_viewer_s": refreshes / viewers / (t1 - t0) if viewers and not rendering else None,
        "server_cpu_ms_per_refresh": 1000 * server_cpu / refreshes if refreshes else None,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.viewers", description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=20, help="the crowd's size (default 20)")
    parser.add_argument("--phase-s", type=float, default=30, help="seconds per phase (default 30)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--crowd", nargs=4, metavar=("URL", "QUERY", "COUNT", "SECONDS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.crowd:  # the viewers' process, started by `measure` inside the namespace
        url, query, count, seconds = args.crowd
        run_crowd(url, query, int(count), float(seconds))
        return 0
    log = (lambda message: print(message, file=sys.stderr)) if args.json else print

    with tempfile.TemporaryDirectory(prefix="lenet-viewers-") as tmp, peer_namespace() as peer:
        workspace = Workspace(Path(tmp))
        port = free_port()
        server = serve(workspace.home, port)
        try:
            log("preparing an experiment of 10 runs (8 trained to the end, 2 training)...")
            experiment_id = prepare(workspace, log)
            url, query = f"http://{HOST_ADDRESS}:{port}", f"experiment={experiment_id}"
            phases = []
            for viewers, rendering in ((0, False), (1, False), (args.viewers, False), (1, True), (0, False)):
                log(f"  {viewers} {'Chromium tab' if rendering else 'viewers'} for {args.phase_s:.0f} s...")
                phases.append(
                    measure(
                        workspace, server.pid, url, query, viewers, args.phase_s, peer, Path(tmp), rendering
                    )
                )
        finally:
            store = workspace.store
            for run in store.list_runs(ACTIVE):
                (store.request_stop if run.status == RunStatus.RUNNING else store.cancel)(run.id)
            server.terminate()
            server.wait(timeout=30)
            stop_workers(workspace.home)
    baseline = (phases[0]["images_per_s"] + phases[-1]["images_per_s"]) / 2
    for phase in phases:
        phase["training_cost"] = 1 - phase["images_per_s"] / baseline
    if args.json:
        print(json.dumps(phases, indent=2))
        return 0
    print(
        f"\n{'viewers':>12} {'images/s':>10} {'training cost':>14} {'server CPU':>11} "
        f"{'refreshes/s':>12} {'ms CPU/refresh':>15} {'browsers CPU':>13}"
    )
    for p in phases:
        per_refresh = (
            "–" if p["server_cpu_ms_per_refresh"] is None else f"{p['server_cpu_ms_per_refresh']:.1f}"
        )
        rate = "–" if p["refreshes_per_viewer_s"] is None else f"{p['refreshes_per_viewer_s']:.2f}"
        print(
            f"{p['viewers']!s:>12} {p['images_per_s']:>10.0f} {100 * p['training_cost']:>13.1f}% "
            f"{100 * p['server_cpu_share']:>10.1f}% {rate:>12} {per_refresh:>15} "
            f"{100 * p['browsers_cpu_share']:>12.1f}%"
        )
    print(
        "training cost: images/s lost against the mean of the two phases without viewers; "
        "server CPU in % of one core; a refresh is one tick of a viewer's Live page timers; "
        "browsers CPU: the simulated viewers' process and any real Chromium tab's processes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
