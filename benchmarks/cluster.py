"""The local worker pool against a Ray cluster of 1 and of 2 nodes, on the quick demo.

Each executor trains the one-click demo (`python -m lenet preset quick_demo --json`, every variant
on 1,000 images x 40 epochs) in a fresh home, one after another on this machine:
- local: the worker pool (one run per core);
- ray, 1 node: a head with this machine's cores;
- ray, 2 nodes: a head and a worker node in a network namespace (benchmarks/ray_cluster.py), one
  core each: the same cores as the others, so the difference is the cluster's own overhead.
For each: runs per minute; per run, claim to first metric and last metric to finished (polled from
the store every 50 ms); the metric latency from a step's end on its node to its row in the store
(the dispatcher's log); the cluster's start time and memory. Then the 2-node cluster again, with
the worker node killed once one of its runs has trained an epoch: how that run ends, how soon, and
how the demo finishes on the head alone.

    python -m benchmarks.cluster [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from lenet.records import RunStatus
from lenet.workspace import REPO_ROOT, Workspace

from .ray_cluster import ENV, WORKER, RayCluster
from .watching import process_tree

LATENCY = re.compile(r"metric latency p50 ([\d.]+) s, p95 ([\d.]+) s, max ([\d.]+) s")


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cluster_pids(cluster: RayCluster) -> list[int]:
    return sorted({pid for process in cluster.processes for pid in process_tree(process.pid)})


class Watcher:
    """Polls the store: when each run's first and last step rows appeared."""

    def __init__(self, workspace: Workspace):
        self.store, self.first, self.last = workspace.store, {}, {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self):
        steps = {}
        while not self.done.wait(0.05):
            try:
                runs = self.store.list_runs()
            except Exception:
                continue
            now = time.time()
            for run in runs:
                if run.global_step and steps.get(run.id) != run.global_step:
                    self.first.setdefault(run.id, now)
                    self.last[run.id] = now
                    steps[run.id] = run.global_step

    def stop(self):
        self.done.set()
        self.thread.join()


