"""The plotly figures carry the data they are meant to show (pure builders, fed from a real store)."""

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from lenet import CLASSES, analysis, artifacts, charts, tables
from lenet.models import create_model, list_models
from lenet.records import runs_frame


def _figure(spec_builder, *args) -> go.Figure:
    """A plain dict figure as plotly's own objects, which check every attribute it sets."""
    return go.Figure(spec_builder(*args))


@pytest.fixture
def runs(trained):
    return trained.store, runs_frame(trained.store.list_runs())


def test_step_curves_plot_every_logged_step_in_epoch_units(runs):
    store, runs = runs
    steps = store.step_metrics(runs["id"].tolist())
    fig = _figure(charts.step_curves_spec, steps, runs)
    assert len(fig.data) == 4  # loss on the left, accuracy on the right
    for metric, axes in (("loss", ("x", "y")), ("accuracy", ("x2", "y2"))):
        curves = [trace for trace in fig.data if (trace.xaxis, trace.yaxis) == axes]
        for trace, (_, run) in zip(curves, runs.iterrows(), strict=True):
            rows = steps[steps["run_id"] == run["id"]]
            assert list(trace.y) == rows[metric].tolist() and len(trace.x) == len(rows) > 0
            assert max(trace.x) == pytest.approx(run["epochs"])  # the last step ends the last epoch
            assert trace.line.color == charts.variant_color(run["variant"])
    # one legend entry per run, which hides both of its curves
    in_legend = [trace.legendgroup for trace in fig.data if trace.showlegend is not False]
    assert in_legend == [trace.name for trace in fig.data[:2]]


def test_live_curves_draw_only_traces_of_the_live_charts_plotly_bundle(runs):
    from ui.live_charts import TRACE_TYPES

    store, runs = runs
    ids = runs["id"].tolist()
    figures = [charts.epoch_curves_spec(store.epoch_metrics(ids), runs)]
    figures += [charts.step_curves_spec(store.step_metrics(ids), runs)]
    assert {trace["type"] for figure in figures for trace in figure["data"]} <= set(TRACE_TYPES)


def test_epoch_curves_and_gap_panels(runs):
    store, runs = runs
    epochs = store.epoch_metrics(runs["id"].tolist())
    fig = _figure(charts.epoch_curves_spec, epochs, runs)
    curves = [t for t in fig.data if t.mode != "markers"]
    assert len(curves) == 8  # of accuracy and loss: validation and train per run, and a star per run
    assert all(list(t.x) == [1, 2] for t in curves) and len(fig.data) == 12
    panels = charts.gap_panels(epochs, runs)
    assert len(panels.data) == 6  # validation, shaded gap and train per run


def test_test_accuracy_dots_and_confusion_matrix(runs):
    _, runs = runs
    dots = charts.test_accuracy_dots(runs)
    assert dots.data[0].type == "scatter" and dots.data[0].mode == "markers+text"  # not bars on a cut axis
    assert list(dots.data[0].x) == sorted(runs["test_accuracy"].tolist())
    metadata = artifacts.read_metadata(runs.iloc[0]["checkpoint"])
    heat = charts.confusion_matrix_figure(metadata["confusion_matrix"])
    assert np.asarray(heat.data[0].text).sum() == 200  # every test image counted once
    assert np.allclose(
        np.asarray(heat.data[0].z).sum(axis=1)[np.asarray(heat.data[0].text).sum(axis=1) > 0], 1
    )
    assert len(charts.per_class_bars(metadata["per_class_accuracy"], "baseline").data[0].y) == 10


def test_weight_figures_show_every_model():
    models = {"a": create_model("baseline"), "b": create_model("batch_norm")}
    hist = charts.weight_histograms({k: ("baseline", analysis.weight_values(m)) for k, m in models.items()})
    assert [len(t.x) for t in hist.data] == [analysis.weight_values(m).size for m in models.values()]
    norms = pd.concat([analysis.layer_norms(m).assign(model=k, variant="l2") for k, m in models.items()])
    bars = charts.weight_norm_bars(norms)
    assert len(bars.data) == 2
    # batch norm's conv2 sits at feature.4, the baseline's at feature.3: both bars say conv2
    assert [list(t.x) for t in bars.data] == [["conv1", "conv2", "fc1", "fc2", "fc3"]] * 2


