"""The run service: the one code path that trains and records a run.

`execute_run(workspace, run_id)` takes a run the store already marks as running (claimed by a
worker, or started by `python -m lenet train`), trains it with `lenet.train.train`, streams its
metrics into the store, honours a stop request between batches, then saves the checkpoint (one
naming scheme: `Workspace.checkpoint_path`) with its metadata and records the final status.
The CLI, the worker pool and `reproduce` all come through here.
"""

from __future__ import annotations

import platform
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import version

import torch

from . import __version__, artifacts, data, rounds
from .models import get_variant
from .records import Round, Run
from .store import HEARTBEAT_INTERVAL_S, Store
from .train import (
    EpochMetrics,
    StepMetrics,
    TrainConfig,
    TrainResult,
    TrainTask,
    build_model,
    evaluate,
    make_run_splits,
    train,
    train_together,
    validate,
)
from .workspace import Workspace


class Heartbeat:
    """Beat for a worker and/or a run every HEARTBEAT_INTERVAL_S on a thread of its own, so a run
    stays visibly alive during long evaluations; a process that dies stops beating."""

    def __init__(self, store: Store, *, worker_pid: int | None = None):
        self.store = store
        self.worker_pid = worker_pid
        self.run_ids: set[int] = set()  # the runs this process trains now
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lenet-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
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
                for run_id in list(self.run_ids):
                    self.store.heartbeat(run_id)
            except Exception as e:  # a busy database must not kill the trainer; retry next beat
                print(f"lenet: heartbeat failed: {e}", file=sys.stderr)


def describe_environment() -> dict:
    """Library versions and hardware, saved in checkpoint metadata."""
    return {
        "lenet": __version__,
        "torch": torch.__version__,
        # from the installed package's metadata: importing torchvision only for this took ~1 s
        "torchvision": version("torchvision"),
        "torchmetrics": version("torchmetrics"),
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
    }


# What a checkpoint's metadata knows of the test set (a class round's stay out of it)
TEST_DERIVED = (
    "test_accuracy",
    "test_loss",
    "per_class_accuracy",
    "confusion_matrix",
    "mirrored_test_accuracy",
    "mistakes",
)


