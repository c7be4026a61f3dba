"""Re-run the original notebook's configurations through the run store and tabulate them beside
its reported numbers.

`reproduce` queues one run per variant x seed (source `reproduce`), lets the worker pool train
them, and waits: they show on the dashboard's Live page while they train and can be stopped there.
A rerun reuses every finished run of the same configuration (and waits for those still queued or
training), so an interrupted reproduce resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from . import findings
from .catalog import mirrored_test_accuracy
from .config import TrainConfig
from .errors import ReproduceError  # noqa: F401 (raised here; the API)
from .records import Run, RunStatus
from .store import Store
from .variants import get_variant, list_models
from .worker import PoolSettings, wait_for_runs
from .workspace import Workspace

SOURCE = "reproduce"


@dataclass(frozen=True)
class RunSummary:
    run_id: int
    variant: str
    seed: int
    epochs: int
    weight_decay: float
    train_accuracy: float
    val_accuracy: float
    test_accuracy: float
    mirrored_test_accuracy: float  # the test set flipped left-right: what augmentation is for
    seconds: float
    checkpoint: str


def configs_for(seeds: int, overrides: dict | None = None) -> list[TrainConfig]:
    """Every registered variant with its own defaults (epochs, weight decay), for seeds 0..seeds-1."""
    overrides = overrides or {}
    return [
        TrainConfig.for_variant(variant, seed=seed, **overrides)
        for seed in range(seeds)
        for variant in list_models()
    ]


def queue_runs(store: Store, configs: list[TrainConfig], data_dir: str | None = None) -> list[int]:
    """One run id per config: a finished (or still active) reproduce run of the same configuration
    and data if there is one, otherwise a newly queued run."""
    earlier = [
        run for run in store.list_runs() if run.source == SOURCE and (run.data_dir or None) == data_dir
    ]
    ids = []
    for config in configs:
        same = [run for run in earlier if run.config == config]  # newest first
        finished = [run for run in same if run.status == RunStatus.FINISHED and run.checkpoint]
        active = [run for run in same if run.status.active]
        if finished or active:
            ids.append((finished or active)[0].id)
        else:
            ids.append(store.enqueue(config, source=SOURCE, data_dir=data_dir))
    return ids


def reproduce(
    workspace: Workspace,
    seeds: int = 1,
    *,
    data_dir: str | None = None,
    overrides: dict | None = None,
    pool: PoolSettings | None = None,
    on_progress: Callable[[list[Run]], None] = lambda runs: None,
    poll_s: float = 1.0,
) -> list[RunSummary]:
    """Train (or reuse) every variant x seed through the store; one summary per run."""
    run_ids = queue_runs(workspace.store, configs_for(seeds, overrides), data_dir)
    runs = wait_for_runs(workspace, run_ids, pool=pool, on_progress=on_progress, poll_s=poll_s)
    unfinished = [run for run in runs if run.status != RunStatus.FINISHED]
    if unfinished:
        listed = "; ".join(f"run {r.id} {r.name} {r.status} ({r.message})" for r in unfinished)
        raise ReproduceError(f"{listed}. Run reproduce again to train what is missing.")
    test = cache(lambda: workspace.load_test(data_dir).split)  # read only for a run saved without it
    return [_summary(run, test) for run in runs]


def _summary(run: Run, test: Callable) -> RunSummary:
    def measure() -> float:  # a checkpoint saved without it: only then torch, its model and the test set
        from .artifacts import load_checkpoint
        from .train import evaluate

        return evaluate(load_checkpoint(run.checkpoint)[0], test().mirrored()).accuracy

    return RunSummary(
        run_id=run.id,
        variant=run.variant,
        seed=run.config.seed,
        epochs=run.config.epochs,
        weight_decay=run.config.weight_decay,
        train_accuracy=run.train_accuracy,
        val_accuracy=run.val_accuracy,
        test_accuracy=run.test_accuracy,
        mirrored_test_accuracy=mirrored_test_accuracy(run.checkpoint, measure),
        seconds=run.train_seconds,
        checkpoint=run.checkpoint,
    )


def aggregate(summaries: list[RunSummary]) -> list[dict]:
    """Per variant: mean and std over seeds of each accuracy, the gap, and the time per run."""
    rows = findings.aggregate(vars(s) for s in summaries)
    for row in rows:
        first = next(s for s in summaries if s.variant == row["variant"])
        row["epochs"], row["weight_decay"] = first.epochs, first.weight_decay
        row["notebook_train"], row["notebook_val"] = get_variant(row["variant"]).notebook or (None, None)
    return rows


def markdown_table(rows: list[dict]) -> str:
    pct = findings.spread

    def reported(value):
        return "–" if value is None else f"{100 * value:.1f}"

    lines = [
        "| Variant | Epochs | Weight decay | Train % | Val % | Test % | Mirrored test % | "
        "Gap (train − val) | Notebook train % | Notebook val % | Time / run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['variant']} | {row['epochs']} | {row['weight_decay']:g} | "
            f"{pct(row, 'train_accuracy')} | {pct(row, 'val_accuracy')} | {pct(row, 'test_accuracy')} | "
            f"{pct(row, 'mirrored_test_accuracy')} | {pct(row, 'gap')} | "
            f"{reported(row['notebook_train'])} | {reported(row['notebook_val'])} | {row['seconds']:.0f} s |"
        )
    seeds = rows[0]["seeds"] if rows else 0
    note = f"Mean ± std over {seeds} seeds." if seeds > 1 else "One seed."
    return (
        "\n".join(lines)
        + f"\n\n{note} The notebook never measured test accuracy. Mirrored test: the same 10,000 test "
        "images flipped left-right (shoes facing right, which the training set never shows).\n"
    )