def run_demo(home: Path, env: dict, on_running=None) -> dict:
    """The quick demo through the CLI in `home`; its figures."""
    workspace = Workspace(home)
    watcher = Watcher(workspace)
    started = time.time()
    demo = subprocess.Popen(
        [sys.executable, "-m", "lenet", "preset", "quick_demo", "--json"],
        cwd=REPO_ROOT,
        env={**os.environ, "LENET_HOME": str(home), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if on_running:
        on_running(workspace)
    out, _ = demo.communicate(timeout=3600)
    seconds = time.time() - started
    watcher.stop()
    runs = workspace.store.list_runs()
    for pid in workspace.store.live_workers():  # workers and dispatchers wait a minute for more
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 15)
    finished = [r for r in runs if r.status == RunStatus.FINISHED]
    claim_to_first = [watcher.first[r.id] - r.started_at for r in runs if r.id in watcher.first]
    last_to_finished = [r.finished_at - watcher.last[r.id] for r in finished if r.id in watcher.last]
    latencies = (
        [tuple(map(float, m.groups())) for m in LATENCY.finditer(workspace.worker_log.read_text())]
        if (workspace.worker_log.exists())
        else []
    )
    return {
        "seconds": seconds,
        "runs": len(runs),
        "statuses": {str(s): sum(r.status == s for r in runs) for s in {r.status for r in runs}},
        "trained_on": sorted({r.trained_on or "?" for r in runs}),
        "runs_per_minute": len(finished) / seconds * 60,
        "claim_to_first_metric_s": statistics.median(claim_to_first) if claim_to_first else None,
        "last_metric_to_finished_s": statistics.median(last_to_finished) if last_to_finished else None,
        "metric_latency_s": {
            "p50": statistics.median(p50 for p50, _, _ in latencies),
            "p95": max(p95 for _, p95, _ in latencies),
            "max": max(top for _, _, top in latencies),
        }
        if latencies
        else None,
        "json_ok": bool(out.strip()) and demo.returncode == 0,
        "runs_detail": [(r.id, r.name, str(r.status), r.trained_on, r.message) for r in runs],
    }


def on_ray(folder: Path, nodes: int, log, kill: bool = False) -> dict:
    cores = os.cpu_count() or 2
    with RayCluster(
        folder, head_cpus=cores if nodes == 1 else 1, worker_cpus=1, worker=nodes == 2
    ) as cluster:
        log(f"  cluster of {nodes} node(s) up in {cluster.started_s:.1f} s")
        idle_mib = rss_mib(cluster_pids(cluster))
        peak = {"mib": idle_mib}
        killed = {}

        def during(workspace: Workspace):
            def sample():
                while "done" not in peak:
                    peak["mib"] = max(peak["mib"], rss_mib(cluster_pids(cluster)))
                    time.sleep(1)

            threading.Thread(target=sample, daemon=True).start()
            if not kill:
                return
            while True:  # a run of the worker node one epoch in: kill the node
                runs = workspace.store.list_runs((RunStatus.RUNNING,))
                doomed = next(
                    (r for r in runs if r.trained_on == f"ray:{WORKER}" and r.epochs_completed), None
                )
                if doomed:
                    break
                time.sleep(0.2)
            cluster.kill_worker_raylet()
            killed.update(run=doomed.id, at=time.time())
            while workspace.store.get_run(doomed.id).status == RunStatus.RUNNING:
                time.sleep(0.05)
            ended = workspace.store.get_run(doomed.id)
            killed.update(
                ended_after_s=time.time() - killed["at"], status=str(ended.status), message=ended.message
            )

        result = run_demo(folder / "home", {**ENV, "LENET_RAY_ADDRESS": cluster.address}, during)
        peak["done"] = True
        result.update(start_s=cluster.started_s, memory_idle_mib=idle_mib, memory_peak_mib=peak["mib"])
        if kill:
            result["killed"] = killed
        return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    log = (lambda message: print(message, file=sys.stderr)) if args.json else print
    results = {}
    for name, nodes, kill in (
        ("local", 0, False),
        ("ray, 1 node", 1, False),
        ("ray, 2 nodes", 2, False),
        (
            "ray, 2 nodes, worker node killed",
            2,
            True,
        ),
    ):
        log(f"{name}: the quick demo...")
        with tempfile.TemporaryDirectory(prefix="lenet-cluster-") as tmp:
            if nodes == 0:
                results[name] = run_demo(Path(tmp) / "home", {})
            else:
                results[name] = on_ray(Path(tmp), nodes, log, kill)
        r = results[name]
        log(
            f"  {r['seconds']:.0f} s, {r['runs_per_minute']:.2f} runs/min, {r['statuses']}, "
            f"on {r['trained_on']}"
        )
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(
        f"\n{'executor':>34} {'s':>6} {'runs/min':>9} {'claim→1st metric':>17} {'last→finished':>14}"
        f" {'latency p50/p95/max (s)':>24} {'start':>6} {'memory MiB':>11}"
    )
    for name, r in results.items():
        lat = r["metric_latency_s"]
        lat_text = "in-process" if lat is None else f"{lat['p50']:.3f}/{lat['p95']:.3f}/{lat['max']:.3f}"
        memory = f"{r['memory_idle_mib']:.0f}-{r['memory_peak_mib']:.0f}" if "memory_idle_mib" in r else "–"
        start = f"{r['start_s']:.1f}" if "start_s" in r else "–"
        first = r["claim_to_first_metric_s"]
        last = r["last_metric_to_finished_s"]
        print(
            f"{name:>34} {r['seconds']:>6.0f} {r['runs_per_minute']:>9.2f} {first:>17.2f} {last:>14.2f}"
            f" {lat_text:>24} {start:>6} {memory:>11}"
        )
    killed = results["ray, 2 nodes, worker node killed"].get("killed", {})
    if killed:
        print(
            f"worker node killed mid-run: run {killed['run']} ended {killed['status']} "
            f"{killed['ended_after_s']:.1f} s later ({killed['message']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
