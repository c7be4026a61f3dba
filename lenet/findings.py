"""Numbers into findings: runs grouped (by variant, or by a swept value) into mean ± std over seeds,
and a few plain sentences computed from them, for RESULTS.md, the CLI and the dashboard alike.

Sentences keep the uncomfortable results and say when a difference is within seed-to-seed noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

from .config import KNOBS

METRICS = ("train_accuracy", "val_accuracy", "test_accuracy", "mirrored_test_accuracy", "gap", "seconds")


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(runs: Iterable[dict], by: str = "variant") -> list[dict]:
    """One row per value of `by` (in first-seen order): mean and std over its runs of each metric.

    Each run needs `by`, `variant`, `seed`, train/val/test accuracy and `seconds`; `gap` is computed.
    """
    groups: dict = {}
    for run in runs:
        groups.setdefault(run[by], []).append({**run, "gap": run["train_accuracy"] - run["val_accuracy"]})
    rows = []
    for key, members in groups.items():
        row = {by: key, "variant": members[0]["variant"], "seeds": len(members)}
        for metric in METRICS:
            values = [m[metric] for m in members if m.get(metric) is not None]
            row[metric], row[metric + "_std"] = mean_std(values) if values else (math.nan, math.nan)
        rows.append(row)
    return rows


def spread(row: dict, metric: str, scale: float = 100, digits: int = 1) -> str:
    """'84.3 ± 0.4' over several seeds; '84.3' over one, which has no spread to show; '–' where
    nothing was measured (a class round's hidden test scores)."""
    if math.isnan(row[metric]):
        return "–"
    text = f"{scale * row[metric]:.{digits}f}"
    return text + (f" ± {scale * row[metric + '_std']:.{digits}f}" if row["seeds"] > 1 else "")


def _pts(value: float) -> str:
    return f"{100 * value:+.1f} points"


ONE_SEED_NOISE = 0.01  # with one seed there is no spread to measure: a point either way is not a finding


def _noise(a: dict, b: dict, metric: str) -> float:
    """Seed-to-seed noise of the difference of two means (std of each, combined)."""
    if min(a["seeds"], b["seeds"]) == 1:
        return ONE_SEED_NOISE
    return math.hypot(a[metric + "_std"], b[metric + "_std"])


def _versus(row: dict, base: dict, metric: str, label: str) -> str:
    diff = row[metric] - base[metric]
    text = f"{label} {_pts(diff)}"
    if min(row["seeds"], base["seeds"]) > 1 and abs(diff) <= _noise(row, base, metric):
        text += f" (within seed-to-seed noise, ±{100 * _noise(row, base, metric):.1f})"
    return text


def variant_findings(rows: list[dict]) -> list[str]:
    """Sentences a teacher can read out about variants compared with the baseline."""
    by = {row["variant"]: row for row in rows}
    # a class round's test scores are hidden until its reveal: then validation speaks alone
    tested = all(not math.isnan(r["test_accuracy"]) for r in rows)
    score, split = ("test_accuracy", "test") if tested else ("val_accuracy", "validation")
    best = max(rows, key=lambda r: r[score])
    widest = max(rows, key=lambda r: r["gap"])
    tightest = min(rows, key=lambda r: abs(r["gap"]))
    lines = [
        f"Best {split} accuracy: {best['variant']} ({100 * best[score]:.1f}%)"
        + ("." if tested else "; the test scores stay hidden until the reveal."),
        f"Largest generalization gap: {widest['variant']} ({100 * widest['gap']:.1f} points)"
        + (f", though it also scores best on {split}." if widest is best and len(rows) > 1 else "."),
        f"Smallest generalization gap: {tightest['variant']} ({100 * tightest['gap']:+.1f} points).",
    ]
    if "baseline" in by:
        base = by["baseline"]
        for row in rows:
            if row is base:
                continue
            sentence = (
                f"{row['variant']} vs baseline: {_versus(row, base, 'gap', 'gap')}, "
                f"{_versus(row, base, 'val_accuracy', 'validation accuracy')}"
                + (f", {_versus(row, base, 'test_accuracy', 'test accuracy')}" if tested else "")
            )
            validates_worse = row["val_accuracy"] < base["val_accuracy"] - _noise(row, base, "val_accuracy")
            if validates_worse and row["train_accuracy"] < base["train_accuracy"] - 0.05:
                sentence += "; training accuracy far lower and validation lower too: the model underfits"
            elif validates_worse and row["gap"] < base["gap"] - _noise(row, base, "gap"):
                sentence += "; the gap shrank by training worse, not by validating better"
            lines.append(sentence + ".")
    mirrored = [r for r in rows if not math.isnan(r.get("mirrored_test_accuracy", math.nan))]
    if mirrored and "baseline" in by:
        best = max(mirrored, key=lambda r: r["mirrored_test_accuracy"])
        lines.append(
            f"On the test images mirrored left-right, {best['variant']} keeps "
            f"{100 * best['mirrored_test_accuracy']:.1f}% where the baseline falls to "
            f"{100 * by['baseline']['mirrored_test_accuracy']:.1f}%."
        )
    if min(row["seeds"] for row in rows) == 1:
        lines.append("One seed per configuration: differences of a point or two may be seed noise.")
    return lines


def sweep_findings(rows: list[dict], param: str) -> list[str]:
    """Sentences about a sweep: the best value on validation, and what the extremes did."""
    best = max(rows, key=lambda r: r["val_accuracy"])
    knob = KNOBS[param].noun
    lines = [
        f"Best {knob} on validation: {best[param]:g} ({100 * best['val_accuracy']:.1f}% validation, "
        f"{100 * best['test_accuracy']:.1f}% test, gap {100 * best['gap']:.1f} points).",
    ]
    low, high = rows[0], rows[-1]
    if low is not high:
        lines.append(
            f"From {knob} {low[param]:g} to {high[param]:g}: gap {100 * low['gap']:.1f} → "
            f"{100 * high['gap']:.1f} points, training accuracy {100 * low['train_accuracy']:.1f}% → "
            f"{100 * high['train_accuracy']:.1f}%."
        )
    close = [
        r
        for r in rows
        if r is not best and best["val_accuracy"] - r["val_accuracy"] <= _noise(r, best, "val_accuracy")
    ]
    if close and min(r["seeds"] for r in rows) > 1:
        lines.append(
            "Within seed-to-seed noise of the best: " + ", ".join(f"{r[param]:g}" for r in close) + "."
        )
    return lines
