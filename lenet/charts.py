"""Plotly figure builders for the dashboard. Pure: DataFrames and arrays in, figures out."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from . import CLASSES
from .config import KNOBS, TELLING_APART
from .variants import get_variant

UNKNOWN_COLOR = "#888888"  # a checkpoint whose variant this version does not know
# Runs of one variant are told apart by these; never "dot", which means "train" on every chart.
_DASHES = ("solid", "dash", "longdash", "dashdot")


def variant_color(variant: str) -> str:
    """The registry's colour of the variant, the same on every chart."""
    try:
        return get_variant(variant).color
    except ValueError:
        return UNKNOWN_COLOR


def run_label(run: dict | pd.Series) -> str:
    return f"#{run['id']} {run['name']}"


def short_labels(runs: pd.DataFrame) -> dict[int, str]:
    """Legend labels a room can read: the variant's title, plus only the settings that tell runs
    of the same variant apart ("L2 (0.01), wd 0.003, seed 1")."""
    columns = [c for c in TELLING_APART if c in runs]
    # per variant, the settings whose values differ among its runs (one pass over the frame: Live
    # labels its runs for the projector every few seconds)
    differs = runs[columns].astype(str).groupby(runs["variant"], sort=False).nunique() > 1
    labels = {}
    for run in runs[["id", "variant", *columns]].to_dict("records"):
        differing = [c for c in columns if differs.at[run["variant"], c]]
        parts = [variant_title(run["variant"])] + [
            f"{KNOBS[c].short} {KNOBS[c].show(run[c])}" for c in differing
        ]
        labels[int(run["id"])] = ", ".join(parts)
    return labels


PROJECTOR_FONT = {"size": 18}  # ticks and legends; titles larger


def for_projector(fig: go.Figure | dict) -> go.Figure | dict:
    """The same chart readable from the back row: text of at least 18 px, titles 22 px. A figure
    given as a plain dict (Live's, built without plotly's objects) is changed the same way."""
    layout = fig["layout"] if isinstance(fig, dict) else fig.layout.to_plotly_json()
    updates = {
        "font": PROJECTOR_FONT,
        "title": {"font": {"size": 22}, "subtitle": {"font": {"size": 18}}},
        "legend": {"font": {"size": 18}},
        "hoverlabel": {"font": {"size": 18}},
    }
    if layout.get("annotations"):  # subplot titles and notes
        updates["annotations"] = [_merged(note, {"font": {"size": 18}}) for note in layout["annotations"]]
    if layout.get("title", {}).get("subtitle", {}).get("text"):  # clear of the top tick label
        updates["margin"] = {"t": layout.get("margin", {}).get("t", 80) + 30}
    if layout.get("legend", {}).get("orientation") == "h":  # a legend under the plot: room for larger text
        updates["height"] = max(layout.get("height", 0), 560)
    if isinstance(fig, dict):
        return {**fig, "layout": _merged(layout, updates)}
    return fig.update_layout(updates)


def _merged(base: dict, updates: dict) -> dict:
    """`base` with `updates` laid over it, nested dicts merged key by key (as plotly's update does)."""
    merged = dict(base)
    for key, value in updates.items():
        nested = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if nested else value
    return merged


def _style(runs: pd.DataFrame) -> dict[int, dict]:
    """Colour by variant; runs of the same variant are told apart by dash pattern."""
    styles, seen = {}, {}
    for run_id, variant in sorted(zip(runs["id"], runs["variant"], strict=True)):
        n = seen.get(variant, 0)
        seen[variant] = n + 1
        styles[run_id] = {"color": variant_color(variant), "dash": _DASHES[n % len(_DASHES)]}
    return styles


def _title(text: str) -> dict:
    """'Accuracy: validation (solid), ...' -> a short title and the rest as a smaller subtitle, so that
    a half-width chart's title is not cut off."""
    main, _, rest = text.partition(": ")
    return {"text": main, "subtitle": {"text": rest}} if rest else {"text": text}


# A marker on each epoch while markers stay apart on a half-width chart; past that the line alone
# reads better, and every marker is an SVG element that plotly restyles at each redraw: on the quick
# demo's 40 epochs they were 16% of what two watching Chromium tabs spent (README, "Watching").
MARKED_EPOCHS = 20