def build_metadata(
    result: TrainResult, *, name: str, run_id: int, splits: data.Splits, trained_on: str = "local"
) -> dict:
    """The JSON saved beside a checkpoint: enough to rebuild, compare and audit the run."""
    variant = get_variant(result.config.variant)
    test = result.test
    return {
        "format": "lenet-checkpoint/1",
        "name": name,
        "run_id": run_id,
        "variant": variant.name,
        "variant_title": variant.title,
        "status": result.status,
        "epochs_completed": len(result.history),
        "config": result.config.to_dict(),
        "seed": result.config.seed,
        "history": [asdict(h) for h in result.history],
        "train_accuracy": result.train_accuracy,
        "val_accuracy": result.val_accuracy,
        "test_accuracy": result.test_accuracy,
        "test_loss": test.loss if test else None,
        "per_class_accuracy": test.per_class_accuracy if test else None,
        "confusion_matrix": test.confusion_matrix if test else None,
        # what Results shows of a run, computed once here rather than when a page first opens it
        "mirrored_test_accuracy": evaluate(result.model, splits.test.mirrored()).accuracy if test else None,
        "mistakes": [asdict(m) for m in test.mistakes] if test else None,
        "train_seconds": result.seconds,
        "device": result.device,
        "trained_on": trained_on,
        "dataset": {"fingerprint": splits.fingerprint, "source": splits.source},
        "versions": describe_environment(),
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@dataclass(frozen=True)
class RunJob:
    """Everything a run needs to train, wherever it trains: read from the head's store and files
    (`prepare_job`), picklable, so a Ray task on another machine gets it whole."""

    run_id: int
    name: str
    config: TrainConfig
    game: Round | None  # a class-round run's round: scored on its public validation slice
    init_state: dict[str, torch.Tensor] | None  # a warm start's weights
    trained_on: str  # "local" or "ray:<node address>": saved in the checkpoint's metadata


@dataclass(frozen=True)
class Trained:
    """What training a run leaves, for the head to record (`record_trained`): its result, the
    checkpoint's bytes and metadata (None without a model) and a round run's public score."""

    result: TrainResult
    checkpoint: bytes | None
    metadata: dict | None
    public_accuracy: float | None

    def shippable(self) -> Trained:
        """Without the model object (its weights are in `checkpoint`): what a remote run sends."""
        return replace(self, result=replace(self.result, model=None))


def prepare_job(workspace: Workspace, run: Run, trained_on: str = "local") -> RunJob:
    store = workspace.store
    game = store.round_of_run(run.id) if run.student_id is not None else None
    init_state = None
    if run.config.init_from:
        init_state = artifacts.load_checkpoint(run.config.init_from)[0].state_dict()
    return RunJob(run.id, run.name, run.config, game, init_state, trained_on)


def train_job(
    job: RunJob,
    splits: data.Splits,
    *,
    on_step: Callable[[StepMetrics], None] | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Trained:
    """Train the job and prepare its checkpoint; touches no store or file, so it runs anywhere."""
    result = train(
        job.config,
        splits,
        on_step=on_step,
        on_epoch=on_epoch,
        init_state=job.init_state,
        should_stop=should_stop,
    )
    return package(job, result, splits)


def package(job: RunJob, result: TrainResult, splits: data.Splits) -> Trained:
    """A trained job's checkpoint, metadata and a round run's public score."""
    if result.model is None:
        return Trained(result, None, None, None)
    public_accuracy = None
    if job.game is not None:
        public = rounds.public_slice(job.game, len(splits.val))
        public_accuracy = validate(
            result.model, data.Split(splits.val.images[public], splits.val.labels[public])
        )[1]
    metadata = build_metadata(
        result, name=job.name, run_id=job.run_id, splits=splits, trained_on=job.trained_on
    )
    if job.game is not None:  # a round's test scores stay in the store, hidden until its reveal
        metadata = {k: None if k in TEST_DERIVED else v for k, v in metadata.items()}
    return Trained(result, artifacts.state_bytes(result.model), metadata, public_accuracy)


def record_trained(workspace: Workspace, run: Run, trained: Trained) -> None:
    """On the head: the checkpoint file, the public score and the final status."""
    store, result = workspace.store, trained.result
    checkpoint = None
    if trained.public_accuracy is not None:
        store.record_public_accuracy(run.id, trained.public_accuracy)
    if trained.checkpoint is not None:
        path = workspace.checkpoint_path(run.id, run.name)
        checkpoint = str(artifacts.write_checkpoint(trained.checkpoint, trained.metadata, path))
    message = result.message
    if result.status == "stopped" and checkpoint is None:
        message = "stopped before the first epoch finished; no checkpoint was saved"
    store.finish(
        run.id,
        result.status,
        message=message,
        checkpoint=checkpoint,
        test_accuracy=result.test_accuracy,
        train_seconds=result.seconds,
    )


def execute_run(
    workspace: Workspace,
    run_id: int,
    *,
    splits: data.Splits | None = None,
    on_step: Callable[[StepMetrics], None] | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    extra_stop: Callable[[], bool] = lambda: False,
    heartbeat: Heartbeat | None = None,
) -> TrainResult:
    """Train a run the store marks as running, in this process; record everything; return the
    TrainResult.

    Any exception is recorded as `failed` (with its message) and raised again.
    """
    store = workspace.store
    run = store.get_run(run_id)
    with nullcontext(heartbeat) if heartbeat else Heartbeat(store) as beat:
        beat.run_ids.add(run_id)
        try:
            return _train_here(workspace, run, splits, on_step, on_epoch, extra_stop)
        except Exception as e:
            store.finish(run_id, "failed", message=f"{type(e).__name__}: {e}")
            raise
        finally:
            beat.run_ids.discard(run_id)


def _train_here(workspace, run, splits, on_step, on_epoch, extra_stop) -> TrainResult:
    store, run_id = workspace.store, run.id
    job = prepare_job(workspace, run)
    splits = splits or make_run_splits(run.config, workspace.load_raw(run.data_dir))

    with store.stop_watch(run_id) as stop_requested:
        trained = train_job(
            job,
            splits,
            on_step=partial(_recorded, store.record_step, run_id, on_step),
            on_epoch=partial(_recorded, store.record_epoch, run_id, on_epoch),
            should_stop=lambda: extra_stop() or stop_requested(),
        )
    record_trained(workspace, run, trained)
    return trained.result


def execute_together(
    workspace: Workspace,
    run_ids: list[int],
    *,
    heartbeat: Heartbeat,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
) -> list[TrainResult]:
    """Train runs the store marks as running, which share a `stack_key` and data, as one stacked
    network (`train_together`); each is recorded as soon as it ends, as `execute_run` records it.
    A run that fails, even before training (say, a warm start of another architecture), is
    recorded as failed; the others train on. Returns the results of the runs that trained."""
    store = workspace.store
    heartbeat.run_ids.update(run_ids)
    runs, jobs = [], []
    for run in map(store.get_run, run_ids):
        try:
            job = prepare_job(workspace, run, trained_on=run.trained_on)
            if job.init_state is not None:  # its own error now, rather than its partners' later
                build_model(job.config).load_state_dict(job.init_state)
            runs.append(run)
            jobs.append(job)
        except Exception as e:
            store.finish(run.id, "failed", message=f"{type(e).__name__}: {e}")
            heartbeat.run_ids.discard(run.id)
    try:
        if not runs:
            return []
        splits = make_run_splits(runs[0].config, workspace.load_raw(runs[0].data_dir))
        with ExitStack() as watches:
            tasks = [
                TrainTask(
                    job.config,
                    on_step=partial(store.record_step, run.id),
                    on_epoch=partial(_recorded, store.record_epoch, run.id, on_epoch),
                    should_stop=watches.enter_context(store.stop_watch(run.id)),
                    init_state=job.init_state,
                    on_end=partial(_record_ended, workspace, run, job, splits, heartbeat),
                )
                for run, job in zip(runs, jobs, strict=True)
            ]
            return train_together(tasks, splits)
    except Exception as e:  # outside any one run's training (the data, say): all of them failed
        for run_id in heartbeat.run_ids & set(run_ids):
            store.finish(run_id, "failed", message=f"{type(e).__name__}: {e}")
        raise
    finally:
        heartbeat.run_ids.difference_update(run_ids)


def _recorded(record: Callable, run_id: int, then: Callable | None, metrics) -> None:
    """Progress into the store (`record`: Store.record_step or record_epoch), then to `then`."""
    record(run_id, metrics)
    if then:
        then(metrics)


def _record_ended(workspace, run: Run, job: RunJob, splits, heartbeat: Heartbeat, result: TrainResult):
    """A run of `execute_together` has ended: record it now, while the others train on."""
    try:
        if result.status == "failed":
            workspace.store.finish(run.id, "failed", message=result.message)
        else:
            record_trained(workspace, run, package(job, result, splits))
    except Exception as e:
        workspace.store.finish(run.id, "failed", message=f"{type(e).__name__}: {e}")
    finally:
        heartbeat.run_ids.discard(run.id)
