"""The feed that Live's bars and charts and the sidebar poll (ui/feed.py): what it sends, when a chart
is sent again, when the page must rerun, and what it makes of a forged query."""

import json
import os
import re
import time
from dataclasses import replace

import pytest
import streamlit as st
from starlette.requests import Request

import ui
from lenet.config import EpochMetrics, StepMetrics
from lenet.experiments import launch_preset
from lenet.presets import PRESETS
from lenet.records import Run, RunStatus, seconds_left
from lenet.train import TrainConfig
from lenet.worker import MIN_POLL_S, next_poll
from ui import feed
from ui.shared import _shared_views

from conftest import wait_until


@pytest.fixture
def store(isolated_home):
    st.cache_resource.clear()  # this test's own workspace
    return ui.workspace().store


def fresh() -> None:
    """What the next read sees is the store now (shared views are up to half a second old)."""
    _shared_views().clear()


def _epoch(n: int) -> EpochMetrics:
    return EpochMetrics(
        n, train_loss=1 / n, train_accuracy=0.9, val_loss=1.2 / n, val_accuracy=0.8, seconds=1.0
    )


def live(experiment_id=None, **have) -> dict:
    return json.loads(feed.live_state(experiment_id, False, have))


def test_the_feed_sends_each_running_runs_bar_and_a_chart_only_when_it_changed(store):
    running = store.enqueue(TrainConfig.for_variant("baseline", epochs=3), name="first")
    waiting = store.enqueue(TrainConfig.for_variant("dropout", epochs=3), name="second")
    store.claim_next(os.getpid())
    store.record_epoch(running, _epoch(1))
    state = live(epochs="", steps="")
    assert state["training"] is True
    assert list(state["bars"]) == [str(running)]  # the queued run has no bar
    assert state["bars"][str(running)]["name"] == "first"
    assert state["bars"][str(running)]["detail"].startswith("epoch 2/3 · ")
    figure = state["charts"]["epochs"]["figure"]
    assert figure["layout"]["title"]["text"] == "Accuracy and loss"  # one figure, one legend
    assert "template" not in figure["layout"]  # drawn in Streamlit's look by the browser

    drawn = state["charts"]["epochs"]["revision"]
    fresh()
    assert live(epochs=drawn)["charts"] == {}  # nothing new: no figure sent
    assert "epochs" not in live(steps="")["charts"]  # a kind not asked for is not sent
    store.record_epoch(running, _epoch(2))
    fresh()
    changed = live(epochs=drawn)["charts"]["epochs"]
    assert changed["revision"] != drawn
    validation = changed["figure"]["data"][0]
    assert validation["name"].endswith("first") and len(validation["x"]) == 2
    assert str(waiting) not in live()["bars"]


def test_lives_runs_part_reruns_as_runs_start_stop_and_end_and_the_page_only_as_training_does(store):
    def keys():
        fresh()
        now = feed.on_screen(None)
        return feed.page_key(now), feed.runs_key(now)

    nothing = keys()
    first = store.enqueue(TrainConfig.for_variant("baseline", epochs=3))
    queued = keys()
    store.claim_next(os.getpid())
    started = keys()
    store.record_epoch(first, _epoch(1))
    store.heartbeat(first)
    assert keys() == started  # progress alone: the feed draws it
    store.request_stop(first)
    stopping = keys()
    second = store.enqueue(TrainConfig.for_variant("dropout", epochs=3))
    more = keys()
    store.finish(first, status=RunStatus.STOPPED)
    store.claim_next(os.getpid())
    next_one = keys()
    assert len({runs for _, runs in (nothing, queued, started, stopping, more, next_one)}) == 6
    # the whole page only when there are runs at all, or when training starts or ends
    assert nothing[0] != queued[0] == started[0] == stopping[0] == more[0] == next_one[0]
    store.finish(second, status=RunStatus.FINISHED)
    assert keys()[0] != next_one[0]


