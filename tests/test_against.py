"""benchmarks.against: the older commit's checkout, and the figures it reports."""

import os
import subprocess
import sys

import pytest

from benchmarks.against import THIS, older_checkout, summarize
from benchmarks.viewers import stop_workers
from benchmarks.watching import wait_for_warm_pool
from lenet.worker import ENV_PARALLEL, PoolSettings, ensure_workers
from lenet.workspace import ENV_HOME, REPO_ROOT, Workspace

from conftest import make_dataset_dir


def worktrees() -> str:
    return subprocess.run(
        ["git", "-C", str(REPO_ROOT), "worktree", "list"], capture_output=True, text=True, check=True
    ).stdout


def test_the_older_checkout_is_that_commit_with_this_venv_and_leaves_no_worktree():
    head = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    with pytest.raises(RuntimeError, match="a measure failed"), older_checkout("HEAD") as folder:
        checked_out = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert checked_out == head
        assert (folder / "lenet" / "train.py").is_file()
        assert (folder / ".venv").resolve() == (REPO_ROOT / ".venv").resolve()
        assert str(folder) in worktrees()
        raise RuntimeError("a measure failed")  # the worktree goes all the same
    assert not folder.exists()
    assert str(folder) not in worktrees()


def test_figures_are_per_run_medians_and_the_older_time_over_this_one():
    def side(seconds: float, runs: int) -> dict:
        return {"headless": {"seconds": seconds, "runs": runs}}

    rounds = [
        {THIS: side(40.0, 8), "old": side(70.0, 7)},  # 5.0 against 10.0 s a run
        {THIS: side(48.0, 8), "old": side(77.0, 7)},  # 6.0 against 11.0
        {THIS: side(64.0, 8), "old": side(91.0, 7)},  # 8.0 against 13.0
    ]
    result = summarize(rounds)["headless"]
    assert result["s_per_run"] == {THIS: 6.0, "old": 11.0}
    assert result["speedup"] == pytest.approx(11.0 / 6.0)


def test_stop_workers_ends_the_workers_of_that_home_only(tmp_path):
    def worker(home) -> subprocess.Popen:  # a process that looks like `python -m lenet worker`
        command = [sys.executable, "-c", "import time; time.sleep(60)", "lenet", "worker"]
        return subprocess.Popen(command, env={**os.environ, ENV_HOME: str(home)})

    ours, another = worker(tmp_path / "a"), worker(tmp_path / "b")
    try:
        stop_workers(tmp_path / "a")
        assert ours.wait(timeout=10) == -15
        assert another.poll() is None  # another home's worker goes on
    finally:
        for process in (ours, another):
            process.kill()
            process.wait()


def test_the_watching_benchmark_finds_the_dashboards_pool_warm(tmp_path, monkeypatch):
    """`make bench`'s warm-pool round waits for the pool that the dashboard keeps warm, by what its
    workers log: a change to that line once made the benchmark wait 120 s and give up."""
    home = tmp_path / "home"
    monkeypatch.setenv(ENV_HOME, str(home))
    monkeypatch.setenv(ENV_PARALLEL, "2")
    monkeypatch.setenv("FASHION_MNIST_DIR", str(make_dataset_dir(tmp_path / "fmnist")))
    workspace = Workspace(home)
    try:
        assert len(ensure_workers(workspace, PoolSettings(2, 1), standby=True)) == 2  # as the dashboard does
        wait_for_warm_pool(home)
        assert workspace.worker_log.read_text().count("FashionMNIST decoded") == 2
    finally:
        stop_workers(home)