def _epoch_mode(epochs) -> str:
    """A curve over `epochs` epochs: with a marker on each, or a line alone when they are many."""
    return "lines+markers" if epochs <= MARKED_EPOCHS else "lines"


def _epoch_ticks(last_epoch) -> dict:
    """The x axis of whole epochs (never 1.5), at most about ten ticks; nothing when unknown."""
    if last_epoch == last_epoch and last_epoch:  # known, not NaN
        return {"tick0": 0, "dtick": max(1, math.ceil(float(last_epoch) / 10))}
    return {}


def _axes(
    y_title: str, x_title: str = "epoch", percent: bool = False, planned_epochs=None, empty: bool = False
) -> tuple[dict, dict]:
    """(x axis, y axis); an epoch axis spans the runs' planned epochs (`planned_epochs`), so that
    curves grow into it instead of the axis rescaling as epochs arrive."""
    xaxis, yaxis = {"title": {"text": x_title}}, {"title": {"text": y_title}}
    if percent:
        yaxis["tickformat"] = ".0%"
    if planned_epochs == planned_epochs and planned_epochs:  # known, not NaN
        xaxis.update(range=[0, float(planned_epochs) + 0.5], **_epoch_ticks(planned_epochs))
    if empty:  # nothing to draw yet (a run just queued): sensible axes, not plotly's -1..4
        yaxis["range"] = [0, 1] if percent else [0, 2.5]
    return xaxis, yaxis


def _layout_spec(
    title: str,
    y_title: str,
    x_title: str = "epoch",
    percent: bool = False,
    planned_epochs=None,
    empty: bool = False,
) -> dict:
    """Title, axes (`_axes`) and legend."""
    xaxis, yaxis = _axes(y_title, x_title, percent, planned_epochs, empty)
    return {
        "title": _title(title),
        "xaxis": xaxis,
        "yaxis": yaxis,
        "hovermode": "x unified",
        # under the plot, from the figure's bottom edge up: anchored below the axis instead, a legend
        # of several rows (8 runs on a laptop's half-width chart) grew up over the axis title
        "legend": {"orientation": "h", "yref": "container", "yanchor": "bottom", "y": 0},
        "margin": {"t": 80 if ": " in title else 50, "b": 10},
    }


def _layout(fig: go.Figure, title: str, y_title: str, **options) -> go.Figure:
    """`fig` with the layout of `_layout_spec`."""
    return fig.update_layout(_layout_spec(title, y_title, empty=not fig.data, **options))


def _run_rows(runs: pd.DataFrame) -> list[dict]:
    """What a curve needs of each run, as dicts (all of a run's columns took longer than its curves)."""
    columns = [c for c in ("id", "name", "variant", "epochs", "total_steps") if c in runs]
    return runs[columns].to_dict("records")


def _number(value) -> float | None:
    """A JSON number; a diverged run's NaN or infinite value as a gap (null)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _values(column: pd.Series) -> list:
    return [_number(v) for v in column.tolist()]


def step_curves_spec(steps: pd.DataFrame, runs: pd.DataFrame, labels: dict[int, str] | None = None) -> dict:
    """Per-step training loss (left) and accuracy (right) of several runs, x in epochs so that runs
    of any size align; one legend entry per run, which hides its curves in both. A plain dict, not
    plotly's objects: Live builds it every few seconds, and those took six to eight times as long
    to build and encode."""
    title = "Training loss and accuracy (per step)"
    return _side_by_side(title, ("loss", "accuracy"), runs, partial(_step_traces, steps, runs, labels))


def _step_traces(
    steps: pd.DataFrame, runs: pd.DataFrame, labels: dict[int, str] | None, metric: str, axes: dict
) -> list[dict]:
    """Each run's curve of `metric` per logged step, on `axes` (of a `_side_by_side` figure)."""
    traces, styles = [], _style(runs)
    by_run = dict(tuple(steps.groupby("run_id"))) if len(steps) else {}
    for run in _run_rows(runs):
        rows = by_run.get(run["id"])
        if rows is None or not run.get("total_steps"):
            continue
        steps_per_epoch = run["total_steps"] / run["epochs"]
        label = (labels or {}).get(int(run["id"])) or run_label(run)
        traces.append(
            {
                "type": "scatter",
                **axes,
                "x": _values(rows["global_step"] / steps_per_epoch),
                "y": _values(rows[metric]),
                "mode": "lines",
                "name": label,
                "legendgroup": label,
                "uid": f"{run['id']} {metric}",  # see _epoch_traces
                "line": {"color": styles[run["id"]]["color"], "dash": styles[run["id"]]["dash"]},
            }
        )
    return traces


