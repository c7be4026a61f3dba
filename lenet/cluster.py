"""The run queue drained by a Ray cluster, when one laptop is not enough (optional: `make ray`).

With $LENET_RAY_ADDRESS set (the `host:port` of `ray start --head`, or `auto`), `ensure_workers`
starts one dispatcher (`python -m lenet dispatch`) instead of the local pool. The dispatcher claims
queued runs with the store's atomic claim, as many as the cluster has CPUs, and trains each one as a
Ray task on whichever node has a CPU free:
- the task runs the run service's own training (`runs.train_job`) on a job read from the store;
- the dataset travels once through Ray's object store, so a node needs no copy of FashionMNIST;
- the task is a generator: it streams its metrics back in batches (twice a second, and at every
  epoch's end), and last the checkpoint's bytes (~250 KB);
- the dispatcher writes all of it into the store, with heartbeats, as a local worker does. The head
  stays the only writer of runs.db and of the checkpoint folder.

Stop: the dispatcher raises the run's flag in a small actor on the head, which the task polls a few
times a second; the run then ends as it does locally, keeping its last full epoch, tested and saved.
A task that has not ended `STOP_GRACE_S` after that is cancelled (`ray.cancel`) and ends `stopped`
without a checkpoint.

A node lost mid-run leaves its run `interrupted`, not retried (`max_retries=0`). A retry would
train it again from epoch 1 over the first attempt's metrics in the store, and in a class round
would hand one student a second draw. Queueing it again is one click, and says what happened.
If the dispatcher dies, its runs stop beating and read as interrupted, like a dead local worker's;
Ray ends the tasks of a driver that has gone.
"""

from __future__ import annotations

import os
import queue
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import ray
import ray.exceptions
import torch
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from . import artifacts, data
from .records import Run, RunStatus
from .runs import RunJob, Trained, prepare_job, record_trained, train_job
from .store import HEARTBEAT_INTERVAL_S
from .train import make_run_splits
from .workspace import Workspace

FLUSH_S = 0.5  # a task sends its metrics at least this often (and at every epoch's end)
STOP_POLL_S = 0.25  # how often a task asks whether its run should stop
STOP_GRACE_S = 15.0  # after a stop request, a task still training is cancelled
GPU_SHARE = 0.25  # of one GPU, for a run whose device is CUDA: LeNet-5 leaves most of it idle


@ray.remote(num_cpus=0)
class StopFlags:
    """The runs asked to stop, on the head; each task polls for its own."""

    def __init__(self):
        self.runs: set[int] = set()

    def stop(self, run_id: int) -> None:
        self.runs.add(run_id)

    def stopped(self, run_id: int) -> bool:
        return run_id in self.runs


def node_name() -> str:
    """Where this process trains, as runs record it: `ray:<node address>`."""
    return f"ray:{ray.util.get_node_ip_address()}"


@ray.remote(num_cpus=1, max_retries=0)
def train_on_node(job: RunJob, raw: data.RawDataset, flags) -> Iterator[tuple]:
    """A run on a cluster node, as a stream: ("node", name), then ("metrics", steps, epochs)
    batches, each with the wall time it happened at, and last ("trained", Trained)."""
    torch.set_num_threads(1)  # its one CPU
    where = node_name()
    yield ("node", where)
    job = replace(job, trained_on=where)
    events: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()

    def work() -> None:
        try:
            trained = train_job(
                job,
                make_run_splits(job.config, raw),
                on_step=lambda m: events.put(("step", (m, time.time()))),
                on_epoch=lambda m: events.put(("epoch", (m, time.time()))),
                should_stop=stop.is_set,
            )
            events.put(("trained", trained.shippable()))
        except Exception as e:  # raised again below, in the task, so the head records it
            events.put(("error", e))

    threading.Thread(target=work, name="lenet-train", daemon=True).start()
    steps, epochs, sent, asked, answer = [], [], time.monotonic(), 0.0, None
    while True:
        try:
            kind, value = events.get(timeout=STOP_POLL_S)
        except queue.Empty:
            kind, value = None, None
        if kind == "step":
            steps.append(value)
        elif kind == "epoch":
            epochs.append(value)
        if (steps or epochs) and (
            kind in ("epoch", "trained", "error") or time.monotonic() - sent >= FLUSH_S
        ):
            yield ("metrics", steps, epochs)
            steps, epochs, sent = [], [], time.monotonic()
        if kind == "trained":
            yield ("trained", value)
            return
        if kind == "error":
            raise value
        # the stop flag, without waiting on the head: one question in flight at a time
        if answer is None and time.monotonic() - asked >= STOP_POLL_S:
            answer, asked = flags.stopped.remote(job.run_id), time.monotonic()
        if answer is not None and ray.wait([answer], timeout=0)[0]:
            if ray.get(answer):
                stop.set()
            answer = None


