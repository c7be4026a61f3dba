"""What Live and the sidebar show of training, as JSON that their own elements poll
(ui/feed_view.py) instead of Streamlit rerunning a fragment every second.

Measured with two watching Chromium tabs during the quick demo: a fragment rerun cost a tab about
40 ms of CPU however little it redrew (Streamlit's frontend re-renders the app for every script
run), and Live reran two a second per tab (its progress bars, its charts and the sidebar). A poll
of this feed costs the tab about a millisecond: the element changes only the bars' text and width,
and hands plotly a figure only when it changed.

Everything here is what the page would show to anyone who opens it (no test score, nothing only
the teacher may see), built once per server for every viewer (`shared_view`), and read-only. A
poll says that someone looks at the dashboard, which keeps its worker pool warm (`keep_pool_warm`).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import NamedTuple

import pandas as pd
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lenet import charts
from lenet.records import Run, RunStatus, runs_frame, seconds_left
from lenet.tables import duration, percent

from .actions import keep_pool_warm
from .loaders import workspace
from .shared import CHART_REFRESH_S, SHARED_VIEW_MAX_AGE_S, read_runs, runs_now, shared_view
from .widgets import run_state

LIVE_PATH = "/feed/live"  # Live: the bars, the queue and the charts of one experiment (or every run)
RUNS_PATH = "/feed/runs"  # the sidebar: what trains now, on every page
RECENT = 5  # finished runs kept on Live's charts beside the active ones, when showing every run
EXPERIMENT_BAR = "all"  # the bar of a whole experiment, among its runs' bars (by run id)
CHART_KINDS = ("epochs", "steps")


class OnScreen(NamedTuple):
    runs: list[Run]  # every run of the experiment, newest first
    active: list[Run]  # running, then queued, in training order
    shown: pd.DataFrame  # the runs on the charts, in launch order
    training: bool  # whether anything trains, in this experiment or not
    newest_experiment: int  # 0 before the first
    waiting: frozenset[int]  # the queued runs that workers will take (not a paused round's)

    @property
    def ended(self) -> int:
        """How many of the runs have ended (finished, failed, stopped...)."""
        return len(self.runs) - len(self.active)


def on_screen(experiment_id: int | None) -> OnScreen:
    """Live's runs: an experiment's (whole), or every run's (the active and the recent ones)."""

    def build() -> OnScreen:
        runs, active, waiting = everything = read_runs()
        if experiment_id is not None:
            runs = [run for run in runs if run.experiment_id == experiment_id]
            active = [run for run in active if run.experiment_id == experiment_id]
        ended = [run for run in runs if not run.status.active]
        # by id: a run's legend entry keeps its place while the runs around it start and end
        shown = runs_frame(
            sorted(active + ended[: RECENT if experiment_id is None else None], key=lambda r: r.id)
        )
        newest = max((run.experiment_id or 0 for run in everything.runs), default=0)
        return OnScreen(runs, active, shown, bool(everything.active), newest, waiting)

    return shared_view(("live runs", experiment_id), build, max_age_s=SHARED_VIEW_MAX_AGE_S)


class Charts(NamedTuple):
    revision: str  # changes whenever the figure does
    figure: str  # JSON, as the live chart draws it


def live_charts(experiment_id: int | None, presenting: bool, kind: str) -> Charts:
    """The per-epoch figure, accuracy and loss (rebuilt only when an epoch ends or a run changes
    status), or the per-step one, training loss and accuracy (at most once per chart refresh), for
    every viewer."""
    shown = on_screen(experiment_id).shown

    def epochs_changed() -> tuple:
        return tuple(shown[["id", "status", "epochs_completed"]].itertuples(index=False, name=None))

    def steps_changed() -> tuple:  # the runs shown too: they may be newer than the last revision read
        return workspace().store.revision(), tuple(shown["id"])

    def build() -> Charts:
        labels = charts.short_labels(shown) if presenting else None
        ids = shown["id"].tolist()
        store = workspace().store
        if kind == "epochs":
            epochs = store.epoch_metrics(ids)
            figure = charts.epoch_curves_spec(epochs, shown, labels)
        else:
            steps = store.step_metrics(ids)
            figure = charts.step_curves_spec(steps, shown, labels)
        encoded = json.dumps(charts.for_projector(figure) if presenting else figure, allow_nan=False)
        return Charts(hashlib.sha1(encoded.encode()).hexdigest()[:16], encoded)

    return shared_view(
        ("live charts", kind, experiment_id, presenting),
        build,
        max_age_s=SHARED_VIEW_MAX_AGE_S if kind == "epochs" else CHART_REFRESH_S,
        revision=epochs_changed if kind == "epochs" else steps_changed,
    )


def progress_row(run: Run, with_epoch: bool = True) -> dict:
    """A progress bar: the run's name, and what it is doing ('epoch 3/40 · 7% · ETA 1 min 07 s')."""
    # the epoch in progress; after the last one, the final evaluation still runs
    epoch = f"epoch {min(run.epochs_completed + 1, run.epochs)}/{run.epochs} · {percent(run.progress)} · "
    return {
        "id": run.id,
        "name": run.name,
        "progress": run.progress,
        "detail": (epoch if with_epoch else "") + run_state(run),
    }


