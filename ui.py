"""Streamlit helpers shared by the pages in pages/: page setup and presentation mode, who may change
stored state (the teacher) and who only watches, views that follow the store and are shared by
every viewer, cached loaders, small formatters.

Decisions live in `lenet`; this module only adapts them to Streamlit (caching, sidebar, toasts).
Every page starts with `setup_page()`, so a page is right however it is reached: through the
router in dashboard.py, or as the very first request on a fresh server (when Streamlit serves a
pages/ folder as old-style pages until some session has run `st.navigation`).
"""

from __future__ import annotations

import ipaddress
import math
import os
import secrets
import threading
import time
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit import runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from lenet import charts
from lenet.catalog import CheckpointError
from lenet.config import KNOBS, TrainConfig
from lenet.records import Run, RunStatus, in_training_order
from lenet.store import RunStateError
from lenet.workspace import Workspace, home_from_env

# Heavy imports (torch, the network, the data) wait until a page needs a model or the images: the
# first page, its sidebar and the live charts draw without them.

TITLE = "LeNet-5 regularization lab"


class PageInfo(NamedTuple):
    path: str
    title: str
    icon: str


PAGES = (
    PageInfo("pages/home.py", "Home", ":material/home:"),
    PageInfo("pages/train.py", "Train", ":material/model_training:"),
    PageInfo("pages/live.py", "Live", ":material/monitoring:"),
    PageInfo("pages/results.py", "Results", ":material/leaderboard:"),
    PageInfo("pages/sandbox.py", "Sandbox", ":material/draw:"),
)


def setup_page(live: bool = False) -> None:
    """Page config, the navigation links, the training status and the teacher's controls in the
    sidebar, and the projector's styling under presentation mode.

    `live`: a page that redraws itself every second (Live). Nothing on it is animated: a progress
    bar's transition or a redrawn block's fade repaints for a dozen frames what could be painted
    once, and a watching browser's CPU is taken from the training it watches (README, "Watching")."""
    st.set_page_config(page_title=TITLE, page_icon="👟", layout="wide")
    carried = {k: st.query_params[k] for k in CARRIED_PARAMS if k in st.query_params}
    with st.sidebar:
        for page in PAGES:
            st.page_link(page.path, label=page.title, icon=page.icon, query_params=carried)
        on = st.toggle(
            "Presentation mode",
            value=presenting(),
            help="Large text and charts for a projector, the current experiment only. "
            "Kept in the URL (?present=1): share it with the room.",
        )
        if on != presenting():
            if on:
                st.query_params["present"] = "1"
            else:
                st.query_params.pop("present", None)
            st.rerun()
        st.divider()
        follow_store(sidebar_status, every_s=SIDEBAR_REFRESH_S)
        _role_controls()
    if presenting():
        st.html(f"<style>{PROJECTOR_CSS}</style>")
    if live:
        st.html(f"<style>{STILL_CSS}</style>")


# -- presentation mode ----------------------------------------------------------------------------
CARRIED_PARAMS = ("present", "experiment")  # kept when moving between pages
# Streamlit sizes its text in rem: one root size makes every text, widget and heading larger.
PROJECTOR_CSS = """
html { font-size: 22px; }
[data-testid="stMainBlockContainer"] { padding-top: 1.5rem; padding-bottom: 1rem; max-width: 100%; }
h1 { font-size: 1.9rem !important; padding-bottom: 0.2rem !important; }
[data-testid="stMainBlockContainer"] :is(p, li, summary, th, td, label) { font-size: 1rem !important; }
[data-testid="stMainBlockContainer"] [data-testid="stCaptionContainer"] p { font-size: 0.95rem !important; }
[data-testid="stToolbar"], [data-testid="stDecoration"], [data-testid="stStatusWidget"] { display: none; }
"""


STILL_CSS = "*, *::before, *::after { transition: none !important; animation: none !important; }"


def presenting() -> bool:
    """Presentation mode: `?present=1` in the URL (the sidebar's toggle sets it)."""
    return st.query_params.get("present") in ("1", "true")


def table(frame: pd.DataFrame, where=None) -> None:
    """A table; for the projector a plain one whose text follows the large root font (the
    interactive grid draws on a canvas at a fixed size)."""
    if presenting():
        (where or st).table(frame.style.hide(axis="index"))
    else:
        (where or st).dataframe(frame, hide_index=True)


def chart(figure, key: str, where=None) -> None:
    """Draw a plotly figure (in `where`, a column or container), for the projector when presenting."""
    if presenting() and not isinstance(figure, SharedFigure):  # shared ones are styled when built
        figure = charts.for_projector(figure)
    (where or st).plotly_chart(figure, key=key)