def test_the_sidebar_says_what_trains_now(store):
    assert feed.runs_state() == {"training": False, "summary": "Nothing is training.", "running": []}
    run_id = store.enqueue(TrainConfig.for_variant("baseline", epochs=3), name="first")
    store.enqueue(TrainConfig.for_variant("dropout", epochs=3))
    store.claim_next(os.getpid())
    fresh()
    state = feed.runs_state()
    assert state["summary"] == "1 training, 1 queued"
    assert [(row["id"], row["name"]) for row in state["running"]] == [(run_id, "first")]


def _running(store, pid: int, started_at: float, eta_s: float) -> Run:
    run = store.get_run(store.enqueue(TrainConfig.for_variant("baseline", epochs=3)))
    return replace(run, status=RunStatus.RUNNING, worker_pid=pid, started_at=started_at, eta_s=eta_s)


def test_the_time_left_counts_the_runs_still_queued_after_each_workers_stack(store):
    now = 1000.0
    # worker 1: a stack of 3, 10 s in, 20 s to go (10 s a run); worker 2: a stack of 2, 4 s in, 8 s
    # to go (6 s a run); queued runs take 8 s each, the mean, on whichever worker is free first
    stacks = [_running(store, 1, 990.0, eta) for eta in (19.0, 20.0, 18.5)]
    stacks += [_running(store, 2, 996.0, eta) for eta in (8.0, 7.5)]
    assert seconds_left(stacks, 0, now) == 20.0  # each stack ends with its slowest run
    assert seconds_left(stacks, 1, now) == 20.0  # worker 2: 8 + 8 = 16 s
    assert seconds_left(stacks, 2, now) == 24.0  # then worker 2 again: 24 s
    assert seconds_left(stacks, 3, now) == 28.0  # worker 1: 20 + 8 s
    # a run alone: its whole time a run; runs elsewhere (no worker's pid) are each their own group
    alone = _running(store, 3, 995.0, 5.0)
    assert seconds_left([alone], 2, now) == 25.0
    elsewhere = [replace(_running(store, 0, 995.0, 5.0), worker_pid=None) for _ in range(2)]
    assert seconds_left(elsewhere, 1, now) == 15.0
    # nothing to go by yet
    assert seconds_left([], 3, now) is None
    assert seconds_left([alone, replace(alone, eta_s=None)], 0, now) is None


def test_a_wait_for_runs_looks_again_sooner_as_the_last_runs_near_their_end(store):
    """`wait_for_runs` polls every `poll_s`, but not past the runs' expected end: the CLI returns
    within MIN_POLL_S of the last run, instead of up to a second after it."""
    now = time.time()
    queued = store.get_run(store.enqueue(TrainConfig.for_variant("baseline", epochs=3)))
    finished = replace(queued, status=RunStatus.FINISHED)
    assert next_poll([queued], 1.0) == 1.0  # nothing to go by yet
    assert next_poll([_running(store, 1, now - 5, None)], 1.0) == 1.0  # no ETA yet
    assert next_poll([_running(store, 1, now - 5, 30.0)], 1.0) == 1.0
    assert next_poll([_running(store, 1, now - 5, 0.6), finished], 1.0) == pytest.approx(0.6)
    assert next_poll([_running(store, 1, now - 5, 0.0)], 1.0) == MIN_POLL_S  # ending: test, saving
    # a run still queued behind it keeps the wait at its pace
    assert next_poll([_running(store, 1, now - 5, 0.6), queued], 1.0) == 1.0


