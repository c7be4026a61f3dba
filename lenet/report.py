"""Publish a reproduce run: ship one checkpoint per variant and write RESULTS.md with its figure.

`python -m lenet reproduce --seeds 3 --publish` regenerates everything this module writes.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from . import artifacts, findings
from .models import get_variant
from .reproduce import RunSummary, markdown_table
from .workspace import REPO_ROOT


def ship_checkpoints(summaries: list[RunSummary], target: Path, seed: int = 0) -> list[Path]:
    """Copy the given seed's run of every variant into target/<variant>.pth/.json."""
    target.mkdir(parents=True, exist_ok=True)
    shipped = []
    for summary in summaries:
        if summary.seed != seed:
            continue
        source = Path(summary.checkpoint)
        metadata = artifacts.read_metadata(source)
        metadata["published_from"] = metadata.get("name") or source.stem  # the run's name
        metadata["name"] = f"{get_variant(summary.variant).title} (pretrained)"
        weights = target / f"{summary.variant}.pth"
        artifacts.atomic_write_bytes(weights, source.read_bytes())
        artifacts.atomic_write_bytes(
            artifacts.metadata_path(weights), json.dumps(metadata, indent=2).encode()
        )
        shipped.append(weights)
    return shipped


def plot_curves(summaries: list[RunSummary], path: Path) -> Path:
    """Validation accuracy and train - validation gap per epoch: mean over seeds, band = min..max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_val, ax_gap) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=110)
    for variant in dict.fromkeys(s.variant for s in summaries):
        histories = [
            artifacts.read_metadata(s.checkpoint)["history"] for s in summaries if s.variant == variant
        ]
        if not histories:
            continue
        epochs = range(1, len(histories[0]) + 1)
        color, label = get_variant(variant).color, get_variant(variant).title
        for ax, value in (
            (ax_val, lambda h: 100 * h["val_accuracy"]),
            (ax_gap, lambda h: 100 * (h["train_accuracy"] - h["val_accuracy"])),
        ):
            per_epoch = [[value(h[e - 1]) for h in histories] for e in epochs]
            ax.plot(
                epochs,
                [statistics.fmean(v) for v in per_epoch],
                color=color,
                label=label,
                lw=2,
                marker="o",
                ms=3,
            )
            ax.fill_between(
                epochs,
                [min(v) for v in per_epoch],
                [max(v) for v in per_epoch],
                color=color,
                alpha=0.15,
                lw=0,
            )
    ax_val.set(title="Validation accuracy", xlabel="epoch", ylabel="accuracy (%)")
    ax_gap.set(title="Generalization gap (train − validation)", xlabel="epoch", ylabel="points")
    ax_gap.axhline(0, color="grey", lw=0.8)
    for ax in (ax_val, ax_gap):
        ax.grid(alpha=0.3)
    ax_val.legend(loc="lower right")
    seeds = len({s.seed for s in summaries})
    fig.suptitle(f"LeNet-5 on FashionMNIST, mean over {seeds} seed(s); bands span the seeds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _goal_lines(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        goal = get_variant(row["variant"]).test_goal
        test = 100 * row["test_accuracy"]
        if goal is None:
            lines.append(
                f"- {row['variant']}: {test:.1f}% test (no target: weight decay 0.01 is the "
                "notebook's example of too much regularization)"
            )
        else:
            verdict = "meets" if row["test_accuracy"] >= goal else "misses"
            lines.append(f"- {row['variant']}: {test:.1f}% test, {verdict} the {100 * goal:.0f}% target")
    return lines


def _notebook_lines(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        if row["notebook_val"] is None:
            continue
        d_train = 100 * (row["train_accuracy"] - row["notebook_train"])
        d_val = 100 * (row["val_accuracy"] - row["notebook_val"])
        lines.append(
            f"- {row['variant']}: train {d_train:+.1f} points, validation {d_val:+.1f} points "
            "against the notebook"
        )
    return lines


def write_results(summaries: list[RunSummary], rows: list[dict], path: Path, figure: Path) -> Path:
    seeds = len({s.seed for s in summaries})
    epoch_seconds = {
        row["variant"]: statistics.median(
            h["seconds"]
            for s in summaries
            if s.variant == row["variant"]
            for h in artifacts.read_metadata(s.checkpoint)["history"]
        )
        for row in rows
    }
    versions = artifacts.read_metadata(summaries[0].checkpoint)["versions"]
    fastest = {
        row["variant"]: min(s.seconds for s in summaries if s.variant == row["variant"]) for row in rows
    }
    timing = "\n".join(
        f"| {row['variant']} | {row['epochs']} | {findings.spread(row, 'seconds', 1, 0)} s | "
        f"{fastest[row['variant']]:.0f} s | {epoch_seconds[row['variant']]:.1f} s |"
        for row in rows
    )
    extras = [get_variant(row["variant"]) for row in rows if get_variant(row["variant"]).notebook is None]
    text = f"""# Results: the notebook's five LeNet-5 variants reproduced, and {len(extras)} more regularizers