@dataclass
class RemoteRun:
    """One run training on the cluster, followed by a thread of the dispatcher."""

    run: Run
    stream: ray.ObjectRefGenerator
    claimed_at: float
    node: str = "ray"
    stop_sent_at: float | None = None
    cancelled: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    # for the benchmark's figures, logged when it ends
    first_metric_at: float | None = None
    last_metric_at: float | None = None
    latencies: list[float] = field(default_factory=list)


def _resources(run: Run) -> dict:
    return {"num_gpus": GPU_SHARE} if run.config.device == "cuda" else {}


def _follow(workspace: Workspace, remote: RemoteRun, log: Callable[[str], None]) -> None:
    """Write what the run's task streams into the store, then its end, whatever it is."""
    store, run_id = workspace.store, remote.run.id
    try:
        for ref in remote.stream:
            kind, *payload = ray.get(ref)
            if kind == "node":
                remote.node = payload[0]
                store.set_trained_on(run_id, remote.node)
            elif kind == "metrics":
                steps, epochs = payload
                for metrics, _ in steps:
                    store.record_step(run_id, metrics)
                for metrics, _ in epochs:
                    store.record_epoch(run_id, metrics)
                now = time.time()
                remote.latencies += [now - at for _, at in steps]
                remote.first_metric_at = remote.first_metric_at or now
                remote.last_metric_at = now
            elif kind == "trained":
                trained: Trained = payload[0]
                if trained.checkpoint is not None:  # what comes over the network is checked like an upload
                    artifacts.load_checkpoint_bytes(trained.checkpoint, remote.run.name)
                record_trained(workspace, remote.run, trained)
    except ray.exceptions.RayError as e:
        status, message = _how_it_ended(remote, e)
        store.finish(run_id, status, message=message)
    except Exception as e:  # recording it failed on the head
        store.finish(run_id, RunStatus.FAILED, message=f"{type(e).__name__}: {e}")
    finally:
        remote.done.set()
        log(_stats_line(remote, store.get_run(run_id)))


def _how_it_ended(remote: RemoteRun, error: ray.exceptions.RayError) -> tuple[RunStatus, str]:
    if remote.cancelled:  # by us, after a stop it did not honour (force: its worker is killed)
        return RunStatus.STOPPED, (
            f"stopped: it did not end within {STOP_GRACE_S:.0f} s of the request, so its task was "
            "cancelled; no checkpoint was saved"
        )
    if isinstance(error, ray.exceptions.RayTaskError):  # the run itself failed, on its node
        cause = error.cause if error.cause is not None else error
        return RunStatus.FAILED, f"{type(cause).__name__}: {cause}"
    return RunStatus.INTERRUPTED, (  # its node, or its worker process, was lost
        f"the Ray node training it ({remote.node}) was lost mid-run ({type(error).__name__}); "
        "queue it again to train it from the start"
    )


