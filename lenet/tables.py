"""The tables people read: every run with its settings and scores (Results, its CSV, `lenet runs`),
and an experiment's mean ± std per variant or swept value. Labelled DataFrames, built from the
declared hyperparameters, so that a new field is a new column everywhere at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from .config import CONFIG_COLUMNS, KNOBS
from .findings import spread

# A run's own columns, before its settings
RUN_FACTS = {
    "id": "run",
    "name": "name",
    "variant": "variant",
    "status": "status",
    "epochs_completed": "epochs done",
}
# ... and after them: fractions shown as percentages, then the time it took
SCORES = {
    "train_accuracy": "train %",
    "val_accuracy": "validation %",
    "test_accuracy": "test %",
    "gap": "gap (train − val) %",
}
TIME = {"train_seconds": "time (s)"}
WHERE = {"trained_on": "trained on"}  # "local", "local, 3 together" (stacked) or a Ray node
PERCENT_COLUMNS = tuple(SCORES.values())
NUMBER_COLUMNS = (*PERCENT_COLUMNS, *TIME.values())


def run_table(runs: pd.DataFrame, every_setting: bool = True) -> pd.DataFrame:
    """One labelled row per run (`runs` as `runs_frame` builds it). Every setting (the CSV), or
    only those that differ between these runs (what fits on a screen)."""
    settings = [
        c for c in CONFIG_COLUMNS if every_setting or runs[c].astype(str).nunique() > 1 or c == "epochs"
    ]
    # where they trained: on a screen only once some run trained elsewhere than here, or stacked
    where = WHERE if every_setting or set(runs["trained_on"].dropna()) - {"local"} else {}
    labels = RUN_FACTS | {c: KNOBS[c].label.lower() for c in settings} | SCORES | TIME | where
    table = runs[list(labels)].rename(columns=labels)
    for column in PERCENT_COLUMNS:
        table[column] = table[column].astype(float) * 100
    return table


def summary_table(rows: list[dict], by: str) -> pd.DataFrame:
    """Mean ± std per variant or swept value (from `findings.aggregate`), as text a class can read;
    one seed shows one number, since it has no spread."""
    import pandas as pd

    shown = {
        "train_accuracy": "train %",
        "val_accuracy": "validation %",
        "test_accuracy": "test %",
        "gap": "gap (points)",
    }
    return pd.DataFrame(
        {
            (by if by == "variant" else KNOBS[by].label.lower()): row[by]
            if by == "variant"
            else f"{row[by]:g}",
            "seeds": row["seeds"],
            **{label: spread(row, key) for key, label in shown.items()},
        }
        for row in rows
    )


def percent(value) -> str:
    """0.8734 -> '87.3%'; a missing value -> '–'."""
    return "–" if value is None or value != value else f"{100 * value:.1f}%"


def duration(seconds) -> str:
    """75 -> '1 min 15 s': an ETA or a run's time as a class reads it."""
    if seconds is None or seconds != seconds:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
