"""Experiments: presets, sweeps and repeats as one unit in the store, read back as runs and findings."""

import json
import os

import pytest

from lenet import experiments, findings
from lenet.cli import main
from lenet.models import list_models
from lenet.presets import PRESETS, Preset
from lenet.records import runs_frame
from lenet.store import RunStateError
from lenet.train import ConfigError, TrainConfig

from conftest import finished_weight_decay_sweep, train_in_process, train_queued


def test_a_preset_with_repeats_is_one_experiment_of_queued_runs(workspace):
    experiment_id = experiments.launch_preset(workspace.store, "quick_demo", seeds=3)
    runs = runs_frame(workspace.store.list_runs(experiment_id=experiment_id))
    assert len(runs) == 3 * len(list_models())
    assert sorted(runs["seed"].unique()) == [0, 1, 2] and set(runs["status"]) == {"queued"}
    assert set(runs["train_limit"]) == {PRESETS["quick_demo"].overrides["train_limit"]}
    experiment = workspace.store.get_experiment(experiment_id)
    assert experiment.name == "Quick class demo × 3 seeds" and experiment.varies == "variant"
    assert (experiment.runs, experiment.active, experiment.finished) == (len(runs), len(runs), 0)
    with pytest.raises(ConfigError, match="unknown preset 'nope'; choose one of: quick_demo"):
        experiments.launch_preset(workspace.store, "nope")
    with pytest.raises(ConfigError, match="seeds must be"):
        experiments.launch_preset(workspace.store, "quick_demo", seeds=0)
    assert len(workspace.store.list_experiments()) == 1


def test_a_sweep_varies_one_value_and_refuses_bad_ones_before_storing_anything(workspace):
    values = experiments.parse_values("weight_decay", "0.01, 0, 0.001")
    assert values == [0.0, 0.001, 0.01]
    with pytest.raises(ConfigError, match="weight decay must be between 0 and 1"):
        experiments.launch_sweep(workspace.store, "l2", "weight_decay", [0.001, 5.0])
    with pytest.raises(ConfigError, match="no dropout layer"):
        experiments.launch_sweep(workspace.store, "baseline", "dropout", [0.1, 0.5])
    assert runs_frame(workspace.store.list_runs()).empty and not workspace.store.list_experiments()
    experiment_id = experiments.launch_sweep(
        workspace.store, "dropout", "dropout", [0.0, 0.5, 0.9], seeds=2, overrides={"epochs": 3}
    )
    runs = runs_frame(workspace.store.list_runs(experiment_id=experiment_id)).sort_values("id")
    assert runs["dropout"].tolist() == [0.0, 0.0, 0.5, 0.5, 0.9, 0.9]
    assert runs["seed"].tolist() == [0, 1] * 3 and set(runs["epochs"]) == {3}
    assert runs["name"].iloc[2] == "dropout-dropout=0.5-s0"


@pytest.mark.parametrize(
    "param, text, match",
    [
        ("lr", "0.1,0.2", "cannot sweep 'lr'"),
        ("epochs", "5,ten", "whole number"),
        ("weight_decay", "0.1", "2 to 12 values"),
        ("weight_decay", "0.1,0.1", "repeat"),
    ],
)
def test_sweep_values_are_checked(param, text, match):
    with pytest.raises(ConfigError, match=match):
        experiments.parse_values(param, text)


