"""Every dashboard page, run headless with AppTest against a run store seeded in tmp_path."""

import json
import os
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import ui
from lenet import artifacts
from lenet.presets import PRESETS
from lenet.records import runs_frame
from lenet.train import TrainConfig
from ui import feed

from conftest import finished_weight_decay_sweep, train_in_process, train_queued, wait_until

PAGES = [page.path for page in ui.PAGES]

DASHBOARD = Path(__file__).resolve().parent.parent / "dashboard.py"


@pytest.fixture(autouse=True)
def as_teacher(monkeypatch):
    """AppTest has no browser connection: these sessions are the teacher's unless a test says `viewer`."""
    monkeypatch.setattr(ui.roles, "client_is_local", lambda: True)


@pytest.fixture
def viewer(monkeypatch):
    """A session from another device in the room."""
    monkeypatch.setattr(ui.roles, "client_is_local", lambda: False)


@pytest.fixture
def worker_requests(monkeypatch):
    """Pages ask for a background worker; record the requests instead of starting processes."""
    calls = []
    monkeypatch.setattr(ui.actions, "ensure_workers", lambda workspace: calls.append(workspace.home))
    return calls


@pytest.fixture
def seeded(trained, idx_dir, monkeypatch, worker_requests):
    """Two finished runs (trained once per session) and one queued run."""
    monkeypatch.setenv("FASHION_MNIST_DIR", str(idx_dir))  # the test images of the galleries
    st.cache_resource.clear()
    store = trained.store
    finished = sorted(runs_frame(store.list_runs())["id"])
    queued = store.enqueue(TrainConfig.for_variant("dropout"), name="waiting dropout")
    return store, finished, queued


def feed_parts(app, role: str) -> list[dict]:
    """The data of the elements that follow the feed (ui/feed_view.py) in one role ("bar", ...)."""
    elements = [e for e in app.get("bidi_component") if e.proto.component_name == "lenet_feed"]
    parts = [json.loads(e.proto.json) for e in elements]
    return [part for part in parts if part["role"] == role]


def bar_texts(app) -> str:
    """Live's progress bars as they are first drawn: each run's name and what it is doing."""
    return " ".join(f"{part['row']['name']} · {part['row']['detail']}" for part in feed_parts(app, "bar"))


def chart_titles(app) -> list[str]:
    """Each chart's title, with its subtitle after a colon as it was written."""
    titles = [json.loads(chart.proto.spec)["layout"]["title"] for chart in app.get("plotly_chart")]
    return [t["text"] + (f": {t['subtitle']['text']}" if t.get("subtitle") else "") for t in titles]


def stored_runs():
    return runs_frame(ui.workspace().store.list_runs())


def open_page(page: str) -> AppTest:
    app = AppTest.from_file(str(DASHBOARD), default_timeout=60)
    app.run()
    if page != PAGES[0]:
        app.switch_page(page).run()
    return app


@pytest.mark.parametrize("page", PAGES)
def test_every_page_loads_without_exception_on_an_empty_store(page, isolated_home, worker_requests):
    app = open_page(page)
    assert not app.exception, app.exception


@pytest.mark.parametrize("page", PAGES)
def test_every_page_loads_without_exception_on_a_seeded_store(page, seeded):
    app = open_page(page)
    assert not app.exception, app.exception


def test_a_drawn_page_keeps_the_worker_pool_warm_unless_that_is_turned_off(isolated_home, monkeypatch):
    asked = []
    monkeypatch.setattr(ui.actions, "start_workers", lambda workspace, standby=False: asked.append(standby))
    monkeypatch.setitem(ui.actions._standby, "checked", -ui.actions.STANDBY_CHECK_S)
    monkeypatch.setattr(ui.actions, "STANDBY_DELAY_S", 0.0)
    monkeypatch.setenv("LENET_STANDBY_WORKERS", "1")
    open_page("pages/live.py")
    wait_until(lambda: asked, timeout=10)
    time.sleep(0.5)
    assert asked == [True]  # the home page drawn first, then Live within the same 10 s: once
    monkeypatch.setitem(ui.actions._standby, "checked", -ui.actions.STANDBY_CHECK_S)
    monkeypatch.setenv("LENET_STANDBY_WORKERS", "0")
    open_page("pages/home.py")
    time.sleep(0.5)
    assert asked == [True]