# -- views that follow the store ---------------------------------------------------------------
TRAINING_REFRESH_S = 1.0  # while runs train, the teacher's views: stop and cancel show within a second
VIEWER_REFRESH_S = 2.0  # the room's: half the cost of a class of viewers to the training they watch
# Live's charts, while runs train: redrawing a plotly chart is most of what a watching browser spends
# (measured: 4 charts redrawn every second took 0.2 cores of 2 Chromium tabs, their progress bars 0.1)
CHART_REFRESH_S = 3.0  # the per-epoch charts: the lesson
STEP_CHART_REFRESH_S = 6.0  # the per-step ones: detail below the fold
SIDEBAR_REFRESH_S = 2.0  # the sidebar's summary, on every page beside the page's own view
IDLE_REFRESH_S = 3.0  # otherwise: a run launched from another tab or by a worker shows within seconds


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


@st.cache_resource
def _shared_views() -> SharedViews:
    return SharedViews()


def shared_view(key: tuple, build, max_age_s: float = TRAINING_REFRESH_S, revision=None):
    """`build()`, shared by every session and rebuilt at most once per `max_age_s` (see SharedViews),
    when `revision()` (by default the whole store's) has changed. The value is shared: never mutate it."""
    return _shared_views().get((str(workspace().home), *key), build, max_age_s, revision)


class RunsNow(NamedTuple):
    runs: list[Run]  # every run, newest first
    active: list[Run]  # running, then queued, in training order


def runs_now() -> RunsNow:
    """Every run and the active ones, at most half a second old, shared by every session."""

    def build() -> RunsNow:
        runs = workspace().store.list_runs()
        return RunsNow(runs, in_training_order([run for run in runs if run.status.active]))

    return shared_view(("runs",), build, max_age_s=0.5)


def follow_store(view, every_s: float = TRAINING_REFRESH_S) -> None:
    """Draw `view()` and redraw it as the store changes, without reloads: every `every_s` while runs
    train (every 2 s at least for viewers), every 3 s otherwise. When training starts or ends the
    whole page reruns once, so that every part of it (and its pace) follows."""
    training = bool(runs_now().active)
    pace = every_s if is_teacher() else max(every_s, VIEWER_REFRESH_S)

    @st.fragment(run_every=pace if training else max(pace, IDLE_REFRESH_S))
    def followed() -> None:
        if bool(runs_now().active) != training:
            st.rerun()
        view()

    followed()


@st.cache_resource
def _workspace(home: str) -> Workspace:
    return Workspace(Path(home))


def workspace() -> Workspace:
    """The process's workspace (paths and the open run store), built once per $LENET_HOME."""
    return _workspace(str(home_from_env()))


# -- who may change stored state ----------------------------------------------------------------
# The teacher is whoever sits at the machine (a browser connected over loopback: a TCP peer address
# that no remote client can fake), or a session that typed the passcode shown there. Everyone else
# who opens the URL watches: the same views, no control that changes stored runs.
PASSCODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o or 1/l/i: read aloud without confusion
MAX_PASSCODE_TRIES = 5


@st.cache_resource
def teacher_passcode() -> str:
    """A fresh passcode per server, printed in its terminal."""
    code = "".join(secrets.choice(PASSCODE_ALPHABET) for _ in range(8))
    print(f"  Teacher passcode (to control the dashboard from another device): {code}", flush=True)
    return code


def client_is_local() -> bool:
    """Whether this session's browser connects from this machine. Unknown counts as remote."""
    ctx = get_script_run_ctx()
    client = runtime.get_instance().get_client(ctx.session_id) if ctx and runtime.exists() else None
    address = getattr(getattr(client, "client_context", None), "remote_ip", None)
    try:
        peer = ipaddress.ip_address(address) if address is not None else None
    except ValueError:
        return False
    # a server on every interface listens dual-stack: an IPv4 peer then reads ::ffff:127.0.0.1
    peer = getattr(peer, "ipv4_mapped", None) or peer
    return peer is not None and peer.is_loopback


def is_teacher() -> bool:
    return client_is_local() or st.session_state.get("teacher_unlocked", False)


def require_teacher() -> None:
    """The last line of defence behind every control that changes stored state."""
    if not is_teacher():
        raise PermissionError("only the teacher can change stored runs")


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


def view_only_note() -> None:
    st.caption(":material/visibility: View only: the teacher launches, stops and deletes runs.")


def _role_controls() -> None:
    """In the sidebar: the passcode for the teacher's other devices, or a way for the teacher in."""
    if client_is_local():
        with st.expander("Control from another device"):
            st.caption("Students who open this page can only watch. On your own tablet or second laptop:")
            st.code(teacher_passcode(), language=None)
        return
    if st.session_state.get("teacher_unlocked"):
        st.caption(":material/key: You control this dashboard (passcode).")
        return
    with st.expander("Teacher? Take control"):
        tries = st.session_state.get("passcode_tries", 0)
        if tries < MAX_PASSCODE_TRIES:
            with st.form("passcode_form", border=False):
                typed = st.text_input("Passcode (printed where the server was started)", type="password")
                if st.form_submit_button("Take control"):
                    if secrets.compare_digest(typed.strip().lower(), teacher_passcode()):
                        st.session_state["teacher_unlocked"] = True
                        st.rerun()
                    tries = st.session_state["passcode_tries"] = tries + 1
                    st.error("Wrong passcode.")
        if tries >= MAX_PASSCODE_TRIES:
            st.error("Too many wrong passcodes. Reload the page to try again.")


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
    """Start the worker pool for what was just queued (it imports torch only now)."""
    from lenet.worker import ensure_workers as start

    start(ws)