def epoch_curves_spec(epochs: pd.DataFrame, runs: pd.DataFrame, labels: dict[int, str] | None = None) -> dict:
    """Accuracy (left) and loss (right) per epoch of several runs: validation solid, training faint
    dotted, a star on each run's best epoch; one legend entry per run, which hides its curves in
    both. A plain dict, as `step_curves_spec`."""
    title = "Accuracy and loss: validation (solid), train (dotted), ★ best epoch"
    return _side_by_side(title, ("accuracy", "loss"), runs, partial(_epoch_traces, epochs, runs, labels))


# Between the two plots, a fraction of the figure's width: room for the right one's tick labels and
# axis title
PLOTS_GAP = 0.12


def _side_by_side(
    title: str, metrics: tuple[str, str], runs: pd.DataFrame, traces_of: Callable[[str, dict], list[dict]]
) -> dict:
    """Two plots of one figure side by side, of the runs' `metrics` over epochs, with one legend
    under both: `traces_of(metric, axes)` gives a metric's traces on `axes` (a dict to add to each).
    A run's legend entry is its left plot's, and hides its traces in both (one legend group). As two
    charts, each with its own legend, the quick demo's 8 runs took 6 legend rows under each in
    presentation mode on a laptop (1366x768) and left the curves 150 px high."""
    left, right = metrics
    traces = traces_of(left, {"xaxis": "x", "yaxis": "y"})
    traces += [{**trace, "showlegend": False} for trace in traces_of(right, {"xaxis": "x2", "yaxis": "y2"})]
    planned, empty = _planned(runs), not traces
    layout = _layout_spec(title, left, percent=left == "accuracy", planned_epochs=planned, empty=empty)
    right_x, right_y = _axes(right, percent=right == "accuracy", planned_epochs=planned, empty=empty)
    layout["xaxis"]["domain"] = [0, 0.5 - PLOTS_GAP / 2]
    layout["xaxis2"] = {**right_x, "domain": [0.5 + PLOTS_GAP / 2, 1], "anchor": "y2"}
    layout["yaxis2"] = {**right_y, "anchor": "x2"}
    # room for the last epoch's tick label, centred on the plot's right edge: without it plotly drew
    # no "40" under the quick demo's loss plot on Results (it hides a label that overflows the figure)
    layout["margin"]["r"] = 20
    return {"data": traces, "layout": layout, "narrow": STACKED}


# How a `_side_by_side` figure lays out in a chart narrower than `below_px` (a student's phone):
# the left plot on top of the right one. Side by side on a phone (390 px) each plot was 125 px wide
# with its epoch ticks crowded. The live chart element (ui/live_charts.py) applies it: Live's charts,
# Results' comparison and a student's own curves. Plotly itself ignores the key.
STACKED = {
    "below_px": 640,
    "layout": {
        "height": 760,
        "xaxis": {"domain": [0, 1]},
        "xaxis2": {"domain": [0, 1]},
        "yaxis": {"domain": [0.58, 1]},  # the gap between: the top plot's epoch ticks and title
        "yaxis2": {"domain": [0, 0.42]},
    },
}