def test_submitting_the_form_enqueues_that_config(isolated_home, worker_requests):
    app = open_page("pages/train.py")
    app.selectbox(key="variant").select("l2").run()
    app.number_input(key="epochs_l2").set_value(3)
    app.number_input(key="weight_decay_l2").set_value(0.005)
    app.number_input(key="train_limit_l2").set_value(5000)
    app.text_input(key="name_l2").input("gentle L2")
    next(b for b in app.button if b.label == "Queue this run").click().run()
    assert not app.exception
    runs = stored_runs()
    assert len(runs) == 1
    run = runs.iloc[0]
    assert (run["variant"], run["epochs"], run["weight_decay"], run["train_limit"], run["name"]) == (
        "l2",
        3,
        0.005,
        5000,
        "gentle L2",
    )
    assert run["status"] == "queued" and worker_requests
    assert any("Queued run" in s.value for s in app.success)


@pytest.mark.parametrize(
    "widget, value, reason",
    [
        ("epochs_baseline", 5000, "epochs"),
        ("epochs_baseline", 0, "epochs must be a whole number from 1"),
        ("batch_size_baseline", 0, "batch size must be a whole number from 1"),
        ("weight_decay_baseline", 3.0, "weight decay"),
        ("train_limit_baseline", 100_000, "exceeds the 54000 training images"),
        ("lr_baseline", 0.0, "learning rate"),
    ],
)
def test_invalid_inputs_are_refused_with_the_reason(isolated_home, worker_requests, widget, value, reason):
    app = open_page("pages/train.py")
    app.number_input(key=widget).set_value(value)
    next(b for b in app.button if b.label == "Queue this run").click().run()
    assert not app.exception
    assert any(reason in e.value and "Not queued" in e.value for e in app.error), [e.value for e in app.error]
    assert stored_runs().empty


@pytest.mark.parametrize("preset", list(PRESETS))
def test_a_preset_enqueues_all_its_runs(isolated_home, worker_requests, preset):
    app = open_page("pages/train.py")
    app.button(key=f"preset_{preset}").click().run()
    assert not app.exception
    runs = stored_runs().sort_values("id")
    expected = PRESETS[preset].configs()
    assert [r["config"] for _, r in runs.iterrows()] == [c.to_dict() for c in expected]
    assert worker_requests


def test_home_launches_the_quick_demo(isolated_home, worker_requests):
    app = open_page("pages/home.py")
    app.button(key="launch_demo").click().run()
    assert len(stored_runs()) == len(PRESETS["quick_demo"].configs())
    assert worker_requests


def test_queue_cancel_button_removes_a_queued_run(seeded):
    _, _, queued = seeded
    app = open_page("pages/train.py")
    app.button(key=f"cancel_{queued}").click().run()
    assert not app.exception
    assert queued not in stored_runs()["id"].tolist()


def test_results_table_lists_the_seeded_runs(seeded):
    _, finished, queued = seeded
    app = open_page("pages/results.py")
    table = app.dataframe[0].value
    assert sorted(table["run"]) == sorted([*finished, queued])
    row = table.set_index("run").loc[finished[1]]
    assert row["variant"] == "l2" and row["weight decay"] == 0.01
    assert row["gap (train − val) %"] == pytest.approx(row["train %"] - row["validation %"])
    assert len(app.get("plotly_chart")) >= 4  # curves, gap panels, test bars, confusion matrix...


