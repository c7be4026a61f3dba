"""The dashboard's adapters on their own: views shared by every session, the double-launch guard,
and pages that draw without torch until they need a model."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ui import actions
from ui.shared import SharedViews

ROOT = Path(__file__).resolve().parent.parent


class Counter:
    """A `build` that says how often it ran, and a `revision` the test moves."""

    def __init__(self):
        self.builds = 0
        self.revision = 0

    def build(self):
        self.builds += 1
        return f"built {self.builds}"


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("ui.shared.time.monotonic", lambda: now[0])
    return now


def test_a_shared_view_is_built_once_per_store_revision(clock):
    views, source = SharedViews(), Counter()

    def get():
        return views.get(("key",), source.build, max_age_s=1.0, revision=lambda: source.revision)

    assert get() == "built 1"
    source.revision = 1
    assert get() == "built 1"  # younger than max_age_s: not even the revision is read
    clock[0] += 1.5
    assert get() == "built 2" and source.builds == 2  # old, and the store changed
    clock[0] += 1.5
    assert get() == "built 2" and source.builds == 2  # old, but the store did not change
    views.clear()  # after a change made here (a launch, a stop)
    assert get() == "built 3"


def test_while_one_session_rebuilds_the_others_draw_the_previous_value(clock):
    views, source = SharedViews(), Counter()
    views.get(("key",), source.build, max_age_s=1.0, revision=lambda: source.revision)
    clock[0] += 5
    source.revision = 1
    views.building.add(("key",))  # another session is rebuilding it now
    assert views.get(("key",), source.build, 1.0, lambda: source.revision) == "built 1"
    assert source.builds == 1


class FakeSession:
    def __init__(self, monkeypatch):
        self.state, self.toasts = {}, []
        monkeypatch.setattr(actions.st, "session_state", self.state)
        monkeypatch.setattr(actions.st, "toast", self.toasts.append)
        monkeypatch.setattr(actions, "_shared_views", lambda: SharedViews())


def test_the_same_launch_within_the_window_is_a_double_click(monkeypatch):
    session, now, started = FakeSession(monkeypatch), [50.0], []
    monkeypatch.setattr(actions.time, "monotonic", lambda: now[0])

    def start():
        started.append(now[0])
        return len(started)

    assert actions._once("demo", start) == 1
    now[0] += actions.REPEAT_WINDOW_S / 2
    assert actions._once("demo", start) == 1 and len(started) == 1  # the second click of a double click
    assert session.toasts == ["Already queued a moment ago: not queued twice."]
    assert actions._once("another launch", start) == 2  # a different launch is not a repeat
    now[0] += actions.REPEAT_WINDOW_S + 1
    assert actions._once("another launch", start) == 3  # the same one later: wanted again


def _imports_torch(pages: tuple[str, ...], home: Path) -> bool:
    """Draw the pages in a fresh process (as a fresh server would); whether torch got imported."""
    code = textwrap.dedent(
        f"""
        import os, sys
        os.environ["LENET_HOME"] = {str(home)!r}
        from streamlit.testing.v1 import AppTest
        app = AppTest.from_file("dashboard.py", default_timeout=120).run()  # the router: Home
        for page in {pages!r}:
            app.switch_page(page).run()
            assert not app.exception, (page, app.exception)
        print("torch" in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1] == "True"


def test_pages_without_a_model_draw_without_importing_torch(tmp_path):
    """Home, Train and Live are the first paint and what the room watches: none of them needs the
    network, so none may pay for importing torch (seconds on a laptop)."""
    assert not _imports_torch(("pages/home.py", "pages/train.py", "pages/live.py"), tmp_path)


def test_the_sandbox_imports_torch_once_it_needs_a_model(tmp_path):
    """The check above can fail: the sandbox classifies with the shipped models."""
    assert _imports_torch(("pages/sandbox.py",), tmp_path)


def test_the_live_charts_plotly_js_is_the_plotly_packages_own_version():
    """The committed basic bundle must match the plotly package that builds the figures: after an
    upgrade of plotly, replace it (README, "Watching")."""
    import re

    import plotly

    from ui.live_charts import PLOTLY_JS

    full = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    version = re.compile(r"plotly\.js (?:\(basic - minified\) )?v(\d+\.\d+\.\d+)")
    assert version.search(PLOTLY_JS.read_text()[:300])[1] == version.search(full.read_text()[:300])[1]
    assert (PLOTLY_JS.parent / "plotly-basic.LICENSE").read_text().startswith("MIT License")


def test_a_live_figure_of_a_trace_the_bundle_lacks_is_refused():
    import plotly.graph_objects as go

    from ui.live_charts import LiveFigure

    with pytest.raises(ValueError, match="heatmap"):
        LiveFigure(go.Figure(go.Heatmap(z=[[1, 2], [3, 4]])))


def test_a_live_figure_is_json_without_plotlys_template():
    import json

    import numpy as np
    import plotly.graph_objects as go

    from ui.live_charts import LiveFigure

    figure = go.Figure(go.Scatter(x=np.arange(3), y=np.array([0.5, 0.6, 0.7]), name="run"))
    figure.update_layout(title="Accuracy", height=560)
    frozen = json.loads(json.dumps(LiveFigure(figure).data))["figure"]  # what travels to the browser
    assert "template" not in frozen["layout"]  # the browser draws it in Streamlit's look
    assert frozen["layout"]["title"]["text"] == "Accuracy" and frozen["layout"]["height"] == 560
    assert frozen["data"][0]["name"] == "run" and frozen["data"][0]["type"] == "scatter"
