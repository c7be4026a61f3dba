"""The run store's schema: versioned migrations (SQLite's PRAGMA user_version counts those applied)."""

# Each entry upgrades the schema by one version (PRAGMA user_version); never edit a shipped entry.
MIGRATIONS = [
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        variant TEXT NOT NULL,
        config TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'queued',
        source TEXT NOT NULL DEFAULT 'queue',
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        heartbeat_at REAL,
        worker_pid INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        stop_requested INTEGER NOT NULL DEFAULT 0,
        global_step INTEGER NOT NULL DEFAULT 0,
        total_steps INTEGER,
        eta_s REAL,
        epochs_completed INTEGER NOT NULL DEFAULT 0,
        train_accuracy REAL,
        val_accuracy REAL,
        test_accuracy REAL,
        train_seconds REAL,
        checkpoint TEXT,
        message TEXT
    );
    CREATE INDEX runs_status ON runs(status);
    CREATE TABLE epoch_metrics (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        epoch INTEGER NOT NULL,
        train_loss REAL, train_accuracy REAL, val_loss REAL, val_accuracy REAL, seconds REAL,
        PRIMARY KEY (run_id, epoch)
    );
    CREATE TABLE step_metrics (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        global_step INTEGER NOT NULL,
        epoch INTEGER NOT NULL,
        loss REAL, accuracy REAL, elapsed_s REAL,
        PRIMARY KEY (run_id, global_step)
    );
    CREATE TABLE workers (
        pid INTEGER PRIMARY KEY,
        started_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL
    );
    """,
    # the dataset folder a run was asked to train on (NULL: the workspace's usual sources)
    "ALTER TABLE runs ADD COLUMN data_dir TEXT",
    # experiments: one launch of several runs (a preset, a sweep, repeats over seeds)
    """
    CREATE TABLE experiments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        varies TEXT,
        created_at REAL NOT NULL
    );
    ALTER TABLE runs ADD COLUMN experiment_id INTEGER REFERENCES experiments(id);
    CREATE INDEX runs_experiment ON runs(experiment_id)
    """,
]
