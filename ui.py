"""Streamlit helpers shared by the pages: cached loaders and the few widgets every page repeats.

Decisions live in `lenet`; this module only adapts them to Streamlit (caching, sidebar, toasts).
"""

from __future__ import annotations

import os

import streamlit as st
import torch

from lenet import artifacts, data
from lenet.predict import INFERENCE_THREADS
from lenet.store import Store
from lenet.train import TrainConfig
from lenet.worker import ensure_worker

# The dashboard process only runs inference (training happens in worker processes).
torch.set_num_threads(INFERENCE_THREADS)


def store() -> Store:
    return Store()


def launch(configs: list[TrainConfig], name: str | None = None) -> list[int]:
    """Queue runs and make sure a background worker will train them."""
    db = store()
    ids = [db.enqueue(config, name=name) for config in configs]
    ensure_worker(db)
    return ids


@st.cache_resource(max_entries=32)
def _load_checkpoint(path: str, mtime_ns: int):
    # Keyed by mtime too, so a replaced file is reloaded. Shared across sessions: never mutate.
    return artifacts.load_checkpoint(path)


def load_checkpoint(path: str):
    try:
        mtime_ns = os.stat(path).st_mtime_ns
    except OSError:
        raise artifacts.CheckpointError(f"{path}: no such file (deleted outside the dashboard?)") from None
    return _load_checkpoint(str(path), mtime_ns)


@st.cache_resource
def test_data() -> tuple[data.Split, object]:
    """(normalized test split, raw uint8 test images) for galleries; loaded once per server."""
    raw = data.load_raw()
    return data.make_splits(raw).test, raw.test_images


def percent(value) -> str:
    return "–" if value is None or value != value else f"{100 * value:.1f}%"


def duration(seconds) -> str:
    if seconds is None or seconds != seconds:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def sidebar_status() -> None:
    """What is training right now, on every page."""
    runs = store().list_runs(("queued", "running"))
    with st.sidebar:
        if runs.empty:
            st.caption("Nothing is training.")
            return
        running = runs[runs["status"] == "running"]
        st.caption(f"{len(running)} training, {len(runs) - len(running)} queued")
        for _, run in running.iterrows():
            st.progress(float(run["progress"]), text=f"{run['name']}: ETA {duration(run['eta_s'])}")


def load_uploaded_checkpoint(name: str, payload: bytes):
    """Keep an uploaded .pth under $LENET_HOME/uploads (by content hash) and load it safely.

    Raises CheckpointError for anything that is not a LeNet-5 state_dict; the file is then removed.
    """
    import hashlib
    import re

    folder = artifacts.home_dir() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:60]
    path = folder / f"{hashlib.sha256(payload).hexdigest()[:12]}-{safe}"
    artifacts.atomic_write_bytes(path, payload)
    try:
        return load_checkpoint(path)
    except artifacts.CheckpointError:
        path.unlink(missing_ok=True)
        raise


def mistakes(path: str, limit: int = 24):
    """The model's most confident test-set mistakes (cached per checkpoint file version)."""
    return _mistakes(str(path), os.stat(path).st_mtime_ns, limit)


@st.cache_data(max_entries=16, show_spinner="Finding what this model gets wrong...")
def _mistakes(path: str, mtime_ns: int, limit: int):
    from lenet import analysis

    model, _ = _load_checkpoint(path, mtime_ns)
    return analysis.mistakes(model, test_data()[0], limit=limit)