@pytest.mark.parametrize("variant", list_models())
def test_every_variant_has_its_own_colour_on_the_charts(variant):
    colors = {charts.variant_color(v) for v in list_models()}
    assert len(colors) == len(list_models())
    assert charts.variant_color(variant) != charts.UNKNOWN_COLOR


def test_sandbox_figures():
    probabilities = dict(zip(CLASSES, np.linspace(0, 1, 10) / np.linspace(0, 1, 10).sum(), strict=True))
    other = dict(zip(CLASSES, [0.9, *[0.1 / 9] * 9], strict=True))
    [grid] = charts.probability_grid({"first model": probabilities, "second model": other}).data
    assert list(grid.y) == ["second model", "first model"] and list(grid.x) == list(CLASSES)
    assert grid.z[1][9] == pytest.approx(probabilities["Ankle boot"])
    # each row's answer in bold, and only it
    assert [[t.startswith("<b>") for t in row].index(True) for row in grid.text] == [0, 9]
    assert [sum(t.startswith("<b>") for t in row) for row in grid.text] == [1, 1]
    maps = {"conv1": np.zeros((6, 28, 28)), "conv2": np.zeros((16, 10, 10))}
    grid = charts.feature_map_grid(maps)
    assert len(grid.data) == 22
    assert grid.data[0].name == "conv1 · channel 1" and grid.data[-1].name == "conv2 · channel 16"
    assert [a.title.text for a in (grid.layout.yaxis, grid.layout.yaxis9)] == ["conv1", "conv2"]
    # every map's channel shown above it: conv1 fills 6 of 8 cells, conv2 two full rows
    shown = [a.text for a in grid.layout.annotations]
    assert shown[:6] == [f"ch {c}" for c in range(1, 7)] and shown[-1] == "ch 16" and len(shown) == 22
    pixels = np.zeros((28, 28))
    pixels[3, 4], pixels[20, 10] = 0.5, -2.0
    why = charts.attribution_figure(np.zeros((28, 28)), pixels, "Coat")
    image, overlay = why.data
    assert (overlay.zmin, overlay.zmax) == (-2.0, 2.0)  # symmetric: white is exactly zero
    assert overlay.colorbar.title.text and "Coat" in why.layout.title.text
    assert why.layout.yaxis.scaleanchor == "x"  # square pixels


def test_epoch_curves_star_each_runs_best_validation_epoch(runs):
    store, runs = runs
    epochs = store.epoch_metrics(runs["id"].tolist())
    fig = _figure(charts.epoch_curves_spec, epochs, runs)
    stars = [t for t in fig.data if t.mode == "markers" and t.yaxis == "y2"]  # on the loss plot
    assert len(stars) == len(runs)
    for star, (_, run) in zip(stars, runs.iterrows(), strict=True):
        rows = epochs[epochs["run_id"] == run["id"]]
        assert (
            star.x[0] == rows.loc[rows["val_loss"].idxmin(), "epoch"] and star.y[0] == rows["val_loss"].min()
        )
        assert star.cliponaxis is False  # a best last epoch's star sits on the plot's edge: drawn whole


def test_mean_curves_average_the_seeds_of_each_variant():
    epochs = pd.DataFrame(
        [
            {
                "run_id": run,
                "epoch": e,
                "train_accuracy": 0.5 + 0.1 * e + d,
                "val_accuracy": 0.5 + d,
                "train_loss": 1.0,
                "val_loss": abs(e - 2) + d,
            }
            for run, d in ((1, 0.0), (2, 0.1))
            for e in (1, 2, 3)
        ]
    )
    runs = pd.DataFrame([{"id": 1, "variant": "dropout"}, {"id": 2, "variant": "dropout"}])
    fig = charts.mean_curves(epochs, runs, "accuracy")
    lines = [t for t in fig.data if t.legendgroup == "Dropout" and t.mode == "lines+markers"]
    validation, train = sorted(lines, key=lambda t: t.line.dash != "solid")
    assert list(validation.y) == pytest.approx([0.55, 0.55, 0.55])
    assert "Dropout validation (mean of 2)" in validation.hovertemplate and train.line.dash == "dot"
    # one legend entry per variant, its title: both of its lines hide and show together
    assert [t.name for t in fig.data if t.showlegend is not False] == ["Dropout"]
    star = next(t for t in fig.data if t.mode == "markers")
    assert star.x[0] == 2  # lowest mean validation loss


