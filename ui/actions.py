"""The one way a page changes stored state: teacher-only, refreshing the shared views, and a
double click queuing once."""

from __future__ import annotations

import time

import streamlit as st

from lenet.config import TrainConfig
from lenet.store import RunStateError
from lenet.worker import ensure_workers as start_workers
from lenet.workspace import Workspace

from .loaders import workspace
from .roles import require_teacher
from .shared import _shared_views


def teacher_action(change, *args, then=None) -> None:
    """A button's on_click, and the one way a page changes stored state: the teacher's change runs
    before the rerun, so the redrawn view already shows it; `then()` follows a change that worked.
    A change the store refuses (the run finished between the last refresh and the click) is a toast."""
    require_teacher()
    try:
        change(*args)
    except RunStateError as e:
        st.toast(str(e))
    else:
        if then is not None:
            then()
    _shared_views().clear()


REPEAT_WINDOW_S = 10.0  # the same launch again within this long is a double click, not a wish


def _once(launch_key: str, start):
    """Run `start()` unless this session launched exactly this a moment ago; return its result."""
    last = st.session_state.get("last_launch")
    if last and last[0] == launch_key and time.monotonic() - last[1] < REPEAT_WINDOW_S:
        st.toast("Already queued a moment ago: not queued twice.")
        return last[2]
    result = start()
    _shared_views().clear()
    st.session_state["last_launch"] = (launch_key, time.monotonic(), result)
    return result


def ensure_workers(ws: Workspace) -> None:
    """Start the worker pool for what was just queued. Torch-free: only the workers import torch,
    so a launch does not wait ~2 s for the server to import it first."""
    start_workers(ws)


def start_training() -> None:
    """Make sure the worker pool trains what is queued (a student's submission, checked already)."""
    ensure_workers(workspace())


def launch(configs: list[TrainConfig], name: str | None = None) -> list[int]:
    """Queue runs and make sure the worker pool will train them (a double click queues them once)."""

    def start():
        require_teacher()
        ws = workspace()
        ids = [ws.store.enqueue(config, name=name) for config in configs]
        ensure_workers(ws)
        return ids

    return _once(repr((configs, name)), start)


def launch_experiment(launcher, *args, **kwargs) -> int:
    """Queue an experiment (`lenet.experiments.launch_*`) and make sure the worker pool trains it
    (a double click queues it once)."""

    def start():
        require_teacher()
        ws = workspace()
        experiment_id = launcher(ws.store, *args, **kwargs)
        ensure_workers(ws)
        return experiment_id

    return _once(repr((launcher.__name__, args, kwargs)), start)