def _inference_threads() -> None:
    """The dashboard process only runs inference (training happens in worker processes)."""
    import torch

    from lenet.predict import INFERENCE_THREADS

    torch.set_num_threads(INFERENCE_THREADS)


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


def knob_input(where, name: str, value, key: str):
    """The widget of a declared hyperparameter (lenet.config.KNOBS): its label with its bounds, its
    help, and None (an empty box) where the field allows none. Out-of-range values are not clamped:
    the config refuses them with its reason."""
    knob = KNOBS[name]
    if knob.kind is bool:
        return where.checkbox(knob.label, value=bool(value), key=key, help=_sentence(knob.help))
    step = knob.step or 1
    decimals = max(2, 1 - math.floor(math.log10(step)))
    widget = where.number_input(
        knob.labelled_range(),
        value=value if value is None or knob.kind is float else int(value),
        step=knob.kind(step),
        format="%d" if knob.kind is int else f"%.{decimals}f",
        placeholder=knob.none,
        key=key,
        help=_sentence(knob.help),
    )
    return None if widget is None else knob.kind(widget)


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


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
    active = runs_now().active
    if not active:
        st.caption("Nothing is training.")
        return
    running = [run for run in active if run.status == RunStatus.RUNNING]
    st.caption(f"{len(running)} training, {len(active) - len(running)} queued")
    for run in running:
        st.progress(run.progress, text=f"{run.name}: {run_state(run)}")


def run_state(run: Run) -> str:
    """'ETA 1 min 07 s', or 'stopping' once a stop was asked for."""
    return "stopping after this batch" if run.stop_requested else f"ETA {duration(run.eta_s)}"


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
    """The model's accuracy on the test images flipped left-right: from its metadata (measured when
    it finished), else measured now and cached per checkpoint version (older or foreign files)."""
    measured = load_checkpoint(path)[1].get("mirrored_test_accuracy")
    return measured if measured is not None else _mirrored_accuracy(str(path), os.stat(path).st_mtime_ns)


@st.cache_data(max_entries=64, show_spinner=False)
def _mirrored_accuracy(path: str, mtime_ns: int) -> float:
    from lenet.train import evaluate

    model, _ = _load_checkpoint(path, mtime_ns)
    return evaluate(model, test_images().split.mirrored()).accuracy


def mistakes(path: str, limit: int = 24):
    """The model's most confident test-set mistakes: from its metadata (found when it finished),
    else found now and cached per checkpoint version."""
    from lenet.analysis import Mistake

    found = load_checkpoint(path)[1].get("mistakes")
    if found is not None:
        return [Mistake(**m) for m in found[:limit]]
    return _mistakes(str(path), os.stat(path).st_mtime_ns, limit)


@st.cache_data(max_entries=16, show_spinner="Finding what this model gets wrong...")
def _mistakes(path: str, mtime_ns: int, limit: int):
    model, _ = _load_checkpoint(path, mtime_ns)
    from lenet import analysis

    return analysis.mistakes(model, test_images().split, limit=limit)


def choose_experiment(store, every_run_option: bool = False) -> int | None:
    """A selector of experiments, newest first, kept in the URL (?experiment=ID).

    It opens on the newest launch: the newest experiment, or "every run" (None, where offered) when
    the newest run was launched on its own. None when there are no experiments.
    """
    found = store.list_experiments()
    if not found:
        return None
    labels = {e.id: f"#{e.id} {e.name} ({e.finished}/{e.runs} finished)" for e in found}
    if every_run_option:
        labels = {0: "Every run, newest first", **labels}
    ids = list(labels)
    wanted = st.query_params.get("experiment", "")
    if presenting():  # the current experiment only: the one in the URL, else the newest
        chosen = int(wanted) if wanted.isdigit() and int(wanted) in labels and int(wanted) else found[0].id
        st.query_params["experiment"] = str(chosen)
        st.caption(f"Experiment {labels[chosen]}")
        return chosen
    if wanted.isdigit() and int(wanted) in labels:
        index = ids.index(int(wanted))
    else:
        newest = store.newest_run()
        on_its_own = every_run_option and (newest is None or newest.experiment_id is None)
        index = 0 if on_its_own or not every_run_option else 1
    chosen = st.selectbox("Experiment", ids, index=index, format_func=labels.get, key="experiment")
    st.query_params["experiment"] = str(chosen)
    return chosen or None