Generated by `python -m lenet reproduce --seeds {seeds} --publish` (or `make reproduce`), which trains
every registered variant {seeds} time(s) (seeds 0..{seeds - 1}): the original notebook's five
configurations, plus {len(extras)} regularizers the course did not cover:

{chr(10).join(f"- {v.title}: {v.summary}" for v in extras)}

All train on the full 60,000 training images with the same 90/10 train/validation split;
each final model is evaluated once on the 10,000 test images, and once on them mirrored. The seed-0
model of each variant is shipped in `artifacts/pretrained/`, and this file and its figure are
rewritten. Runs already trained are reused, so an interrupted reproduce resumes.

## Accuracy

{markdown_table(rows)}
Accuracies are over whole splits (torchmetrics), not averages of batch accuracies. Train accuracy is
counted while the epoch trains (dropout active), as the notebook did; the gap is train − validation.

![Validation accuracy and generalization gap per epoch]({figure.relative_to(path.parent)})

### What the numbers show

{chr(10).join("- " + line for line in findings.variant_findings(rows))}

### Against the targets (mean test accuracy)

{chr(10).join(_goal_lines(rows))}

### Against the notebook's reported numbers

{chr(10).join(_notebook_lines(rows))}

Where and why the numbers can differ from the notebook's:
- The notebook never measured test accuracy; its "≥ 88%" goal was judged on validation numbers.
  Here the test set is used once per run, after training, and never to choose anything.
- The notebook averaged per-batch accuracies; a smaller last batch weighs as much as a full one.
- Its text says batch 64, its code used 32; these runs use 64 for every variant.
- Its "optimized L2" continued training the already trained L2 model; here it starts fresh
  (weight decay 0.001, 20 epochs). `python -m lenet train --variant l2_optimized --init-from ...`
  reproduces the warm start.
- Its split was unseeded `random_split`, so its validation set differs from ours; its numbers are one
  run each, with no spread. Seed-to-seed spread here is the ± column.

## Time

| Variant | Epochs | Wall time per run (mean ± std) | Fastest run | Median epoch |
|---|---:|---:|---:|---:|
{timing}

Measured on a 2-core x86-64 CPU, no GPU, torch {versions["torch"]} with {versions["cpu_threads"]} threads;
a run's wall time includes validation after every epoch and the final test evaluation. The runs shared
the machine with other work, so the fastest run and the median epoch are the steadier figures.

## Shipped models

`artifacts/pretrained/<variant>.pth` (state_dict, the notebook's `LeNet5V1` layout) and `<variant>.json`
(config, history, train/validation/test accuracy measured at training time, confusion matrix): the
seed-0 run of each variant. The test suite re-evaluates each on the real test set and checks the
accuracy against its metadata.
"""
    path.write_text(text)
    return path


def publish(summaries: list[RunSummary], rows: list[dict], root: Path = REPO_ROOT) -> dict:
    """Write RESULTS.md, docs/validation_curves.png and artifacts/pretrained/ under `root`."""
    figure = plot_curves(summaries, root / "docs" / "validation_curves.png")
    results = write_results(summaries, rows, root / "RESULTS.md", figure)
    shipped = ship_checkpoints(summaries, root / "artifacts" / "pretrained")
    return {"results": str(results), "figure": str(figure), "checkpoints": [str(p) for p in shipped]}
