"""Experiments: a launch of several runs (a preset, a sweep, repeats over seeds) as one unit in the
store, with what varies between its runs; and reading one back as runs, a table and findings.

The dashboard and `python -m lenet preset | sweep` launch through here; the worker pool trains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace

from . import findings
from .config import KNOBS, SWEEPABLE, ConfigError, TrainConfig
from .presets import PRESETS
from .records import ExperimentRuns, Run, RunStatus
from .store import Store
from .variants import get_variant
from .workspace import Workspace

MAX_SEEDS = 10
MAX_SWEEP_VALUES = 12


def _check_seeds(seeds: int) -> None:
    if not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise ConfigError(f"seeds must be a whole number from 1 to {MAX_SEEDS}, got {seeds!r}")


def launch_preset(
    store: Store, key: str, seeds: int = 1, data_dir: str | None = None, overrides: dict | None = None
) -> int:
    """Queue a preset's runs, repeated over seeds 0..seeds-1, as one experiment; `overrides`
    (e.g. a device) apply to every run."""
    if key not in PRESETS:
        raise ConfigError(f"unknown preset {key!r}; choose one of: {', '.join(PRESETS)}")
    _check_seeds(seeds)
    preset = PRESETS[key]
    configs = [config for seed in range(seeds) for config in preset.configs(seed, overrides)]
    name = preset.title + (f" × {seeds} seeds" if seeds > 1 else "")
    changed = {k: v for k, v in (overrides or {}).items() if v is not None}
    description = preset.description + (  # say what this launch did differently from the preset
        " Here with " + ", ".join(f"{KNOBS[k].noun} {KNOBS[k].show(v)}" for k, v in changed.items()) + "."
        if changed
        else ""
    )
    return store.create_experiment(
        name, "preset", configs, description=description, varies="variant", data_dir=data_dir
    )


def launch_repeats(store: Store, config: TrainConfig, seeds: int, name: str | None = None) -> int:
    """One configuration trained with seeds config.seed .. config.seed + seeds - 1, as one experiment."""
    _check_seeds(seeds)
    configs = [replace(config, seed=config.seed + k).validated() for k in range(seeds)]
    title = name or f"{get_variant(config.variant).title} × {seeds} seeds"
    return store.create_experiment(
        title,
        "repeats",
        configs,
        description=f"The same configuration with {seeds} seeds: how much of a difference is noise.",
        varies="variant",
    )


def parse_values(param: str, text: str) -> list:
    """'0,0.001,0.01' -> [0.0, 0.001, 0.01] for a sweepable parameter; clear errors otherwise."""
    if param not in SWEEPABLE:
        raise ConfigError(f"cannot sweep {param!r}; choose one of: {', '.join(SWEEPABLE)}")
    values = [KNOBS[param].parse(v) for v in text.split(",") if v.strip()]
    if not 2 <= len(values) <= MAX_SWEEP_VALUES:
        raise ConfigError(f"a sweep needs 2 to {MAX_SWEEP_VALUES} values, got {len(values)}")
    if len(set(values)) != len(values):
        raise ConfigError(f"the values repeat: {text!r}")
    return sorted(values)


def launch_sweep(
    store: Store,
    variant: str,
    param: str,
    values: list,
    seeds: int = 1,
    overrides: dict | None = None,
    data_dir: str | None = None,
) -> int:
    """Queue one run per value x seed of `param` for `variant`, as one experiment."""
    _check_seeds(seeds)
    if param not in SWEEPABLE:
        raise ConfigError(f"cannot sweep {param!r}; choose one of: {', '.join(SWEEPABLE)}")
    overrides = {k: v for k, v in (overrides or {}).items() if k != param}
    configs = [
        TrainConfig.for_variant(variant, seed=seed, **overrides, **{param: value})
        for value in values
        for seed in range(seeds)
    ]  # every config is validated here, before anything is stored
    title = get_variant(variant).title
    shown = ", ".join(f"{v:g}" for v in values)
    return store.create_experiment(
        f"{param} sweep of {variant} ({shown})" + (f" × {seeds} seeds" if seeds > 1 else ""),
        "sweep",
        configs,
        description=f"{title} trained with {param} = {shown}; everything else the same.",
        varies=param,
        data_dir=data_dir,
    )


def run_to_completion(
    workspace: Workspace,
    experiment_id: int,
    on_progress: Callable[[list[Run]], None] = lambda runs: None,
) -> list[Run]:
    """Let the worker pool train the experiment's runs; return them when all have ended."""
    ids = sorted(run.id for run in workspace.store.list_runs(experiment_id=experiment_id))
    from .worker import wait_for_runs  # it starts training processes: only when asked to

    return wait_for_runs(workspace, ids, on_progress=on_progress)


def runs_with_history(read: ExperimentRuns) -> list[dict]:
    """The experiment's runs, oldest first, each with its per-epoch history (validation loss too):
    what `--json` prints and what `findings` groups."""
    varies = read.experiment.varies
    result = []
    for run in read.runs:
        history = [asdict(e) for e in read.epochs[run.id]]
        entry = {
            "id": run.id,
            "name": run.name,
            "variant": run.variant,
            "seed": run.config.seed,
            "status": str(run.status),
            "train_accuracy": run.train_accuracy,
            "val_accuracy": run.val_accuracy,
            "test_accuracy": run.test_accuracy,
            "experiment_id": read.experiment.id,
            "seconds": run.train_seconds,
            "history": history,
            "best_epoch": min(history, key=lambda h: h["val_loss"])["epoch"] if history else None,
        }
        if varies and varies != "variant":
            value = getattr(run.config, varies)
            entry.update({"param": varies, "value": value, varies: value})
        result.append(entry)
    return result


def summary(read: ExperimentRuns) -> tuple[list[dict], list[str]]:
    """Mean ± std per variant (or per swept value) over the finished runs, and findings in words."""
    by = read.experiment.by
    finished = [r for r in runs_with_history(read) if r["status"] == RunStatus.FINISHED]
    if not finished:
        return [], []
    rows = findings.aggregate(finished, by=by)
    if by == "variant":
        return rows, findings.variant_findings(rows)
    rows.sort(key=lambda r: r[by])
    return rows, findings.sweep_findings(rows, by)