def _epoch_traces(
    epochs: pd.DataFrame, runs: pd.DataFrame, labels: dict[int, str] | None, metric: str, axes: dict
) -> list[dict]:
    """Each run's validation (solid) and training (faint dotted) curve of `metric` per epoch and its
    best epoch's star, on `axes` (of a `_side_by_side` figure); one legend entry per run, which
    hides all of them."""
    traces, styles = [], _style(runs)
    by_run = dict(tuple(epochs.groupby("run_id"))) if len(epochs) else {}
    for run in _run_rows(runs):
        rows = by_run.get(run["id"])
        if rows is None:
            continue
        color = styles[run["id"]]["color"]
        label = (labels or {}).get(int(run["id"])) or run_label(run)
        x = _values(rows["epoch"])
        traces.append(
            {
                "type": "scatter",
                **axes,
                "x": x,
                "y": _values(rows[f"val_{metric}"]),
                # by its planned epochs: a run's curve keeps one look while it grows
                "mode": _epoch_mode(run.get("epochs") or len(x)),
                "name": label,
                "legendgroup": label,
                # what a viewer hid from the legend stays with the run (plotly's uirevision keys a
                # trace's state by uid, else by index), though its index moves as runs come onto
                # the chart before it (the quick demo's batch norm and augment, which start later)
                "uid": f"{run['id']} validation {metric}",
                "hovertemplate": f"{label} validation: %{{y}}<extra></extra>",
                "line": {"color": color, "dash": styles[run["id"]]["dash"]},
            }
        )
        traces.append(
            {
                "type": "scatter",
                **axes,
                "x": x,
                "y": _values(rows[f"train_{metric}"]),
                "mode": "lines",
                "name": f"{label} train",
                "legendgroup": label,
                "uid": f"{run['id']} train {metric}",
                "showlegend": False,
                "hovertemplate": f"{label} train: %{{y}}<extra></extra>",
                "opacity": 0.5,
                "line": {"color": color, "dash": "dot", "width": 1.5},
            }
        )
        # the epoch of lowest validation loss: where early stopping would keep the weights
        if rows["val_loss"].notna().any():
            best = rows.loc[rows["val_loss"].idxmin()]
            star = _star(best["epoch"], best[f"val_{metric}"], color, f"{label} best validation epoch")
            traces.append({**star, **axes, "legendgroup": label, "uid": f"{run['id']} best {metric}"})
    return traces


def _planned(runs: pd.DataFrame):
    """The most epochs any of these runs will train (None without runs)."""
    return runs["epochs"].max() if "epochs" in runs and len(runs) else None


def _translucent(hex_color: str, alpha: float) -> str:
    """'#4c78a8' -> 'rgba(76, 120, 168, alpha)': a fill that lets the lines show through."""
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def _star(epoch, value, color: str, name: str) -> dict:
    """A star on a curve at the epoch of lowest validation loss (the bottom of the U-curve)."""
    return {
        "type": "scatter",
        "x": [float(epoch)],
        "y": [_number(value)],
        "mode": "markers",
        "marker": {"symbol": "star", "size": 14, "color": color, "line": {"width": 1, "color": "black"}},
        "cliponaxis": False,  # whole at the first or last epoch, not cut in half by the plot's edge
        "name": f"{name} (epoch {int(epoch)})",
        "showlegend": False,
    }


def _band(
    fig: go.Figure,
    x,
    mean,
    std,
    color: str,
    name: str,
    dash: str = "solid",
    group: str | None = None,
    mode: str = "lines+markers",
) -> None:
    """A mean line with a shaded mean ± std band (the band is one closed polygon, hidden in legend);
    lines of one `group` share one legend entry, the first one's."""
    group = group or name
    in_legend = not any(trace.legendgroup == group and trace.showlegend is not False for trace in fig.data)
    x, mean, std = list(x), np.asarray(mean, dtype=float), np.nan_to_num(np.asarray(std, dtype=float))
    fig.add_trace(
        go.Scatter(
            x=x + x[::-1],
            y=list(mean + std) + list((mean - std)[::-1]),
            mode="lines",
            fill="toself",
            fillcolor=color,
            opacity=0.18,
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
            legendgroup=group,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=mean,
            mode=mode,
            name=group if in_legend else name,
            line={"color": color, "dash": dash},
            legendgroup=group,
            showlegend=in_legend,
            hovertemplate=f"{name}: %{{y}}<extra></extra>",
        )
    )


