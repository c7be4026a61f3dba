"""Real-browser tests: `streamlit run app.py` in headless Chromium: every page, a deep link
opened first on a fresh server, and a drawing on the sandbox's canvas."""

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from lenet import artifacts
from lenet.config import EpochMetrics, StepMetrics
from lenet.models import create_model, list_models
from lenet.records import RunStatus, runs_frame
from lenet.train import TrainConfig
from lenet.worker import ENV_STANDBY
from lenet.workspace import REPO_ROOT, Workspace

from conftest import finished_weight_decay_sweep, free_port, make_dataset_dir, train_queued, wait_until

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
PAGES = {
    "": "LeNet-5 regularization lab",
    "train": "Train",
    "live": "Live",
    "results": "Results",
    "class": "Class round",
    "sandbox": "Sandbox",
}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("LENET_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is required (apt-get install chromium)")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def serve_dashboard(root: Path, prepare=None, address: str = "127.0.0.1"):
    """`streamlit run app.py` on a free port, over a fresh LENET_HOME and synthetic data;
    `prepare(workspace, data_dir)` may fill the home first. `address` "0.0.0.0" serves the room."""
    port = free_port()
    home = root / "home"
    data_dir = make_dataset_dir(root / "fmnist")
    env = {**os.environ, "LENET_HOME": str(home), "FASHION_MNIST_DIR": str(data_dir)}
    env[ENV_STANDBY] = "0"  # workers start when a test queues runs, as they did before warm pools
    if prepare is not None:
        prepare(Workspace(home), data_dir)
    # one saved model of our own, so the sandbox has a model even without the shipped ones
    torch.manual_seed(0)
    artifacts.save_checkpoint(
        create_model("baseline"),
        {"variant": "baseline", "name": "test model"},
        home / "runs" / "test-model.pth",
    )
    printed = (root / "server.log").open("wb")  # what `make run` prints in the teacher's terminal
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),  # dashboard.py and the feed beside it, as `make run` serves them
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            address,
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=printed,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            except OSError as e:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("streamlit did not start: " + (root / "server.log").read_text()) from e
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)
        printed.close()


def test_a_fresh_server_prints_no_warnings_when_its_feed_is_asked_before_any_page(tmp_path):
    """The teacher's terminal shows the URL and the passcode. It also showed Streamlit's warnings:
    "No runtime found" as every server started (caches declared before Streamlit's runtime), and
    "missing ScriptRunContext" when a tab's poll of the feed built a cache before any page had."""
    with serve_dashboard(tmp_path) as url:
        assert json.loads(urllib.request.urlopen(f"{url}/feed/runs", timeout=10).read())["running"] == []
        time.sleep(0.5)  # anything it would print
    printed = (tmp_path / "server.log").read_text()
    assert "You can now view your Streamlit app" in printed
    assert "WARNING" not in printed and "ScriptRunContext" not in printed, printed


@pytest.fixture(scope="module")
def dashboard_url(tmp_path_factory):
    """One server for the tests that only look at pages (they change nothing stored)."""
    with serve_dashboard(tmp_path_factory.mktemp("dashboard")) as url:
        yield url


@pytest.fixture
def fresh_dashboard_url(tmp_path):
    """A server of its own that has answered no page yet."""
    with serve_dashboard(tmp_path) as url:
        yield url


def open_and_check(page, url: str, heading: str) -> None:
    """Open a URL and wait until its script finished: the heading, no exception, the sidebar status."""
    page.goto(url)
    page.get_by_role("heading", name=heading).first.wait_for(timeout=60_000)
    _wait_idle(page)
    from playwright.sync_api import expect  # waits up to its timeout for the page to get there

    assert page.locator('[data-testid="stException"]').count() == 0, f"exception on {url}"
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar.get_by_text("Nothing is training.")).to_have_count(1)
    # our own navigation links, never Streamlit's old-style pages list; a deep link opened first on a
    # fresh server draws them with the page's second run, up to ~6 s after its heading on 2 busy cores
    expect(sidebar.get_by_role("link")).to_have_count(len(PAGES), timeout=15_000)
    expect(page.locator('[data-testid="stSidebarNav"]')).to_have_count(0)
    expect(page.get_by_text("Deploy", exact=True)).to_have_count(0)  # no developer chrome for a class


def test_a_deep_link_opened_first_on_a_fresh_server_is_the_whole_page(browser, fresh_dashboard_url, tmp_path):
    dashboard_url = fresh_dashboard_url
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    open_and_check(page, f"{dashboard_url}/live", "Live")  # the server's very first request
    page.screenshot(path=str(Path(os.environ.get("LENET_SCREENSHOTS", tmp_path)) / "live-deep-link.png"))
    # the same page through the router: its link in the sidebar, after a visit to home
    open_and_check(page, dashboard_url, "LeNet-5 regularization lab")
    page.locator('[data-testid="stSidebar"]').get_by_role("link", name="Live").click()
    page.wait_for_url(f"{dashboard_url}/live")
    open_and_check(page, f"{dashboard_url}/live", "Live")
    # and another deep link, now that the router has run once in this process
    open_and_check(page, f"{dashboard_url}/results", "Results")


