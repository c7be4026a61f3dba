"""A class of 30 in a round: what the room costs the teacher's laptop, and how fair its queue is.

A real dashboard server (as `make run` starts it) over a fresh home, with a round open at its
defaults (1,000 images x 40 epochs a run). The teacher watches on the machine itself in real
Chromium: the laptop's tab on Live (1366x768), the projector's on the Class board in presentation
mode (1920x1080). Then 30 simulated students, from a network namespace like laptops on the room's
network (benchmarks/netns.py, so as root), each open /class within the first 10 s, type a
nickname, press Join, choose L2 with a weight decay of their own and press Submit run, and keep
their page open as a browser does (`FakeBrowser`: the frontend's protocol and fragment timers;
their drawing would be on their own laptops). Measured:
- the time from the first submit until every run is trained;
- each student's wait, from Submit run to their run's start: the spread between students;
- how long the teacher's Live takes to follow: from a run's start (or end) in the store to its
  progress bar appearing (or going) in the laptop's tab;
- the server's and Chromium's CPU, and the simulated students' own;
- what the students' sessions cost training: the round's runs' mean training time against the
  same runs trained afterwards with the students gone (the teacher's tabs still watching).

    python -m benchmarks.classroom [--students 30] [--baseline-runs 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from lenet import rounds
from lenet.records import RunStatus
from lenet.train import TrainConfig
from lenet.variants import get_variant
from lenet.worker import ensure_workers
from lenet.workspace import REPO_ROOT, Workspace

from .netns import HOST_ADDRESS, peer_namespace
from .sandbox import CHROMIUM, CHROMIUM_ARGS
from .viewers import cpu_seconds, free_port, serve, stop_workers
from .watching import chromium_cpu_seconds

JOIN_WINDOW_S = 10
VARIANT = "l2"  # every student's choice, so that every run costs the same and the baseline compares
# The laptop tab notes when each progress bar first and last showed (its run's name, before " · ")
PROGRESS_LOG = """
window.__seen = {};
setInterval(() => {
  const now = Date.now() / 1000;
  for (const bar of document.querySelectorAll('[data-testid="stProgress"]')) {
    const name = bar.innerText.split(' · ')[0].trim();
    if (!name) continue;
    const seen = (window.__seen[name] ||= {first: now, last: now});
    seen.last = now;
  }
}, 100);
"""


# ---- the students' side, inside the namespace ----


def student(url: str, nickname: str, delay: float, out: list, done: threading.Event) -> None:
    """One student's laptop: join, submit one run, then keep the page open until `done`."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    from .fake_browser import FakeBrowser

    time.sleep(delay)
    browser = FakeBrowser(url, page="class", timeout=120)
    record = {"nickname": nickname}
    try:
        page = browser.open()
        name_box, join = page.element("text_input", "Nickname"), page.element("button", "Join")
        page = browser.rerun(
            [WidgetState(id=name_box.id, string_value=nickname), WidgetState(id=join.id, trigger_value=True)]
        )
        chosen = WidgetState(
            id=page.element("selectbox", "Variant").id, string_value=get_variant(VARIANT).title
        )
        page = browser.rerun([chosen])
        decay = WidgetState(
            id=page.element("number_input", "Weight decay").id,
            double_value=random.choice((1e-4, 1e-3, 3e-3)),
        )
        submit = WidgetState(id=page.element("button", "Submit run").id, trigger_value=True)
        record["submitted_at"] = time.time()
        page = browser.rerun([chosen, decay, submit])
        record["submitted"] = "Submitted run #" in page.texts()
        if not record["submitted"]:
            record["page"] = page.texts()[:500]
    except Exception as e:  # reported, not raised: one student's failure is a figure too
        record["error"] = repr(e)
    out.append(record)
    refreshes = 0
    while not done.is_set():
        started = time.monotonic()
        try:
            refreshes += bool(browser.refresh_fragments())
        except Exception as e:
            record["error"] = repr(e)
            break
        done.wait(max(0.0, min(browser.timers.values(), default=1.0) - (time.monotonic() - started)))
    record["refreshes"] = refreshes
    browser.close()