def test_gap_and_sweep_charts_carry_means_and_spreads():
    rows = [
        {
            "variant": "l2",
            "weight_decay": wd,
            "seeds": 3,
            "gap": g,
            "gap_std": 0.01,
            "val_accuracy": v,
            "val_accuracy_std": 0.005,
            "test_accuracy": v - 0.01,
            "test_accuracy_std": 0.005,
        }
        for wd, g, v in ((0.0, 0.15, 0.80), (0.001, 0.12, 0.81), (0.01, 0.05, 0.78))
    ]
    gap = charts.gap_by_variant(rows)
    assert list(gap.data[0].y) == pytest.approx([15, 12, 5]) and list(gap.data[0].error_y.array) == [1.0] * 3
    sweep = charts.sweep_chart(rows, "weight_decay")
    lines = {t.name: t for t in sweep.data if t.name}
    assert list(lines["validation accuracy"].x) == ["0", "0.001", "0.01"]
    assert list(lines["gap (train − validation)"].y) == [0.15, 0.12, 0.05]
    assert sweep.layout.annotations[0].text == "best on validation: 0.001"


def test_gap_panels_shade_only_where_train_is_above_validation():
    epochs = pd.DataFrame(
        {
            "run_id": [1, 1, 1],
            "epoch": [1, 2, 3],
            "train_accuracy": [0.70, 0.80, 0.95],
            "val_accuracy": [0.75, 0.80, 0.82],  # validation leads at epoch 1 (dropout does this)
        }
    )
    runs = pd.DataFrame([{"id": 1, "name": "d", "variant": "dropout"}])
    validation, gap, train = charts.gap_panels(epochs, runs).data
    assert gap.fill == "tonexty" and list(validation.y) == [0.75, 0.80, 0.82]
    assert list(gap.y) == [0.75, 0.80, 0.95]  # no area where validation is above train
    assert list(train.y) == [0.70, 0.80, 0.95] and train.fill is None


def test_charts_with_nothing_to_draw_yet_have_sensible_axes():
    no_steps = pd.DataFrame(columns=["run_id", "global_step", "loss", "accuracy"])
    queued = pd.DataFrame([{"id": 1, "name": "q", "variant": "baseline", "total_steps": None, "epochs": 12}])
    steps = _figure(charts.step_curves_spec, no_steps, queued).layout
    assert (list(steps.yaxis.range), list(steps.yaxis2.range)) == ([0, 2.5], [0, 1])  # loss, accuracy
    assert list(steps.xaxis.range) == list(steps.xaxis2.range) == [0, 12.5]  # the run's 12 epochs
    four = queued.assign(epochs=4)
    empty_epochs = pd.DataFrame(columns=["run_id", "epoch", "val_accuracy", "train_accuracy", "val_loss"])
    empty = _figure(charts.epoch_curves_spec, empty_epochs, four).layout
    assert list(empty.xaxis.range) == list(empty.xaxis2.range) == [0, 4.5]
    assert (list(empty.yaxis.range), list(empty.yaxis2.range)) == ([0, 1], [0, 2.5])


def test_one_seed_says_so_without_a_spread():
    row = {"variant": "baseline", "seeds": 1, "gap": 0.03, "gap_std": 0.0}
    for metric in ("train_accuracy", "val_accuracy", "test_accuracy"):
        row[metric], row[metric + "_std"] = 0.9, 0.0
    gap = charts.gap_by_variant([row])
    assert gap.layout.title.text.endswith("one seed") and not gap.data[0].error_y.visible
    summary = tables.summary_table([row], "variant")
    assert summary["test %"].tolist() == ["90.0"]  # no "± 0.0"
    assert tables.summary_table([{**row, "seeds": 3, "test_accuracy_std": 0.004}], "variant")[
        "test %"
    ].tolist() == ["90.0 ± 0.4"]


