"""The run store, the run service and the worker pool: runs survive refreshes, stops, kills and
concurrency."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lenet import artifacts
from lenet.cli import main
from lenet.records import runs_frame
from lenet.runs import execute_run
from lenet.schema import MIGRATIONS
from lenet.store import RunStateError, Store
from lenet.train import TrainConfig
from lenet.worker import STANDBY_S, STANDING_BY, PoolSettings, ensure_workers

from conftest import wait_until

TINY = {"epochs": 1, "train_limit": 64, "batch_size": 32}


@pytest.fixture
def store(workspace):
    return workspace.store


@pytest.fixture
def worker_env(idx_dir, isolated_home, monkeypatch):
    monkeypatch.setenv("LENET_HEARTBEAT_TIMEOUT", "3")  # notice a dead worker fast, here and in workers
    monkeypatch.setenv("FASHION_MNIST_DIR", str(idx_dir))  # and for the workers ensure_workers starts
    return {
        **os.environ,
        "LENET_HOME": str(isolated_home),
        "FASHION_MNIST_DIR": str(idx_dir),
        "LENET_HEARTBEAT_TIMEOUT": "3",
    }


def start_worker(env, parallel_runs=1):
    return subprocess.Popen(
        [sys.executable, "-m", "lenet", "worker", "--idle-exit", "1", "--poll", "0.1"],
        env={**env, "LENET_PARALLEL_RUNS": str(parallel_runs)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_enqueue_list_and_cancel(store):
    a = store.enqueue(TrainConfig.for_variant("l2"))
    b = store.enqueue(TrainConfig.for_variant("dropout", epochs=3), name="my dropout")
    runs = runs_frame(store.list_runs())
    assert list(runs["id"]) == [b, a]  # newest first
    assert runs.set_index("id").loc[a, "weight_decay"] == 0.01
    assert runs.set_index("id").loc[b, "name"] == "my dropout"
    assert set(runs["status"]) == {"queued"}
    store.cancel(a)
    assert list(runs_frame(store.list_runs())["id"]) == [b]
    with pytest.raises(RunStateError, match="not queued"):
        store.cancel(a)


def test_enqueue_refuses_a_bad_config_and_stores_nothing(store):
    with pytest.raises(ValueError):
        store.enqueue(TrainConfig(epochs=0))
    assert runs_frame(store.list_runs()).empty


def test_claim_is_oldest_first_and_respects_the_running_limit(store):
    first, second = store.enqueue(TrainConfig()), store.enqueue(TrainConfig())
    assert store.claim_next(worker_pid=1, max_running=1) == first
    assert store.claim_next(worker_pid=2, max_running=1) is None  # limit reached
    assert store.claim_next(worker_pid=2, max_running=2) == second
    assert store.claim_next(worker_pid=3, max_running=5) is None  # queue empty


def test_a_stale_heartbeat_reads_as_interrupted(store, monkeypatch):
    monkeypatch.setenv("LENET_HEARTBEAT_TIMEOUT", "0.3")
    run_id = store.enqueue(TrainConfig())
    store.claim_next(worker_pid=99)
    assert store.get_run(run_id).status == "running"
    time.sleep(0.4)
    assert store.get_run(run_id).status == "interrupted"
    assert runs_frame(store.list_runs())["status"].tolist() == ["interrupted"]
    assert store.mark_interrupted() == 1
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"
    # a dead run no longer counts against the limit
    store.enqueue(TrainConfig())
    assert store.claim_next(worker_pid=100, max_running=1) is not None


def test_schema_is_versioned_and_reopening_keeps_data(store):
    run_id = store.enqueue(TrainConfig())
    assert store.schema_version() == len(MIGRATIONS)
    assert Store(store.path).get_run(run_id).variant == "baseline"
    # a database written by the first version (schema 1) is upgraded, its runs kept
    old = store.path.with_name("v1.db")
    with sqlite3.connect(old) as db:
        db.executescript(MIGRATIONS[0])
        db.execute(
            "INSERT INTO runs (name, variant, config, created_at) VALUES ('old', 'l2', ?, 0)",
            (json.dumps(TrainConfig.for_variant("l2").to_dict()),),
        )
        db.execute("PRAGMA user_version = 1")
    upgraded = Store(old)
    assert upgraded.schema_version() == len(MIGRATIONS)
    run = upgraded.get_run(1)
    assert (run.name, run.config.weight_decay, run.data_dir, run.experiment_id) == (
        "old",
        0.01,
        None,
        None,
    )
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer version"):
        Store(store.path)


def test_run_lifecycle_in_process(workspace, store, idx_dir):
    run_id = store.enqueue(TrainConfig(epochs=2, batch_size=32), data_dir=str(idx_dir))
    store.claim_next(os.getpid())
    result = execute_run(workspace, run_id)
    run = store.get_run(run_id)
    assert run.status == "finished" and result.status == "finished"
    assert run.test_accuracy == pytest.approx(result.test_accuracy)
    assert run.epochs_completed == 2 and run.progress == 1.0
    assert run.gap == pytest.approx(run.train_accuracy - run.val_accuracy)
    epochs = store.epoch_metrics(run_id)
    steps = store.step_metrics([run_id])
    assert epochs["epoch"].tolist() == [1, 2]
    assert steps["global_step"].is_monotonic_increasing and len(steps) >= 2
    _, metadata = artifacts.load_checkpoint(run.checkpoint)
    assert metadata["run_id"] == run_id and metadata["status"] == "finished"
    assert [c.path for c in artifacts.list_checkpoints(workspace.runs_dir)] == [
        workspace.runs_dir / f"{run_id:04d}-baseline-s0.pth"
    ]
    # the database holds the path relative to the home, so a copied or moved home still works
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT checkpoint FROM runs").fetchone()[0] == f"runs/{run_id:04d}-baseline-s0.pth"
    # delete removes the run, its metrics and both checkpoint files
    store.delete(run_id)
    assert store.get_run(run_id) is None and store.epoch_metrics(run_id).empty
    assert not list(workspace.runs_dir.iterdir())
    with pytest.raises(RunStateError, match="does not exist"):
        store.delete(run_id)


def test_delete_refuses_a_running_run_but_not_an_interrupted_one(store, monkeypatch):
    run_id = store.enqueue(TrainConfig())
    store.claim_next(worker_pid=99)
    with pytest.raises(RunStateError, match="is running; stop it"):
        store.delete(run_id)
    assert store.get_run(run_id).status == "running"
    monkeypatch.setenv("LENET_HEARTBEAT_TIMEOUT", "0")  # its worker stopped beating: interrupted
    time.sleep(0.01)
    store.delete(run_id)
    assert store.get_run(run_id) is None


def test_reads_never_wait_for_the_write_lock(workspace, store):
    run_id = store.enqueue(TrainConfig())
    writer = sqlite3.connect(store.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # as a worker recording a step holds it
    try:
        reader = Store(store.path)  # opening an up-to-date database migrates nothing
        assert reader.get_run(run_id).status == "queued"
        assert len(runs_frame(reader.list_runs())) == 1 and reader.epoch_metrics(run_id).empty
        assert reader.live_workers() == [] and not reader.stop_requested(run_id)
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_stop_request_takes_effect_before_the_next_batch(workspace, store, idx_dir):
    run_id = store.enqueue(TrainConfig(epochs=3, batch_size=8), data_dir=str(idx_dir))
    store.claim_next(os.getpid())
    batches_checked = []
    stop_sent_at = []

    def on_step(step):
        if step.epoch == 2 and not stop_sent_at:
            store.request_stop(run_id)  # as the dashboard's Stop button does, from outside the loop
            stop_sent_at.append(len(batches_checked))

    execute_run(
        workspace,
        run_id,
        on_step=on_step,
        extra_stop=lambda: batches_checked.append(1) and False,
    )
    # the check right after the request (before the next batch) stopped the run
    assert len(batches_checked) == stop_sent_at[0] + 1
    run = store.get_run(run_id)
    assert run.status == "stopped" and run.epochs_completed == 1
    _, metadata = artifacts.load_checkpoint(run.checkpoint)
    assert metadata["status"] == "stopped" and metadata["epochs_completed"] == 1


def test_stop_before_the_first_epoch_keeps_no_checkpoint(workspace, store, idx_dir):
    run_id = store.enqueue(TrainConfig(epochs=1, batch_size=8), data_dir=str(idx_dir))
    store.claim_next(os.getpid())
    execute_run(workspace, run_id, on_step=lambda s: store.request_stop(run_id))
    run = store.get_run(run_id)
    assert run.status == "stopped" and run.checkpoint is None and "no checkpoint" in run.message


def test_exploding_learning_rate_is_recorded_as_diverged(workspace, store, idx_dir):
    run_id = store.enqueue(TrainConfig(epochs=3, lr=100.0), data_dir=str(idx_dir))
    store.claim_next(os.getpid())
    execute_run(workspace, run_id)
    run = store.get_run(run_id)
    assert run.status == "diverged" and "smaller learning rate" in run.message
    assert run.checkpoint is None


def test_a_crash_inside_training_is_recorded_as_failed(workspace, store, idx_dir):
    run_id = store.enqueue(TrainConfig(train_limit=100_000), data_dir=str(idx_dir))  # > the 540 there
    store.claim_next(os.getpid())
    with pytest.raises(ValueError):
        execute_run(workspace, run_id)
    run = store.get_run(run_id)
    assert run.status == "failed" and "exceeds" in run.message


def test_sigkill_mid_epoch_leaves_an_interrupted_run_and_the_queue_goes_on(workspace, store, worker_env):
    victim = store.enqueue(TrainConfig(epochs=50, batch_size=4))
    survivor = store.enqueue(TrainConfig(**TINY))
    worker = start_worker(worker_env)
    try:
        wait_until(lambda: len(store.step_metrics(victim)) >= 2)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        worker.kill()
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    wait_until(lambda: store.get_run(victim).status == "interrupted", timeout=10)
    assert not artifacts.list_checkpoints(workspace.runs_dir)
    assert not list(workspace.runs_dir.glob("*.pth"))  # nothing half-written either

    worker = start_worker(worker_env)
    assert worker.wait(timeout=120) == 0
    assert store.get_run(survivor).status == "finished"
    assert store.get_run(victim).status == "interrupted"
    assert [c.metadata["run_id"] for c in artifacts.list_checkpoints(workspace.runs_dir)] == [survivor]


ENQUEUE_SCRIPT = """
import sys
from lenet.train import TrainConfig
from lenet.workspace import Workspace
store = Workspace.from_env().store
for seed in range(3):
    store.enqueue(TrainConfig(epochs=1, train_limit=64, batch_size=32, seed=int(sys.argv[1]) * 10 + seed))