def test_the_mistakes_gallery_and_mirrored_accuracy_were_measured_when_the_run_finished(
    trained, idx_dir, monkeypatch, worker_requests
):
    monkeypatch.setenv("FASHION_MNIST_DIR", str(idx_dir))
    st.cache_resource.clear()
    store = trained.store
    untrained = train_in_process(trained, TrainConfig(epochs=1, lr=1e-9, batch_size=100), idx_dir)
    metadata = artifacts.read_metadata(store.get_run(untrained).checkpoint)
    found = metadata["mistakes"]
    assert found and [m["confidence"] for m in found] == sorted(
        (m["confidence"] for m in found), reverse=True
    )
    assert all(m["true_class"] != m["predicted_class"] for m in found)
    assert 0 <= metadata["mirrored_test_accuracy"] <= 1

    def not_now(*args, **kwargs):
        raise AssertionError("evaluated the model when the page opened")

    monkeypatch.setattr("lenet.analysis.mistakes", not_now)
    monkeypatch.setattr("lenet.train.evaluate", not_now)
    app = open_page("pages/results.py")
    app.selectbox(key="run").select(untrained).run()
    assert not app.exception
    shown = [c.value for c in app.caption if "true:" in c.value]
    assert len(shown) == min(24, len(found)) and shown[0].startswith(f"**{found[0]['predicted_class']}**")


def test_results_delete_removes_run_and_files(seeded):
    store, finished, _ = seeded
    checkpoint = store.get_run(finished[0]).checkpoint
    app = open_page("pages/results.py")
    app.selectbox[-1].select(finished[0]).run()
    app.button(key="delete_run").click().run()
    assert store.get_run(finished[0]) is None
    assert not os.path.exists(checkpoint)


def _predictions_shown(app) -> list[str]:
    return [m.value for m in app.markdown if "**" in m.value and "(" in m.value and "%)" in m.value]


def test_sandbox_sample_path_classifies_a_test_image_with_every_model(seeded):
    app = open_page("pages/sandbox.py")
    app.radio(key="source").set_value("Sample from the test set").run()
    assert not app.exception
    assert len(app.get("image")) == 2  # the test image and the 28x28 the models see
    models = app.multiselect[0].value  # the shipped models by default, else the saved runs
    assert models and len(_predictions_shown(app)) == len(models)
    app.selectbox(key="sample_class").select("Sneaker").run()
    assert not app.exception and len(_predictions_shown(app)) == len(models)


def test_sandbox_upload_path_classifies_any_image(seeded):
    from test_predict import encode, shirt

    app = open_page("pages/sandbox.py")
    app.radio(key="source").set_value("Upload").run()
    app.file_uploader(key="image_upload").upload(
        "photo.jpg", encode(shirt(ink=30, paper=240).convert("RGB"), "JPEG"), "image/jpeg"
    ).run()
    assert not app.exception
    assert len(_predictions_shown(app)) == len(app.multiselect[0].value)
    assert any("inverted" in c.value for c in app.caption)


def test_sandbox_refuses_a_bad_image_with_a_message(seeded):
    app = open_page("pages/sandbox.py")
    app.radio(key="source").set_value("Upload").run()
    app.file_uploader(key="image_upload").upload("broken.png", b"\x89PNG\r\n\x1a\n broken", "image/png").run()
    assert not app.exception
    assert any("Cannot classify this file" in e.value for e in app.error)
    assert _predictions_shown(app) == []


def test_sandbox_loads_a_notebook_pth_and_refuses_a_hostile_one(seeded, isolated_home, tmp_path):
    import torch

    from lenet.models import create_model

    notebook = tmp_path / "LeNet5V1_dropout.pth"
    torch.save(create_model("dropout").state_dict(), notebook)
    evil = b"\x80\x04cos\nsystem\n(Vtouch pwned\ntR."
    app = open_page("pages/sandbox.py")
    uploader = next(u for u in app.file_uploader if u.accept_multiple_files)
    uploader.set_value(
        [
            ("LeNet5V1_dropout.pth", notebook.read_bytes(), "application/octet-stream"),
            ("evil.pth", evil, "application/octet-stream"),
        ]
    ).run()
    assert not app.exception
    assert any("loaded as dropout (variant inferred" in s.value for s in app.success)
    assert any("evil.pth" in e.value and "refused to load" in e.value for e in app.error)
    assert not (isolated_home / "uploads").exists()  # uploads are read in memory, never stored
    assert not (tmp_path / "pwned").exists()


