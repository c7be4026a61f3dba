"""The one owner of where things live ($LENET_HOME) and of the run store's connection.

A process builds one `Workspace` and hands it to whatever needs a path or the store: the CLI in
`main`, the dashboard through `st.cache_resource`, a worker at start, tests from `tmp_path`
(in the style of Flask's `create_app(test_config)`). Nothing else reads $LENET_HOME.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from . import catalog
from .store import Store

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_HOME = "LENET_HOME"


def home_from_env() -> Path:
    return Path(os.environ.get(ENV_HOME) or REPO_ROOT / "artifacts")


@dataclass(frozen=True)
class Workspace:
    """Runs, the run database, uploads and downloaded data under `home`; shipped models beside the code."""

    home: Path
    pretrained_dir: Path = REPO_ROOT / "artifacts" / "pretrained"

    @classmethod
    def from_env(cls) -> Workspace:
        return cls(home_from_env())

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def uploads_dir(self) -> Path:
        return self.home / "uploads"

    @property
    def data_dir(self) -> Path:
        """Where a FashionMNIST download goes (and is looked for after the other sources)."""
        return self.home / "data"

    @property
    def worker_log(self) -> Path:
        return self.home / "worker.log"

    @property
    def standby_mark(self) -> Path:
        """Touched whenever the dashboard is looked at: its warm workers wait while it is recent."""
        return self.home / "standby"

    @cached_property
    def store(self) -> Store:
        """Opened (and migrated) once per workspace; every read after that is lock-free."""
        return Store(self.home / "runs.db")

    def checkpoint_path(self, run_id: int, name: str) -> Path:
        """The one naming scheme for run checkpoints: `runs/<id>-<name>.pth`, unique by run id."""
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")[:60]
        return self.runs_dir / f"{run_id:04d}-{slug or 'run'}.pth"

    def list_checkpoints(self) -> list[catalog.CheckpointInfo]:
        """Every complete checkpoint: the shipped ones first, then the runs'."""
        return catalog.list_checkpoints(self.pretrained_dir, "pretrained") + catalog.list_checkpoints(
            self.runs_dir, "run"
        )

    def load_raw(self, data_dir: str | Path | None = None):
        from . import data  # torch: only when data is needed

        return data.load_raw(data_dir, download_root=self.data_dir)

    def load_test(self, data_dir: str | Path | None = None):
        from . import data

        return data.load_test(data_dir, download_root=self.data_dir)
