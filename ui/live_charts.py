"""A plotly chart that stays on screen and redraws in place when its figure changes: Live's charts
and a student's own curves in a class round, which follow training.

st.plotly_chart gives a chart a new identity whenever its figure changes, so the browser throws the
chart away and builds a new one (a new <div>, Plotly.newPlot): 38 new plots per tab in the first
50 s of a watched quick demo, most of the CPU that watching took from training (README, "Watching").
This element keeps its <div> and hands plotly only the new figure (Plotly.react), which also keeps
what the viewer did to it: zoom, and runs hidden from the legend.

These charts draw only scatter traces, so a page loads plotly.js's official "basic" bundle
(scatter, bar and pie: 1.2 MB, committed in `static/` beside dashboard.py with its license, the same
plotly.js version as the plotly package's), not the full 4.8 MB one: in headless Chromium it took
0.4-0.6 s of CPU to load instead of 1.6-1.9 s, in every tab, as training starts (README,
"Watching"). It is served once per page load from the static folder, not sent inside every chart.
"""

from __future__ import annotations

import contextlib
import json

import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st

from lenet.workspace import REPO_ROOT

# Streamlit serves static/ at app/static/ (server.enableStaticServing)
PLOTLY_JS = REPO_ROOT / "static" / "plotly-basic.min.js"
TRACE_TYPES = ("scatter", "bar", "pie")  # what that bundle draws

