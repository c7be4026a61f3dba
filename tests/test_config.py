"""Every hyperparameter is declared once (a TrainConfig field and its Knob); what is derived from the
declaration follows it: validation, CLI flags, table columns, sweep choices and legends."""

import dataclasses

import pandas as pd
import pytest

from lenet import tables
from lenet.cli import build_parser
from lenet.config import CONFIG_COLUMNS, KNOBS, SWEEPABLE, TELLING_APART, ConfigError, TrainConfig, applies
from lenet.variants import list_models

BOUNDED = [(name, knob) for name, knob in KNOBS.items() if knob.low is not None]


def _variant_for(name: str) -> str:
    return next(v for v in list_models() if applies(name, v))


@pytest.mark.parametrize("name, knob", BOUNDED, ids=[n for n, _ in BOUNDED])
def test_each_bound_is_the_declared_one(name, knob):
    variant = _variant_for(name)
    step = 1 if knob.kind is int else 1e-9
    for edge, outside, edge_refused in (
        (knob.low, knob.low - step, knob.above_low),
        (knob.high, None if knob.high is None else knob.high + step, knob.below_high),
    ):
        if edge is None:
            continue
        if edge_refused:
            with pytest.raises(ConfigError, match=knob.noun):
                TrainConfig(variant=variant, **{name: knob.kind(edge)}).validated()
        else:
            TrainConfig(variant=variant, **{name: knob.kind(edge)}).validated()
        with pytest.raises(ConfigError, match=f"{knob.noun} must be .*{knob.bounds_text()}"):
            TrainConfig(variant=variant, **{name: knob.kind(outside)}).validated()


def test_a_field_that_needs_a_layer_is_refused_without_it():
    needing = [n for n, k in KNOBS.items() if k.needs]
    assert needing, "the dropout rate needs a dropout layer"
    for name in needing:
        without = next(v for v in list_models() if not applies(name, v))
        value = KNOBS[name].kind(KNOBS[name].low)
        with pytest.raises(ConfigError, match=f"has no {KNOBS[name].needs} layer"):
            TrainConfig(variant=without, **{name: value}).validated()


def _command(name: str):
    return next(a for a in build_parser()._actions if a.dest == "command").choices[name]


def _flags(command: str) -> set[str]:
    return {a.dest for a in _command(command)._actions if a.option_strings}


def test_cli_flags_come_from_the_declaration():
    train, sweep, preset = _flags("train"), _flags("sweep"), _flags("preset")
    shown = " ".join(_command("train").format_help().split())  # --help, as printed
    for name, knob in KNOBS.items():
        assert (name in train) == (knob.flag is not None), name
        assert (name in sweep) == (name in preset) == (knob.flag == "every"), name
        if name in train:
            assert knob.help in shown and "--" + name.replace("_", "-") in shown
    assert {"dropout", "patience", "label_smoothing"} <= train
    assert "(default 12; l2_optimized: 20; from 1 to 200)" in shown  # a variant's own defaults too


def test_sweep_choices_and_columns_come_from_the_declaration():
    sweep = next(a for a in build_parser()._actions if a.dest == "command").choices["sweep"]
    param = next(a for a in sweep._actions if a.dest == "param")
    assert list(param.choices) == list(SWEEPABLE) == [n for n, k in KNOBS.items() if k.sweepable]
    assert set(TELLING_APART) == {n for n, k in KNOBS.items() if k.short}
    assert tuple(n for n, k in KNOBS.items() if k.column) == CONFIG_COLUMNS


def test_the_run_table_has_a_column_per_declared_setting():
    configs = [TrainConfig(), dataclasses.replace(TrainConfig(), weight_decay=0.01)]
    runs = pd.DataFrame(
        [
            {
                "id": i,
                "name": f"r{i}",
                "variant": c.variant,
                "status": "finished",
                "epochs_completed": c.epochs,
                **{k: getattr(c, k) for k in CONFIG_COLUMNS},
                "train_accuracy": 0.9,
                "val_accuracy": 0.85,
                "test_accuracy": 0.84,
                "gap": 0.05,
                "train_seconds": 3.0,
                "trained_on": "local",
            }
            for i, c in enumerate(configs)
        ]
    )
    every = tables.run_table(runs)
    assert {KNOBS[c].label.lower() for c in CONFIG_COLUMNS} <= set(every.columns)
    assert every["test %"].tolist() == pytest.approx([84.0, 84.0])
    compact = tables.run_table(runs, every_setting=False)
    assert "weight decay" in compact.columns and "batch size" not in compact.columns  # only what differs
    assert "trained on" in every.columns and "trained on" not in compact.columns  # all here: no news
    runs.loc[1, "trained_on"] = "ray:10.0.0.7"
    assert tables.run_table(runs, every_setting=False)["trained on"].tolist() == ["local", "ray:10.0.0.7"]