def test_reproduce_runs_show_on_live_while_they_train(isolated_home, worker_requests):
    from lenet.reproduce import configs_for, queue_runs

    store = ui.workspace().store
    ids = queue_runs(store, configs_for(1, {"epochs": 1}))
    store.claim_next(os.getpid())  # the first one trains, the others wait their turn
    app = open_page("pages/live.py")
    assert not app.exception
    shown = bar_texts(app)
    assert "baseline-s0" in shown and "epoch 1/1" in shown
    assert len(feed_parts(app, "bar")) == 1  # the waiting runs are one line, in training order
    queue = [c.value for c in app.caption if "Queued, in training order: " in c.value]
    assert queue == [
        f"0 of {len(ids)} runs ended. Queued, in training order: "
        + ", ".join(f"**{store.get_run(i).name}**" for i in ids[1:])
    ]


def test_live_shows_an_experiments_own_bar_above_its_runs_bars(isolated_home, worker_requests):
    from lenet.experiments import launch_preset

    store = ui.workspace().store
    launch_preset(store, "quick_demo")
    running = store.claim_next(os.getpid())
    app = open_page("pages/live.py")
    assert not app.exception
    rows = [part["row"] for part in feed_parts(app, "bar")]
    total = len(PRESETS["quick_demo"].configs())
    assert [row["id"] for row in rows] == [feed.EXPERIMENT_BAR, running]  # the whole experiment first
    assert rows[0]["name"] == f"All {total} runs" and rows[0]["detail"].startswith(f"0 of {total} ended · ")
    queue = [c.value for c in app.caption if "Queued, in training order: " in c.value]
    assert len(queue) == 1 and queue[0].startswith("Queued")  # how many ended: said by the bar


def _finished_sweep(workspace, idx_dir):
    return finished_weight_decay_sweep(workspace, idx_dir, [0.0, 0.3])


def test_the_sweep_form_queues_one_experiment_or_says_why_not(isolated_home, worker_requests):
    app = open_page("pages/train.py")
    app.text_input(key="sweep_values").input("0, 0.01, 2")
    next(b for b in app.button if b.label == "Queue the sweep").click().run()
    assert any(
        "Not queued" in e.value and "weight decay must be between 0 and 1" in e.value for e in app.error
    )
    assert stored_runs().empty
    app.text_input(key="sweep_values").input("0, 0.001, 0.01")
    next(b for b in app.button if b.label == "Queue the sweep").click().run()
    assert not app.exception
    runs = stored_runs()
    assert len(runs) == 3 * 3 and sorted(runs["weight_decay"].unique()) == [0.0, 0.001, 0.01]
    assert set(runs["train_limit"]) == {1000} and set(runs["epochs"]) == {20}
    assert runs["experiment_id"].nunique() == 1 and worker_requests


def test_the_sweep_form_sweeps_label_smoothing(isolated_home, worker_requests):
    app = open_page("pages/train.py")
    app.selectbox(key="sweep_variant").select("baseline")
    app.selectbox(key="sweep_param").select("label_smoothing")
    app.text_input(key="sweep_values").input("0, 0.1, 0.3")
    next(b for b in app.button if b.label == "Queue the sweep").click().run()
    assert not app.error, [e.value for e in app.error]
    runs = stored_runs()
    assert sorted(runs["label_smoothing"].unique()) == [0.0, 0.1, 0.3] and set(runs["variant"]) == {
        "baseline"
    }


def test_a_preset_with_seeds_is_one_experiment(isolated_home, worker_requests):
    app = open_page("pages/train.py")
    app.number_input(key="preset_seeds_quick_demo").set_value(2).run()
    app.button(key="preset_quick_demo").click().run()
    runs = stored_runs()
    assert len(runs) == 2 * len(PRESETS["quick_demo"].configs()) and runs["experiment_id"].nunique() == 1