"""


def test_concurrent_enqueuers_and_two_workers_run_everything_exactly_once(workspace, store, worker_env):
    enqueuers = [
        subprocess.Popen([sys.executable, "-c", ENQUEUE_SCRIPT, str(i)], env=worker_env) for i in range(3)
    ]
    workers = [start_worker(worker_env, parallel_runs=2) for _ in range(2)]
    assert [p.wait(timeout=120) for p in enqueuers] == [0, 0, 0]
    codes = [w.wait(timeout=300) for w in workers]
    errors = [w.stderr.read().decode() for w in workers]
    assert codes == [0, 0], errors
    runs = runs_frame(store.list_runs())
    assert len(runs) == 9
    assert set(runs["status"]) == {"finished"}
    assert runs["attempts"].tolist() == [1] * 9
    assert sorted(runs["seed"]) == sorted(i * 10 + s for i in range(3) for s in range(3))
    assert len({c.path for c in artifacts.list_checkpoints(workspace.runs_dir)}) == 9
    assert len(set(runs["worker_pid"])) == 2  # both workers took part


def test_readers_polling_during_training_never_see_errors_or_half_runs(store, worker_env):
    ids = [store.enqueue(TrainConfig(epochs=3, train_limit=300, batch_size=8, seed=s)) for s in range(2)]
    problems, reads = [], [0]
    done = threading.Event()

    def poll():
        reader = Store(store.path)
        while not done.is_set():
            try:
                for run in runs_frame(reader.list_runs()).to_dict("records"):
                    if run["status"] == "finished" and (
                        run["checkpoint"] is None or run["test_accuracy"] is None
                    ):
                        problems.append(f"half-finished run seen: {run}")
                    epochs = reader.epoch_metrics(run["id"])
                    if len(epochs) < run["epochs_completed"]:
                        problems.append("epoch rows missing for a completed epoch")
                    steps = reader.step_metrics(run["id"])["global_step"]
                    if not steps.is_monotonic_increasing:
                        problems.append("steps out of order")
                reads[0] += 1
            except Exception as e:  # any error a reader sees is a failure
                problems.append(repr(e))
            time.sleep(0.02)  # a dashboard polls often, but does not spin: leave the CPU to training

    readers = [threading.Thread(target=poll) for _ in range(2)]
    for r in readers:
        r.start()
    worker = start_worker(worker_env)
    try:
        assert worker.wait(timeout=300) == 0
    finally:
        done.set()
        for r in readers:
            r.join()
    assert problems == []
    assert reads[0] > 20
    assert [store.get_run(i).status for i in ids] == ["finished", "finished"]


def test_cli_train_is_recorded_and_listed(capsys, idx_dir, store):
    assert main(["train", "--variant", "dropout", "--epochs", "1", "--data-dir", str(idx_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert main(["runs", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["variant"], r["status"], r["source"]) for r in runs] == [
        (report["run_id"], "dropout", "finished", "cli")
    ]
    assert runs[0]["checkpoint"] == report["checkpoint"]


def test_cli_stop_and_cancel_refuse_wrong_states(capsys, store):
    run_id = store.enqueue(TrainConfig())
    assert main(["stop", str(run_id)]) == 2
    assert "is not running" in capsys.readouterr().err
    assert main(["cancel", str(run_id)]) == 0
    assert runs_frame(store.list_runs()).empty


def test_ensure_workers_fills_the_pool_only_as_far_as_needed(workspace, store, worker_env):
    pool = PoolSettings(parallel_runs=2, threads_per_run=1)
    assert ensure_workers(workspace, pool) == []  # nothing queued
    first = store.enqueue(TrainConfig(**TINY))
    started = ensure_workers(workspace, pool)
    assert len(started) == 1  # one queued run needs one worker
    assert ensure_workers(workspace, pool) == []  # counted as live at once, before its first beat
    second, third = store.enqueue(TrainConfig(**TINY, seed=1)), store.enqueue(TrainConfig(**TINY, seed=2))
    assert len(ensure_workers(workspace, pool)) == 1  # the pool is full at two
    wait_until(lambda: all(store.get_run(i).status == "finished" for i in (first, second, third)))
    log = workspace.worker_log.read_text()
    assert log.count("training run") == 3
    for pid in workspace.store.live_workers():  # they would idle for a minute before leaving
        os.kill(pid, signal.SIGTERM)


def test_the_dashboards_standby_pool_is_the_whole_pool_with_nothing_queued(
    workspace, store, worker_env, monkeypatch
):
    pool = PoolSettings(parallel_runs=2, threads_per_run=1)
    started = ensure_workers(workspace, pool, standby=True)
    try:
        assert len(started) == 2  # nothing queued, and yet the whole pool
        for pid in started:
            assert "--standby" in Path(f"/proc/{pid}/cmdline").read_text().split("\0")
            if Path("/proc/self/autogroup").exists():  # a kernel that schedules sessions as groups:
                # the worker's session is its own, and its niceness holds against other sessions
                wait_until(
                    lambda pid=pid: "nice 10" in Path(f"/proc/{pid}/autogroup").read_text(), timeout=30
                )
        assert ensure_workers(workspace, pool, standby=True) == []  # it is there already
        assert time.time() - workspace.standby_mark.stat().st_mtime < 5  # looked at just now
        monkeypatch.setenv("LENET_RAY_ADDRESS", "127.0.0.1:1")
        assert ensure_workers(workspace, pool, standby=True) == []  # a cluster's nodes start their own
    finally:
        for pid in started:
            os.kill(pid, signal.SIGTERM)


def test_standby_workers_wait_warm_while_the_dashboard_lives_and_is_looked_at(workspace, store, worker_env):
    """The dashboard's warm pool: a worker started with --standby warms up (imports and the dataset)
    and outwaits its idle exit while the process that started it lives and the dashboard has been
    looked at lately; it trains what is queued then, and leaves once either is no longer so."""
    workspace.home.mkdir(parents=True, exist_ok=True)
    workspace.standby_mark.touch()  # as ensure_workers(standby=True) does, whenever a page is drawn
    log = workspace.home / "standby.log"
    worker = f"{sys.executable} -m lenet worker --standby --idle-exit 1 --poll 0.1 2>> {log}"
    parents = [  # each stands in for the dashboard's server: it lives until its stdin closes
        subprocess.Popen(["sh", "-c", f"{worker} & read line"], env=worker_env, stdin=subprocess.PIPE)
        for _ in range(2)
    ]
    try:
        wait_until(lambda: log.exists() and log.read_text().count(STANDING_BY) == 2, timeout=90)
        # warm: imports done and the dataset decoded, before any run is queued
        decoded = f"warm, FashionMNIST decoded from {Path(worker_env['FASHION_MNIST_DIR']).resolve()}"
        assert log.read_text().count(decoded) == 2
        pids = sorted(store.live_workers())
        time.sleep(2)  # twice their idle exit
        assert sorted(store.live_workers()) == pids
        run_id = store.enqueue(TrainConfig(**TINY))
        wait_until(lambda: store.get_run(run_id).status == "finished")
        assert store.get_run(run_id).worker_pid in pids

        parents[0].communicate(b"\n", timeout=10)  # one's parent has gone: it leaves, idle
        wait_until(lambda: len(store.live_workers()) == 1, timeout=20)
        time.sleep(2)
        assert len(store.live_workers()) == 1  # the other's parent lives and the mark is recent

        long_ago = time.time() - STANDBY_S - 1  # no one has looked at the dashboard since
        os.utime(workspace.standby_mark, (long_ago, long_ago))
        wait_until(lambda: not store.live_workers(), timeout=20)
        assert log.read_text().count("queue empty, exiting") == 2
    finally:
        for parent in parents:
            if parent.poll() is None:
                parent.communicate(b"\n", timeout=10)


def test_a_worker_started_from_a_long_lived_process_leaves_no_zombie(workspace, store, worker_env):
    """This test's process is the long-lived one (like the dashboard's server): a worker it started
    and that exited is reaped, not left in the process table as a zombie."""
    run_id = store.enqueue(TrainConfig(**TINY))
    [pid] = ensure_workers(workspace, PoolSettings(parallel_runs=1, threads_per_run=1))
    wait_until(lambda: store.get_run(run_id).status == "finished")
    os.kill(pid, signal.SIGTERM)  # it would idle for a minute before leaving
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=10)  # a zombie keeps its /proc entry


@pytest.mark.parametrize(
    "cores, expected", [(1, PoolSettings(1, 1)), (2, PoolSettings(2, 1)), (16, PoolSettings(8, 2))]
)
def test_pool_defaults_follow_the_core_count(cores, expected):
    assert PoolSettings.for_cores(cores) == expected


def test_pool_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("LENET_PARALLEL_RUNS", "3")
    monkeypatch.setenv("LENET_THREADS_PER_RUN", "2")
    assert PoolSettings.from_env() == PoolSettings(3, 2)
    monkeypatch.setenv("LENET_PARALLEL_RUNS", "0")
    with pytest.raises(ValueError, match="at least 1"):
        PoolSettings.from_env()


def test_work_left_counts_queued_and_live_running_runs(store, monkeypatch):
    ids = [store.enqueue(TrainConfig(**TINY)) for _ in range(3)]
    assert store.work_left() == 3
    store.claim_next(worker_pid=1, max_running=2)
    store.cancel(ids[2])
    assert store.work_left() == 2  # one training, one queued
    monkeypatch.setenv("LENET_HEARTBEAT_TIMEOUT", "-1")  # every heartbeat is stale: the worker is dead
    assert store.work_left() == 1


@pytest.mark.parametrize(
    "pool, work_left, threads",
    [
        (PoolSettings(2, 1), 5, 1),  # a queue: one core per run
        (PoolSettings(2, 1), 2, 1),
        (PoolSettings(2, 1), 1, 2),  # the last run alone takes both cores
        (PoolSettings(8, 2), 3, 5),  # 16 cores shared by 3 runs
        (PoolSettings(8, 2), 20, 2),
        (PoolSettings(1, 4), 1, 4),
    ],
)
def test_a_run_left_alone_takes_the_pools_idle_cores(pool, work_left, threads):
    assert pool.threads_for(work_left) == threads
