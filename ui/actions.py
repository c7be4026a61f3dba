"""The one way a page changes stored state: teacher-only, refreshing the shared views, and a
double click queuing once."""

from __future__ import annotations

import contextlib
import threading
import time

import streamlit as st

from lenet.config import TrainConfig
from lenet.store import RunStateError
from lenet.worker import ensure_workers as start_workers
from lenet.worker import standby_wanted
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


STANDBY_CHECK_S = 10.0  # how often a drawn page checks that the warm pool is there
# The warm pool starts this long after the page that asks for it, which is drawn first: started
# with it, the workers' start-up took the first page from 1.4 to 2.0-2.4 s after the server was up.
STANDBY_DELAY_S = 5.0
_standby = {"checked": -STANDBY_CHECK_S, "lock": threading.Lock()}


def keep_pool_warm() -> None:
    """While the dashboard is looked at its worker pool stays started and warm (lenet.worker), so
    that the teacher's click trains at once rather than after each worker's 3.5-5 s of start-up.
    Called whenever a page is drawn or an open tab polls the feed (every few seconds, on every
    page), and acted on at most every 10 s; $LENET_STANDBY_WORKERS=0 turns it off."""
    if not standby_wanted() or time.monotonic() - _standby["checked"] < STANDBY_CHECK_S:
        return
    _standby["checked"] = time.monotonic()
    timer = threading.Timer(STANDBY_DELAY_S, _start_warm_pool, args=(workspace(),))
    timer.daemon = True
    timer.start()


def _start_warm_pool(ws: Workspace) -> None:
    # One check at a time: a second finds the first's workers live. A malformed $LENET_PARALLEL_RUNS
    # (ValueError) is for the teacher's launch to report, with what to fix.
    with _standby["lock"], contextlib.suppress(ValueError):
        start_workers(ws, standby=True)


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