CHART_JS = """
const CONFIG = {
  displaylogo: false, responsive: true, showTips: false, modeBarButtonsToRemove: ["lasso2d", "select2d"],
};
let plotly;  // plotly.js, loaded once per page for every chart on it

function loadPlotly() {
  plotly ??= new Promise((resolve, reject) => {
    if (window.Plotly) return resolve(rememberArrayAttributes(window.Plotly));
    const script = document.createElement("script");
    script.src = new URL("app/static/PLOTLY_JS", document.baseURI).href;
    script.onload = () => resolve(rememberArrayAttributes(window.Plotly));
    script.onerror = () => {
      plotly = undefined;  // the next update tries again
      reject(new Error(`The chart library did not load from ${script.src}; reload the page.`));
    };
    document.head.appendChild(script);
  });
  return plotly;
}

// At every redraw plotly works out anew where each trace holds arrays
// (PlotSchema.findArrayAttributes), with two Array.prototype.concat calls per attribute of the
// trace type's schema. On a Streamlit page V8 runs every concat on its slow path: Apache Arrow,
// which Streamlit loads on every page, marks its classes Symbol.isConcatSpreadable. That search
// was half of a redraw of Live's epoch chart (22 of 44 ms). Its answer depends only on the trace's
// type and on where the trace holds arrays, so each answer is kept (plotly's own: `.original`).
function rememberArrayAttributes(Plotly) {
  const schema = Plotly.PlotSchema;
  if (!schema?.findArrayAttributes || schema.findArrayAttributes.original) return Plotly;
  const find = schema.findArrayAttributes;
  const answers = new Map();
  const remembered = (trace) => {
    const paths = arraysIn(trace);
    if (paths === null) return find(trace);
    const key = `${trace.type} ${paths}`;
    if (!answers.has(key)) {
      if (answers.size >= 1000) answers.clear();
      answers.set(key, find(trace));
    }
    return [...answers.get(key)];
  };
  remembered.original = find;
  schema.findArrayAttributes = remembered;
  return Plotly;
}

const isArray = (value) =>
  Array.isArray(value) || (ArrayBuffer.isView(value) && !(value instanceof DataView));
const isObject = (value) => typeof value === "object" && value !== null &&
  Object.prototype.toString.call(value) === "[object Object]";

// Where `object` holds arrays: their paths ("marker.color"), those inside the objects of its arrays
// too ("dimensions[2].values"); null past 12 levels. Keys with "_" are plotly's links (the input
// trace, its module), never attributes.
function arraysIn(object, prefix = "", paths = [], depth = 0) {
  if (depth > 12) return null;
  for (const key of Object.keys(object)) {
    if (key.startsWith("_")) continue;
    const value = object[key];
    const path = prefix + key;
    if (isArray(value)) {
      paths.push(path);
      if (!Array.isArray(value)) continue;
      for (let i = 0; i < value.length; i++) {
        if (!isObject(value[i])) continue;
        if (arraysIn(value[i], `${path}[${i}].`, paths, depth + 1) === null) return null;
      }
    } else if (isObject(value) && arraysIn(value, `${path}.`, paths, depth + 1) === null) {
      return null;
    }
  }
  return paths;
}

// Streamlit's own chart look, from the theme's colours and fonts (light or dark) that the element
// inherits as CSS; the figure's own layout (a projector's larger fonts) overrides it.
function streamlitLook(element) {
  const style = getComputedStyle(element);
  const [r, g, b] = style.color.match(/[\\d.]+/g);
  const text = (alpha) => `rgba(${r}, ${g}, ${b}, ${alpha})`;
  const grid = text(0.12);
  // colours only: sizes follow the figure's font (larger on the projector). The margins make room
  // for every tick label, so none can overflow the chart: plotly's default check of that measured
  // each label once per label, at every redraw (a tenth of a redraw's CPU).
  const axis = { gridcolor: grid, zerolinecolor: grid, tickcolor: grid, automargin: true,
                 ticklabeloverflow: "allow", tickfont: { color: text(0.6) },
                 title: { font: { color: text(0.6) } } };
  return {
    font: { family: style.fontFamily, color: text(0.8), size: 12 },
    title: { x: 0, xanchor: "left", font: { color: text(1), size: 16, weight: 600 },
             subtitle: { font: { color: text(0.8) } } },
    legend: { font: { color: text(0.8) } },
    paper_bgcolor: "rgba(0, 0, 0, 0)",
    plot_bgcolor: "rgba(0, 0, 0, 0)",
    xaxis: { ...axis, showgrid: false, zeroline: false },
    yaxis: { ...axis, title: { ...axis.title, standoff: 12 } },  // clear of its tick labels
    margin: { l: 0, r: 0, pad: 8 },
    hoverlabel: { font: { family: style.fontFamily } },
  };
}

// A figure with a narrow layout (charts.STACKED: two plots one over the other) takes it in a chart
// narrower than its `below_px`: a student's phone.
const narrowIn = (chart, figure) => {
  const width = chart.clientWidth;  // 0 while hidden: decided when it shows
  return Boolean(figure.narrow) && width > 0 && width < figure.narrow.below_px;
};

// `figure` as `chart` draws it: in Streamlit's look, keeping what the viewer zoomed or hid as
// epochs arrive, with its narrow layout laid over its own where that applies.
function laidOut(chart, figure) {
  const layout = { ...figure.layout, template: { layout: streamlitLook(chart) }, uirevision: "kept" };
  chart.dataset.narrow = narrowIn(chart, figure) ? "yes" : "no";
  if (chart.dataset.narrow === "yes") {
    for (const [key, value] of Object.entries(figure.narrow.layout)) {
      layout[key] = value?.constructor === Object ? { ...layout[key], ...value } : value;
    }
  }
  return { data: figure.data, layout };
}

function draw(chart, figure) {
  loadPlotly()
    .then((Plotly) => Plotly.react(chart, figure.data, figure.layout, CONFIG))
    .catch((error) => { chart.textContent = error.message; });
}

// A chart out of sight (scrolled off, or its tab in the background) is redrawn when it comes
// into sight, with its latest figure: the per-step charts below the fold cost nothing meanwhile.
// In sight means a quarter of it on screen: the projector shows only the titles of the per-step
// charts under the fold, and redrawing those was a fifth of its redraws in the quick demo.
const IN_SIGHT = 0.25;
const inView = new WeakSet();
const waiting = new Map();  // chart -> the figure it has not drawn yet
const inSight = (chart) => inView.has(chart) && !document.hidden;
const drawWaiting = () => {
  for (const [chart, figure] of waiting) {
    if (inSight(chart)) { waiting.delete(chart); delete chart.dataset.waiting; draw(chart, figure); }
  }
};
const sight = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    // at the threshold itself the ratio may come out a hair under it
    if (entry.intersectionRatio >= IN_SIGHT - 0.001) {
      inView.add(entry.target);
      entry.target.dispatchEvent(new Event("insight"));  // Live's charts ask the feed for their figure
    } else {
      inView.delete(entry.target);
    }
  }
  drawWaiting();
}, { threshold: [0, IN_SIGHT] });
document.addEventListener("visibilitychange", drawWaiting);

// Draw `figure` in `chart` now, or when the chart comes into sight; the first figure at once, so
// that the chart takes its height.
function show(chart, latest) {
  chart.latest = latest;
  const figure = laidOut(chart, latest);
  chart.style.height = `${figure.layout.height ?? 450}px`;  // plotly's own default; the page lays it out
  if (!chart.dataset.drawn) {
    chart.dataset.drawn = "yes";
    sight.observe(chart);
    resized.observe(chart);
    draw(chart, figure);
  } else if (inSight(chart)) {
    waiting.delete(chart);
    delete chart.dataset.waiting;
    draw(chart, figure);
  } else {
    waiting.set(chart, figure);
    chart.dataset.waiting = "yes";  // says so to a test, or to someone inspecting the page
  }
}

// A chart that turns narrow or wide (a phone turned, a window resized) lays its figure out anew;
// plotly itself follows any other change of width (`responsive`).
const resized = new ResizeObserver((entries) => {
  for (const { target } of entries) {
    if (target.latest && narrowIn(target, target.latest) !== (target.dataset.narrow === "yes")) {
      show(target, target.latest);
    }
  }
});

function forget(chart) {
  sight.unobserve(chart);
  resized.unobserve(chart);
  waiting.delete(chart);
  window.Plotly?.purge(chart);
}
""".replace("PLOTLY_JS", PLOTLY_JS.name)