def test_experiments_are_renamed_and_deleted_with_their_runs_and_files(workspace, idx_dir):
    store = workspace.store
    experiment_id = experiments.launch_sweep(
        store, "l2", "weight_decay", [0.0, 0.01], overrides={"epochs": 1}, data_dir=str(idx_dir)
    )
    train_queued(workspace, experiment_id)
    other = train_in_process(workspace, TrainConfig(epochs=1), idx_dir)  # not in the experiment
    checkpoints = runs_frame(store.list_runs(experiment_id=experiment_id))["checkpoint"].tolist()
    assert all(os.path.exists(c) for c in checkpoints)
    store.rename_experiment(experiment_id, "  gentle or strong L2 ")
    assert store.get_experiment(experiment_id).name == "gentle or strong L2"
    with pytest.raises(RunStateError, match="needs a name"):
        store.rename_experiment(experiment_id, " ")
    store.delete_experiment(experiment_id)
    assert store.get_experiment(experiment_id) is None
    assert runs_frame(store.list_runs())["id"].tolist() == [other]
    assert not any(os.path.exists(c) for c in checkpoints)
    with pytest.raises(RunStateError, match="does not exist"):
        store.delete_experiment(experiment_id)


def test_an_experiment_with_a_run_training_is_not_deleted(workspace):
    experiment_id = experiments.launch_preset(workspace.store, "quick_demo")
    workspace.store.claim_next(worker_pid=os.getpid())
    with pytest.raises(RunStateError, match="1 run\\(s\\) training; stop them"):
        workspace.store.delete_experiment(experiment_id)
    assert len(runs_frame(workspace.store.list_runs(experiment_id=experiment_id))) == len(list_models())


def test_a_finished_sweep_reads_back_with_histories_and_findings(workspace, idx_dir):
    experiment_id = finished_weight_decay_sweep(workspace, idx_dir, [0.0, 0.5])
    runs = experiments.runs_with_history(workspace.store.read_experiment(experiment_id))
    assert [(r["param"], r["value"], r["seed"]) for r in runs] == [
        ("weight_decay", 0.0, 0),
        ("weight_decay", 0.0, 1),
        ("weight_decay", 0.5, 0),
        ("weight_decay", 0.5, 1),
    ]
    for run in runs:
        assert [h["epoch"] for h in run["history"]] == [1, 2] and all("val_loss" in h for h in run["history"])
        assert run["best_epoch"] in (1, 2) and 0 <= run["test_accuracy"] <= 1
    rows, sentences = experiments.summary(workspace.store.read_experiment(experiment_id))
    assert [r["weight_decay"] for r in rows] == [0.0, 0.5] and {r["seeds"] for r in rows} == {2}
    assert sentences[0].startswith("Best weight decay on validation:")


def _row(variant, train, val, test, seeds=3, std=0.005):
    row = {
        "variant": variant,
        "seeds": seeds,
        "train_accuracy": train,
        "val_accuracy": val,
        "test_accuracy": test,
    }
    row["gap"] = train - val
    for key in ("train_accuracy", "val_accuracy", "test_accuracy", "gap"):
        row[key + "_std"] = std
    return row


def test_findings_keep_the_uncomfortable_results_and_name_the_noise():
    rows = [
        _row("baseline", 0.96, 0.80, 0.79),
        _row("dropout", 0.88, 0.803, 0.80),  # gap shrinks; validation within noise of the baseline
        _row("l2", 0.85, 0.78, 0.78),  # underfits
        _row("batch_norm", 1.0, 0.825, 0.82),  # best test accuracy, and the largest gap
    ]
    text = findings.variant_findings(rows)
    assert text[0] == "Best test accuracy: batch_norm (82.0%)."
    assert (
        text[1] == "Largest generalization gap: batch_norm (17.5 points), though it also scores best on test."
    )
    dropout = next(t for t in text if t.startswith("dropout vs baseline"))
    assert (
        "gap -8.3 points" in dropout
        and "validation accuracy +0.3 points (within seed-to-seed noise" in dropout
    )
    assert "underfits" not in dropout  # its training accuracy is counted with dropout on
    assert "the model underfits" in next(t for t in text if t.startswith("l2 vs"))
    one_seed = findings.variant_findings([_row("baseline", 0.9, 0.8, 0.8, seeds=1)])
    assert "One seed per configuration" in one_seed[-1]