def test_results_show_a_sweep_its_chart_and_findings(isolated_home, idx_dir, worker_requests, monkeypatch):
    monkeypatch.setenv("FASHION_MNIST_DIR", str(idx_dir))
    experiment_id = _finished_sweep(ui.workspace(), idx_dir)
    app = open_page("pages/results.py")
    assert not app.exception
    assert app.selectbox(key="experiment").value == experiment_id
    assert any("Best weight decay on validation" in m.value for m in app.markdown)
    summary = app.dataframe[0].value
    assert summary["weight decay"].tolist() == ["0", "0.3"] and set(summary["seeds"]) == {2}
    titles = chart_titles(app)
    assert "What weight decay does (mean ± std over 2 seeds)" in titles
    assert "Accuracy over seeds: validation solid · train dotted · ± std · ★ best" in titles


def test_results_rename_and_delete_an_experiment(isolated_home, idx_dir, worker_requests, monkeypatch):
    monkeypatch.setenv("FASHION_MNIST_DIR", str(idx_dir))
    store = ui.workspace().store
    experiment_id = _finished_sweep(ui.workspace(), idx_dir)
    app = open_page("pages/results.py")
    app.text_input(key=f"exp_name_{experiment_id}").input("How much L2?").run()
    app.button(key="rename_experiment").click().run()
    assert store.get_experiment(experiment_id).name == "How much L2?"
    app.button(key="delete_experiment").click().run()
    assert store.get_experiment(experiment_id) is None and runs_frame(store.list_runs()).empty


def test_results_show_a_preset_over_seeds_with_gaps_bands_and_findings(
    isolated_home, idx_dir, worker_requests, monkeypatch
):
    from lenet import experiments
    from lenet.presets import Preset

    monkeypatch.setenv("FASHION_MNIST_DIR", str(idx_dir))
    monkeypatch.setitem(
        PRESETS, "quick_demo", Preset("quick_demo", "Quick class demo", "tiny", {"epochs": 2})
    )
    workspace = ui.workspace()
    experiment_id = experiments.launch_preset(workspace.store, "quick_demo", seeds=2, data_dir=str(idx_dir))
    train_queued(workspace, experiment_id)
    app = open_page("pages/results.py")
    assert not app.exception
    assert any(m.value.startswith("- Best test accuracy:") for m in app.markdown)
    summary = app.dataframe[0].value
    assert summary["variant"].tolist() == [c.variant for c in PRESETS["quick_demo"].configs()]
    assert all("±" in cell for cell in summary["gap (points)"])
    titles = chart_titles(app)
    assert "Generalization gap (train − validation), mean of 2 seeds, bars ± 1 std" in titles
    assert "Loss over seeds: validation solid · train dotted · ± std · ★ best" in titles


def test_the_form_sets_the_dropout_rate_and_the_patience_of_the_variants_that_have_them(
    isolated_home, worker_requests
):
    app = open_page("pages/train.py")
    assert not any(w.key == "dropout_baseline" for w in app.number_input)  # the baseline has no dropout
    app.selectbox(key="variant").select("dropout").run()
    app.number_input(key="dropout_dropout").set_value(0.3)
    next(b for b in app.button if b.label == "Queue this run").click().run()
    app.selectbox(key="variant").select("early_stopping").run()
    app.number_input(key="patience_early_stopping").set_value(3)
    next(b for b in app.button if b.label == "Queue this run").click().run()
    runs = stored_runs().set_index("variant")
    assert runs.loc["dropout", "dropout"] == 0.3 and runs.loc["early_stopping", "patience"] == 3


def test_results_show_a_runs_accuracy_on_mirrored_images(seeded):
    app = open_page("pages/results.py")
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Test accuracy"].endswith("%")
    assert metrics["On the test images mirrored left-right"].endswith("%")