def run_students(url: str, count: int) -> None:
    """The crowd: one JSON line once every student has submitted (or failed), then, after 'stop'
    on stdin, one with its own CPU seconds and the page refreshes."""
    done, records = threading.Event(), []
    delays = sorted(random.uniform(0, JOIN_WINDOW_S) for _ in range(count))
    threads = [
        threading.Thread(target=student, args=(url, f"s{i + 1:02d}", delay, records, done), daemon=True)
        for i, delay in enumerate(delays)
    ]
    cpu0 = cpu_seconds(os.getpid())
    for thread in threads:
        thread.start()
    while len(records) < count:
        time.sleep(0.2)
    print(json.dumps({"students": records}), flush=True)
    sys.stdin.readline()
    done.set()
    for thread in threads:
        thread.join(timeout=30)
    refreshes = sum(r.get("refreshes", 0) for r in records)
    print(json.dumps({"cpu_s": cpu_seconds(os.getpid()) - cpu0, "refreshes": refreshes}), flush=True)


# ---- the teacher's side ----


def wait_for_runs(store, run_ids: list[int], log, what: str) -> None:
    while True:
        runs = [store.get_run(i) for i in run_ids]
        ended = sum(not run.status.active for run in runs)
        if ended == len(runs):
            return
        log(f"  {what}: {ended}/{len(runs)} trained")
        time.sleep(10)


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)

    def at(q):
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"min": ordered[0], "p50": at(0.5), "p95": at(0.95), "max": ordered[-1]}


