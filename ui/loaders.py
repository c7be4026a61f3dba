"""Cached loaders: the workspace, checkpoints (by path and mtime, or uploaded bytes), the test
images, and what Results shows of a checkpoint. Heavy imports (torch, the network, the data) wait
until a page needs a model or the images: the first page, its sidebar and the live charts draw
without them."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from lenet.catalog import CheckpointError, mirrored_test_accuracy
from lenet.workspace import Workspace, home_from_env


# No spinner on what is built in a blink: the feed (ui/feed.py) may build it first, outside any
# script run, where a spinner has no page and Streamlit logs "missing ScriptRunContext".
@st.cache_resource(show_spinner=False)
def _workspace(home: str) -> Workspace:
    return Workspace(Path(home))


def workspace() -> Workspace:
    """The process's workspace (paths and the open run store), built once per $LENET_HOME."""
    return _workspace(str(home_from_env()))


def _inference_threads() -> None:
    """The dashboard process only runs inference (training happens in worker processes)."""
    import torch

    from lenet.predict import INFERENCE_THREADS

    torch.set_num_threads(INFERENCE_THREADS)


@st.cache_resource(max_entries=32)
def _load_checkpoint(path: str, mtime_ns: int):
    # Keyed by mtime too, so a replaced file is reloaded. Shared across sessions: never mutate.
    from lenet import artifacts

    _inference_threads()
    return artifacts.load_checkpoint(path)


def load_checkpoint(path: str):
    try:
        mtime_ns = os.stat(path).st_mtime_ns
    except OSError:
        raise CheckpointError(f"{path}: no such file (deleted outside the dashboard?)") from None
    return _load_checkpoint(str(path), mtime_ns)


@st.cache_resource
def _test_images(home: str):
    return _workspace(home).load_test()


def test_images():
    """The FashionMNIST test images (raw and normalized) for galleries; loaded once per server."""
    return _test_images(str(workspace().home))


def load_uploaded_checkpoint(name: str, payload: bytes):
    """Load an uploaded .pth safely, in memory only: an upload never grows the disk, whoever sends it.

    Raises CheckpointError for anything that is not a LeNet-5 state_dict.
    """
    return _load_uploaded(name, payload)


@st.cache_resource(max_entries=16, show_spinner=False)
def _load_uploaded(name: str, payload: bytes):
    # Shared across sessions (the same file uploaded by a whole class is loaded once): never mutate.
    from lenet import artifacts

    _inference_threads()
    return artifacts.load_checkpoint_bytes(payload, name)


def mirrored_accuracy(path: str) -> float:
    """The model's accuracy on the test images flipped left-right (`catalog.mirrored_test_accuracy`),
    cached per checkpoint version."""
    return _mirrored_accuracy(str(path), os.stat(path).st_mtime_ns)


# cache_resource, not cache_data, for this float and the mistakes below: app.py imports this module
# before Streamlit's runtime exists, and each st.cache_data declared then logged "No runtime found"
# as every server started.
@st.cache_resource(max_entries=64, show_spinner=False)
def _mirrored_accuracy(path: str, mtime_ns: int) -> float:
    def measure() -> float:
        from lenet.train import evaluate

        return evaluate(_load_checkpoint(path, mtime_ns)[0], test_images().split.mirrored()).accuracy

    return mirrored_test_accuracy(path, measure)


def mistakes(path: str, limit: int = 24):
    """The model's most confident test-set mistakes: from its metadata (found when it finished),
    else found now and cached per checkpoint version."""
    from lenet.analysis import Mistake

    found = load_checkpoint(path)[1].get("mistakes")
    if found is not None:
        return [Mistake(**m) for m in found[:limit]]
    return list(_mistakes(str(path), os.stat(path).st_mtime_ns, limit))  # the cached list stays as it is


@st.cache_resource(max_entries=16, show_spinner="Finding what this model gets wrong...")
def _mistakes(path: str, mtime_ns: int, limit: int):
    model, _ = _load_checkpoint(path, mtime_ns)
    from lenet import analysis

    return analysis.mistakes(model, test_images().split, limit=limit)