def mean_curves(
    epochs: pd.DataFrame, runs: pd.DataFrame, metric: str = "accuracy", by: str = "variant"
) -> go.Figure:
    """Repeats over seeds: per variant (or per swept value), the mean validation (solid) and train
    (dotted) curve with a ± std band, and a star where the mean validation loss is lowest."""
    fig = go.Figure()
    merged = epochs.merge(runs[["id", by]], left_on="run_id", right_on="id")
    groups = list(merged.groupby(by, sort=by != "variant"))  # variants in registry order
    # variants keep their colour; swept values get a sequential scale, weak to strong
    shades = sample_colorscale("Viridis", [i / max(1, len(groups) - 1) * 0.9 for i in range(len(groups))])
    for (key, rows), shade in zip(groups, shades, strict=True):
        metrics = ["train_accuracy", "val_accuracy", "train_loss", "val_loss"]
        per_epoch = rows.groupby("epoch")[metrics].agg(["mean", "std"])
        seeds = rows["run_id"].nunique()
        color = variant_color(key) if by == "variant" else shade
        name = variant_title(key) if by == "variant" else f"{KNOBS[by].short} {key:g}"
        mode = _epoch_mode(len(per_epoch))
        for split, dash in (("val", "solid"), ("train", "dot")):
            column = per_epoch[f"{split}_{metric}"]
            label = f"{name} {'validation' if split == 'val' else 'train'}" + (
                f" (mean of {seeds})" if seeds > 1 else ""
            )
            mean, std = column["mean"], column["std"]
            _band(fig, per_epoch.index, mean, std, color, label, dash, group=name, mode=mode)
        best = per_epoch[("val_loss", "mean")].idxmin()
        value = per_epoch.loc[best, (f"val_{metric}", "mean")]
        fig.add_trace(_star(best, value, color, f"{name}: lowest mean validation loss"))
    fig.update_xaxes(_epoch_ticks(epochs["epoch"].max() if len(epochs) else None))
    several = merged.groupby(by)["run_id"].nunique().min() > 1 if len(merged) else False
    return _layout(
        fig,
        f"{metric.capitalize()} over seeds: validation solid · train dotted · ± std · ★ best"
        if several
        else f"{metric.capitalize()}, one seed: validation solid · train dotted · ★ best",
        metric,
        percent=metric == "accuracy",
    )


def gap_by_variant(rows: list[dict]) -> go.Figure:
    """The train − validation gap per variant: mean over seeds, error bars one std (one seed: none)."""
    seeds = min((r["seeds"] for r in rows), default=0)
    fig = go.Figure(
        go.Bar(
            x=[r["variant"] for r in rows],
            y=[100 * r["gap"] for r in rows],  # in percentage points, like the tables
            error_y={"type": "data", "array": [100 * r["gap_std"] for r in rows], "visible": seeds > 1},
            marker_color=[variant_color(r["variant"]) for r in rows],
            text=[f"{100 * r['gap']:.1f}" for r in rows],
            textposition="outside",
        )
    )
    return _layout(
        fig,
        f"Generalization gap (train − validation), mean of {seeds} seeds, bars ± 1 std"
        if seeds > 1
        else "Generalization gap (train − validation), one seed",
        "gap (points)",
        x_title="variant",
    )


def sweep_chart(rows: list[dict], param: str) -> go.Figure:
    """Strength vs outcome: validation and test accuracy and the gap against the swept value, each
    mean ± std over seeds; the best value on validation marked."""
    labels = [f"{r[param]:g}" for r in rows]  # categories: 0 and a log-spaced list both read well
    fig = go.Figure()
    for key, name, color, dash in (
        ("val_accuracy", "validation accuracy", "#4c78a8", "solid"),
        ("test_accuracy", "test accuracy", "#54a24b", "dash"),
        ("gap", "gap (train − validation)", "#e45756", "dot"),
    ):
        _band(fig, labels, [r[key] for r in rows], [r[key + "_std"] for r in rows], color, name, dash)
    best = max(range(len(rows)), key=lambda i: rows[i]["val_accuracy"])
    fig.add_vline(x=best, line={"color": "#4c78a8", "width": 1, "dash": "dash"})
    fig.add_annotation(
        x=labels[best],
        y=rows[best]["val_accuracy"],
        text=f"best on validation: {labels[best]}",
        showarrow=True,
        arrowhead=2,
        ay=-40,
    )
    seeds = min((r["seeds"] for r in rows), default=0)
    fig.update_xaxes(type="category")
    return _layout(
        fig,
        f"What {KNOBS[param].noun} does "
        + (f"(mean ± std over {seeds} seeds)" if seeds > 1 else "(one seed)"),
        "accuracy / gap",
        x_title=KNOBS[param].noun,
        percent=True,
    )


