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
    # class rounds: students (a nickname and a secret token each) submit runs within the round's rules
    """
    CREATE TABLE rounds (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'open',
        paused INTEGER NOT NULL DEFAULT 0,
        runs_per_student INTEGER NOT NULL,
        train_limit INTEGER NOT NULL,
        epochs INTEGER NOT NULL,
        public_images INTEGER NOT NULL,
        public_seed INTEGER NOT NULL,
        experiment_id INTEGER NOT NULL REFERENCES experiments(id),
        created_at REAL NOT NULL,
        closed_at REAL,
        revealed_at REAL
    );
    CREATE TABLE students (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        round_id INTEGER NOT NULL REFERENCES rounds(id),
        nickname TEXT NOT NULL,
        token TEXT NOT NULL UNIQUE,
        hidden INTEGER NOT NULL DEFAULT 0,
        final_run_id INTEGER,
        joined_at REAL NOT NULL,
        UNIQUE (round_id, nickname COLLATE NOCASE)
    );
    ALTER TABLE runs ADD COLUMN student_id INTEGER REFERENCES students(id);
    ALTER TABLE runs ADD COLUMN public_accuracy REAL;
    CREATE INDEX runs_student ON runs(student_id)
    """,
    # where each run trained: "local" (this machine's worker pool or CLI) or "ray:<node address>"
    "ALTER TABLE runs ADD COLUMN trained_on TEXT",
]