def time_left(active: list[Run], waiting: frozenset[int]) -> str | None:
    """'ETA 38 s' until the last of the `active` runs ends, queued ones included (None before
    every running run has an ETA of its own)."""
    running = [run for run in active if run.status == RunStatus.RUNNING]
    left = seconds_left(running, sum(run.id in waiting for run in active), time.time())
    return None if left is None else f"ETA {duration(left)}"


def experiment_row(now: OnScreen) -> dict:
    """The bar of a whole experiment: its share of batches done (an ended run's all done), and
    about when its last run ends ('2 of 8 ended · 40.2% · ETA 38 s')."""
    progress = sum(run.progress if run.status.active else 1.0 for run in now.runs) / len(now.runs)
    parts = [f"{now.ended} of {len(now.runs)} ended", percent(progress), time_left(now.active, now.waiting)]
    return {
        "id": EXPERIMENT_BAR,
        "name": f"All {len(now.runs)} runs",
        "progress": progress,
        "detail": " · ".join(part for part in parts if part),
    }


def message(runs: list[Run], active: list[Run], experiment_id: int | None) -> str | None:
    if not runs:
        return (
            "Nothing has been trained yet. Queue runs on the Train page, or launch the quick demo from Home."
        )
    if not active and experiment_id is None:
        return f"Nothing is training now. Showing the {min(RECENT, len(runs))} most recent runs."
    if not active:
        return "Nothing of this experiment is training now. Its results are on the Results page."
    return None


def page_key(now: OnScreen) -> str:
    """What the Streamlit part of Live shows outside its runs' part and the feed does not: whether
    anything trains, the experiments to choose from and whether there are runs to chart. When it
    changes, the page reruns once."""
    return json.dumps([now.training, now.newest_experiment, bool(now.runs)])


def runs_key(now: OnScreen) -> str:
    """What Live's runs' part shows and the feed does not: the running runs (a bar and the teacher's
    Stop button each), the queue and how many runs have ended. When it changes, only that part (a
    fragment) reruns: a run starting or ending, ten times in the quick demo, no longer redraws the
    whole page in every watching tab."""
    running = [(run.id, run.stop_requested) for run in now.active if run.status == RunStatus.RUNNING]
    queued = [run.id for run in now.active if run.status != RunStatus.RUNNING]
    return json.dumps([running, queued, now.ended])


WATCHED_KEYS = {"page": page_key, "runs": runs_key}  # a watcher of each reruns what its key covers


def live_state(experiment_id: int | None, presenting: bool, have: dict[str, str]) -> str:
    """Live's feed as JSON text: the keys of the page and of its runs' part, each running run's bar,
    and each chart kind in `have` (kind -> the revision the browser has drawn) whose figure
    changed since."""
    now = on_screen(experiment_id)
    bars = {run.id: progress_row(run) for run in now.active if run.status == RunStatus.RUNNING}
    if experiment_id is not None and now.active:
        bars[EXPERIMENT_BAR] = experiment_row(now)
    state = {"training": now.training, **{part: key(now) for part, key in WATCHED_KEYS.items()}, "bars": bars}
    updates = []
    if now.runs:
        for kind in CHART_KINDS:
            if kind in have:
                revision, figure = live_charts(experiment_id, presenting, kind)
                if revision != have[kind]:
                    updates.append(f'"{kind}": {{"revision": "{revision}", "figure": {figure}}}')
    return json.dumps(state)[:-1] + ', "charts": {' + ", ".join(updates) + "}}"


def runs_state() -> dict:
    """The sidebar's summary of what trains now."""
    _, active, waiting = runs_now()
    running = [run for run in active if run.status == RunStatus.RUNNING]
    if not active:
        return {"training": False, "summary": "Nothing is training.", "running": []}
    counts = f"{len(running)} training, {len(active) - len(running)} queued"
    left = time_left(active, waiting)
    return {
        "training": True,
        "summary": f"{counts} · {left}" if left else counts,
        "running": [progress_row(run, with_epoch=False) for run in running],
    }


# -- the routes (app.py serves them beside Streamlit's own) ---------------------------------------
def _experiment(request: Request) -> int | None:
    value = request.query_params.get("experiment", "")
    return int(value) if value.isdigit() and int(value) else None


def _live(request: Request) -> Response:
    have = {}
    for item in request.query_params.get("charts", "").split(","):
        kind, _, revision = item.partition(":")
        if kind in CHART_KINDS:
            have[kind] = revision[:16]
    presenting = request.query_params.get("present") in ("1", "true")
    text = live_state(_experiment(request), presenting, have)
    return Response(text, media_type="application/json", headers={"Cache-Control": "no-store"})


def _runs(request: Request) -> Response:
    keep_pool_warm()  # every page's sidebar polls this, Live's included
    return JSONResponse(runs_state(), headers={"Cache-Control": "no-store"})


# sync handlers: Starlette runs them in its thread pool, beside the event loop (the store is SQLite)
ROUTES = [Route(LIVE_PATH, _live), Route(RUNS_PATH, _runs)]