def _stats_line(remote: RemoteRun, run: Run | None) -> str:
    """One line per run in the dispatcher's log: where it trained, how it ended, its overheads."""
    parts = [f"run {remote.run.id} on {remote.node}: {run.status if run else 'deleted'}"]
    if remote.first_metric_at is not None:
        parts.append(f"claim to first metric {remote.first_metric_at - remote.claimed_at:.2f} s")
    if run is not None and run.finished_at is not None and remote.last_metric_at is not None:
        parts.append(f"last metric to finished {run.finished_at - remote.last_metric_at:.2f} s")
    if remote.latencies:
        ordered = sorted(remote.latencies)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        parts.append(
            f"metric latency p50 {statistics.median(ordered):.3f} s, p95 {p95:.3f} s, max {ordered[-1]:.3f} s"
        )
    return "; ".join(parts)


def connect(address: str) -> None:
    """Join the cluster as a driver, shipping this `lenet` package to the nodes with the tasks (so
    they need the same Python, torch and Ray, not a checkout of the project)."""
    ray.init(
        address=address,
        namespace="lenet",
        log_to_driver=False,
        runtime_env={"py_modules": [str(Path(__file__).parent)]},
    )


def run_dispatcher(
    workspace: Workspace,
    address: str,
    *,
    idle_exit_s: float = 60.0,
    poll_s: float = 0.2,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True),
) -> int:
    """Claim queued runs and train them on the cluster until the queue has been empty for
    `idle_exit_s`; return the runs done."""
    store, pid = workspace.store, os.getpid()
    store.register_worker(pid)
    shipped: dict[str | None, ray.ObjectRef] = {}  # the dataset of each data folder, once
    remote: dict[int, RemoteRun] = {}
    done, beat, idle_since, capacity = 0, 0.0, time.monotonic(), 0
    try:
        connect(address)  # a cluster that cannot be reached: this process ends, the runs stay queued
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        flags = StopFlags.options(scheduling_strategy=here).remote()
        log(f"dispatcher {pid}: connected to the Ray cluster at {address}")
        while True:
            now = time.monotonic()
            if now - beat >= HEARTBEAT_INTERVAL_S:
                store.worker_heartbeat(pid)
                for run_id, running in remote.items():
                    if not running.done.is_set():
                        store.heartbeat(run_id)
                store.mark_interrupted()
                capacity, beat = int(ray.cluster_resources().get("CPU", 0)), now
            while len(remote) < capacity:
                run_id = store.claim_next(pid, capacity, trained_on="ray")
                if run_id is None:
                    break
                run = store.get_run(run_id)
                try:
                    if run.data_dir not in shipped:
                        shipped[run.data_dir] = ray.put(workspace.load_raw(run.data_dir))
                    job = prepare_job(workspace, run, trained_on="ray")
                except Exception as e:  # no data, an unreadable warm start: this run fails, not the rest
                    store.finish(run_id, RunStatus.FAILED, message=f"{type(e).__name__}: {e}")
                    continue
                stream = train_on_node.options(**_resources(run)).remote(job, shipped[run.data_dir], flags)
                remote[run_id] = RemoteRun(run, stream, claimed_at=time.time())
                threading.Thread(
                    target=_follow,
                    args=(workspace, remote[run_id], log),
                    name=f"follow-{run_id}",
                    daemon=True,
                ).start()
                log(f"dispatcher {pid}: run {run_id} submitted to the cluster")
            if remote:
                _pass_on_stops(store, remote, flags)
            for run_id in [i for i, r in remote.items() if r.done.is_set()]:
                del remote[run_id]
                done += 1
                idle_since = time.monotonic()
            if not remote and time.monotonic() - idle_since > idle_exit_s:
                break
            time.sleep(poll_s)
    finally:
        store.unregister_worker(pid)
        ray.shutdown()
    return done


def _pass_on_stops(store, remote: dict[int, RemoteRun], flags) -> None:
    """A stop requested in the store reaches the run's task; one that does not end is cancelled."""
    asked = store.stop_requests()
    for run_id, running in remote.items():
        if run_id in asked and running.stop_sent_at is None:
            flags.stop.remote(run_id)
            running.stop_sent_at = time.monotonic()
        elif (
            running.stop_sent_at is not None
            and not running.cancelled
            and time.monotonic() - running.stop_sent_at > STOP_GRACE_S
        ):
            ray.cancel(running.stream, force=True)
            running.cancelled = True
