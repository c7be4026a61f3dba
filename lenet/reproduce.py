"""Re-run the original notebook's five configurations and tabulate them beside its reported numbers.

Runs are saved as ordinary checkpoints under one folder, named `<variant>-seed<k>`; a rerun skips
every run whose finished checkpoint is already there, so an interrupted reproduce resumes.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import artifacts
from .train import TrainConfig, prepare_splits, train

# The notebook's five experiments: the variant defaults already carry their epochs / weight decay.
NOTEBOOK_VARIANTS = ("baseline", "dropout", "l2", "l2_optimized", "batch_norm")

# Final (train, validation) accuracy the notebook reported; it never measured test accuracy.
NOTEBOOK_REPORTED = {
    "baseline": (0.932, 0.892),
    "dropout": (0.889, 0.897),
    "l2": (0.843, 0.851),
    "l2_optimized": (0.908, 0.887),
    "batch_norm": (0.945, 0.902),
}


@dataclass(frozen=True)
class RunSummary:
    variant: str
    seed: int
    epochs: int
    weight_decay: float
    train_accuracy: float
    val_accuracy: float
    test_accuracy: float
    seconds: float
    checkpoint: str


def run_name(variant: str, seed: int) -> str:
    return f"{variant}-seed{seed}"


def _summary(metadata: dict, checkpoint: Path) -> RunSummary:
    config = metadata["config"]
    return RunSummary(
        variant=metadata["variant"],
        seed=config["seed"],
        epochs=config["epochs"],
        weight_decay=config["weight_decay"],
        train_accuracy=metadata["train_accuracy"],
        val_accuracy=metadata["val_accuracy"],
        test_accuracy=metadata["test_accuracy"],
        seconds=metadata["train_seconds"],
        checkpoint=str(checkpoint),
    )


def reproduce(
    out_dir: Path,
    seeds: int = 1,
    data_dir: str | None = None,
    overrides: dict | None = None,
    on_run_start: Callable[[str, int, int], None] = lambda name, index, total: None,
    on_step=None,
) -> list[RunSummary]:
    """Train (or reuse) every variant x seed; return one summary per run."""
    overrides = overrides or {}
    configs = [
        TrainConfig.for_variant(variant, seed=seed, **overrides)
        for seed in range(seeds)
        for variant in NOTEBOOK_VARIANTS
    ]
    splits = None
    summaries = []
    for index, config in enumerate(configs, start=1):
        name = run_name(config.variant, config.seed)
        checkpoint = Path(out_dir) / f"{name}.pth"
        existing = artifacts.read_metadata(checkpoint) if checkpoint.exists() else None
        if existing and existing.get("config") == config.to_dict() and existing.get("status") == "finished":
            summaries.append(_summary(existing, checkpoint))
            continue
        on_run_start(name, index, len(configs))
        if splits is None:
            splits = prepare_splits(configs[0], data_dir)
        result = train(config, splits, on_step=on_step)
        if result.status != "finished":
            raise RuntimeError(f"{name}: {result.status}: {result.message}")
        metadata = artifacts.build_metadata(
            result, name=name, fingerprint=splits.fingerprint, source=splits.source
        )
        artifacts.save_checkpoint(result.model, metadata, checkpoint)
        summaries.append(_summary(metadata, checkpoint))
    return summaries


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(summaries: list[RunSummary]) -> list[dict]:
    """Per variant: mean and std over seeds of each accuracy, the gap, and the time per run."""
    rows = []
    for variant in dict.fromkeys(s.variant for s in summaries):
        runs = [s for s in summaries if s.variant == variant]
        row = {
            "variant": variant,
            "seeds": len(runs),
            "epochs": runs[0].epochs,
            "weight_decay": runs[0].weight_decay,
        }
        for key in ("train_accuracy", "val_accuracy", "test_accuracy", "seconds"):
            row[key], row[key + "_std"] = _mean_std([getattr(s, key) for s in runs])
        row["gap"], row["gap_std"] = _mean_std([s.train_accuracy - s.val_accuracy for s in runs])
        row["notebook_train"], row["notebook_val"] = NOTEBOOK_REPORTED.get(variant, (None, None))
        rows.append(row)
    return rows


def markdown_table(rows: list[dict]) -> str:
    def pct(row, key):
        value, std = row[key], row[key + "_std"]
        return f"{100 * value:.1f}" + (f" ± {100 * std:.1f}" if row["seeds"] > 1 else "")

    def reported(value):
        return "–" if value is None else f"{100 * value:.1f}"

    lines = [
        "| Variant | Epochs | Weight decay | Train % | Val % | Test % | Gap (train − val) | "
        "Notebook train % | Notebook val % | Time / run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['variant']} | {row['epochs']} | {row['weight_decay']:g} | "
            f"{pct(row, 'train_accuracy')} | {pct(row, 'val_accuracy')} | {pct(row, 'test_accuracy')} | "
            f"{pct(row, 'gap')} | {reported(row['notebook_train'])} | {reported(row['notebook_val'])} | "
            f"{row['seconds']:.0f} s |"
        )
    seeds = rows[0]["seeds"] if rows else 0
    note = f"Mean ± std over {seeds} seeds." if seeds > 1 else "One seed."
    return "\n".join(lines) + f"\n\n{note} The notebook never measured test accuracy.\n"
