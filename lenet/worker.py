"""The worker pool: background processes that drain the run queue in the store.

Each `python -m lenet worker` process trains through the run service (`lenet.runs`) one run at a
time, or several queued runs that see the same batches together as one stacked network
(`execute_together`, up to its share of them). The pool is as many processes as
`PoolSettings.parallel_runs`, and `claim_together` keeps the number of processes training within
that limit whoever started them. `ensure_workers` tops the pool up; the dashboard and
`reproduce` call it after queuing runs.

While the dashboard is looked at it keeps the pool started and warm (`ensure_workers(standby=True)`):
a worker's start-up, importing torch, torchmetrics and torch._dynamo, takes about 3 s of CPU
before its first batch: its runs trained from 3.4 s into a headless quick demo of 22-25 s on 2
cores (README, "Throughput"). A
warm worker has paid it before the teacher's click, and waits for work while the dashboard's
server that started it lives, until no one has looked at the dashboard for `STANDBY_S`.

Why several single-threaded runs rather than one run on every core: LeNet-5's small convolutions
scale poorly across threads, so two runs at one thread each train more images per second in total
than one run on two threads (measured on 2 cores: see README, "Throughput"). A run left alone at
the end of a queue takes every core of the pool instead, from its next epoch on. Workers run at a
lower CPU priority, so the dashboard and the browser drawing it stay responsive while they train.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .records import Run, RunStatus, seconds_left
from .workspace import REPO_ROOT, Workspace

WORKER_NICENESS = 10  # the dashboard (niceness 0) gets a core back within a scheduler tick
ENV_PARALLEL = "LENET_PARALLEL_RUNS"
ENV_THREADS = "LENET_THREADS_PER_RUN"
ENV_RAY_ADDRESS = "LENET_RAY_ADDRESS"
ENV_STANDBY = "LENET_STANDBY_WORKERS"  # "0": the dashboard starts workers only when it queues runs
# A warm worker waits for work until the dashboard that started it has not been looked at for this
# long: a lesson's pauses (the teacher on their slides), not a day.
STANDBY_S = 15 * 60
# What a warm worker's log line says once it waits for work: what the tests and benchmarks wait for
STANDING_BY = "standing by for the dashboard"


def standby_wanted() -> bool:
    """Whether the dashboard keeps its pool warm ($LENET_STANDBY_WORKERS, on unless "0")."""
    return os.environ.get(ENV_STANDBY, "1") != "0"


def ray_address() -> str | None:
    """The Ray cluster to train on ($LENET_RAY_ADDRESS: host:port, or auto); None: this machine."""
    return os.environ.get(ENV_RAY_ADDRESS) or None


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class PoolSettings:
    parallel_runs: int  # processes training at once, each one run or a stack of runs
    threads_per_run: int  # torch intra-op threads of each

    @classmethod
    def for_cores(cls, cores: int) -> PoolSettings:
        """One single-threaded run per core, at most 8 (each holds the dataset, ~0.5 GB)."""
        parallel = max(1, min(cores, 8))
        return cls(parallel, max(1, cores // parallel))

    @classmethod
    def from_env(cls) -> PoolSettings:
        """The defaults for this machine, overridden by $LENET_PARALLEL_RUNS / $LENET_THREADS_PER_RUN."""
        default = cls.for_cores(available_cores())
        try:
            parallel = int(os.environ.get(ENV_PARALLEL) or default.parallel_runs)
            threads = int(os.environ.get(ENV_THREADS) or default.threads_per_run)
        except ValueError:
            raise ValueError(f"${ENV_PARALLEL} and ${ENV_THREADS} must be whole numbers") from None
        if parallel < 1 or threads < 1:
            raise ValueError(f"${ENV_PARALLEL} and ${ENV_THREADS} must be at least 1")
        return cls(parallel, threads)

    def threads_for(self, work_left: int) -> int:
        """Threads for one process's run(s) while `work_left` runs are queued or processes train
        (`Store.work_left`): its share of the pool's cores (all of them for the last work left,
        which would otherwise leave cores idle)."""
        cores = self.parallel_runs * self.threads_per_run
        return max(self.threads_per_run, cores // max(1, min(work_left, self.parallel_runs)))


# Runs trained together as one stacked network, at most: a step of 4 stacked models took 1.35x
# less time per model than theirs alone, at one thread (README, "Throughput").
MAX_STACKED = 4


def _stack_key(run: Run):
    """Which queued runs a worker trains together (lenet.train.stack_key, on the same data); a
    class round's runs train alone."""
    from .train import stack_key

    key = stack_key(run.config)
    return None if key is None or run.student_id is not None else (key, run.data_dir)