def follow_latency(seen: dict, runs) -> dict:
    """Seconds from a run's start (its end) in the store to its bar showing (gone) on Live."""
    starts = [seen[r.name]["first"] - r.started_at for r in runs if r.name in seen]
    # the bar was last seen <= 0.1 s before it went
    ends = [seen[r.name]["last"] + 0.1 - r.finished_at for r in runs if r.name in seen]
    return {
        "runs_seen": len(starts),
        "start": percentiles(starts) if starts else None,
        "end": percentiles(ends) if ends else None,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.classroom", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--students", type=int, default=30, help="the class's size (default 30)")
    parser.add_argument(
        "--baseline-runs", type=int, default=4, help="runs trained with the students gone (default 4)"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--crowd", nargs=2, metavar=("URL", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.crowd:  # the students' process, started below inside the namespace
        run_students(args.crowd[0], int(args.crowd[1]))
        return 0
    log = (lambda message: print(message, file=sys.stderr)) if args.json else print
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory(prefix="lenet-classroom-") as tmp,
        peer_namespace() as peer,
        sync_playwright() as p,
    ):
        workspace = Workspace(Path(tmp))
        store = workspace.store
        game = store.get_round(rounds.open_round(store, "Benchmark round"))
        port = free_port()
        server = serve(workspace.home, port)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            laptop = browser.new_context(viewport={"width": 1366, "height": 768})
            laptop.add_init_script(PROGRESS_LOG)
            live = laptop.new_page()
            live.goto(f"http://127.0.0.1:{port}/live?experiment={game.experiment_id}")
            projector = browser.new_context(viewport={"width": 1920, "height": 1080}).new_page()
            projector.goto(f"http://127.0.0.1:{port}/class?present=1")
            projector.get_by_text("No one has joined yet").wait_for(timeout=60_000)

            log(f"{args.students} students join and submit within {JOIN_WINDOW_S} s...")
            crowd = subprocess.Popen(
                peer.command([sys.executable, "-m", "benchmarks.classroom", "--crowd"])
                + [f"http://{HOST_ADDRESS}:{port}", str(args.students)],
                cwd=REPO_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            server0, chromium0, t0 = cpu_seconds(server.pid), chromium_cpu_seconds(), time.time()
            students = json.loads(crowd.stdout.readline())["students"]
            submitted = [s for s in students if s.get("submitted")]
            log(f"  {len(submitted)}/{len(students)} submitted")
            for failed in (s for s in students if not s.get("submitted")):
                log(f"  {failed['nickname']} did not: {failed.get('error') or failed.get('page')}")
            round_runs = [r.id for r in store.list_runs(experiment_id=game.experiment_id)]
            wait_for_runs(store, round_runs, log, "the round")
            t1 = time.time()
            server1, chromium1 = cpu_seconds(server.pid), chromium_cpu_seconds()
            crowd.stdin.write("stop\n")
            crowd.stdin.flush()
            crowd_cost = json.loads(crowd.stdout.readline())
            crowd.wait(timeout=60)

            log(f"the students gone, {args.baseline_runs} of the same runs again...")
            baseline_ids = [
                store.enqueue(
                    TrainConfig.for_variant(
                        VARIANT, weight_decay=1e-3, train_limit=game.train_limit, epochs=game.epochs
                    ),
                    name=f"alone-{i + 1}",
                    experiment_id=game.experiment_id,
                )
                for i in range(args.baseline_runs)
            ]
            ensure_workers(workspace)
            b0, bserver0 = time.time(), cpu_seconds(server.pid)
            wait_for_runs(store, baseline_ids, log, "without students")
            b1, bserver1 = time.time(), cpu_seconds(server.pid)
            seen = live.evaluate("window.__seen")
        finally:
            browser.close()
            server.terminate()
            server.wait(timeout=30)
            stop_workers(workspace.home)
        runs = [store.get_run(i) for i in round_runs]
        alone = [store.get_run(i) for i in baseline_ids]

    first_submit = min(s["submitted_at"] for s in submitted)
    waits = [run.started_at - run.created_at for run in runs]
    trained = [r for r in runs if r.status == RunStatus.FINISHED]
    round_train_s = statistics.mean(r.train_seconds for r in trained)
    alone_train_s = statistics.mean(r.train_seconds for r in alone if r.train_seconds)
    result = {
        "students": len(students),
        "submitted": len(submitted),
        "failures": [s for s in students if not s.get("submitted")],
        "runs_finished": len(trained),
        "all_trained_s": max(r.finished_at for r in runs) - first_submit,
        "wait_s": percentiles(waits),
        "live_follows": follow_latency(seen, runs),
        "server_cpu_share": (server1 - server0) / (t1 - t0),  # of one core
        "server_cpu_share_without_students": (bserver1 - bserver0) / (b1 - b0),
        "chromium_cpu_share": (chromium1 - chromium0) / (t1 - t0),
        "students_cpu_share": crowd_cost["cpu_s"] / (t1 - t0),
        "student_refreshes_per_s": crowd_cost["refreshes"] / len(students) / (t1 - t0),
        "run_train_s": round_train_s,
        "run_train_s_without_students": alone_train_s,
        "training_cost": round_train_s / alone_train_s - 1,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    w, start, end = result["wait_s"], result["live_follows"]["start"], result["live_follows"]["end"]
    print(
        f"\n{result['submitted']}/{result['students']} students submitted; "
        f"{result['runs_finished']} runs trained, the last "
        f"{result['all_trained_s']:.0f} s after the first submit\n"
        f"wait from Submit run to start: min {w['min']:.0f} s, median {w['p50']:.0f} s, "
        f"p95 {w['p95']:.0f} s, max {w['max']:.0f} s\n"
        f"Live follows a run's start in p50 {start['p50']:.1f} s "
        f"(p95 {start['p95']:.1f}, max {start['max']:.1f}); "
        f"its end in p50 {end['p50']:.1f} s (p95 {end['p95']:.1f}, max {end['max']:.1f})\n"
        f"CPU, in % of one core: server {100 * result['server_cpu_share']:.0f}% "
        f"({100 * result['server_cpu_share_without_students']:.0f}% without students), "
        f"teacher's Chromium {100 * result['chromium_cpu_share']:.0f}%, "
        f"the simulated students {100 * result['students_cpu_share']:.0f}% "
        f"({result['student_refreshes_per_s']:.2f} page refreshes/s each)\n"
        f"a run trained in {result['run_train_s']:.1f} s with the students, "
        f"{result['run_train_s_without_students']:.1f} s without: {100 * result['training_cost']:+.0f}%"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
