import json
import subprocess
import sys

import pytest

from lenet.cli import main
from lenet.models import list_models
from lenet.records import runs_frame


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_json_then_evaluate_gives_the_same_test_accuracy(capsys, idx_dir, workspace):
    code, out, err = run_cli(
        capsys, "train", "--variant", "l2", "--epochs", "2", "--data-dir", idx_dir, "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["config"]["weight_decay"] == 0.01  # the variant's default
    assert len(report["history"]) == 2
    for key in ("train_accuracy", "val_accuracy", "test_accuracy"):
        assert 0 <= report[key] <= 1
    checkpoint = report["checkpoint"]
    assert checkpoint == str(workspace.checkpoint_path(report["run_id"], "l2-s0"))
    code, out, err = run_cli(capsys, "evaluate", checkpoint, "--data-dir", idx_dir, "--json")
    assert code == 0, err
    evaluated = json.loads(out)
    assert evaluated["variant"] == "l2"
    assert evaluated["test_accuracy"] == pytest.approx(report["test_accuracy"], abs=1e-6)
    assert set(evaluated["per_class_accuracy"]) >= {"Sneaker", "Ankle boot"}
    assert 0 <= evaluated["mirrored_test_accuracy"] <= 1


def test_train_saves_in_the_runs_folder_of_lenet_home_by_run_id_and_name(capsys, idx_dir, isolated_home):
    for _ in range(2):  # the same name twice: two runs, two checkpoints
        code, out, _ = run_cli(
            capsys, "train", "--variant", "baseline", "--epochs", "1", "--data-dir", idx_dir, "--name", "demo"
        )
        assert code == 0 and "test" in out and "checkpoint:" in out
    saved = sorted(p.name for p in (isolated_home / "runs").iterdir())
    assert saved == ["0001-demo.json", "0001-demo.pth", "0002-demo.json", "0002-demo.pth"]


def test_diverging_run_exits_non_zero_and_saves_nothing(capsys, idx_dir, workspace):
    code, out, err = run_cli(
        capsys,
        "train",
        "--variant",
        "baseline",
        "--lr",
        "100",
        "--epochs",
        "3",
        "--data-dir",
        idx_dir,
        "--json",
    )
    assert code == 1
    assert json.loads(out)["status"] == "diverged" and "diverged" in err
    assert not workspace.runs_dir.exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["train", "--variant", "resnet"], "unknown variant 'resnet'"),
        (["train", "--variant", "baseline", "--epochs", "0"], "epochs"),
        (["train", "--variant", "baseline", "--epochs", "5000"], "epochs"),
        (["train", "--variant", "l2", "--weight-decay", "-1"], "weight decay"),
        (["train", "--variant", "l2", "--epochs", "ten"], "epochs must be a whole number"),
        (["train"], "--variant"),
        (["evaluate", "does-not-exist.pth"], "no such file"),
        (["reproduce", "--seeds", "0"], "at least 1"),
        (["fly"], "invalid choice"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(capsys, args, needle):
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert needle in err
    assert err.count("\n") == 1 and err.startswith("lenet: error:")
    assert out == ""


def test_in_a_real_process_a_hostile_file_gives_no_traceback(tmp_path):
    evil = tmp_path / "evil.pth"
    evil.write_bytes(b"\x80\x04cos\nsystem\n(Vtouch " + str(tmp_path / "pwned").encode() + b"\ntR.")
    proc = subprocess.run(
        [sys.executable, "-m", "lenet", "evaluate", str(evil)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "refused to load" in proc.stderr
    assert not (tmp_path / "pwned").exists()


def test_missing_dataset_message_in_a_real_process(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "lenet", "train", "--variant", "baseline", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "missing FashionMNIST files" in proc.stderr


def test_reproduce_trains_through_the_store_and_resumes(capsys, idx_dir, workspace, monkeypatch):
    monkeypatch.setenv("LENET_PARALLEL_RUNS", "2")
    args = ["reproduce", "--seeds", "2", "--epochs", "1", "--train-limit", "200", "--data-dir", idx_dir]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    for variant in list_models():
        assert f"| {variant} |" in out
    assert "± " in out and "Notebook val %" in out and "89.2" in out  # baseline's reported val
    code, listed, _ = run_cli(capsys, "runs", "--json")
    runs = json.loads(listed)
    assert len(runs) == 2 * len(list_models())
    assert {(r["status"], r["source"]) for r in runs} == {("finished", "reproduce")}
    assert len({r["worker_pid"] for r in runs}) == 2  # trained by the worker pool, two at once
    mtimes = {p.name: p.stat().st_mtime_ns for p in workspace.runs_dir.glob("*.pth")}
    assert len(mtimes) == len(runs)

    code, again, err = run_cli(capsys, *args)
    assert code == 0 and again == out  # the same table, from the same runs
    assert len(runs_frame(workspace.store.list_runs())) == len(runs)  # nothing queued again
    assert {p.name: p.stat().st_mtime_ns for p in workspace.runs_dir.glob("*.pth")} == mtimes


def test_bench_reports_both_pipelines(capsys, idx_dir):
    code, out, err = run_cli(
        capsys, "bench", "--steps", "4", "--rounds", "1", "--data-dir", idx_dir, "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["ours_images_per_s"] > 0 and result["notebook_images_per_s"] > 0
    assert result["ratio"] == pytest.approx(result["ours_images_per_s"] / result["notebook_images_per_s"])
    assert [row["variant"] for row in result["variants"]] == list_models()
    for row in result["variants"]:
        assert row["images_per_s"] > 0
        # per image, counted by hand: forward 416,520 multiply-adds (conv1 117,600, conv2 240,000, the
        # linear layers 58,920) = 0.833 MFLOP; backward, the weight gradients (0.833) and the input
        # gradients of every layer but conv1 (0.598): 2.264 MFLOP in all
        assert row["gflops"] == pytest.approx(row["images_per_s"] * 2.264e-3, rel=1e-3)
        assert row["share_of_sgemm"] == pytest.approx(row["gflops"] / result["sgemm_gflops"])
    stacked = result["stacked"]  # as the pool trains the quick demo: stacked, at one thread
    assert stacked["runs"] == ["baseline", "dropout", "l2"]
    assert stacked["together_images_per_s"] > 0 and stacked["alone_images_per_s"] > 0