def test_every_page_renders_without_an_exception(browser, dashboard_url, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    shots = Path(os.environ.get("LENET_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    for path, heading in PAGES.items():
        open_and_check(page, f"{dashboard_url}/{path}", heading)
        page.wait_for_timeout(1000)  # let charts and tables paint
        page.screenshot(path=str(shots / f"{path or 'home'}.png"), full_page=True)


def _wait_idle(page):
    # the script has finished when the "running" status widget is gone
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=60_000)


def test_each_stroke_on_the_canvas_gets_every_models_answer(browser, dashboard_url, tmp_path):
    """Ten strokes, each answered (the image the models see and their answers redrawn); the median
    time from mouse-up to answers is reported, not asserted (that is `make bench-sandbox`)."""
    from benchmarks.sandbox import stroke_latencies

    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(f"{dashboard_url}/sandbox")
    page.get_by_role("heading", name="Sandbox").first.wait_for(timeout=60_000)
    _wait_idle(page)
    assert page.get_by_text(re.compile(r"\(\d+%\)")).count() == 0  # nothing drawn, nothing predicted
    latencies = stroke_latencies(page, strokes=10)
    answers = page.get_by_text(re.compile(r": .+ \(\d+%\)"))  # "model: Class (NN%)", one per model
    assert answers.count() >= 1 and page.get_by_text("What the models see (28x28)").count() == 1
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(_shots(tmp_path) / "sandbox-drawn.png"), full_page=True)
    median = sorted(latencies)[len(latencies) // 2]
    (_shots(tmp_path) / "sandbox-strokes.txt").write_text(" ".join(f"{t:.3f}" for t in latencies))
    print(f"mouse-up to answers, median of {len(latencies)} strokes: {median:.3f} s")


def test_a_sweeps_chart_shows_the_strength_against_the_outcome(browser, tmp_path):
    def finished_sweep(workspace, data_dir):
        finished_weight_decay_sweep(workspace, data_dir, [0.0, 0.01, 0.3])

    with serve_dashboard(tmp_path, finished_sweep) as url:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(f"{url}/results?experiment=1")
        page.get_by_role("heading", name="Results").first.wait_for(timeout=60_000)
        _wait_idle(page)
        chart = page.locator(".js-plotly-plot", has_text="What weight decay does")
        chart.wait_for(timeout=60_000)
        chart.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        page.screenshot(path=str(Path(os.environ.get("LENET_SCREENSHOTS", tmp_path)) / "sweep.png"))
        assert page.locator('[data-testid="stException"]').count() == 0
        # the three values on the x axis, the three outcomes in the legend, the best value marked
        for text in ("0.01", "0.3", "validation accuracy", "test accuracy", "gap (train − validation)"):
            assert chart.get_by_text(text, exact=True).count() >= 1, text
        assert chart.get_by_text("best on validation:").count() == 1
        assert page.get_by_text("Best weight decay on validation").count() == 1


def _shots(tmp_path) -> Path:
    shots = Path(os.environ.get("LENET_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def test_a_live_tab_opened_before_a_run_starts_shows_it_training_without_a_reload(browser, tmp_path):
    from playwright.sync_api import expect

    with serve_dashboard(tmp_path) as url:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        open_and_check(page, f"{url}/live", "Live")
        assert page.get_by_text("Nothing has been trained yet").count() == 1
        # no chart yet, but the chart library is loaded while nothing trains
        page.wait_for_function("() => window.Plotly !== undefined", timeout=10_000)
        assert page.locator(".js-plotly-plot").count() == 0
        store = Workspace(tmp_path / "home").store
        run_id = store.enqueue(TrainConfig.for_variant("dropout", epochs=3), name="late dropout")
        store.claim_next(os.getpid())  # it starts training
        store.heartbeat(run_id)
        started = time.monotonic()
        page.get_by_text(re.compile(r"late dropout.*epoch 1/3")).first.wait_for(timeout=10_000)
        shown_after = time.monotonic() - started
        sidebar = page.locator('[data-testid="stSidebar"]')
        sidebar.get_by_text("1 training, 0 queued").wait_for(timeout=10_000)
        assert sidebar.locator(".feed-bar").count() == 0  # Live's own bars are not repeated there
        # stop it from elsewhere (the CLI, another tab): this tab shows it within a few seconds
        store.request_stop(run_id)
        page.get_by_text(re.compile(r"late dropout.*stopping after this batch")).first.wait_for(timeout=5_000)
        # the next run takes its place: only the runs' part of the page reruns, and shows it
        next_id = store.enqueue(TrainConfig.for_variant("l2", epochs=3), name="next l2")
        store.finish(run_id, RunStatus.STOPPED)
        store.claim_next(os.getpid())
        store.heartbeat(next_id)
        started = time.monotonic()
        page.get_by_text(re.compile(r"next l2.*epoch 1/3")).first.wait_for(timeout=10_000)
        next_after = time.monotonic() - started
        page.get_by_text("1 of 2 runs ended.").wait_for(timeout=5_000)
        # the stopped run's bar goes once the rerun is done (Streamlit keeps it meanwhile, faded)
        expect(page.get_by_text(re.compile(r"late dropout.*epoch"))).to_have_count(0, timeout=5_000)
        expect(page.get_by_role("button", name="Stop")).to_have_count(1)  # the teacher's, for the new run
        page.screenshot(path=str(_shots(tmp_path) / "live-followed.png"))
        # on another page the sidebar shows the running run's bar
        sidebar.get_by_role("link", name="Home").click()
        sidebar.locator(".feed-bar").get_by_text(re.compile(r"next l2: ETA")).wait_for(timeout=10_000)
        print(
            f"a run started after the tab opened: shown in {shown_after:.1f} s; the next: {next_after:.1f} s"
        )
        assert shown_after < 8 and next_after < 8


def test_live_reruns_once_as_training_ends_the_whole_page_not_its_runs_part_first(browser, tmp_path):
    """Training ending changes what the page and its runs' part show, in one poll. Asked for both,
    Streamlit reran only the runs' part, and the page's own rerun came 3 s later, when asked again."""
    with serve_dashboard(tmp_path) as url:
        page, store, (run_id,) = _laptop_live(browser, url, tmp_path, "ending", ("baseline",))
        store.claim_next(os.getpid())
        store.heartbeat(run_id)
        page.get_by_text(re.compile(r"ending baseline.*epoch 1/5")).first.wait_for(timeout=10_000)
        asked = "w => Number(document.querySelector(`.feed-watch[data-watches=${w}]`).dataset.asked)"
        page.wait_for_timeout(1_500)  # a poll or more with nothing out of date
        before = {w: page.evaluate(f"({asked})('{w}')") for w in ("page", "runs")}
        store.finish(run_id, RunStatus.FINISHED)  # one change of both keys
        page.get_by_text("Nothing is training now").wait_for(timeout=10_000)
        page.wait_for_timeout(4_000)  # past a second ask, had the first been lost
        after = {w: page.evaluate(f"({asked})('{w}')") for w in ("page", "runs")}
        assert after == {"page": before["page"] + 1, "runs": before["runs"]}


def _font_px(locator) -> list[float]:
    return locator.evaluate_all("els => els.map(e => parseFloat(getComputedStyle(e).fontSize))")


def _small_text(page, selector: str, minimum: float) -> list[str]:
    """The texts under `selector` drawn smaller than `minimum` px."""
    return page.locator(selector).evaluate_all(
        "els => els.filter(e => e.textContent.trim())"
        f".filter(e => parseFloat(getComputedStyle(e).fontSize) < {minimum})"
        ".map(e => getComputedStyle(e).fontSize + ' ' + e.textContent.slice(0, 60))"
    )


def _experiment_of_three(workspace, data_dir):
    configs = [TrainConfig.for_variant(v, epochs=3) for v in ("baseline", "dropout", "l2")]
    experiment_id = workspace.store.create_experiment(
        "Three regularizers",
        "preset",
        configs,
        description="3 epochs each",
        varies="variant",
        data_dir=str(data_dir),
    )
    train_queued(workspace, experiment_id)


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)])
def test_presentation_mode_is_readable_from_the_back_row(browser, tmp_path, size):
    with serve_dashboard(tmp_path, _experiment_of_three) as url:
        page = browser.new_page(viewport={"width": size[0], "height": size[1]})
        open_and_check(page, f"{url}/live?present=1", "Live")
        chart = page.locator(".js-plotly-plot").first
        chart.locator(".legendtext").first.wait_for(timeout=30_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(_shots(tmp_path) / f"present-live-{size[0]}x{size[1]}.png"))
        # the key chart, train vs validation accuracy, whole and above the fold
        assert "Accuracy" in chart.locator(".gtitle").text_content()
        box = chart.bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= size[1], box
        # body text >= 20 px, chart text (ticks, legends, titles) >= 16 px
        assert _font_px(page.locator('[data-testid="stMainBlockContainer"] p'))
        assert _small_text(page, '[data-testid="stMainBlockContainer"] p', 20) == []
        for part in (".xtick text", ".ytick text", ".legendtext", ".gtitle", ".g-xtitle text"):
            sizes = _font_px(page.locator(f".js-plotly-plot {part}"))
            assert sizes and min(sizes) >= 16, (part, sizes)
        # short legend labels, no developer chrome
        assert all(len(t) <= 24 for t in chart.locator(".legendtext").all_text_contents())
        assert page.locator('[data-testid="stToolbar"]').filter(visible=True).count() == 0
        # the mode follows the room through the navigation
        page.locator('[data-testid="stSidebar"]').get_by_role("link", name="Results").click()
        page.wait_for_url(re.compile(r"/results\?.*present=1"))
        page.get_by_role("heading", name="Results").first.wait_for()
        _wait_idle(page)
        page.screenshot(path=str(_shots(tmp_path) / f"present-results-{size[0]}x{size[1]}.png"))
        assert _small_text(page, '[data-testid="stMainBlockContainer"] p', 20) == []


def test_a_link_with_query_parameters_restores_its_view(browser, tmp_path):
    with serve_dashboard(tmp_path, _experiment_of_three) as url:
        store = Workspace(tmp_path / "home").store
        runs = runs_frame(store.list_runs()).sort_values("id")
        first, middle, last = (f"#{r['id']} {r['name']}" for _, r in runs.iterrows())
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        # two of the three runs compared (by default all three), the oldest in detail (by default the newest)
        query = urllib.parse.urlencode({"experiment": 1, "runs": [first, last], "run": first}, doseq=True)
        open_and_check(page, f"{url}/results?{query}", "Results")
        from playwright.sync_api import expect  # waits for the page to get there

        chosen = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Runs to compare")
        for label, count in ((first, 1), (middle, 0), (last, 1)):
            expect(chosen.get_by_text(label)).to_have_count(count)
        page.screenshot(path=str(_shots(tmp_path) / "results-from-link.png"), full_page=True)
        detail = page.locator('[data-testid="stSelectbox"]').filter(has_text="Run").last
        expect(detail.locator("input")).to_have_value(first)
        page.screenshot(path=str(_shots(tmp_path) / "results-from-link.png"), full_page=True)

        model = "test model (run)"  # the one saved model of serve_dashboard, besides the shipped ones
        query = urllib.parse.urlencode({"models": model, "source": "Sample from the test set"})
        open_and_check(page, f"{url}/sandbox?{query}", "Sandbox")
        models = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Models to compare")
        expect(models.get_by_text(model)).to_have_count(1)
        expect(models.get_by_text("(pretrained)")).to_have_count(0)  # by default the shipped ones
        page.get_by_text(re.compile(r"test image #\d+")).first.wait_for()
        expect(page.get_by_text(re.compile(re.escape(model) + r": .+ \(\d+%\)"))).to_have_count(1)


# The student's side of a forged request: a session from the other device that sends a click on a
# button its page never showed (the teacher's Stop, whose id it was told).
_FORGED_CLICK = """
import sys
from benchmarks.fake_browser import FakeBrowser
student = FakeBrowser(sys.argv[1], page="live")
student.open()
student.click(sys.argv[2])
student.rerun()
student.close()
"""


@pytest.fixture
def peer():
    """A student's laptop: a network namespace of this test's own (benchmarks/netns.py)."""
    from benchmarks.netns import NamespaceUnavailable, peer_namespace

    try:
        with peer_namespace() as namespace:
            yield namespace
    except NamespaceUnavailable as e:  # raised before the namespace exists, never by the test
        if os.environ.get("LENET_REQUIRE_BROWSER"):
            pytest.fail(str(e))
        pytest.skip(str(e))


@contextmanager
def _beating(tmp_path, run_id: int):
    """The run's heartbeat, every second, as its worker would beat: a slow page (a loaded CI
    machine) must not see it go stale (15 s) and read it as interrupted."""
    import threading

    store, done = Workspace(tmp_path / "home").store, threading.Event()

    def beat():
        while not done.is_set():
            store.heartbeat(run_id)
            done.wait(1.0)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def open_from_the_room(page, url: str, heading: str, ready: str | None = None) -> None:
    """Open a page from the namespace's browser: loaded once its heading and the element `ready`
    (a selector) show. Once in eight full runs, the first page over a fresh veth link stayed without
    its heading for a minute, and the same test passed at once when rerun; so one reload is allowed
    before failing. (That run's heartbeat, beaten only once then, went stale within the test; it is
    beaten every second now, see `_beating`.) Once since, in a fresh clone's CI, the Class page's
    heading came and its nickname field did not, for a minute; that test passed five times alone
    and in two whole runs of this file."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    def loaded(timeout: int) -> None:
        page.get_by_role("heading", name=heading).first.wait_for(timeout=timeout)
        if ready is not None:
            page.locator(ready).first.wait_for(timeout=timeout)

    page.goto(url)
    try:
        loaded(30_000)
    except PlaywrightTimeout:
        page.reload()
        loaded(60_000)


def test_a_viewer_sees_no_control_and_a_forged_request_changes_nothing(browser, peer, tmp_path):
    from benchmarks.fake_browser import FakeBrowser
    from benchmarks.netns import HOST_ADDRESS

    def one_run_training(workspace, data_dir):
        run_id = workspace.store.enqueue(TrainConfig.for_variant("baseline"), name="teacher's run")
        workspace.store.claim_next(os.getpid())
        workspace.store.heartbeat(run_id)

    with serve_dashboard(tmp_path, one_run_training, address="0.0.0.0") as url, _beating(tmp_path, 1):
        store = Workspace(tmp_path / "home").store
        room_url = url.replace("127.0.0.1", HOST_ADDRESS)
        laptop = browser.browser_type.launch(
            executable_path=str(peer.executable(CHROMIUM, tmp_path)), args=CHROMIUM_ARGS
        )
        page = laptop.new_page(viewport={"width": 1366, "height": 768})
        for path, heading in PAGES.items():
            open_from_the_room(page, f"{room_url}/{path}", heading)
            _wait_idle(page)
            for control in ("Stop", "Cancel", "Launch the comparison (quick demo)", "Queue this run"):
                # in the page (Streamlit's own "Stop" in its status widget stops only this tab's script)
                main = page.locator('[data-testid="stMainBlockContainer"]')
                assert main.get_by_role("button", name=control, exact=True).count() == 0, (path, control)
        page.goto(f"{room_url}/live")
        page.get_by_text(re.compile(r"teacher's run.*epoch 1/")).first.wait_for(timeout=30_000)
        page.screenshot(path=str(_shots(tmp_path) / "viewer-live.png"))
        laptop.close()

        # the teacher, at the machine, is shown the Stop button: its id is what a forger would send
        teacher = FakeBrowser(url, page="live")
        [stop] = [b.id for b in teacher.open().elements("button") if b.label == "Stop"]
        forged = [sys.executable, "-c", _FORGED_CLICK, room_url, stop]
        subprocess.run(peer.command(forged), cwd=REPO_ROOT, check=True, timeout=60)
        assert store.get_run(1).stop_requested == 0 and store.get_run(1).status == "running"
        teacher.click(stop)
        assert store.get_run(1).stop_requested == 1
        teacher.close()


def test_three_students_join_from_another_device_submit_and_see_the_test_only_after_the_reveal(
    browser, peer, tmp_path
):
    """The students' laptops are a network namespace (real non-loopback peers); the teacher is the
    machine itself."""
    import sqlite3

    from benchmarks.netns import HOST_ADDRESS
    from lenet import rounds
    from lenet.records import RoundState

    def a_paused_round(workspace, data_dir):  # paused: the runs stay queued while the students act
        game = rounds.open_round(
            workspace.store, "Browser round", runs_per_student=2, train_limit=100, epochs=1
        )
        workspace.store.pause_round(game, True)

    with serve_dashboard(tmp_path, a_paused_round, address="0.0.0.0") as url:
        store = Workspace(tmp_path / "home").store
        game = store.current_round()
        room = url.replace("127.0.0.1", HOST_ADDRESS)
        laptop = browser.browser_type.launch(
            executable_path=str(peer.executable(CHROMIUM, tmp_path)), args=CHROMIUM_ARGS
        )
        try:
            pages = {}
            for name in ("Ada", "Bob", "Cy"):
                page = pages[name] = laptop.new_page(viewport={"width": 1366, "height": 1200})
                nickname = 'input[aria-label="Nickname"]'
                open_from_the_room(page, f"{room}/class", "Class round", ready=nickname)
                page.locator(nickname).fill(name)
                page.get_by_role("button", name="Join").click()
                submit = page.get_by_role("button", name="Submit run")
                submit.wait_for(timeout=60_000)
                submit.click()
                page.get_by_text("Submitted run").wait_for(timeout=30_000)
                submit.click()  # a second run while the first waits: refused, and says why
                page.get_by_text("already have a run queued or training").wait_for(timeout=30_000)
            assert [r.student_id is not None for r in store.list_runs()] == [True] * 3

            ada = pages["Ada"]
            ada.reload()  # the token in the URL keeps who she is
            ada.get_by_text("Ada: 1 of 2 runs left").wait_for(timeout=60_000)
            ada.locator("table").first.wait_for(timeout=30_000)
            bold = ada.eval_on_selector_all(  # the board highlights the student's own row
                "table td",
                "cells => cells.filter(c => +getComputedStyle(c).fontWeight >= 600).map(c => c.innerText)",
            )
            assert "Ada" in bold and "Bob" not in bold and "Cy" not in bold

            store.pause_round(game.id, False)  # the teacher resumes: the pool trains the three runs
            wait_until(
                lambda: len(store.list_runs(("finished",), experiment_id=game.experiment_id)) == 3,
                timeout=180,
            )
            with sqlite3.connect(store.path) as db:
                tests = [
                    row[0]
                    for row in db.execute("SELECT test_accuracy FROM runs WHERE student_id IS NOT NULL")
                ]
            assert all(t is not None for t in tests)  # measured, and kept for the reveal
            ada.goto(ada.url)  # her own curves: a live chart, with her one finished epoch drawn
            ada.wait_for_function(
                "() => [...document.querySelectorAll('.live-chart.js-plotly-plot')]"
                ".some(c => c._fullData?.some(t => t.name?.includes('Ada') && t.x.length === 1))",
                timeout=60_000,
            )
            ada.locator(".live-chart.js-plotly-plot").scroll_into_view_if_needed()
            ada.screenshot(path=str(_shots(tmp_path) / "class-student-curves.png"))
            for path in ("class", "results", "live"):
                ada.goto(f"{room}/{path}?student={pages['Ada'].url.split('student=')[-1]}")
                ada.wait_for_timeout(3_000)
                text = ada.inner_text("body")
                assert "private %" not in text and "Test accuracy" not in text, path

            store.advance_round(game.id, RoundState.CLOSED)
            store.advance_round(game.id, RoundState.REVEALED)
            ada.goto(f"{room}/class?student={pages['Ada'].url.split('student=')[-1]}")
            ada.get_by_text("The board: the test scores are out").wait_for(timeout=60_000)
            board = ada.inner_text("table")
            assert "private %" in board
            for run in store.list_runs(experiment_id=game.experiment_id):
                assert f"{100 * run.test_accuracy:.1f}%" in board
        finally:
            laptop.close()


# A student's session that sends what the Class page's form never would: a weight decay past its
# bound, then (as a student who has used every run) a Submit run click on a form it was not shown.
_FORGED_SUBMITS = """
import json, sys
from streamlit.proto.WidgetStates_pb2 import WidgetState
from benchmarks.fake_browser import FakeBrowser
url, eve, bea = sys.argv[1:]
page_of_eve = FakeBrowser(url, page="class", query=f"student={eve}")
page = page_of_eve.open()
decay = page.element("number_input", "Weight decay").id
submit = page.element("button", "Submit run").id
forged = [WidgetState(id=decay, double_value=50.0), WidgetState(id=submit, trigger_value=True)]
page = page_of_eve.rerun(forged)
out_of_bounds = page.texts()
page_of_bea = FakeBrowser(url, page="class", query=f"student={bea}")
past_the_cap = page_of_bea.open().texts()
page = page_of_bea.rerun([WidgetState(id=submit, trigger_value=True)])
print(json.dumps({"out_of_bounds": out_of_bounds, "past_the_cap": past_the_cap + page.texts()}))
"""


def test_a_forged_submit_out_of_bounds_or_past_the_cap_is_refused_and_stores_nothing(peer, tmp_path):
    """From the other device, over the frontend's own protocol: what a student could send by hand."""
    from benchmarks.netns import HOST_ADDRESS
    from lenet import rounds

    students = {}

    def a_round_where_bea_has_used_her_run(workspace, data_dir):
        store = workspace.store
        game = rounds.open_round(store, "Forged round", runs_per_student=1, train_limit=100, epochs=1)
        students["eve"], students["bea"] = (rounds.join(store, game, name).token for name in ("Eve", "Bea"))
        store.pause_round(game, True)  # nothing trains meanwhile
        run_id = rounds.submit(store, students["bea"], "baseline")
        store.pause_round(game, False)
        assert store.claim_next(os.getpid(), max_running=10) == run_id
        store.finish(run_id, "finished")

    with serve_dashboard(tmp_path, a_round_where_bea_has_used_her_run, address="0.0.0.0") as url:
        store = Workspace(tmp_path / "home").store
        before = [(r.id, r.status, r.config) for r in store.list_runs()]
        forged = [sys.executable, "-c", _FORGED_SUBMITS, url.replace("127.0.0.1", HOST_ADDRESS)]
        out = subprocess.run(
            peer.command([*forged, students["eve"], students["bea"]]),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        pages = json.loads(out.stdout.strip().splitlines()[-1])
        assert "Not submitted" in pages["out_of_bounds"] and "weight decay" in pages["out_of_bounds"].lower()
        assert "0 of 1 runs left" in pages["past_the_cap"] and "Submitted run" not in pages["past_the_cap"]
        assert [(r.id, r.status, r.config) for r in store.list_runs()] == before  # nothing stored


def _epoch(n: int) -> EpochMetrics:
    return EpochMetrics(
        n,
        train_loss=1 / n,
        train_accuracy=0.5 + n / 20,
        val_loss=1.1 / n,
        val_accuracy=0.5 + n / 25,
        seconds=1.0,
    )


def _laptop_live(browser, url: str, tmp_path, name: str, variants: tuple[str, ...]) -> tuple:
    """(page, store, run ids): Live on a laptop's screen, and a queued run '<name> <variant>' of
    each variant."""
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    open_and_check(page, f"{url}/live", "Live")
    store = Workspace(tmp_path / "home").store
    ids = [store.enqueue(TrainConfig.for_variant(v, epochs=5), name=f"{name} {v}") for v in variants]
    return page, store, ids


def _first_epoch(store, ids: list[int]) -> None:
    """Each queued run claimed by this process, training, with its first epoch recorded."""
    for run_id in ids:
        store.claim_next(os.getpid())
        store.heartbeat(run_id)
        store.record_epoch(run_id, _epoch(1))


def test_a_live_chart_grows_in_place_and_keeps_what_the_viewer_hid(browser, tmp_path):
    with serve_dashboard(tmp_path) as url:
        page, store, ids = _laptop_live(browser, url, tmp_path, "growing", ("baseline", "dropout"))
        _first_epoch(store, ids)
        curves = _chart(page, EPOCHS_CHART)
        curves.get_by_text("#2 growing dropout").wait_for(timeout=15_000)
        # the viewer hides one run from the chart; the element is marked to tell it from a new one
        curves.locator(".traces", has_text="#1 growing baseline").locator(".legendtoggle").click()
        curves.evaluate("chart => { chart.dataset.first = 'yes' }")
        # each trace's name, points and visibility, as plotly draws it (its arrays travel encoded)
        points = "chart => chart._fullData.map(trace => [trace.name, trace.x.length, trace.visible])"
        page.wait_for_function(  # a click on the legend counts once its double-click time has passed
            "() => document.querySelector('.js-plotly-plot[data-first=yes]').data[0].visible === 'legendonly'"
        )
        for run_id in ids:
            store.record_epoch(run_id, _epoch(2))
            store.heartbeat(run_id)
        page.wait_for_function(
            "() => document.querySelector('.js-plotly-plot[data-first=yes]')?._fullData[0].x.length === 2",
            timeout=15_000,
        )
        page.screenshot(path=str(_shots(tmp_path) / "live-in-place.png"))
        # the same chart, one point more per run, and the hidden run still hidden
        validation = {name: (n, visible) for name, n, visible in curves.evaluate(points) if "#" in name}
        assert validation["#1 growing baseline"] == (2, "legendonly")
        assert validation["#2 growing dropout"] == (2, True)
        assert page.locator(".js-plotly-plot").count() == 2  # the per-epoch and per-step figures, never more


# In the page: plotly's own search for where traces hold arrays (kept as `.original`) against the
# live chart element's remembered one, on Live's traces and on other kinds with arrays elsewhere
_ARRAY_ATTRIBUTES = """async () => {
  const find = Plotly.PlotSchema.findArrayAttributes;
  const same = (trace) => JSON.stringify(find(trace)) === JSON.stringify(find.original(trace));
  const live = [...document.querySelectorAll(".live-chart.js-plotly-plot")].flatMap((c) => c._fullData);
  const box = document.createElement("div");
  document.body.append(box);
  await Plotly.newPlot(box, [
    { type: "bar", x: ["a", "b"], y: [1, 2], text: ["1", "2"], marker: { color: ["red", "blue"] } },
    { type: "pie", labels: ["a", "b"], values: [1, 2], marker: { colors: ["red", "blue"] } },
    { type: "scatter", x: [1, 2], y: [3, 4], mode: "markers",
      marker: { size: [5, 9], line: { width: [1, 2] } } },
  ]);
  const others = box._fullData;
  Plotly.purge(box);
  box.remove();
  const curve = live[0];  // asked once already: its answer is kept
  const coloured = { ...curve, marker: { ...curve.marker, color: curve.x.map(() => "red") } };
  return {
    remembered: Boolean(find.original),
    traces: live.length,
    same: [...live, ...others].map(same),
    coloured: [find(coloured).includes("marker.color"), same(coloured)],
    curve: find(curve).includes("marker.color"),
  };
}"""


def test_a_live_chart_finds_where_traces_hold_arrays_as_plotly_does(browser, tmp_path):
    """Plotly's search for each trace's arrays was half of a redraw on a Streamlit page (its concat
    runs on V8's slow path there); the chart element keeps each answer by the trace's type and where
    it holds arrays. The kept answers must be plotly's own, and a trace with one more array gets a
    new one."""
    with serve_dashboard(tmp_path) as url:
        page, store, ids = _laptop_live(browser, url, tmp_path, "arrays", ("baseline", "dropout"))
        _first_epoch(store, ids)
        _chart(page, EPOCHS_CHART).get_by_text("#2 arrays dropout").wait_for(timeout=15_000)
        found = page.evaluate(_ARRAY_ATTRIBUTES)
        assert found["remembered"] and found["traces"] >= 6  # 2 runs: curves, training curves, stars
        assert all(found["same"]), found["same"]
        assert found["coloured"] == [True, True] and not found["curve"]


def test_a_run_hidden_from_a_live_chart_stays_hidden_when_another_run_starts(browser, tmp_path):
    with serve_dashboard(tmp_path) as url:
        page, store, ids = _laptop_live(browser, url, tmp_path, "moving", ("baseline", "dropout", "l2"))
        for run_id in ids:
            store.claim_next(os.getpid())
            store.heartbeat(run_id)
        for run_id in (ids[0], ids[2]):
            store.record_epoch(run_id, _epoch(1))
        curves = _chart(page, EPOCHS_CHART)
        curves.get_by_text("#3 moving l2").wait_for(timeout=15_000)
        curves.locator(".traces", has_text="#3 moving l2").locator(".legendtoggle").click()
        hidden = "chart => chart._fullData.filter(t => t.visible === 'legendonly').map(t => t.name)"
        page.wait_for_function(f"chart => ({hidden})(chart).length === 6", arg=curves.element_handle())
        # run #2's first epoch: its curves come in between, and #3's move along (as the quick demo's
        # batch norm and augmented runs come in among the others when they start)
        for run_id in ids:
            store.record_epoch(run_id, _epoch(2 if run_id != ids[1] else 1))
            store.heartbeat(run_id)
        page.wait_for_function(
            "chart => chart._fullData.map(t => t.name).includes('#2 moving dropout')",
            arg=curves.element_handle(),
            timeout=15_000,
        )
        # its curves of accuracy and of loss, all hidden by its one legend entry
        assert sorted(curves.evaluate(hidden)) == sorted(
            2 * ["#3 moving l2", "#3 moving l2 best validation epoch (epoch 2)", "#3 moving l2 train"]
        )
        # in launch order, whichever runs train: each run's legend entry keeps its place
        store.finish(ids[0], RunStatus.FINISHED)
        store.record_epoch(ids[1], _epoch(2))
        page.wait_for_function(
            "chart => chart._fullData[3].x.length === 2", arg=curves.element_handle(), timeout=15_000
        )
        legend = curves.locator(".legendtext").all_text_contents()
        assert legend == ["#1 moving baseline", "#2 moving dropout", "#3 moving l2"]


EPOCHS_CHART = "Accuracy and loss"  # Live's per-epoch figure, one legend for both


def _chart(page, title: str):
    return page.locator(".js-plotly-plot").filter(
        has=page.locator(".gtitle", has_text=re.compile(f"^{re.escape(title)}$"))
    )


def _charts_asked(url: str) -> str | None:
    """The figures a poll of Live's feed asked for ('epochs:<revision>,...'), or None for any other
    request."""
    address = urllib.parse.urlparse(url)
    if address.path == "/feed/live":
        return urllib.parse.parse_qs(address.query).get("charts", [""])[0]
    return None


def test_a_live_chart_without_a_curve_asks_at_every_poll_until_its_first_epoch(browser, tmp_path):
    """As training starts, the per-epoch figure is asked for at every poll of the feed (every
    second) until it has a curve, then at its own pace (every 3 s): the first epoch shows within a
    poll of its end."""
    polls = []  # Live's polls of the feed: whether each asked for the per-epoch figure

    def record(request) -> None:
        if (kinds := _charts_asked(request.url)) is not None:
            polls.append("epochs" in kinds)

    def next_polls(page, count: int) -> list[bool]:
        del polls[:]
        deadline = time.monotonic() + 15
        while len(polls) < count and time.monotonic() < deadline:
            page.wait_for_timeout(100)  # Playwright hands over the page's requests meanwhile
        return polls[:count]

    with serve_dashboard(tmp_path) as url:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.on("request", record)
        open_and_check(page, f"{url}/live", "Live")
        store = Workspace(tmp_path / "home").store
        run_id = store.enqueue(TrainConfig.for_variant("baseline", epochs=5), name="first baseline")
        store.claim_next(os.getpid())
        store.heartbeat(run_id)
        page.get_by_text(re.compile(r"first baseline.*epoch 1/5")).first.wait_for(timeout=15_000)
        page.locator(".live-chart.js-plotly-plot").first.wait_for(timeout=10_000)  # drawn, empty
        assert next_polls(page, 3) == [True, True, True]  # at its 3 s pace, one of three would ask
        store.record_epoch(run_id, _epoch(1))
        store.heartbeat(run_id)
        _chart(page, EPOCHS_CHART).get_by_text("#1 first baseline").wait_for(timeout=10_000)
        assert not all(next_polls(page, 4))  # back at its own pace


def test_a_live_chart_out_of_sight_is_drawn_when_it_comes_into_sight(browser, tmp_path):
    with serve_dashboard(tmp_path) as url:
        page = browser.new_page(viewport={"width": 1366, "height": 700})  # the per-step charts below
        asked = []  # the kinds of chart each poll of the feed asked for
        page.on("request", lambda request: asked.append(_charts_asked(request.url) or ""))
        open_and_check(page, f"{url}/live", "Live")
        store = Workspace(tmp_path / "home").store
        run_id = store.enqueue(TrainConfig.for_variant("baseline", epochs=5), name="stepping baseline")
        store.claim_next(os.getpid())
        store.heartbeat(run_id)
        steps = _chart(page, "Training loss and accuracy (per step)")
        steps.wait_for(state="attached", timeout=15_000)  # drawn once, empty, below the laptop's fold
        for n in range(1, 11):
            store.record_step(
                run_id, StepMetrics(1, n, 10, n, 50, loss=2 / n, accuracy=n / 10, elapsed_s=n, eta_s=10)
            )
        store.record_epoch(run_id, _epoch(1))
        store.heartbeat(run_id)
        # the figure in sight shows the epoch; the per-step one out of sight is not even asked for
        _chart(page, EPOCHS_CHART).get_by_text("#1 stepping baseline").wait_for(timeout=15_000)
        page.wait_for_timeout(7_000)  # past the per-step charts' refresh (6 s): they would be due
        points = "chart => chart._fullData.map(trace => trace.x.length)"
        assert steps.evaluate(points) == []
        assert any("epochs" in kinds for kinds in asked) and not any("steps" in kinds for kinds in asked)
        steps.scroll_into_view_if_needed()
        page.wait_for_function(
            "chart => chart._fullData.length === 2 && chart._fullData.every(trace => trace.x.length === 10)",
            arg=steps.element_handle(),
            timeout=5_000,
        )


def test_a_phone_sees_the_two_plots_one_over_the_other(browser, tmp_path):
    """A student on a phone (390 px wide): side by side, each plot was 125 px wide with its epoch
    ticks crowded; stacked, each takes the width. No mode bar is drawn over a chart's title there
    (a touch screen showed it all the time). Turned wide again, the plots go back side by side, with
    the mode bar."""
    with serve_dashboard(tmp_path) as url:
        page = browser.new_page(viewport={"width": 390, "height": 844})
        open_and_check(page, f"{url}/live", "Live")
        store = Workspace(tmp_path / "home").store
        store.create_experiment("demo", "preset", [TrainConfig.for_variant("baseline", epochs=40)])
        run_id = store.claim_next(os.getpid())
        store.heartbeat(run_id)
        for n in (1, 2, 3):
            store.record_epoch(run_id, _epoch(n))
        for path in ("results", "live"):  # Results' comparison is the same figure
            page.goto(f"{url}/{path}")
            chart = _chart(page, EPOCHS_CHART)
            chart.locator(".nsewdrag").nth(1).wait_for(timeout=15_000)
            chart.scroll_into_view_if_needed()
            page.wait_for_timeout(500)  # laid out
            page.screenshot(path=str(_shots(tmp_path) / f"{path}-phone.png"))
            accuracy, loss = (box.bounding_box() for box in chart.locator(".nsewdrag").all())
            assert accuracy["y"] + accuracy["height"] < loss["y"], (path, accuracy, loss)  # accuracy on top
            for plot in (accuracy, loss):
                assert plot["width"] >= 250 and plot["height"] >= 180, (path, plot)  # side by side: 125 px
            assert not chart.locator(".modebar").is_visible(), path

        page.set_viewport_size({"width": 1366, "height": 768})
        page.wait_for_function(
            "() => document.querySelector('.live-chart[data-narrow]').dataset.narrow === 'no'", timeout=5_000
        )
        page.wait_for_timeout(500)
        accuracy, loss = (box.bounding_box() for box in chart.locator(".nsewdrag").all())
        side_by_side = accuracy["x"] + accuracy["width"] < loss["x"] and abs(accuracy["y"] - loss["y"]) < 2
        assert side_by_side, (accuracy, loss)
        chart.hover()
        assert chart.locator(".modebar").is_visible()


@pytest.mark.parametrize("page_path", ["live", "live?present=1"])
def test_a_laptop_sees_the_curves_of_a_whole_demo_and_their_legend(browser, tmp_path, page_path):
    """The quick demo's 8 runs on a laptop's screen (1366x768), as the teacher sees them or shows
    them on a projector of that size: in presentation mode, with a legend under each of two charts,
    the legends took 6 rows and left the curves 150 px high."""
    with serve_dashboard(tmp_path) as url:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        open_and_check(page, f"{url}/{page_path}", "Live")
        store = Workspace(tmp_path / "home").store
        configs = [TrainConfig.for_variant(v, epochs=40) for v in list_models()]
        store.create_experiment("demo", "preset", configs, varies="variant")
        for run in store.list_runs():  # every run training: six bars or more, as in the quick demo
            run_id = run.id
            store.claim_next(os.getpid())
            store.heartbeat(run_id)
            for n in (1, 2, 3):
                store.record_epoch(run_id, _epoch(n))
        chart = _chart(page, EPOCHS_CHART)
        last = "label_smoothing-s0" if page_path == "live" else "Label smoothing"
        chart.get_by_text(last).wait_for(timeout=15_000)  # the legend's last entry
        page.wait_for_timeout(500)  # laid out
        page.screenshot(path=str(_shots(tmp_path) / f"{page_path.replace('?', '-')}-laptop-demo.png"))
        plots = [box.bounding_box() for box in chart.locator(".nsewdrag").all()]
        axis_titles = [box.bounding_box() for box in chart.locator(".g-xtitle, .g-x2title").all()]
        legend = chart.locator(".legend").bounding_box()
        assert len(plots) == 2 and len(axis_titles) == 2  # accuracy and loss, side by side
        for plot in plots:  # the lesson whole on the laptop's screen, large enough to read
            assert plot["y"] >= 0 and plot["y"] + plot["height"] <= 768 and plot["height"] >= 250, plots
        # the legend under both axis titles, its last row on screen
        assert legend["y"] >= max(title["y"] + title["height"] for title in axis_titles), (
            legend,
            axis_titles,
        )
        last_entry = chart.get_by_text(last).bounding_box()
        assert last_entry["y"] + last_entry["height"] <= 768, last_entry
        if page_path == "live":  # the runs' bars below the curves
            assert (
                page.get_by_text("baseline-s0 · epoch").bounding_box()["y"]
                > plots[0]["y"] + plots[0]["height"]
            )