def test_the_public_private_scatter_has_the_students_and_the_diagonal():
    from lenet.rounds import BoardRow

    rows = [
        BoardRow(1, "Ada", 1, 2, 0.81, 0.012, False, "baseline", 5, 0.79, 2, 0.8),
        BoardRow(2, "Bob", 2, 1, 0.80, 0.013, True, "l2", 6, 0.80, 1, 0.8),
        BoardRow(3, "Cy", 3, 1, None, None, False, "", None, None, None, None),  # nothing finished
    ]
    fig = charts.public_private_scatter(rows)
    diagonal, students = fig.data
    assert list(diagonal.x) == list(diagonal.y) and list(fig.layout.xaxis.range) == list(
        fig.layout.yaxis.range
    )
    assert list(students.text) == ["Ada", "Bob"] and list(students.y) == [0.79, 0.80]


def _epoch_rows(run_id: int, epochs: int, val_loss=None) -> list[dict]:
    return [
        {
            "run_id": run_id,
            "epoch": e,
            "train_accuracy": 0.6 + 0.01 * e,
            "val_accuracy": 0.6,
            "train_loss": 1.0 / e,
            "val_loss": (val_loss or (lambda e: abs(e - 3) + 0.5))(e),
        }
        for e in range(1, epochs + 1)
    ]


def test_live_curves_are_plain_json_with_gaps_where_a_run_diverged():
    """Live's dict figures: the same chart as the plotly one, JSON without NaN (a browser's
    JSON.parse refuses it), a diverged epoch drawn as a gap."""
    runs = pd.DataFrame([{"id": 1, "name": "nan", "variant": "baseline", "epochs": 5, "total_steps": 10}])
    epochs = pd.DataFrame(_epoch_rows(1, 3, val_loss=lambda e: float("nan") if e == 3 else 1.0 / e))
    spec = charts.epoch_curves_spec(epochs, runs)
    encoded = json.dumps(spec, allow_nan=False)
    loss = next(i for i, trace in enumerate(spec["data"]) if trace["uid"] == "1 validation loss")
    assert spec["data"][loss]["y"] == [1.0, 0.5, None] and "NaN" not in encoded
    assert _figure(charts.epoch_curves_spec, epochs, runs).to_plotly_json()["data"][loss]["y"] == [
        1.0,
        0.5,
        None,
    ]
    steps = pd.DataFrame(
        {
            "run_id": [1, 1],
            "global_step": [5, 10],
            "loss": [2.0, float("inf")],
            "accuracy": [0.1, float("nan")],
        }
    )
    assert [t["y"] for t in charts.step_curves_spec(steps, runs)["data"]] == [[2.0, None], [0.1, None]]


def test_epochs_are_marked_on_short_runs_and_a_long_runs_curve_keeps_its_look_as_it_grows():
    runs = pd.DataFrame(
        [
            {"id": 1, "name": "full data", "variant": "baseline", "epochs": 12},
            {"id": 2, "name": "quick demo", "variant": "dropout", "epochs": 40},
        ]
    )
    for done in (3, 12):
        epochs = pd.DataFrame(_epoch_rows(1, done) + _epoch_rows(2, done))
        traces = charts.epoch_curves_spec(epochs, runs)["data"]
        validation = [t for t in traces if "validation:" in t.get("hovertemplate", "")]
        assert [t["mode"] for t in validation] == 2 * ["lines+markers", "lines"]  # accuracy, loss
    seeds = pd.DataFrame(_epoch_rows(1, 40) + _epoch_rows(2, 40))
    mean = charts.mean_curves(seeds, runs.assign(variant="dropout"))
    assert {t.mode for t in mean.data if t.mode != "markers" and t.fill is None} == {"lines"}


def test_projector_layout_is_the_same_for_a_plotly_figure_and_a_dict():
    runs = pd.DataFrame([{"id": 1, "name": "r", "variant": "baseline", "epochs": 5}])
    spec = charts.epoch_curves_spec(pd.DataFrame(_epoch_rows(1, 3)), runs)
    as_dict = charts.for_projector(spec)["layout"]
    as_figure = charts.for_projector(go.Figure(spec)).to_plotly_json()["layout"]
    as_figure.pop("template")  # plotly's default look, which the dict leaves to the browser
    assert as_dict == as_figure
    under_the_plot = {"orientation": "h", "yref": "container", "yanchor": "bottom", "y": 0}
    assert as_dict["legend"] == {**under_the_plot, "font": {"size": 18}}
    assert as_dict["margin"]["t"] == 80 + 30 and as_dict["height"] == 560  # room for the larger text
    assert spec["layout"]["margin"]["t"] == 80  # the laptop's figure is left as it was


