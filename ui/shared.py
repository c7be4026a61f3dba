"""Views that follow the store, built once per server for every session that draws them (a class
of viewers must not query and chart the same rows once each), and the pace they refresh at."""

from __future__ import annotations

import threading
import time
from typing import NamedTuple

import plotly.graph_objects as go
import streamlit as st

from lenet.records import Run, in_training_order

from .loaders import workspace
from .roles import is_teacher

# -- views that follow the store ---------------------------------------------------------------
TRAINING_REFRESH_S = 1.0  # while runs train, the teacher's views: stop and cancel show within a second
VIEWER_REFRESH_S = 2.0  # the room's: half the cost of a class of viewers to the training they watch
# Live's charts, while runs train: redrawing a plotly chart is most of what a watching browser spends
# (measured: 4 charts redrawn every second took 0.2 cores of 2 Chromium tabs, their progress bars 0.1)
CHART_REFRESH_S = 3.0  # the per-epoch charts: the lesson
STEP_CHART_REFRESH_S = 6.0  # the per-step ones: detail below the fold
SIDEBAR_REFRESH_S = 2.0  # the sidebar's summary, on every page beside the page's own view
IDLE_REFRESH_S = 3.0  # otherwise: a run launched from another tab or by a worker shows within seconds
# the room's views that change only as runs end (the sidebar, the class board, a waiting student's
# place in the queue): a class of 30 at 2 s took 0.4 cores of a 2-core laptop (benchmarks/classroom.py)
ROOM_SLOW_REFRESH_S = 5.0
SHARED_VIEW_MAX_AGE_S = 0.5  # what every session reads of the store (runs_now, the round's board)


class SharedFigure(go.Figure):
    """A finished figure that many sessions draw. st.plotly_chart turns a figure into a dict on every
    draw (a deep copy: ~4 ms for a chart of 10 runs, per viewer per refresh); this one is turned into
    a dict once. Its own data reads as empty: draw it, never edit it."""

    def __init__(self, figure: go.Figure):
        super().__init__()
        self._frozen = figure.to_dict()

    def to_dict(self) -> dict:
        return self._frozen


class _Shared(NamedTuple):
    checked_at: float  # when the store's revision was last compared
    revision: tuple
    value: object


class SharedViews:
    """Values built from the store once for every session of this server (a class of 20 watching
    the teacher's URL must not query and chart the same rows 20 times a second). A value is at most
    `max_age_s` old: the first session to find it older compares the store's revision (one cheap
    query) and rebuilds only if the store changed, while the others keep drawing the previous value
    instead of waiting."""

    def __init__(self):
        self.lock = threading.Lock()
        self.values: dict[tuple, _Shared] = {}
        self.building: set[tuple] = set()

    def get(self, key: tuple, build, max_age_s: float, revision=None):
        with self.lock:
            entry = self.values.get(key)
            if entry is not None and (
                time.monotonic() - entry.checked_at < max_age_s or key in self.building
            ):
                return entry.value
            self.building.add(key)
        try:
            current = (revision or workspace().store.revision)()
            value = entry.value if entry is not None and entry.revision == current else build()
            with self.lock:
                self.values[key] = _Shared(time.monotonic(), current, value)
            return value
        finally:
            with self.lock:
                self.building.discard(key)

    def clear(self) -> None:
        """After a change made here (stop, cancel, launch): the next read is current."""
        with self.lock:
            self.values.clear()


@st.cache_resource(show_spinner=False)  # as loaders._workspace: the feed may make it first
def _shared_views() -> SharedViews:
    return SharedViews()


def shared_view(key: tuple, build, max_age_s: float = TRAINING_REFRESH_S, revision=None):
    """`build()`, shared by every session and rebuilt at most once per `max_age_s` (see SharedViews),
    when `revision()` (by default the whole store's) has changed. The value is shared: never mutate it."""
    return _shared_views().get((str(workspace().home), *key), build, max_age_s, revision)


class RunsNow(NamedTuple):
    runs: list[Run]  # every run, newest first
    active: list[Run]  # running, then queued, in training order
    waiting: frozenset[int]  # the queued runs that workers will take (not a paused round's)


def read_runs() -> RunsNow:
    """Every run and the active ones, read from the store now. A shared view builds from this, not
    from `runs_now()`: built from another shared view, it could keep that one's older value under
    the store's newer revision until the store changed again."""
    store = workspace().store
    runs = store.list_runs()
    active = [run for run in runs if run.status.active]
    queue = store.queue_order()
    return RunsNow(runs, in_training_order(active, queue), frozenset(queue))


def runs_now() -> RunsNow:
    """Every run and the active ones, at most half a second old, shared by every session."""
    return shared_view(("runs",), read_runs, max_age_s=SHARED_VIEW_MAX_AGE_S)


def pace_s(every_s: float, viewer_s: float = VIEWER_REFRESH_S) -> float:
    """A view's pace while runs train: `every_s` for the teacher, at least `viewer_s` for the room."""
    return every_s if is_teacher() else max(every_s, viewer_s)


def follow_store(view, every_s: float = TRAINING_REFRESH_S) -> None:
    """Draw `view()` and redraw it as the store changes, without reloads: every `every_s` while runs
    train (every 2 s at least for viewers), every 3 s otherwise. When training starts or ends the
    whole page reruns once, so that every part of it (and its pace) follows."""
    training = bool(runs_now().active)
    pace = pace_s(every_s)

    @st.fragment(run_every=pace if training else max(pace, IDLE_REFRESH_S))
    def followed() -> None:
        if bool(runs_now().active) != training:
            st.rerun()
        view()

    followed()