def gap_panels(epochs: pd.DataFrame, runs: pd.DataFrame) -> go.Figure:
    """One small panel per run: train vs validation accuracy with the gap between them shaded."""
    runs = runs.reset_index(drop=True)
    cols = min(3, max(1, len(runs)))
    rows_n = math.ceil(len(runs) / cols) if len(runs) else 1
    fig = make_subplots(
        rows=rows_n, cols=cols, subplot_titles=[run_label(r) for _, r in runs.iterrows()], shared_yaxes=True
    )
    for i, run in runs.iterrows():
        data = epochs[epochs["run_id"] == run["id"]]
        r, c = i // cols + 1, i % cols + 1
        color = variant_color(run["variant"])
        fig.add_trace(
            go.Scatter(
                x=data["epoch"],
                y=data["val_accuracy"],
                line={"color": color},
                name="validation",
                showlegend=i == 0,
            ),
            row=r,
            col=c,
        )
        # Shade only where train is above validation (overfitting): the fill goes up to
        # max(train, validation), so epochs where validation leads get no shading at all.
        fig.add_trace(
            go.Scatter(
                x=data["epoch"],
                y=np.maximum(data["train_accuracy"], data["val_accuracy"]),
                fill="tonexty",
                mode="lines",
                line={"width": 0},
                fillcolor=_translucent(color, 0.35),
                name="gap: train above validation",
                showlegend=i == 0,
                hoverinfo="skip",
            ),
            row=r,
            col=c,
        )
        fig.add_trace(
            go.Scatter(
                x=data["epoch"],
                y=data["train_accuracy"],
                line={"color": color, "dash": "dot"},
                name="train",
                showlegend=i == 0,
            ),
            row=r,
            col=c,
        )
    fig.update_yaxes(tickformat=".0%")
    fig.update_layout(
        title=_title("Train vs validation per run: shaded where train is above validation (overfitting)"),
        height=300 * rows_n + 40,
        margin={"t": 120, "b": 10},  # the title, its subtitle, then the panels' own titles
    )
    return fig


def test_accuracy_dots(runs: pd.DataFrame) -> go.Figure:
    """Each run's test accuracy as a dot on a shared scale: a dot's position, unlike a bar's length,
    does not pretend the axis starts at 0, so a zoomed axis shows differences without exaggerating."""
    runs = runs.dropna(subset=["test_accuracy"]).sort_values("test_accuracy")
    fig = go.Figure(
        go.Scatter(
            x=runs["test_accuracy"],
            y=[run_label(r) for _, r in runs.iterrows()],
            mode="markers+text",
            marker={"size": 14, "color": [variant_color(v) for v in runs["variant"]]},
            text=[f"{100 * a:.1f}%" for a in runs["test_accuracy"]],
            textposition="middle right",
            hovertemplate="%{y}: %{x:.1%}<extra></extra>",
        )
    )
    scores = runs["test_accuracy"].astype(float)
    low, high = (scores.min(), scores.max()) if len(runs) else (0.0, 1.0)
    pad = max(0.01, (high - low) * 0.25)  # and room for the labels right of the dots
    fig.update_xaxes(range=[max(0.0, low - pad), min(1.0, high + 2 * pad)], tickformat=".0%")
    _layout(fig, "Test accuracy (measured once, after training)", "", x_title="test accuracy")
    fig.update_layout(height=max(260, 90 + 36 * len(runs)), showlegend=False, hovermode="closest")
    return fig


