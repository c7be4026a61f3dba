"""Real-browser tests: `streamlit run dashboard.py` in headless Chromium: every page, a deep link
opened first on a fresh server, and a drawing on the sandbox's canvas."""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from lenet import artifacts
from lenet.models import create_model
from lenet.workspace import Workspace

from conftest import make_dataset_dir

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
PAGES = {
    "": "LeNet-5 regularization lab",
    "train": "Train",
    "live": "Live",
    "results": "Results",
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
def serve_dashboard(root: Path, prepare=None):
    """`streamlit run dashboard.py` on a free port, over a fresh LENET_HOME and synthetic data;
    `prepare(workspace, data_dir)` may fill the home first."""
    port = _free_port()
    home = root / "home"
    data_dir = make_dataset_dir(root / "fmnist")
    env = {**os.environ, "LENET_HOME": str(home), "FASHION_MNIST_DIR": str(data_dir)}
    if prepare is not None:
        prepare(Workspace(home), data_dir)
    # one saved model of our own, so the sandbox has a model even without the shipped ones
    torch.manual_seed(0)
    artifacts.save_checkpoint(
        create_model("baseline"),
        {"variant": "baseline", "name": "test model"},
        home / "runs" / "test-model.pth",
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "dashboard.py"),
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
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
                    raise RuntimeError("streamlit did not start: " + server.stdout.read1().decode()) from e
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


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
    # our own navigation links, never Streamlit's old-style pages list
    expect(sidebar.get_by_role("link")).to_have_count(len(PAGES))
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


def test_drawing_on_the_canvas_gives_a_prediction(browser, dashboard_url, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(f"{dashboard_url}/sandbox")
    page.get_by_role("heading", name="Sandbox").first.wait_for(timeout=60_000)
    _wait_idle(page)
    assert page.get_by_text(re.compile(r"\(\d+%\)")).count() == 0  # nothing drawn, nothing predicted
    canvas = page.locator("canvas").last  # fabric.js listens on its upper canvas
    canvas.wait_for(timeout=60_000)
    box = canvas.bounding_box()
    # a filled T-shirt-ish shape: several horizontal strokes with a thick brush
    for y in range(60, 240, 20):
        half = 90 if y < 110 else 55
        page.mouse.move(box["x"] + 140 - half, box["y"] + y)
        page.mouse.down()
        page.mouse.move(box["x"] + 140 + half, box["y"] + y, steps=8)
        page.mouse.up()
    page.get_by_text(re.compile(r": .+ \(\d+%\)")).first.wait_for(timeout=60_000)  # "model: Class (NN%)"
    _wait_idle(page)
    page.screenshot(
        path=str(Path(os.environ.get("LENET_SCREENSHOTS", tmp_path)) / "sandbox-drawn.png"), full_page=True
    )
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_text("What the models see (28x28)").count() == 1


def test_a_sweeps_chart_shows_the_strength_against_the_outcome(browser, tmp_path):
    from test_experiments import train_queued

    from lenet import experiments

    def finished_sweep(workspace, data_dir):
        experiment_id = experiments.launch_sweep(
            workspace.store,
            "l2",
            "weight_decay",
            [0.0, 0.01, 0.3],
            seeds=2,
            overrides={"epochs": 2},
            data_dir=str(data_dir),
        )
        train_queued(workspace, experiment_id)

    with serve_dashboard(tmp_path, finished_sweep) as url:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(f"{url}/results?experiment=1")
        page.get_by_role("heading", name="Results").first.wait_for(timeout=60_000)
        _wait_idle(page)
        chart = page.locator(".js-plotly-plot", has_text="What weight_decay does")
        chart.wait_for(timeout=60_000)
        chart.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        page.screenshot(path=str(Path(os.environ.get("LENET_SCREENSHOTS", tmp_path)) / "sweep.png"))
        assert page.locator('[data-testid="stException"]').count() == 0
        # the three values on the x axis, the three outcomes in the legend, the best value marked
        for text in ("0.01", "0.3", "validation accuracy", "test accuracy", "gap (train − validation)"):
            assert chart.get_by_text(text, exact=True).count() >= 1, text
        assert chart.get_by_text("best on validation:").count() == 1
        assert page.get_by_text("Best weight_decay on validation").count() == 1
