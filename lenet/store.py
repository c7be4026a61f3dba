"""The run store: one SQLite database of runs, their per-epoch and per-step metrics, and workers.

Every process (dashboard pages, `python -m lenet train`, background workers) talks to the same file,
so progress outlives a browser tab. WAL mode lets readers poll while a worker writes; each write
that a reader may see is one transaction. A run whose worker stopped beating reads as
`interrupted`, never as stuck at `running`.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from .catalog import metadata_path
from .config import EpochMetrics, StepMetrics, TrainConfig
from .records import Experiment, ExperimentRuns, Round, RoundState, Run, RunStatus, Student, run_name
from .schema import MIGRATIONS

HEARTBEAT_INTERVAL_S = 2.0


def heartbeat_timeout_s() -> float:
    """Seconds without a heartbeat after which a running run counts as interrupted."""
    return float(os.environ.get("LENET_HEARTBEAT_TIMEOUT", "15"))


# A running run whose heartbeat is stale reads as interrupted, whoever reads it.
_EFFECTIVE_STATUS = (
    "CASE WHEN status = 'running' AND heartbeat_at < :stale THEN 'interrupted' ELSE status END"
)
# A class round's test scores stay hidden until the teacher reveals them, whoever reads the run.
_TEST_HIDDEN = (
    "(runs.student_id IS NOT NULL AND (SELECT d.state FROM students s JOIN rounds d ON d.id = s.round_id"
    " WHERE s.id = runs.student_id) != 'revealed')"
)
_RUN_COLUMNS = f"runs.*, {_EFFECTIVE_STATUS} AS effective_status, {_TEST_HIDDEN} AS test_hidden"


# The teacher's runs first, oldest first; then class-round runs of unpaused rounds, fairly: the
# student who has had fewest runs trained goes first, then the earliest submitted.
_QUEUE_ORDER = """
    SELECT runs.id FROM runs
    LEFT JOIN students s ON s.id = runs.student_id LEFT JOIN rounds d ON d.id = s.round_id
    WHERE runs.status = 'queued' AND (runs.student_id IS NULL OR d.paused = 0)
    ORDER BY runs.student_id IS NOT NULL,
        (SELECT COUNT(*) FROM runs done WHERE done.student_id = runs.student_id AND done.status != 'queued'),
        runs.created_at, runs.id