def confusion_matrix_figure(matrix: list[list[int]], title: str = "Confusion matrix") -> go.Figure:
    counts = np.asarray(matrix)
    row_share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = go.Figure(
        go.Heatmap(
            z=row_share,
            x=list(CLASSES),
            y=list(CLASSES),
            colorscale="Blues",
            zmin=0,
            zmax=1,
            text=counts,
            texttemplate="%{text}",
            customdata=row_share,
            hovertemplate="true %{y}<br>predicted %{x}<br>%{text} images (%{customdata:.1%} of the class)"
            "<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", title="true class")
    fig.update_xaxes(title="predicted class")
    fig.update_layout(title=title, height=520, margin={"t": 50})
    return fig


def per_class_bars(per_class: list[float], variant: str) -> go.Figure:
    fig = go.Figure(
        go.Bar(
            x=list(CLASSES),
            y=per_class,
            marker_color=variant_color(variant),
            text=[f"{100 * a:.0f}%" for a in per_class],
            textposition="outside",
        )
    )
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    return _layout(fig, "Test accuracy per class", "accuracy", x_title="class")


def weight_histograms(weights: dict[str, tuple[str, np.ndarray]]) -> go.Figure:
    """Overlaid histograms of each model's weights (no biases, no BatchNorm): {label: (variant, values)}."""
    fig = go.Figure()
    for label, (variant, values) in weights.items():
        fig.add_trace(
            go.Histogram(
                x=values,
                name=label,
                opacity=0.55,
                nbinsx=120,
                histnorm="probability",
                marker_color=variant_color(variant),
            )
        )
    fig.update_layout(barmode="overlay")
    return _layout(
        fig, "Weight distribution: L2 pulls weights toward zero", "share of weights", x_title="weight value"
    )


def weight_norm_bars(norms: pd.DataFrame) -> go.Figure:
    """L2 norm of each layer's weights, one bar per model; columns: model, variant, layer, norm."""
    fig = go.Figure()
    for (label, variant), rows in norms.groupby(["model", "variant"], sort=False):
        fig.add_trace(
            go.Bar(x=rows["layer"], y=rows["norm"], name=label, marker_color=variant_color(variant))
        )
    fig.update_layout(barmode="group")
    return _layout(fig, "L2 norm of each layer's weights", "‖W‖₂", x_title="layer")


def variant_title(variant: str) -> str:
    try:
        return get_variant(variant).title
    except ValueError:
        return variant


def probability_grid(probabilities: dict[str, dict[str, float]]) -> go.Figure:
    """Every model's ten class probabilities in one grid (model -> class -> probability): a row per
    model, darker where it is surer, each row's answer in bold. One chart however many models, so
    that they compare at a glance and a stroke redraws one figure, not one per model."""
    models = list(probabilities)[::-1]  # the first model on top
    classes = list(next(iter(probabilities.values()))) if probabilities else []
    z = [[probabilities[m][c] for c in classes] for m in models]
    text = [
        [f"<b>{p:.0%}</b>" if p == max(row) else f"{p:.0%}" if p >= 0.005 else "" for p in row] for row in z
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=classes,
            y=models,
            zmin=0,
            zmax=1,
            colorscale="Blues",
            text=text,
            texttemplate="%{text}",
            showscale=False,
            xgap=2,
            ygap=2,
            hovertemplate="%{y}<br>%{x}: %{z:.1%}<extra></extra>",
        )
    )
    fig.update_xaxes(side="top", tickangle=0)
    fig.update_yaxes(automargin=True)
    fig.update_layout(height=90 + 44 * len(models), margin={"t": 40, "b": 10, "l": 10, "r": 10})
    return fig


