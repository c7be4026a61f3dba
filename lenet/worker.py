"""Background trainer: drains the run queue in the store, one run at a time per process.

`python -m lenet worker` claims queued runs, trains each with `lenet.train.train`, streams metrics
into the store, saves the checkpoint atomically and records the final status. A heartbeat thread
keeps the run and the worker visibly alive, also during long evaluations; a worker that dies stops
beating and its run reads as interrupted. The dashboard starts one detached when needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch

from . import artifacts
from .data import Splits
from .store import HEARTBEAT_INTERVAL_S, Store
from .train import EpochMetrics, StepMetrics, TrainConfig, TrainResult, prepare_splits, train


class _Heartbeat:
    """Beat for a worker and/or a run every HEARTBEAT_INTERVAL_S on a thread of its own."""

    def __init__(self, store: Store, *, worker_pid: int | None = None):
        self.store = store
        self.worker_pid = worker_pid
        self.run_id: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lenet-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_INTERVAL_S):
            try:
                if self.worker_pid is not None:
                    self.store.worker_heartbeat(self.worker_pid)
                if self.run_id is not None:
                    self.store.heartbeat(self.run_id)
            except Exception as e:  # a busy database must not kill the trainer; retry next beat
                print(f"lenet worker: heartbeat failed: {e}", file=sys.stderr)


def default_checkpoint_path(run: dict) -> Path:
    path = artifacts.runs_dir() / f"{run['name']}.pth"
    # Never overwrite another run's checkpoint: a repeated custom name gets the run id appended.
    return path.with_name(f"{run['name']}-run{run['id']}.pth") if path.exists() else path


def execute_run(
    store: Store,
    run_id: int,
    *,
    data_dir: str | None = None,
    splits: Splits | None = None,
    checkpoint_path: Path | None = None,
    on_step: Callable[[StepMetrics], None] | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    extra_stop: Callable[[], bool] = lambda: False,
    heartbeat: _Heartbeat | None = None,
) -> TrainResult:
    """Train a run the store already marks as running; record everything; return the TrainResult."""
    run = store.get_run(run_id)
    config = TrainConfig.from_dict(run["config"])
    with nullcontext(heartbeat) if heartbeat else _Heartbeat(store) as beat:
        beat.run_id = run_id
        try:
            return _train_and_record(
                store, run, config, data_dir, splits, checkpoint_path, on_step, on_epoch, extra_stop
            )
        except Exception as e:
            store.finish(run_id, "failed", message=f"{type(e).__name__}: {e}")
            raise
        finally:
            beat.run_id = None


def _train_and_record(store, run, config, data_dir, splits, checkpoint_path, on_step, on_epoch, extra_stop):
    run_id = run["id"]
    init_state = None
    if config.init_from:
        init_state = artifacts.load_checkpoint(config.init_from)[0].state_dict()
    splits = splits or prepare_splits(config, data_dir)

    def step(metrics: StepMetrics) -> None:
        store.record_step(run_id, metrics)
        if on_step:
            on_step(metrics)

    def epoch(metrics: EpochMetrics) -> None:
        store.record_epoch(run_id, metrics)
        if on_epoch:
            on_epoch(metrics)

    with store.stop_watch(run_id) as stop_requested:
        result = train(
            config,
            splits,
            on_step=step,
            on_epoch=epoch,
            init_state=init_state,
            should_stop=lambda: extra_stop() or stop_requested(),
        )
    checkpoint = None
    if result.model is not None:
        metadata = artifacts.build_metadata(
            result, name=run["name"], fingerprint=splits.fingerprint, source=splits.source
        )
        metadata["run_id"] = run_id
        path = checkpoint_path or default_checkpoint_path(run)
        checkpoint = str(artifacts.save_checkpoint(result.model, metadata, path))
    message = result.message
    if result.status == "stopped" and checkpoint is None:
        message = "stopped before the first epoch finished; no checkpoint was saved"
    store.finish(
        run_id,
        result.status,
        message=message,
        checkpoint=checkpoint,
        test_accuracy=result.test_accuracy,
        train_seconds=result.seconds,
    )
    return result


def default_threads() -> int:
    """Leave one core to the dashboard and the browser drawing its charts.

    Measured on a 2-core machine with one core busy: 2 threads took 15.4 s for what 1 thread did
    in 7.2 s (OpenMP threads wait on each other when one of them is not scheduled).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - 1)


def run_worker(
    store: Store | None = None,
    *,
    threads: int | None = None,
    max_running: int = 1,
    idle_exit_s: float = 60.0,
    poll_s: float = 1.0,
    data_dir: str | None = None,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True),
) -> int:
    """Claim and train queued runs until the queue has been empty for `idle_exit_s`; return runs done."""
    store = store or Store()
    torch.set_num_threads(threads or default_threads())
    pid = os.getpid()
    store.register_worker(pid)
    done = 0
    try:
        with _Heartbeat(store, worker_pid=pid) as heartbeat:
            idle_since = time.monotonic()
            while True:
                store.mark_interrupted()
                run_id = store.claim_next(pid, max_running)
                if run_id is None:
                    if time.monotonic() - idle_since > idle_exit_s:
                        break
                    time.sleep(poll_s)
                    continue
                log(f"worker {pid}: training run {run_id}")
                try:
                    result = execute_run(store, run_id, data_dir=data_dir, heartbeat=heartbeat)
                    log(f"worker {pid}: run {run_id} {result.status}")
                except Exception as e:  # recorded as failed; carry on with the queue
                    log(f"worker {pid}: run {run_id} failed: {e}")
                    traceback.print_exc()
                done += 1
                idle_since = time.monotonic()
    finally:
        store.unregister_worker(pid)
    return done


def ensure_worker(store: Store | None = None, log_path: Path | None = None) -> int | None:
    """Start a detached `python -m lenet worker` if runs are queued and no live worker exists.

    Returns the new worker's pid, or None when none was needed.
    """
    store = store or Store()
    if store.live_workers() or store.list_runs(("queued",)).empty:
        return None
    log_path = log_path or store.path.parent / "worker.log"
    env = {**os.environ, "LENET_HOME": str(store.path.parent)}
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "lenet", "worker", "--db", str(store.path)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parent.parent,
            env=env,
            start_new_session=True,  # outlives the dashboard's script run and its session
        )
    return process.pid