def test_cli_preset_lists_and_runs_an_experiment_to_completion(capsys, workspace, idx_dir, monkeypatch):
    assert main(["preset", "--list"]) == 0
    assert "quick_demo" in capsys.readouterr().out
    # the same preset, made tiny: the runs are created here, so the workers train exactly these
    tiny = Preset("quick_demo", "Quick class demo", "tiny", {"epochs": 2, "train_limit": 100})
    monkeypatch.setitem(PRESETS, "quick_demo", tiny)
    monkeypatch.setenv("LENET_PARALLEL_RUNS", "2")
    assert main(["preset", "quick_demo", "--seeds", "2", "--data-dir", str(idx_dir), "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert len(runs) == 2 * len(list_models())
    assert {r["status"] for r in runs} == {"finished"} and {r["seed"] for r in runs} == {0, 1}
    for run in runs:
        assert {"variant", "seed", "train_accuracy", "val_accuracy", "test_accuracy", "history"} <= set(run)
        assert len(run["history"]) == 2 and "val_loss" in run["history"][0]
    assert main(["runs", "--json"]) == 0
    assert {r["experiment_id"] for r in json.loads(capsys.readouterr().out)} == {runs[0]["experiment_id"]}


def test_cli_sweep_prints_one_json_list_of_runs(capsys, workspace, idx_dir, monkeypatch):
    monkeypatch.setenv("LENET_PARALLEL_RUNS", "2")
    args = ["sweep", "--variant", "dropout", "--param", "dropout", "--values", "0,0.5", "--seeds", "2"]
    code = main([*args, "--epochs", "1", "--train-limit", "100", "--data-dir", str(idx_dir), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    runs = json.loads(out)
    assert [(r["variant"], r["param"], r["value"], r["seed"]) for r in runs] == [
        ("dropout", "dropout", 0.0, 0),
        ("dropout", "dropout", 0.0, 1),
        ("dropout", "dropout", 0.5, 0),
        ("dropout", "dropout", 0.5, 1),
    ]
    assert all(r["dropout"] == r["value"] and len(r["history"]) == 1 for r in runs)
    assert main(["sweep", "--variant", "l2", "--param", "weight_decay", "--values", "0,7"]) == 2
    assert "weight decay must be between 0 and 1" in capsys.readouterr().err


def test_cli_sweeps_label_smoothing_of_any_variant(capsys, workspace, idx_dir):
    args = ["sweep", "--variant", "baseline", "--param", "label_smoothing", "--values", "0,0.2"]
    code = main([*args, "--epochs", "1", "--train-limit", "100", "--data-dir", str(idx_dir), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [(r["param"], r["value"], r["status"]) for r in json.loads(out)] == [
        ("label_smoothing", 0.0, "finished"),
        ("label_smoothing", 0.2, "finished"),
    ]
    assert main([*args[:-1], "0,0.7"]) == 2
    assert "label smoothing must be between 0 and 0.5" in capsys.readouterr().err


def test_a_preset_launched_with_overrides_says_so(workspace):
    experiment_id = experiments.launch_preset(workspace.store, "quick_demo", overrides={"epochs": 6})
    experiment = workspace.store.get_experiment(experiment_id)
    assert experiment.description.endswith("Here with epochs 6.")
    assert {run.config.epochs for run in workspace.store.list_runs(experiment_id=experiment_id)} == {6}


def test_one_run_repeated_over_seeds_is_one_experiment(workspace):
    config = TrainConfig.for_variant("dropout", dropout=0.3, seed=5, epochs=4)
    experiment_id = experiments.launch_repeats(workspace.store, config, seeds=3)
    runs = runs_frame(workspace.store.list_runs(experiment_id=experiment_id)).sort_values("id")
    assert runs["seed"].tolist() == [5, 6, 7]
    assert set(runs["dropout"]) == {0.3} and set(runs["epochs"]) == {4}
    assert workspace.store.get_experiment(experiment_id).name == "Dropout × 3 seeds"
