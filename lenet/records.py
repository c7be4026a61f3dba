"""Typed records the run store returns (in the style of MLflow's entities): a run, an experiment,
an experiment read with its runs and their epochs. Frozen; DataFrames are built from them only
where a chart or a table needs one (`runs_frame`)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import TYPE_CHECKING

# pandas is imported where a frame is built: queuing runs and a worker's start never need it,
# and it took 0.3 s of each (lenet.store, tables and analysis do the same)
if TYPE_CHECKING:
    import pandas as pd

from .config import CONFIG_COLUMNS, EpochMetrics, TrainConfig


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    STOPPED = "stopped"  # asked to stop; kept its last full epoch
    DIVERGED = "diverged"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # its process stopped beating (killed or crashed)

    @property
    def active(self) -> bool:
        """Queued or training: the run still needs a worker."""
        return self in (RunStatus.QUEUED, RunStatus.RUNNING)


ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)


@dataclass(frozen=True)
class Run:
    id: int
    name: str
    variant: str
    config: TrainConfig
    status: RunStatus  # effective: a running run with a stale heartbeat reads as interrupted
    source: str  # queue | cli | preset | sweep | repeats
    created_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat_at: float | None
    worker_pid: int | None
    attempts: int
    stop_requested: bool
    global_step: int
    total_steps: int | None
    eta_s: float | None
    epochs_completed: int
    train_accuracy: float | None  # of the kept epoch (the last, or the best with early stopping)
    val_accuracy: float | None
    test_accuracy: float | None
    train_seconds: float | None
    checkpoint: str | None  # an absolute path
    message: str | None
    data_dir: str | None
    experiment_id: int | None
    student_id: int | None  # a class round's run: who submitted it
    public_accuracy: float | None  # a round run's score on the round's public validation slice
    # "local", "local, <K> together" (a stack: lenet.stacked), or "ray:<node address>"
    # (lenet.cluster); None until it starts
    trained_on: str | None

    @property
    def progress(self) -> float:
        """Share of its batches done (a finished run without step records: 1)."""
        if self.total_steps:
            return self.global_step / self.total_steps
        return 1.0 if self.status == RunStatus.FINISHED else 0.0

    @property
    def gap(self) -> float | None:
        """Train minus validation accuracy: how much it overfits."""
        if self.train_accuracy is None or self.val_accuracy is None:
            return None
        return self.train_accuracy - self.val_accuracy

    @property
    def epochs(self) -> int:
        return self.config.epochs

    @property
    def has_checkpoint(self) -> bool:
        """Whether its weights can be loaded (a file deleted outside the dashboard leaves the metrics)."""
        return self.checkpoint is not None and os.path.exists(self.checkpoint)

    def row(self) -> dict:
        """One flat row: the record's fields, its config's columns and its derived values."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["status"] = str(self.status)
        values["config"] = self.config.to_dict()
        settings = {name: getattr(self.config, name) for name in CONFIG_COLUMNS}
        derived = {"progress": self.progress, "gap": self.gap, "has_checkpoint": self.has_checkpoint}
        return {**values, **settings, **derived}


RUN_COLUMNS = [
    *(f.name for f in fields(Run) if f.name != "config"),
    *CONFIG_COLUMNS,
    "progress",
    "gap",
    "has_checkpoint",
    "config",
]


def run_name(config: TrainConfig, varies: str | None = None) -> str:
    """The one naming rule: variant, the varied value if any, seed: `l2-weight_decay=0.003-s1`.
    (Labels add the run's id: `#42 l2-weight_decay=0.003-s1`.)"""
    value = f"-{varies}={getattr(config, varies):g}" if varies not in (None, "variant") else ""
    return f"{config.variant}{value}-s{config.seed}"


def runs_frame(runs: list[Run]) -> pd.DataFrame:
    """Runs as a DataFrame, one row each with the config expanded into columns: for charts and tables."""
    import pandas as pd

    return pd.DataFrame([run.row() for run in runs], columns=RUN_COLUMNS)