def _lower_priority() -> None:
    """Niceness `WORKER_NICENESS` for this process and, where the kernel schedules each session as
    a group (autogroup: most desktop Linux kernels, and this repository's machine), for its
    session's group. `ensure_workers` starts a worker in a session of its own, and a niceness only
    orders the processes within their group: without the group's, the worker took an equal share
    of a core beside the dashboard and the browser, whatever its niceness."""
    os.nice(WORKER_NICENESS)
    if os.getsid(0) != os.getpid():
        return  # a worker started in a terminal's session: that group is the user's, not its own
    for _ in range(3):  # without CAP_SYS_ADMIN, once per 0.1 s in the whole system (EAGAIN)
        try:
            Path("/proc/self/autogroup").write_text(str(WORKER_NICENESS))
            return
        except FileNotFoundError:
            return  # no autogroup: the niceness alone does it
        except OSError:
            time.sleep(0.1)


def run_worker(
    workspace: Workspace,
    *,
    pool: PoolSettings | None = None,
    idle_exit_s: float = 60.0,
    poll_s: float = 1.0,
    standby: bool = False,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True),
) -> int:
    """Claim and train queued runs until the queue has been empty for `idle_exit_s`; return runs done.

    `standby`: warm up first (`train.warm_up`, the dataset decoded), then wait for work while the
    process that started this one (the dashboard's server) lives and has been looked at in the last
    `STANDBY_S` (`ensure_workers(standby=True)`); after that, `idle_exit_s` as any worker."""
    _lower_priority()  # first: a warm-up at the dashboard's start yields to its first page
    parent = os.getppid()
    # Here, not at the top: queuing runs and starting workers (`preset`, the dashboard) need no
    # torch, so the workers start ~2 s sooner after a launch.
    import torch

    from .runs import Heartbeat, execute_run, execute_together

    pool = pool or PoolSettings.from_env()
    store = workspace.store
    torch.set_num_threads(pool.threads_per_run)
    pid = os.getpid()
    store.register_worker(pid)
    done = 0

    def standing_by() -> bool:
        # the parent gone, this process is adopted by init (or a subreaper): no one to stand by for
        return standby and os.getppid() == parent and _since_looked_at(workspace) < STANDBY_S

    try:
        with Heartbeat(store, worker_pid=pid) as heartbeat:
            if standby:
                from .train import warm_up

                warm_up()
                decoded = _decode_dataset(workspace)
                log(f"worker {pid}: warm{decoded}, {STANDING_BY} (pid {parent})")
            idle_since = time.monotonic()
            while True:
                store.mark_interrupted()
                run_ids = store.claim_together(pid, pool.parallel_runs, _stack_key, MAX_STACKED)
                if not run_ids:
                    if time.monotonic() - idle_since > idle_exit_s and not standing_by():
                        break
                    time.sleep(poll_s)
                    continue
                log(f"worker {pid}: training runs {run_ids}")

                def share_cores(_epoch) -> None:  # checked once an epoch: one cheap query
                    torch.set_num_threads(pool.threads_for(store.work_left()))

                try:
                    share_cores(None)
                    watch = {"heartbeat": heartbeat, "on_epoch": share_cores}
                    if len(run_ids) == 1:
                        results = [execute_run(workspace, run_ids[0], **watch)]
                    else:
                        results = execute_together(workspace, run_ids, **watch)
                    log(f"worker {pid}: runs {run_ids} {[result.status for result in results]}")
                except Exception as e:  # recorded as failed; carry on with the queue
                    log(f"worker {pid}: runs {run_ids} failed: {e}")
                    traceback.print_exc()
                done += len(run_ids)
                idle_since = time.monotonic()
    finally:
        store.unregister_worker(pid)
    return done


def _decode_dataset(workspace: Workspace) -> str:
    """Decode the dataset that runs train on by default, as a warm worker waits: its first run then
    starts 0.3-0.5 s sooner after the teacher's click. Nothing is downloaded; a dataset missing or
    broken is for that run to report. Returns what the worker's log says of it."""
    from . import data

    try:
        raw = data.load_raw(download=False, download_root=workspace.data_dir)  # cached per process
    except data.DataError:
        return ""
    return f", FashionMNIST decoded from {raw.source}"