"""
_NEXT_IN_QUEUE = _QUEUE_ORDER + " LIMIT 1"
_LIVE_RUNNING = "FROM runs WHERE status = 'running' AND heartbeat_at >= ?"  # ?: the stale time


_CLAIM = (  # a queued run starts: (now, now, worker pid, where it trains, run id)
    "UPDATE runs SET status = 'running', started_at = ?, heartbeat_at = ?, worker_pid = ?,"
    " attempts = attempts + 1, trained_on = ? WHERE id = ?"
)


def _epochs_left(run: Run) -> int:
    """What a run has still to train, as `claim_together` weighs the pool's work: its planned epochs
    less those done (an early stop, unknown ahead, ends it sooner)."""
    return max(0, run.config.epochs - run.epochs_completed)


class RunStateError(ValueError):
    """The run is not in a state that allows this (e.g. deleting a running run)."""


class Store:
    """The run database at `path`. Build it once per process (the `Workspace` does) and share it:
    opening migrates the schema if needed; after that, reads never take the write lock."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            if db.execute("PRAGMA user_version").fetchone()[0] != len(MIGRATIONS):
                self._migrate(db)

    # -- connections -------------------------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection in autocommit mode; transactions are explicit."""
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout = 30000")
        db.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable enough, one fsync per checkpoint
        db.execute("PRAGMA foreign_keys = ON")
        with closing(db):
            yield db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE takes the write lock up front, so check-then-write is atomic."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _migrate(self, db: sqlite3.Connection) -> None:
        db.execute("PRAGMA journal_mode=WAL")  # persistent: set once, with the first migration
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]  # again, now under the lock
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"{self.path} was written by a newer version (schema {version}); update the code"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def schema_version(self) -> int:
        with self._connect() as db:
            return db.execute("PRAGMA user_version").fetchone()[0]

    # -- queue -------------------------------------------------------------------------------

    def enqueue(
        self,
        config: TrainConfig,
        name: str | None = None,
        *,
        source: str = "queue",
        data_dir: str | None = None,
        experiment_id: int | None = None,
    ) -> int:
        """Add a run to the queue; a worker will pick it up. Returns the run id."""
        return self._insert(config.validated(), name, "queued", source, data_dir, experiment_id=experiment_id)

    def start_direct_run(
        self, config: TrainConfig, name: str | None = None, data_dir: str | None = None
    ) -> int:
        """Record a run that this process trains itself (`python -m lenet train`)."""
        return self._insert(config.validated(), name, "running", "cli", data_dir)

    def _insert(
        self,
        config: TrainConfig,
        name: str | None,
        status: str,
        source: str,
        data_dir: str | None,
        experiment_id: int | None = None,
    ) -> int:
        now = time.time()
        running = status == "running"
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO runs (name, variant, config, status, source, created_at, started_at,"
                " heartbeat_at, worker_pid, attempts, data_dir, experiment_id, trained_on)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name or run_name(config),
                    config.variant,
                    json.dumps(config.to_dict()),
                    status,
                    source,
                    now,
                    now if running else None,
                    now if running else None,
                    os.getpid() if running else None,
                    1 if running else 0,
                    str(data_dir) if data_dir else None,
                    experiment_id,
                    "local" if running else None,
                ),
            )
        return cursor.lastrowid

    def claim_next(self, worker_pid: int, max_running: int = 1, trained_on: str = "local") -> int | None:
        """Atomically move the next queued run (see _NEXT_IN_QUEUE) to running for this worker,
        within the limit."""
        now = time.time()
        with self._transaction() as db:
            running = db.execute(
                f"SELECT COUNT(*) {_LIVE_RUNNING}", (now - heartbeat_timeout_s(),)
            ).fetchone()[0]
            if running >= max_running:
                return None
            row = db.execute(_NEXT_IN_QUEUE).fetchone()
            if row is None:
                return None
            db.execute(_CLAIM, (now, now, worker_pid, trained_on, row["id"]))
            return row["id"]

    def claim_together(
        self, worker_pid: int, max_trainers: int, key: Callable[[Run], Hashable | None], max_size: int
    ) -> list[int]:
        """Atomically claim the next queued run for this worker, with the queued runs that can
        train together with it (the same `key`, not None), shortest first: as many as bring the
        epochs it claims nearest its share of the pool's work, at most `max_size`. None while
        `max_trainers` processes train.

        The share counts every epoch still to train, of runs queued or training, stackable or not,
        over `max_trainers`: the runs that train alone later are work the other workers take. So
        `reproduce`'s eight runs go 4 and 4, with l2_optimized's 20 epochs in the second stack,
        where stacks sized by count left one core idle for the last 21 s of 186 (README,
        "Throughput")."""
        now = time.time()
        with self._transaction() as db:
            live = (now - heartbeat_timeout_s(),)
            trainers = db.execute(f"SELECT COUNT(DISTINCT worker_pid) {_LIVE_RUNNING}", live).fetchone()[0]
            queue = [row["id"] for row in db.execute(_QUEUE_ORDER).fetchall()]
            if trainers >= max_trainers or not queue:
                return []
            rows = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE status IN ('queued', 'running')",
                {"stale": now - heartbeat_timeout_s()},
            ).fetchall()
            runs = {run.id: run for run in map(self._run, rows)}
            claimed, first_key = [queue[0]], key(runs[queue[0]])
            if first_key is not None:
                peers = sorted(
                    (i for i in queue[1:] if key(runs[i]) == first_key), key=lambda i: _epochs_left(runs[i])
                )
                training = [run for run in runs.values() if run.status == RunStatus.RUNNING]
                share = sum(map(_epochs_left, [runs[i] for i in queue] + training)) / max_trainers
                claimed_epochs = list(itertools.accumulate(_epochs_left(runs[i]) for i in claimed + peers))
                size = min(
                    range(1, min(max_size, len(claimed_epochs)) + 1),
                    key=lambda n: abs(claimed_epochs[n - 1] - share),
                )
                claimed += peers[: size - 1]
            # why a run's time (s) is a stack's: "trained on" says with how many it trained
            where = "local" if len(claimed) == 1 else f"local, {len(claimed)} together"
            db.executemany(_CLAIM, [(now, now, worker_pid, where, run_id) for run_id in claimed])
            return claimed

    def set_trained_on(self, run_id: int, where: str) -> None:
        """Where a claimed run trains, once its executor knows (a Ray task names its node)."""
        with self._transaction() as db:
            db.execute("UPDATE runs SET trained_on = ? WHERE id = ?", (where, run_id))

    def cancel(self, run_id: int) -> None:
        """Remove a run that has not started yet."""
        with self._transaction() as db:
            deleted = db.execute("DELETE FROM runs WHERE id = ? AND status = 'queued'", (run_id,)).rowcount
        if not deleted:
            raise RunStateError(f"run {run_id} is not queued any more (stop it instead if it is running)")

    def request_stop(self, run_id: int) -> None:
        """Ask the trainer to stop before its next batch; it keeps the last completed epoch."""
        with self._transaction() as db:
            updated = db.execute(
                "UPDATE runs SET stop_requested = 1 WHERE id = ? AND status = 'running'", (run_id,)
            ).rowcount
        if not updated:
            raise RunStateError(f"run {run_id} is not running")

    def stop_requested(self, run_id: int) -> bool:
        with self._connect() as db:
            row = db.execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def stop_requests(self) -> set[int]:
        """The running runs asked to stop: what a dispatcher passes on to their remote tasks."""
        with self._connect() as db:
            return {
                row[0]
                for row in db.execute("SELECT id FROM runs WHERE status = 'running' AND stop_requested")
            }

    @contextmanager
    def stop_watch(self, run_id: int) -> Iterator[Callable[[], bool]]:
        """A check of the run's stop flag cheap enough for every batch: one connection held open.

        A run deleted from under its trainer counts as stopped.
        """
        with self._connect() as db:

            def stop_requested() -> bool:
                row = db.execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
                return row is None or bool(row[0])

            yield stop_requested

    def delete(self, run_id: int) -> None:
        """Delete a run, its metrics and its checkpoint files. Running runs must be stopped first."""
        with self._connect() as db:
            # One statement: the status check and the delete cannot be separated by a worker's claim.
            row = db.execute(
                f"DELETE FROM runs WHERE id = :id AND ({_EFFECTIVE_STATUS}) != 'running'"
                " RETURNING checkpoint",
                {"id": run_id, "stale": time.time() - heartbeat_timeout_s()},
            ).fetchone()
        if row is None:
            if self.get_run(run_id) is None:
                raise RunStateError(f"run {run_id} does not exist")
            raise RunStateError(f"run {run_id} is running; stop it before deleting it")
        if row["checkpoint"]:
            checkpoint = self._resolve(row["checkpoint"])
            checkpoint.unlink(missing_ok=True)
            metadata_path(checkpoint).unlink(missing_ok=True)

    def _resolve(self, checkpoint: str) -> Path:
        """Checkpoint paths are stored relative to the database's folder, so a home can be moved."""
        return self.path.parent / checkpoint

    # -- experiments -------------------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        kind: str,
        configs: list[TrainConfig],
        *,
        description: str = "",
        varies: str | None = None,
        data_dir: str | None = None,
    ) -> int:
        """One launch of several runs, queued together in one transaction. Returns its id."""
        configs = [c.validated() for c in configs]
        now = time.time()
        with self._transaction() as db:
            experiment_id = db.execute(
                "INSERT INTO experiments (name, kind, description, varies, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, kind, description, varies, now),
            ).lastrowid
            for config in configs:
                db.execute(
                    "INSERT INTO runs (name, variant, config, status, source, created_at, data_dir,"
                    " experiment_id) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)",
                    (
                        run_name(config, varies),
                        config.variant,
                        json.dumps(config.to_dict()),
                        kind,
                        now,
                        data_dir,
                        experiment_id,
                    ),
                )
        return experiment_id

    def list_experiments(self) -> list[Experiment]:
        """Experiments, newest first, with how many of their runs are in each state."""
        return self._experiments("", {})

    def get_experiment(self, experiment_id: int) -> Experiment | None:
        found = self._experiments("WHERE e.id = :id", {"id": experiment_id})
        return found[0] if found else None

    def _experiments(self, where: str, values: dict) -> list[Experiment]:
        with self._connect() as db:
            rows = db.execute(
                f"SELECT e.*, COUNT(r.id) AS runs,"
                f" COALESCE(SUM(({_EFFECTIVE_STATUS}) IN ('queued', 'running')), 0) AS active,"
                f" COALESCE(SUM(r.status = 'finished'), 0) AS finished"
                f" FROM experiments e LEFT JOIN runs r ON r.experiment_id = e.id {where}"
                f" GROUP BY e.id ORDER BY e.id DESC",
                {"stale": time.time() - heartbeat_timeout_s(), **values},
            ).fetchall()
        return [Experiment(**dict(row)) for row in rows]

    def read_experiment(self, experiment_id: int) -> ExperimentRuns | None:
        """The experiment, its runs oldest first, and every epoch of each: one read."""
        experiment = self.get_experiment(experiment_id)
        if experiment is None:
            return None
        runs = sorted(self.list_runs(experiment_id=experiment_id), key=lambda run: run.id)
        epochs = {run.id: [] for run in runs}
        # rows, not epoch_metrics()'s DataFrame: importing pandas took the CLI 0.3 s after its last run
        for row in self._metric_rows("epoch_metrics", "epoch", list(epochs)):
            epochs[row.pop("run_id")].append(EpochMetrics(**row))
        return ExperimentRuns(experiment, runs, epochs)

    def rename_experiment(self, experiment_id: int, name: str) -> None:
        name = name.strip()
        if not name:
            raise RunStateError("an experiment needs a name")
        with self._connect() as db:
            if not db.execute("UPDATE experiments SET name = ? WHERE id = ?", (name, experiment_id)).rowcount:
                raise RunStateError(f"experiment {experiment_id} does not exist")

    def delete_experiment(self, experiment_id: int) -> None:
        """Delete an experiment with its runs, their metrics and checkpoints; none may be training."""
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM experiments WHERE id = ?", (experiment_id,)).fetchone() is None:
                raise RunStateError(f"experiment {experiment_id} does not exist")
            training = db.execute(
                f"SELECT COUNT(*) FROM runs WHERE experiment_id = :id AND ({_EFFECTIVE_STATUS}) = 'running'",
                {"id": experiment_id, "stale": time.time() - heartbeat_timeout_s()},
            ).fetchone()[0]
            if training:
                raise RunStateError(
                    f"experiment {experiment_id} has {training} run(s) training; stop them before deleting it"
                )
            checkpoints = [
                row[0]
                for row in db.execute(
                    "DELETE FROM runs WHERE experiment_id = ? RETURNING checkpoint", (experiment_id,)
                )
                if row[0]
            ]
            db.execute("DELETE FROM experiments WHERE id = ?", (experiment_id,))
        for checkpoint in checkpoints:
            self._resolve(checkpoint).unlink(missing_ok=True)
            metadata_path(self._resolve(checkpoint)).unlink(missing_ok=True)

    # -- class rounds ------------------------------------------------------------------------

    def open_round(
        self,
        name: str,
        *,
        runs_per_student: int,
        train_limit: int,
        epochs: int,
        public_images: int,
        public_seed: int,
    ) -> int:
        """A new round, open for students; the previous one is closed (archived, never deleted)."""
        now = time.time()
        with self._transaction() as db:
            db.execute("UPDATE rounds SET state = 'closed', closed_at = ? WHERE state = 'open'", (now,))
            experiment_id = db.execute(
                "INSERT INTO experiments (name, kind, description, varies, created_at)"
                " VALUES (?, 'round', ?, 'variant', ?)",
                (name, f"Class round: {train_limit:,} training images, {epochs} epochs per run.", now),
            ).lastrowid
            return db.execute(
                "INSERT INTO rounds (name, runs_per_student, train_limit, epochs, public_images, public_seed,"
                " experiment_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, runs_per_student, train_limit, epochs, public_images, public_seed, experiment_id, now),
            ).lastrowid

    def get_round(self, round_id: int) -> Round | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM rounds WHERE id = ?", (round_id,)).fetchone()
        return _round(row) if row else None

    def current_round(self) -> Round | None:
        """The newest round (older ones are archived)."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM rounds ORDER BY id DESC LIMIT 1").fetchone()
        return _round(row) if row else None

    def advance_round(self, round_id: int, state: RoundState) -> None:
        """open -> closed -> revealed, never back."""
        before = {RoundState.CLOSED: RoundState.OPEN, RoundState.REVEALED: RoundState.CLOSED}[state]
        stamp = {RoundState.CLOSED: "closed_at", RoundState.REVEALED: "revealed_at"}[state]
        with self._transaction() as db:
            moved = db.execute(
                f"UPDATE rounds SET state = ?, {stamp} = ? WHERE id = ? AND state = ?",
                (state, time.time(), round_id, before),
            ).rowcount
        if not moved:
            current = self.get_round(round_id)
            found = "does not exist" if current is None else f"is {current.state}"
            raise RunStateError(f"round {round_id} {found}; only a {before} round can become {state}")

    def pause_round(self, round_id: int, paused: bool) -> None:
        with self._transaction() as db:
            db.execute("UPDATE rounds SET paused = ? WHERE id = ?", (int(paused), round_id))

    def join_round(self, round_id: int, nickname: str, token: str) -> Student:
        """A student joins an open round under a nickname nobody in it has (case-insensitive)."""
        with self._transaction() as db:
            state = db.execute("SELECT state FROM rounds WHERE id = ?", (round_id,)).fetchone()
            if state is None or state[0] != RoundState.OPEN:
                raise RunStateError("this round is not open for joining")
            try:
                db.execute(
                    "INSERT INTO students (round_id, nickname, token, joined_at) VALUES (?, ?, ?, ?)",
                    (round_id, nickname, token, time.time()),
                )
            except sqlite3.IntegrityError:
                raise RunStateError(
                    f"the nickname {nickname!r} is taken in this round; choose another"
                ) from None
        return self.student_by_token(token)

    def student_by_token(self, token: str) -> Student | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM students WHERE token = ?", (token,)).fetchone()
        return _student(row) if row else None

    def list_students(self, round_id: int) -> list[Student]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM students WHERE round_id = ? ORDER BY id", (round_id,)).fetchall()
        return [_student(row) for row in rows]

    def rename_student(self, student_id: int, nickname: str) -> None:
        try:
            with self._transaction() as db:
                db.execute("UPDATE students SET nickname = ? WHERE id = ?", (nickname, student_id))
        except sqlite3.IntegrityError:
            raise RunStateError(f"the nickname {nickname!r} is taken in this round") from None

    def hide_student(self, student_id: int, hidden: bool) -> None:
        with self._transaction() as db:
            db.execute("UPDATE students SET hidden = ? WHERE id = ?", (int(hidden), student_id))

    def choose_final(self, student: Student, run_id: int | None) -> None:
        """The run a student stands by for the private score (None: their best public one)."""
        with self._transaction() as db:
            state = db.execute("SELECT state FROM rounds WHERE id = ?", (student.round_id,)).fetchone()[0]
            if state == RoundState.REVEALED:
                raise RunStateError("the round is revealed: the final runs are set")
            if (
                run_id is not None
                and not db.execute(
                    "SELECT 1 FROM runs WHERE id = ? AND student_id = ?", (run_id, student.id)
                ).fetchone()
            ):
                raise RunStateError(f"run {run_id} is not one of {student.nickname}'s runs")
            db.execute("UPDATE students SET final_run_id = ? WHERE id = ?", (run_id, student.id))

    def submit_round_run(self, student: Student, config: TrainConfig) -> int:
        """Queue a student's run, if the round's rules allow it now: the round is open, the student
        has no run queued or training, and has runs left. Checked and written in one transaction."""
        config = config.validated()
        stale = time.time() - heartbeat_timeout_s()
        with self._transaction() as db:
            game = _round(db.execute("SELECT * FROM rounds WHERE id = ?", (student.round_id,)).fetchone())
            if game.state != RoundState.OPEN:
                raise RunStateError(f"the round is {game.state}: no more runs can be submitted")
            mine = db.execute(
                f"SELECT COUNT(*), TOTAL(({_EFFECTIVE_STATUS}) IN ('queued', 'running')) FROM runs"
                " WHERE student_id = :student",
                {"student": student.id, "stale": stale},
            ).fetchone()
            if mine[1]:
                raise RunStateError("you already have a run queued or training; wait until it has finished")
            if mine[0] >= game.runs_per_student:
                raise RunStateError(f"you have used all {game.runs_per_student} runs of this round")
            return db.execute(
                "INSERT INTO runs (name, variant, config, status, source, created_at, experiment_id,"
                " student_id)"
                " VALUES (?, ?, ?, 'queued', 'round', ?, ?, ?)",
                (
                    f"{student.nickname}-{mine[0] + 1}",
                    config.variant,
                    json.dumps(config.to_dict()),
                    time.time(),
                    game.experiment_id,
                    student.id,
                ),
            ).lastrowid

    def queue_order(self) -> list[int]:
        """The queued runs' ids in the order workers will take them (a paused round's runs left out)."""
        with self._connect() as db:
            return [row[0] for row in db.execute(_QUEUE_ORDER)]

    def queue_position(self, run_id: int) -> int | None:
        """1 for the run a worker takes next, ...; None for a run not waiting (or in a paused round)."""
        order = self.queue_order()
        return order.index(run_id) + 1 if run_id in order else None

    def round_of_run(self, run_id: int) -> Round | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT d.* FROM runs JOIN students s ON s.id = runs.student_id"
                " JOIN rounds d ON d.id = s.round_id"
                " WHERE runs.id = ?",
                (run_id,),
            ).fetchone()
        return _round(row) if row else None

    def record_public_accuracy(self, run_id: int, accuracy: float) -> None:
        with self._transaction() as db:
            db.execute("UPDATE runs SET public_accuracy = ? WHERE id = ?", (accuracy, run_id))

    # -- progress, written by the process that trains ---------------------------------------

    def heartbeat(self, run_id: int) -> None:
        with self._connect() as db:
            db.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", (time.time(), run_id))

    def record_step(self, run_id: int, step: StepMetrics) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO step_metrics VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, step.global_step, step.epoch, step.loss, step.accuracy, step.elapsed_s),
            )
            db.execute(
                "UPDATE runs SET global_step = ?, total_steps = ?, eta_s = ?, heartbeat_at = ? WHERE id = ?",
                (step.global_step, step.total_steps, step.eta_s, time.time(), run_id),
            )

    def record_epoch(self, run_id: int, epoch: EpochMetrics) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO epoch_metrics VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    epoch.epoch,
                    epoch.train_loss,
                    epoch.train_accuracy,
                    epoch.val_loss,
                    epoch.val_accuracy,
                    epoch.seconds,
                ),
            )
            db.execute(
                "UPDATE runs SET epochs_completed = ?, train_accuracy = ?, val_accuracy = ? WHERE id = ?",
                (epoch.epoch, epoch.train_accuracy, epoch.val_accuracy, run_id),
            )

    def finish(
        self,
        run_id: int,
        status: RunStatus | str,
        *,
        message: str = "",
        checkpoint: str | None = None,
        test_accuracy: float | None = None,
        train_seconds: float | None = None,
    ) -> None:
        """Final status, metrics and checkpoint path, in one transaction."""
        if status not in set(RunStatus) or RunStatus(status).active:
            raise ValueError(f"not a final status: {status!r}")
        if checkpoint is not None:
            checkpoint = os.path.relpath(checkpoint, self.path.parent)
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status = ?, message = ?, checkpoint = ?, test_accuracy = ?,"
                " train_seconds = ?, finished_at = ?, eta_s = NULL WHERE id = ?",
                (status, message, checkpoint, test_accuracy, train_seconds, time.time(), run_id),
            )

    # -- workers -----------------------------------------------------------------------------

    def register_worker(self, pid: int) -> None:
        now = time.time()
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO workers VALUES (?, ?, ?)", (pid, now, now))

    def worker_heartbeat(self, pid: int) -> None:
        with self._connect() as db:
            db.execute("UPDATE workers SET heartbeat_at = ? WHERE pid = ?", (time.time(), pid))

    def unregister_worker(self, pid: int) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM workers WHERE pid = ?", (pid,))

    def live_workers(self) -> list[int]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT pid FROM workers WHERE heartbeat_at >= ?", (time.time() - heartbeat_timeout_s(),)
            ).fetchall()
        return [row["pid"] for row in rows]

    def mark_interrupted(self) -> int:
        """Persist `interrupted` for running runs whose heartbeat is stale; returns how many."""
        stale = time.time() - heartbeat_timeout_s()
        with self._transaction() as db:
            return db.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = heartbeat_at, eta_s = NULL,"
                " message = 'the process training it stopped responding (killed or crashed)'"
                " WHERE status = 'running' AND heartbeat_at < ?",
                (stale,),
            ).rowcount

    # -- reading -----------------------------------------------------------------------------

    def get_run(self, run_id: int) -> Run | None:
        with self._connect() as db:
            row = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = :id",
                {"id": run_id, "stale": time.time() - heartbeat_timeout_s()},
            ).fetchone()
        return self._run(row) if row else None

    def revision(self) -> tuple:
        """A cheap fingerprint of everything the views show: it changes whenever a run is added,
        removed, renamed, advances a step or an epoch, or changes status (a stale heartbeat included),
        and whenever a class round or its students change (a join, a rename, a reveal...).
        Views shared by many viewers are computed once per revision."""
        with self._connect() as db:
            return tuple(
                db.execute(
                    f"""SELECT COUNT(*), MAX(id), TOTAL(global_step), TOTAL(epochs_completed),
                        TOTAL(stop_requested),
                        GROUP_CONCAT({_EFFECTIVE_STATUS} || name, ','),
                        (SELECT GROUP_CONCAT(id || name, ',') FROM experiments),
                        (SELECT GROUP_CONCAT(id || state || paused, ',') FROM rounds),
                        (SELECT GROUP_CONCAT(id || nickname || hidden || IFNULL(final_run_id, '-'), ',')
                            FROM students)
                    FROM runs""",
                    {"stale": time.time() - heartbeat_timeout_s()},
                ).fetchone()
            )

    def work_left(self) -> int:
        """What shares the machine's cores: queued runs, and processes training (each trains one
        run, or several together), with a live heartbeat."""
        with self._connect() as db:
            return db.execute(
                "SELECT (SELECT COUNT(*) FROM runs WHERE status = 'queued')"
                f" + (SELECT COUNT(DISTINCT worker_pid) {_LIVE_RUNNING})",
                (time.time() - heartbeat_timeout_s(),),
            ).fetchone()[0]

    def newest_run(self) -> Run | None:
        """The run queued or started last, without reading all the others."""
        with self._connect() as db:
            newest = db.execute("SELECT MAX(id) FROM runs").fetchone()[0]
        return None if newest is None else self.get_run(newest)

    def list_runs(
        self, statuses: tuple[RunStatus, ...] | None = None, experiment_id: int | None = None
    ) -> list[Run]:
        """All runs (of one experiment), newest first; `statuses` filters by effective status."""
        where = "" if experiment_id is None else "WHERE experiment_id = :experiment"
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs {where} ORDER BY id DESC",
                {"stale": time.time() - heartbeat_timeout_s(), "experiment": experiment_id},
            ).fetchall()
        runs = [self._run(row) for row in rows]
        return runs if statuses is None else [run for run in runs if run.status in statuses]

    def epoch_metrics(self, run_ids: list[int] | int) -> pd.DataFrame:
        return self._metrics("epoch_metrics", "epoch", run_ids)

    def step_metrics(self, run_ids: list[int] | int) -> pd.DataFrame:
        return self._metrics("step_metrics", "global_step", run_ids)

    def _metrics(self, table: str, order: str, run_ids: list[int] | int) -> pd.DataFrame:
        import pandas as pd

        ids = [run_ids] if isinstance(run_ids, int) else list(run_ids)
        with self._connect() as db:
            columns = [c[1] for c in db.execute(f"PRAGMA table_info({table})")]
        return pd.DataFrame(self._metric_rows(table, order, ids), columns=columns)

    def _metric_rows(self, table: str, order: str, run_ids: list[int]) -> list[dict]:
        marks = ",".join("?" * len(run_ids))
        with self._connect() as db:
            rows = db.execute(
                f"SELECT * FROM {table} WHERE run_id IN ({marks}) ORDER BY run_id, {order}", run_ids
            ).fetchall()
        return [dict(row) for row in rows]

    def _run(self, row: sqlite3.Row) -> Run:
        values = dict(row)
        values["status"] = RunStatus(values.pop("effective_status"))
        if values.pop("test_hidden"):
            values["test_accuracy"] = None
        values["config"] = TrainConfig.from_dict(json.loads(values["config"]))
        values["stop_requested"] = bool(values["stop_requested"])
        if values["checkpoint"]:
            values["checkpoint"] = str(self._resolve(values["checkpoint"]))
        return Run(**values)


def _round(row: sqlite3.Row) -> Round:
    values = dict(row)
    return Round(**{**values, "state": RoundState(values["state"]), "paused": bool(values["paused"])})


def _student(row: sqlite3.Row) -> Student:
    return Student(**{**dict(row), "hidden": bool(row["hidden"])})