def test_an_experiments_bar_says_how_far_it_is_and_about_when_its_last_run_ends(store):
    experiment_id = launch_preset(store, "quick_demo")
    total = len(PRESETS["quick_demo"].configs())
    first, second = store.claim_next(1, max_running=2), store.claim_next(2, max_running=2)
    fresh()
    bar = live(experiment_id)["bars"][feed.EXPERIMENT_BAR]
    assert bar["name"] == f"All {total} runs" and bar["progress"] == 0
    assert bar["detail"] == f"0 of {total} ended · 0.0%"  # no ETA before every running run has one
    assert "· ETA" not in feed.runs_state()["summary"]
    for run_id, eta_s in ((first, 10.0), (second, 20.0)):
        store.record_step(run_id, StepMetrics(1, 8, 16, 8, 48, 1.0, 0.5, 1.0, eta_s))
    store.finish(store.claim_next(3, max_running=3), RunStatus.FAILED, message="its callback failed")
    fresh()
    bar = live(experiment_id)["bars"][feed.EXPERIMENT_BAR]
    assert bar["progress"] == pytest.approx((1 + 2 * 8 / 48) / total)  # an ended run counts as done
    # two workers, 15 s a run, then five queued runs: about a minute, where each bar says 10 or 20 s
    assert re.fullmatch(rf"1 of {total} ended · \d+\.\d% · ETA 5\d s", bar["detail"]), bar["detail"]
    assert re.fullmatch(r"2 training, 5 queued · ETA 5\d s", feed.runs_state()["summary"])
    assert feed.EXPERIMENT_BAR not in live()["bars"]  # every run, not one experiment: no such bar


def _get(handler, query: str) -> dict:
    scope = {"type": "http", "method": "GET", "path": "/", "query_string": query.encode(), "headers": []}
    request = Request(scope)
    response = handler(request)
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    return json.loads(response.body)


@pytest.mark.parametrize(
    "query",
    [
        "experiment=1&present=1&charts=epochs:,steps:",
        "experiment=../../etc/passwd&charts=epochs:" + "x" * 5000 + ",evil:1,steps",
        "experiment=-3&present=<script>&charts=",
        "experiment=99999999999999999999999",
    ],
)
def test_the_routes_answer_any_query_with_what_live_shows_and_nothing_else(store, query):
    run_id = store.enqueue(TrainConfig.for_variant("baseline", epochs=3), name="first")
    store.claim_next(os.getpid())
    store.record_epoch(run_id, _epoch(1))
    fresh()
    before = store.revision()
    state = _get(feed.ROUTES[0].endpoint, query)
    assert set(state) == {"training", "page", "runs", "bars", "charts"}
    assert set(state["charts"]) <= {"epochs", "steps"}
    assert list(state["bars"]) in ([str(run_id)], [])  # another experiment's page shows none of it
    assert _get(feed.ROUTES[1].endpoint, query)["summary"] == "1 training, 0 queued"
    assert store.revision() == before  # read-only


def test_lives_view_is_read_from_the_store_not_from_an_older_shared_view(store):
    """Seen in Chromium: Live's view, built from the sidebar's half-second-old runs, kept 'nothing
    trained' under the store's newer revision, while the page's key said a run was training."""
    fresh()
    assert ui.runs_now().runs == []  # shared, and young enough to be served again at once
    run_id = store.enqueue(TrainConfig.for_variant("baseline", epochs=3))
    now = feed.on_screen(None)
    assert [run.id for run in now.runs] == [run_id]
    assert json.loads(feed.runs_key(now))[1] == [run_id]  # queued


def test_polls_keep_the_worker_pool_warm_at_most_once_per_check(store, monkeypatch):
    """An open tab polls every few seconds, on every page: the dashboard is being looked at, so its
    worker pool stays warm (ui.actions.keep_pool_warm), however many tabs and polls there are."""
    asked = []
    monkeypatch.setattr(ui.actions, "start_workers", lambda workspace, standby=False: asked.append(standby))
    monkeypatch.setitem(ui.actions._standby, "checked", -ui.actions.STANDBY_CHECK_S)
    monkeypatch.setattr(ui.actions, "STANDBY_DELAY_S", 0.0)
    monkeypatch.setenv("LENET_STANDBY_WORKERS", "1")
    before = store.revision()
    for _ in range(20):  # a room's worth of polls within a second
        _get(feed.ROUTES[1].endpoint, "")
        _get(feed.ROUTES[0].endpoint, "experiment=1")
    wait_until(lambda: asked, timeout=10)
    time.sleep(0.5)
    assert asked == [True]
    assert store.revision() == before