def _since_looked_at(workspace: Workspace) -> float:
    """Seconds since the dashboard was last looked at (`ensure_workers(standby=True)`)."""
    try:
        return time.time() - workspace.standby_mark.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def ensure_workers(
    workspace: Workspace, pool: PoolSettings | None = None, *, standby: bool = False
) -> list[int]:
    """Start detached `python -m lenet worker` processes until the pool can train every queued run
    (up to `parallel_runs` workers in all), or with $LENET_RAY_ADDRESS one `python -m lenet
    dispatch` that trains them on the cluster (lenet.cluster). Returns the pids started, often none.

    `standby` (the dashboard, whenever it is looked at): the whole pool, queued runs or not, as warm
    workers that wait for work while this process lives and calls this again within `STANDBY_S`
    (`run_worker`). Not for a cluster, whose nodes start their own."""
    if standby and ray_address():
        return []
    pool = pool or PoolSettings.from_env()
    store = workspace.store
    live = set(store.live_workers())
    queued = len(store.list_runs((RunStatus.QUEUED,)))
    if ray_address():
        if importlib.util.find_spec("ray") is None:
            raise RuntimeError(f"${ENV_RAY_ADDRESS} is set but Ray is not installed here: run `make ray`")
        command, wanted = ["dispatch"], int(queued > 0 and not live)
    elif standby:
        command, wanted = ["worker", "--standby"], pool.parallel_runs - len(live)
    else:
        busy = live & {run.worker_pid for run in store.list_runs((RunStatus.RUNNING,))}
        # idle live workers will take queued runs themselves; start workers only for the rest
        command, wanted = ["worker"], min(pool.parallel_runs - len(live), queued - (len(live) - len(busy)))
    started = []
    workspace.home.mkdir(parents=True, exist_ok=True)
    if standby:
        workspace.standby_mark.touch()  # looked at now: the warm workers stay (run_worker)
    env = {
        **os.environ,
        "LENET_HOME": str(workspace.home),
        ENV_PARALLEL: str(pool.parallel_runs),
        ENV_THREADS: str(pool.threads_per_run),
    }
    for _ in range(max(0, wanted)):
        with open(workspace.worker_log, "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "lenet", *command],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                env=env,
                start_new_session=True,  # outlives the dashboard's script run and its session
            )
        # Whoever started it (the dashboard, a CLI waiting for its runs) lives on after it exits:
        # without a wait() the exited worker would stay a zombie for as long.
        threading.Thread(target=process.wait, name=f"reap-worker-{process.pid}", daemon=True).start()
        # Counted as live from now on, so a second call a moment later does not start another;
        # if it dies before its first heartbeat, it goes stale like any dead worker.
        store.register_worker(process.pid)
        started.append(process.pid)
    return started


def wait_for_runs(
    workspace: Workspace,
    run_ids: list[int],
    *,
    pool: PoolSettings | None = None,
    on_progress: Callable[[list[Run]], None] = lambda runs: None,
    poll_s: float = 1.0,
) -> list[Run]:
    """Keep the worker pool going until every run has ended; Ctrl-C stops and cancels them."""
    store = workspace.store
    try:
        while True:
            runs = [store.get_run(i) for i in run_ids]
            on_progress(runs)
            if not any(run.status.active for run in runs):
                return runs
            ensure_workers(workspace, pool)
            time.sleep(next_poll(runs, poll_s))
    except KeyboardInterrupt:
        for run in (store.get_run(i) for i in run_ids):
            if run.status == RunStatus.QUEUED:
                store.cancel(run.id)
            elif run.status == RunStatus.RUNNING:
                store.request_stop(run.id)
        raise


MIN_POLL_S = 0.2


def next_poll(runs: list[Run], poll_s: float) -> float:
    """Seconds until `wait_for_runs` looks again: `poll_s`, or sooner once the runs' ETAs
    (`records.seconds_left`) say they should all have ended sooner, so that the wait ends within
    `MIN_POLL_S` of the last run rather than up to `poll_s` after it."""
    running = [run for run in runs if run.status == RunStatus.RUNNING]
    queued = sum(run.status == RunStatus.QUEUED for run in runs)
    left = seconds_left(running, queued, time.time())
    return poll_s if left is None else min(poll_s, max(MIN_POLL_S, left))