def feature_map_grid(maps: dict[str, np.ndarray]) -> go.Figure:
    """Each conv layer's activations, one small heatmap per channel, rows labelled by layer:
    {"conv1": (6, 28, 28), "conv2": (16, 10, 10)}."""
    cols = 8
    rows_per_layer = [math.ceil(len(m) / cols) for m in maps.values()]
    titles = [f"{layer} · channel {c + 1}" for layer, m in maps.items() for c in range(len(m))]
    # every map titled by its channel (row-major cells; a layer's last row may be part empty)
    cell_titles = [
        f"ch {c + 1}" if c < len(m) else ""
        for m, rows in zip(maps.values(), rows_per_layer, strict=True)
        for c in range(rows * cols)
    ]
    fig = make_subplots(
        rows=sum(rows_per_layer),
        cols=cols,
        horizontal_spacing=0.01,
        vertical_spacing=0.07,
        subplot_titles=cell_titles,
    )
    fig.update_annotations(font_size=11)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    row_offset, title = 0, iter(titles)
    for (layer, activations), rows in zip(maps.items(), rows_per_layer, strict=True):
        for channel, activation in enumerate(activations):
            fig.add_trace(
                go.Heatmap(
                    z=activation,
                    zmin=-1,
                    zmax=1,
                    colorscale="RdBu",
                    showscale=False,
                    name=next(title),
                    hovertemplate="%{z:.2f}<extra>%{fullData.name}</extra>",
                ),
                row=row_offset + channel // cols + 1,
                col=channel % cols + 1,
            )
        # the layer's name beside its first row (an axis title; the axis itself stays bare)
        fig.update_yaxes(
            visible=True,
            title_text=layer,
            showticklabels=False,
            showgrid=False,
            zeroline=False,
            row=row_offset + 1,
            col=1,
        )
        row_offset += rows
    fig.update_layout(
        title="Feature maps after each conv layer (tanh: blue -1 … red +1)",
        height=120 * sum(rows_per_layer) + 60,
        margin={"t": 40, "b": 0, "l": 40, "r": 0},
    )
    return fig


def attribution_figure(image28: np.ndarray, pixels: np.ndarray, class_name: str) -> go.Figure:
    """The attributions over the 28x28 input, square pixels: red pixels raise the class's score,
    blue ones lower it, unimportant ones stay clear so the garment shows through."""
    bound = max(float(np.abs(pixels).max()), 1e-9)
    fig = go.Figure(go.Heatmap(z=image28, colorscale="gray", showscale=False, hoverinfo="skip"))
    fig.add_trace(
        go.Heatmap(
            z=pixels,
            zmin=-bound,
            zmax=bound,
            colorscale=[
                [0, "rgba(33, 102, 172, 0.95)"],
                [0.5, "rgba(255, 255, 255, 0)"],
                [1, "rgba(202, 0, 32, 0.95)"],
            ],
            colorbar={"title": {"text": "score", "side": "right"}, "thickness": 14},
            hovertemplate="pixel (%{x}, %{y}): %{z:+.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_layout(
        title=f"Why {class_name}? red raises its score, blue lowers it",
        height=380,
        margin={"t": 50, "b": 0, "l": 0, "r": 0},
    )
    return fig


def public_private_scatter(rows: list) -> go.Figure:
    """A class round after its reveal: each student's public score (validation slice) against
    their private one (test), with y = x. Below the line: the public score flattered them."""
    shown = [r for r in rows if r.best_public is not None and r.private is not None]
    scores = [v for r in shown for v in (r.best_public, r.private)] or [0.0, 1.0]
    low, high = max(0.0, min(scores) - 0.02), min(1.0, max(scores) + 0.02)
    fig = go.Figure(
        [
            go.Scatter(
                x=[low, high],
                y=[low, high],
                mode="lines",
                name="y = x: as public, so private",
                line={"color": "#888888", "dash": "dash"},
                hoverinfo="skip",
            ),
            go.Scatter(
                x=[r.best_public for r in shown],
                y=[r.private for r in shown],
                mode="markers+text",
                text=[r.nickname for r in shown],
                textposition="top center",
                name="students",
                marker={"size": 12, "color": "#4c78a8"},
                hovertemplate="%{text}: public %{x:.1%}, private %{y:.1%}<extra></extra>",
            ),
        ]
    )
    fig.update_xaxes(range=[low, high], tickformat=".0%")
    fig.update_yaxes(range=[low, high], tickformat=".0%")  # the same range: y = x is the diagonal
    _layout(
        fig,
        "Public vs private: below the line, the public score flattered",
        "private (test)",
        x_title="public (validation slice)",
    )
    fig.update_layout(hovermode="closest", height=480)
    return fig