def test_lives_epoch_figure_shows_accuracy_and_loss_side_by_side_with_one_legend_entry_per_run():
    runs = pd.DataFrame(
        [
            {"id": 1, "name": "a", "variant": "baseline", "epochs": 5},
            {"id": 2, "name": "b", "variant": "dropout", "epochs": 5},
        ]
    )
    epochs = pd.DataFrame(_epoch_rows(1, 3) + _epoch_rows(2, 3))
    spec = charts.for_projector(charts.epoch_curves_spec(epochs, runs))
    layout, traces = spec["layout"], spec["data"]
    # accuracy on the left half, loss on the right, apart
    assert layout["xaxis"]["domain"][1] < layout["xaxis2"]["domain"][0] and layout["xaxis2"]["domain"][1] == 1
    assert (layout["yaxis"]["title"]["text"], layout["yaxis2"]["title"]["text"]) == ("accuracy", "loss")
    assert layout["xaxis"]["range"] == layout["xaxis2"]["range"] == [0, 5.5]
    for axes, metric in ((("x", "y"), "accuracy"), (("x2", "y2"), "loss")):
        validation = [
            t
            for t in traces
            if (t["xaxis"], t["yaxis"]) == axes and t["uid"].endswith(f"validation {metric}")
        ]
        assert [t["y"] for t in validation] == [
            [r[f"val_{metric}"] for r in _epoch_rows(i, 3)] for i in (1, 2)
        ]
    # one entry per run, which hides all of its curves on both sides
    assert [t["name"] for t in traces if t.get("showlegend", True)] == ["#1 a", "#2 b"]
    for name in ("#1 a", "#2 b"):
        assert sum(t["legendgroup"] == name for t in traces) == 6  # validation, train, star; twice
    assert layout["legend"]["orientation"] == "h" and layout["height"] == 560
    assert layout["margin"]["r"] > 0  # room for the loss plot's last tick label, on its right edge
    # on a phone: accuracy over loss, each the figure's whole width, apart, and taller than wide
    stacked = spec["narrow"]["layout"]
    assert stacked["xaxis"]["domain"] == stacked["xaxis2"]["domain"] == [0, 1]
    assert stacked["yaxis2"]["domain"][1] < stacked["yaxis"]["domain"][0]
    assert stacked["height"] > layout["height"] and spec["narrow"]["below_px"] > 390


def test_short_labels_name_only_the_settings_that_tell_a_variants_runs_apart():
    runs = pd.DataFrame(
        [
            {"id": 1, "variant": "baseline", "weight_decay": 0.0, "seed": 0},
            {"id": 2, "variant": "l2", "weight_decay": 0.01, "seed": 0},
            {"id": 3, "variant": "l2", "weight_decay": 0.003, "seed": 1},
            {"id": 4, "variant": "baseline", "weight_decay": 0.0, "seed": 2},
        ]
    )
    labels = charts.short_labels(runs)
    l2 = charts.variant_title("l2")
    assert labels == {
        1: "Baseline, seed 0",
        2: f"{l2}, wd 0.01, seed 0",
        3: f"{l2}, wd 0.003, seed 1",
        4: "Baseline, seed 2",
    }


def test_a_runs_live_curves_keep_their_uid_wherever_the_run_stands(runs):
    """Plotly keeps what a viewer hid from the legend by trace uid (else by index), and a run's
    curves move along the chart as other runs come onto it."""
    store, runs = runs
    ids = runs["id"].tolist()

    def names_by_uid(spec) -> dict:
        return {trace["uid"]: trace["name"] for trace in spec["data"]}

    for build, data in (
        (charts.epoch_curves_spec, store.epoch_metrics(ids)),
        (charts.step_curves_spec, store.step_metrics(ids)),
    ):
        first, moved = build(data, runs), build(data, runs.iloc[::-1])
        assert len(names_by_uid(first)) == len(first["data"]) > 1  # one uid per trace
        assert names_by_uid(moved) == names_by_uid(first)
        assert list(names_by_uid(moved)) != list(names_by_uid(first))  # the same traces, in another order
