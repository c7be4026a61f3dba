"""Shared fixtures: small, real IDX files written into tmp_path, an isolated workspace per test, and
runs trained once per session and copied into each test's workspace."""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from lenet import data, experiments
from lenet.records import RunStatus
from lenet.runs import execute_run
from lenet.train import TrainConfig
from lenet.worker import ENV_STANDBY
from lenet.workspace import Workspace

STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    """Write a uint8 array as an IDX file (magic 0x08 = ubyte, then ndim), optionally gzipped."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path


def synthetic_images(labels: np.ndarray, seed: int) -> np.ndarray:
    """Easy-to-learn 28x28 images: class k is a bright horizontal band at rows 2k+2..2k+6, plus noise."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 40, size=(len(labels), 28, 28), dtype=np.uint8)
    for i, k in enumerate(labels):
        images[i, 2 * k + 2 : 2 * k + 6, 4:24] = rng.integers(180, 255)
    return images


def make_dataset_dir(directory: Path, n_train: int = 600, n_test: int = 200, compress: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    train_labels = rng.integers(0, 10, n_train).astype(np.uint8)
    test_labels = rng.integers(0, 10, n_test).astype(np.uint8)
    write_idx(directory / STEMS["train_images"], synthetic_images(train_labels, 1), compress)
    write_idx(directory / STEMS["train_labels"], train_labels, compress)
    write_idx(directory / STEMS["test_images"], synthetic_images(test_labels, 2), compress)
    write_idx(directory / STEMS["test_labels"], test_labels, compress)
    return directory


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own artifacts home and no ambient dataset settings, and a dashboard
    (AppTest's or a served one) starts no warm workers unless the test asks for them."""
    home = tmp_path / "home"
    monkeypatch.setenv("LENET_HOME", str(home))
    monkeypatch.setenv(ENV_STANDBY, "0")
    monkeypatch.delenv(data.ENV_DIR, raising=False)
    monkeypatch.delenv(data.ENV_DOWNLOAD, raising=False)
    return home


@pytest.fixture
def workspace(isolated_home) -> Workspace:
    return Workspace(isolated_home)


@pytest.fixture
def idx_dir(tmp_path) -> Path:
    return make_dataset_dir(tmp_path / "fmnist")


def train_in_process(workspace: Workspace, config: TrainConfig, data_dir: Path, **enqueue) -> int:
    """Queue a run, claim it as a worker would and train it here, through the run service."""
    run_id = workspace.store.enqueue(config, data_dir=str(data_dir), **enqueue)
    assert workspace.store.claim_next(os.getpid(), max_running=100) == run_id
    execute_run(workspace, run_id)
    return run_id


def train_queued(workspace: Workspace, experiment_id: int) -> None:
    """Train an experiment's queued runs here, oldest first, as the worker pool would."""
    store = workspace.store
    for run in sorted(store.list_runs((RunStatus.QUEUED,), experiment_id=experiment_id), key=lambda r: r.id):
        assert store.claim_next(os.getpid(), max_running=100) == run.id
        execute_run(workspace, run.id)


def finished_weight_decay_sweep(workspace: Workspace, data_dir: Path, values) -> int:
    """An L2 weight-decay sweep over `values`, 2 seeds of 2 epochs each, trained here; its id."""
    experiment_id = experiments.launch_sweep(
        workspace.store,
        "l2",
        "weight_decay",
        values,
        seeds=2,
        overrides={"epochs": 2},
        data_dir=str(data_dir),
    )
    train_queued(workspace, experiment_id)
    return experiment_id


def wait_until(predicate, timeout=120.0, every=0.1):
    """The predicate's first truthy value, polled; an AssertionError once `timeout` has passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")


def free_port() -> int:
    """A loopback TCP port nobody listens on (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory) -> Path:
    """A workspace with two finished runs (baseline, l2; 2 epochs on synthetic data), trained once."""
    root = tmp_path_factory.mktemp("trained")
    data_dir = make_dataset_dir(root / "fmnist")
    workspace = Workspace(root / "home")
    for variant in ("baseline", "l2"):
        train_in_process(workspace, TrainConfig.for_variant(variant, epochs=2, batch_size=32), data_dir)
    return workspace.home


@pytest.fixture
def trained(trained_template, workspace) -> Workspace:
    """This test's own copy of the trained workspace (checkpoint paths are stored relative)."""
    shutil.copytree(trained_template, workspace.home, dirs_exist_ok=True)
    return workspace


@pytest.fixture
def small_splits(idx_dir) -> data.Splits:
    return data.make_splits(data.load_raw(idx_dir))


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real FashionMNIST (Debian package or $FASHION_MNIST_DIR); CI requires it to be there."""
    candidate = Path(os.environ.get(data.ENV_DIR) or data.DEBIAN_DIR)
    if not all(data.find_file(candidate, stem) for stem in STEMS.values()):
        if os.environ.get("LENET_REQUIRE_REAL_DATA"):
            pytest.fail(f"real FashionMNIST required but not found in {candidate}")
        pytest.skip("real FashionMNIST not installed (apt-get install dataset-fashion-mnist)")
    return candidate


@pytest.fixture(scope="session")
def real_raw(real_data_dir) -> data.RawDataset:
    return data.load_raw(real_data_dir)


@pytest.fixture(scope="session")
def real_test(real_data_dir) -> data.TestImages:
    return data.load_test(real_data_dir)
