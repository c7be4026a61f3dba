"""The run queue drained by a Ray cluster of two nodes: the head on this machine's end of a veth
pair, the worker node in a network namespace of its own, as another machine on the lab's network
(benchmarks/ray_cluster.py). Needs Ray (`make ray`) and root; CI has both ($LENET_REQUIRE_RAY)."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest
import torch
from test_notebook_compat import LeNet5V1

from benchmarks.netns import NamespaceUnavailable
from benchmarks.ray_cluster import HEAD, WORKER, RayCluster
from lenet import artifacts, experiments, rounds
from lenet.records import RunStatus
from lenet.train import TrainConfig
from lenet.worker import ensure_workers, wait_for_runs
from lenet.workspace import REPO_ROOT, Workspace

from conftest import wait_until

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The dispatchers run in processes of their own: this one never imports Ray."""
    if importlib.util.find_spec("ray") is None:
        if os.environ.get("LENET_REQUIRE_RAY"):  # CI: a missing Ray fails
            pytest.fail("Ray is required here but not installed: make ray")
        pytest.skip("Ray is not installed: make ray")
    try:
        with RayCluster(tmp_path_factory.mktemp("ray")) as running:
            yield running
    except NamespaceUnavailable as e:
        if os.environ.get("LENET_REQUIRE_RAY"):
            raise
        pytest.skip(str(e))


@pytest.fixture
def on_cluster(cluster, workspace, monkeypatch):
    """This test's workspace, its runs trained on the cluster (a dispatcher of its own)."""
    monkeypatch.setenv("LENET_RAY_ADDRESS", cluster.address)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    yield workspace
    for pid in workspace.store.live_workers():  # the dispatcher waits a minute for more work
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 15)


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lenet", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, **(env or {})},
    )


def test_a_sweep_trains_on_the_cluster_live_and_its_checkpoints_load_into_the_notebooks_model(
    on_cluster, idx_dir
):
    store = on_cluster.store
    experiment_id = experiments.launch_sweep(
        store,
        "l2",
        "weight_decay",
        [0.0, 0.01],
        seeds=2,
        overrides={"epochs": 3, "train_limit": 200},
        data_dir=str(idx_dir),
    )
    assert len(ensure_workers(on_cluster)) == 1  # one dispatcher, not a local pool
    runs = wait_for_runs(on_cluster, [r.id for r in store.list_runs(experiment_id=experiment_id)])
    assert {r.status for r in runs} == {RunStatus.FINISHED}
    assert {r.trained_on for r in runs} <= {f"ray:{HEAD}", f"ray:{WORKER}"}
    assert f"ray:{WORKER}" in {r.trained_on for r in runs}, "the worker node trained none of them"
    for run in runs:
        assert len(store.epoch_metrics(run.id)) == 3 and len(store.step_metrics(run.id)) > 0
        metadata = artifacts.read_metadata(run.checkpoint)
        assert metadata["trained_on"] == run.trained_on
        LeNet5V1().load_state_dict(torch.load(run.checkpoint, weights_only=True), strict=True)


def test_a_stop_through_the_store_stops_the_remote_run_and_keeps_its_last_epoch(on_cluster, idx_dir):
    store = on_cluster.store
    run_id = store.enqueue(TrainConfig(epochs=200, train_limit=200), data_dir=str(idx_dir))
    ensure_workers(on_cluster)
    # its metrics arrive while it trains, not at the end
    live = wait_until(lambda: (r := store.get_run(run_id)).epochs_completed >= 1 and r, 240)
    assert live.status == RunStatus.RUNNING and live.trained_on.startswith("ray:")
    store.request_stop(run_id)
    asked = time.monotonic()
    run = wait_until(lambda: (r := store.get_run(run_id)).status != RunStatus.RUNNING and r, 60)
    assert time.monotonic() - asked < 10  # within the seconds a local stop takes
    assert run.status == RunStatus.STOPPED and run.epochs_completed < 200
    assert run.has_checkpoint and "kept the weights after epoch" in run.message


def test_runs_json_says_where_each_run_trained(on_cluster, idx_dir):
    env = {"LENET_HOME": str(on_cluster.home)}
    local = _cli(
        "train",
        "--variant",
        "baseline",
        "--epochs",
        "1",
        "--train-limit",
        "200",
        "--data-dir",
        str(idx_dir),
        "--json",
        env=env,
    )
    assert local.returncode == 0, local.stderr
    queued = on_cluster.store.enqueue(TrainConfig(epochs=1, train_limit=200), data_dir=str(idx_dir))
    wait_for_runs(on_cluster, [queued])
    listed = {run["id"]: run for run in json.loads(_cli("runs", "--json", env=env).stdout)}
    assert listed[json.loads(local.stdout)["run_id"]]["trained_on"] == "local"
    assert listed[queued]["trained_on"] in (f"ray:{HEAD}", f"ray:{WORKER}")


def test_a_class_round_run_trains_on_the_cluster_with_its_test_score_hidden(on_cluster, idx_dir, monkeypatch):
    store = on_cluster.store
    game = store.get_round(rounds.open_round(store, "on the cluster", train_limit=200, epochs=2))
    student = rounds.join(store, game.id, "Ada")
    monkeypatch.setenv("LENET_DATA_DIR", str(idx_dir))
    run_id = rounds.submit(store, student.token, "dropout")
    (run,) = wait_for_runs(on_cluster, [run_id])
    assert run.status == RunStatus.FINISHED and run.trained_on.startswith("ray:")
    assert run.public_accuracy is not None and run.test_accuracy is None  # hidden until the reveal
    assert artifacts.read_metadata(run.checkpoint)["test_accuracy"] is None


def test_killing_the_worker_nodes_raylet_mid_run_leaves_no_run_running(cluster, on_cluster, idx_dir):
    """Last in this module: the cluster has one node afterwards."""
    store = on_cluster.store
    config = TrainConfig(epochs=200, train_limit=200)
    ids = [store.enqueue(dataclasses.replace(config, seed=seed), data_dir=str(idx_dir)) for seed in (1, 2)]
    ensure_workers(on_cluster)

    def on_the_worker_node():
        runs = [store.get_run(i) for i in ids]
        return next((r for r in runs if r.trained_on == f"ray:{WORKER}" and r.epochs_completed >= 1), None)

    doomed = wait_until(on_the_worker_node, 240)
    cluster.kill_worker_raylet()
    killed = time.monotonic()
    ended = wait_until(lambda: (r := store.get_run(doomed.id)).status != RunStatus.RUNNING and r, 120)
    print(f"the worker node's run ended {time.monotonic() - killed:.1f} s after its raylet was killed")
    assert ended.status == RunStatus.INTERRUPTED and "was lost mid-run" in ended.message
    (survivor,) = [i for i in ids if i != doomed.id]
    store.request_stop(survivor)
    wait_until(lambda: not store.get_run(survivor).status.active, 60)
    assert not store.list_runs((RunStatus.RUNNING,))
    assert store.get_run(doomed.id).attempts == 1  # not retried: trained once, ended once
    assert Workspace(on_cluster.home).store.get_run(doomed.id).status == RunStatus.INTERRUPTED