def test_the_form_repeats_a_run_over_seeds_as_one_experiment(isolated_home, worker_requests):
    app = open_page("pages/train.py")
    app.number_input(key="repeats_baseline").set_value(3)
    next(b for b in app.button if b.label == "Queue this run").click().run()
    runs = stored_runs()
    assert sorted(runs["seed"]) == [0, 1, 2] and runs["experiment_id"].nunique() == 1
    assert any("Queued experiment" in s.value for s in app.success)


def test_a_double_click_on_launch_queues_the_demo_once(isolated_home, worker_requests):
    app = open_page("pages/home.py")
    app.button(key="launch_demo").click().run()
    app.button(key="launch_demo").click().run()  # the second click of a double click
    assert not app.exception
    runs = stored_runs()
    assert len(runs) == len(PRESETS["quick_demo"].configs()) and runs["experiment_id"].nunique() == 1


def test_the_queue_is_listed_in_training_order(seeded):
    store, _, first = seeded
    second = store.enqueue(TrainConfig.for_variant("l2"), name="waiting l2")
    app = open_page("pages/train.py")
    listed = [m.value for m in app.markdown if ": queued (" in m.value]
    assert listed == [
        f"#{first} waiting dropout: queued (12 epochs)",
        f"#{second} waiting l2: queued (12 epochs)",
    ]


CHANGING_CONTROLS = ("launch_demo", "preset_", "cancel_", "stop_", "live_stop_", "delete_", "rename_")


def _changing_controls(app) -> list[str]:
    keys = [b.key for b in app.button]
    return [k for k in keys if k and k.startswith(CHANGING_CONTROLS)] + [
        f.proto.form_id for f in app.get("form_submit_button") if f.proto.form_id != "passcode_form"
    ]


@pytest.mark.parametrize("page", PAGES)
def test_a_viewer_sees_no_control_that_changes_stored_state(page, seeded, viewer):
    store, finished, queued = seeded
    store.claim_next(os.getpid())  # one run training, so Stop buttons would show
    app = open_page(page)
    assert not app.exception
    assert _changing_controls(app) == []
    if page in ("pages/home.py", "pages/train.py"):
        assert any("View only" in c.value for c in app.caption)


def test_the_teachers_session_has_the_controls_a_viewer_lacks(seeded):
    store, _, _ = seeded
    store.claim_next(os.getpid())
    keys = {b.key for p in ("pages/home.py", "pages/train.py", "pages/live.py") for b in open_page(p).button}
    assert "launch_demo" in keys
    assert any(k.startswith("stop_") for k in keys) and any(k.startswith("live_stop_") for k in keys)


def test_the_last_line_of_defence_refuses_a_viewers_launch(isolated_home, viewer, worker_requests):
    with pytest.raises(PermissionError, match="only the teacher"):
        ui.launch([TrainConfig.for_variant("baseline")])
    assert stored_runs().empty and not worker_requests


def test_the_passcode_makes_a_viewer_the_teacher_and_wrong_ones_lock_out(
    isolated_home, viewer, worker_requests
):
    app = open_page("pages/home.py")
    assert _changing_controls(app) == []
    for _ in range(ui.MAX_PASSCODE_TRIES):
        app.text_input[0].input("not-the-code")
        app.get("form_submit_button")[0].click().run()
        assert any("Wrong passcode" in e.value for e in app.error)
    assert any("Too many wrong passcodes" in e.value for e in app.error)
    app.run()
    assert app.get("form_submit_button") == []  # locked for this session

    app = open_page("pages/home.py")
    app.text_input[0].input(ui.teacher_passcode())
    app.get("form_submit_button")[0].click().run()
    app.button(key="launch_demo").click().run()
    assert len(stored_runs()) == len(PRESETS["quick_demo"].configs())


def test_stop_on_live_shows_at_once_in_the_view_that_was_clicked(seeded):
    store, _, queued = seeded
    store.claim_next(os.getpid())
    app = open_page("pages/live.py")
    app.button(key=f"live_stop_{queued}").click().run()
    assert store.get_run(queued).stop_requested == 1
    assert "stopping after this batch" in bar_texts(app)
    assert not [b for b in app.button if b.key == f"live_stop_{queued}"]  # no second Stop to press