_component = st.components.v2.component(
    "lenet_live_chart",
    # the theme's text colour and font, read by streamlitLook()
    html='<div class="live-chart"></div>',
    css=".live-chart { width: 100%; color: var(--st-text-color); font-family: var(--st-font); }",
    # called again with the new figure whenever it changes, on the same element
    js=CHART_JS
    + """
export default function ({ data, parentElement }) {
  const chart = parentElement.querySelector(".live-chart");
  show(chart, data.figure);
  return () => forget(chart);
}
""",
    isolate_styles=False,  # plotly styles its toolbar and hover labels from the page's <head>
)


class LiveFigure:
    """A finished figure as the live chart draws it, built once however many sessions draw it: a
    plotly figure (its template left to the browser), or a plain dict one (`charts.*_spec`)."""

    def __init__(self, figure: go.Figure | dict):
        if isinstance(figure, dict):
            frozen = figure
        else:
            frozen = json.loads(pio.to_json(figure, validate=False))
            frozen["layout"].pop("template", None)  # the browser draws it in Streamlit's look instead
        unknown = {trace.get("type", "scatter") for trace in frozen["data"]} - set(TRACE_TYPES)
        if unknown:
            drawn = ", ".join(TRACE_TYPES)
            raise ValueError(f"a live chart draws {drawn} traces only, not {', '.join(sorted(unknown))}")
        self.data = {"figure": frozen}


def live_chart(figure: LiveFigure, key: str, where=None) -> None:
    """Draw `figure` (in `where`, a column or container); a later draw with the same `key` updates
    the chart on screen instead of replacing it."""
    with where or contextlib.nullcontext():
        _component(data=figure.data, key=key)