def in_training_order(runs: list[Run], queue_order: list[int]) -> list[Run]:
    """Running runs first, then the queued ones in `queue_order` (`Store.queue_order`: the order
    workers take them in), then those it leaves out (a paused round's)."""
    place = {run_id: i for i, run_id in enumerate(queue_order)}
    return sorted(
        runs, key=lambda run: (run.status != RunStatus.RUNNING, place.get(run.id, len(place)), run.id)
    )


def seconds_left(running: list[Run], queued: int, now: float) -> float | None:
    """About how long until the `running` runs and `queued` more have all ended; None until every
    running run has an ETA to go by.

    The runs one worker trains together (a stack, or a run alone) end with the slowest of them.
    Each worker then takes queued runs, first free first served, each for its share of the time
    its group takes (a stack of 3 in 30 s: 10 s a run). Each run's own ETA leaves out the runs
    still waiting: in the quick demo, the two that train after the stacks."""
    if not running or any(run.eta_s is None or run.started_at is None for run in running):
        return None
    groups: dict[int, list[Run]] = {}
    for run in running:  # a run without a worker's pid (another machine's) is a group of its own
        groups.setdefault(run.worker_pid if run.worker_pid is not None else -run.id, []).append(run)
    free_in, per_run = [], []
    for group in groups.values():
        left = max(run.eta_s for run in group)
        free_in.append(left)
        per_run.append((now - min(run.started_at for run in group) + left) / len(group))
    cost = sum(per_run) / len(per_run)
    for _ in range(queued):
        free_in[free_in.index(min(free_in))] += cost
    return max(free_in)


@dataclass(frozen=True)
class Experiment:
    """One launch of several runs (a preset, a sweep, repeats over seeds)."""

    id: int
    name: str
    kind: str
    description: str
    varies: str | None  # the config field its runs differ in; "variant" for a preset
    created_at: float
    runs: int  # how many runs it has
    active: int  # of them queued or training
    finished: int

    @property
    def by(self) -> str:
        """What its results are grouped by: the varied field, else the variant."""
        return self.varies or "variant"


@dataclass(frozen=True)
class ExperimentRuns:
    """An experiment with its runs (oldest first) and each run's epochs: one read for Results, the
    CLI and `experiments.summary`."""

    experiment: Experiment
    runs: list[Run]
    epochs: dict[int, list[EpochMetrics]]  # by run id

    def epochs_frame(self) -> pd.DataFrame:
        import pandas as pd

        rows = [{"run_id": run_id, **asdict(e)} for run_id, history in self.epochs.items() for e in history]
        columns = ["run_id", *(f.name for f in fields(EpochMetrics))]
        return pd.DataFrame(rows, columns=columns)


class RoundState(StrEnum):
    OPEN = "open"  # students join and submit
    CLOSED = "closed"  # no more submissions; queued runs still train
    REVEALED = "revealed"  # the test scores are shown


@dataclass(frozen=True)
class Round:
    """A class round: students submit runs on a fixed data budget; a public validation slice ranks
    them, and the test set stays hidden until the teacher reveals it."""

    id: int
    name: str
    state: RoundState
    paused: bool  # its runs wait in the queue; the teacher's own runs go on
    runs_per_student: int
    train_limit: int
    epochs: int
    public_images: int  # the public slice: this many of the validation images
    public_seed: int  # which ones
    experiment_id: int  # its runs, as one experiment on Live and Results
    created_at: float
    closed_at: float | None
    revealed_at: float | None


@dataclass(frozen=True)
class Student:
    id: int
    round_id: int
    nickname: str
    token: str  # the secret kept in the student's URL: who they are, across reloads
    hidden: bool  # hidden from the board by the teacher
    final_run_id: int | None  # the run they chose for the private score (None: their best public)
    joined_at: float
