"""The elements that follow training by polling the feed (ui/feed.py): Live's progress bars and
charts, and the sidebar's summary. One element definition, several roles, one poll per feed and
page: every element on a page subscribes to the same poller, which fetches the feed at the page's
pace and hands each element its part. When what the Streamlit part of Live shows changes, a watcher
element reruns it once: the runs' part (a fragment) when a run starts or ends or a Stop was asked
for, the whole page when training starts or ends."""

from __future__ import annotations

import contextlib
import json

import streamlit as st

from . import feed
from .live_charts import CHART_JS
from .presentation import presenting
from .shared import (
    CHART_REFRESH_S,
    IDLE_REFRESH_S,
    ROOM_SLOW_REFRESH_S,
    SIDEBAR_REFRESH_S,
    STEP_CHART_REFRESH_S,
    TRAINING_REFRESH_S,
    VIEWER_REFRESH_S,
    pace_s,
    runs_now,
)

_JS = """
// One poller per feed URL for every element of the page that shows a part of it.
const pollers = new Map();

function poller(path, query) {
  const url = new URL(path.slice(1) + "?" + new URLSearchParams(query), document.baseURI).href;
  let p = pollers.get(url);
  if (p) return p;
  // at the pace of training (busy) while anything trains, else at rest (idle)
  p = { url, subscribers: new Set(), pace: { busy_ms: 3000, idle_ms: 3000 }, training: true };
  p.timer = null;
  p.everyMs = () => (p.training ? p.pace.busy_ms : p.pace.idle_ms);
  const POLLING = -1;  // p.timer while a poll is under way: a mount meanwhile starts no second loop
  const poll = async () => {
    p.timer = POLLING;
    if (!p.subscribers.size) { p.timer = null; pollers.delete(url); return; }
    if (!document.hidden) {  // a tab in the background asks for nothing
      const now = performance.now();
      const due = [...p.subscribers].filter((s) => !s.due || s.due(now));  // charts have their own pace
      const charts = due.filter((s) => s.kind).map((s) => `${s.kind}:${s.revision ?? ""}`);
      try {
        const response = await fetch(url + (charts.length ? `&charts=${charts.join(",")}` : ""));
        if (response.ok) {
          const state = await response.json();
          p.training = state.training;
          for (const s of due) s.update(state, now);
        }
      } catch (error) { /* the server restarting: the next poll tries again */ }
    }
    p.timer = setTimeout(poll, p.everyMs());
  };
  p.start = () => { p.timer ??= setTimeout(poll, p.everyMs()); };
  p.now = () => { if (p.timer !== null && p.timer !== POLLING) { clearTimeout(p.timer); poll(); } };
  pollers.set(url, p);
  return p;
}

// a tab brought back to the front is brought up to date at once
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) for (const p of pollers.values()) p.now();
});

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const BAR_HTML = '<p class="feed-bar-text"></p><div class="feed-bar-track" role="progressbar" ' +
  'aria-valuemin="0" aria-valuemax="100"><div class="feed-bar-fill"></div></div>';

// a progress bar as Streamlit draws one; its text and width change, nothing else on the page
function drawBar(element, row, text = `<strong>${escape(row.name)}</strong> · ${escape(row.detail)}`) {
  const percent = Math.max(0, Math.min(100, 100 * row.progress)).toFixed(1);
  if (element.dataset.text !== text) {
    element.querySelector(".feed-bar-text").innerHTML = text;
    element.dataset.text = text;
  }
  element.querySelector(".feed-bar-fill").style.width = `${percent}%`;
  element.querySelector(".feed-bar-track").setAttribute("aria-valuenow", percent);
}

// Each role draws its part of the page and takes the feed's updates; `refresh` takes the data of a
// rerun of the page, keeping what is on screen (a chart is redrawn in place, never replaced).
const ROLES = {
  // Live's watchers: rerun the page, or the fragment of it that holds the watcher, when what
  // Streamlit drew there is out of date (the feed's key `data.watches` differs from `data.drawn`).
  // A page out of date is rerun whole, its fragment with it: asked for both in one poll (as
  // training starts or ends), Streamlit ran only the fragment, and the page's rerun, asked again
  // 3 s later, brought the charts 3 s late.
  watch(element, data, setTriggerValue, poller) {
    let asked = null;  // when this tab last asked for a rerun; again if none came within 3 s
    element.dataset.watches = data.watches;
    element.dataset.asked = "0";  // reruns asked for: says so to a test, or to someone inspecting it
    // Live opened before training starts: the chart library is loaded while the tab is idle, so
    // that the first charts do not evaluate it (0.2-0.5 s of CPU) in the middle of training.
    window.requestIdleCallback?.(() => loadPlotly().catch(() => {}), { timeout: 5000 });
    const watcher = {
      watches: data.watches,
      outOfDate: (state) => state[data.watches] !== data.drawn,
      refresh(next) { data = next; asked = null; },
      update(state, now) {
        if (!watcher.outOfDate(state) || (asked !== null && now - asked <= 3000)) return;
        const pageOutOfDate = [...poller.subscribers].some((s) => s.watches === "page" && s.outOfDate(state));
        if (data.watches !== "page" && pageOutOfDate) return;  // its rerun redraws this part too
        asked = now;
        element.dataset.asked = String(Number(element.dataset.asked) + 1);
        setTriggerValue("changed", `${state[data.watches]} ${now}`);
      },
    };
    return watcher;
  },
  bar(element, data) {
    element.innerHTML = BAR_HTML;
    const bar = {
      refresh(next) { data = next; drawBar(element, data.row); },
      update(state) { const row = state.bars[data.row.id]; if (row) drawBar(element, row); },
    };
    bar.refresh(data);
    return bar;
  },
  charts(element, data, setTriggerValue, poller) {
    const box = document.createElement("div");
    box.className = "live-chart";
    box.addEventListener("insight", () => poller.now());  // scrolled to: its figure at once
    element.appendChild(box);
    const charts = {
      kind: data.kind,
      revision: null,
      last: -Infinity,
      // A figure out of sight (the per-step one below the fold) is not asked for: the server
      // builds none and the tab parses none, until it comes into sight. One without a curve yet
      // (training has just started) is asked for at every poll: the first epoch shows within a
      // poll of its end, not up to a chart refresh later.
      due: (now) => inSight(box) && (charts.empty || now - charts.last >= data.every_ms - 100),
      refresh(next) {
        data = next;
        charts.update({ charts: { [data.kind]: data.chart } }, performance.now());
      },
      update(state, now) {
        charts.last = now;
        const found = state.charts[data.kind];
        if (!found || found.revision === charts.revision) return;
        charts.revision = found.revision;
        charts.empty = !found.figure.data.length;
        show(box, found.figure);
      },
      forget() { forget(box); },
    };
    charts.refresh(data);
    return charts;
  },
  // the sidebar: what trains now
  summary(element, data) {
    element.innerHTML = '<p class="feed-caption"></p><div class="feed-runs"></div>';
    const caption = element.firstChild, runs = element.lastChild;
    let shown = null;
    const summary = {
      refresh(next) { data = next; summary.update(next.state); },
      update(state) {
        if (caption.textContent !== state.summary) caption.textContent = state.summary;  // its ETA
        const running = data.bars ? state.running : [];  // not on Live, whose page has them
        const html = running
          .map((row) => `<div class="feed-bar" data-run="${row.id}">${BAR_HTML}</div>`).join("");
        if (html !== shown) { runs.innerHTML = html; shown = html; }  // only when runs start or end
        for (const row of running) {
          const text = `${escape(row.name)}: ${escape(row.detail)}`;
          drawBar(runs.querySelector(`[data-run="${row.id}"]`), row, text);
        }
      },
    };
    summary.refresh(data);
    return summary;
  },
};

const mounted = new WeakMap();  // element -> { role, poller, subscriber }

export default function ({ data, parentElement, setTriggerValue }) {
  const element = parentElement.querySelector(".feed");
  const p = poller(data.path, data.query);
  let entry = mounted.get(element);
  if (entry && (entry.role !== data.role || entry.poller !== p)) {
    entry.poller.subscribers.delete(entry.subscriber);
    entry.subscriber.forget?.();
    entry = null;
  }
  if (entry) {
    entry.subscriber.refresh(data);
  } else {
    element.replaceChildren();
    element.className = `feed feed-${data.role}`;
    entry = { role: data.role, poller: p, subscriber: ROLES[data.role](element, data, setTriggerValue, p) };
    mounted.set(element, entry);
  }
  p.pace = data.pace;
  p.training = data.training;
  p.subscribers.add(entry.subscriber);
  p.start();
  return () => {
    p.subscribers.delete(entry.subscriber);
    entry.subscriber.forget?.();
    mounted.delete(element);
  };
}
"""

# Streamlit's own look for a progress bar, a caption and a chart, from the theme's variables
_CSS = """
.feed { width: 100%; color: var(--st-text-color); font-family: var(--st-font); }
.feed p { margin: 0 0 0.25rem 0; font-size: 1rem; line-height: 1.6; }
.feed .feed-caption { font-size: 0.875rem; opacity: 0.6; }
.feed-bar-track { height: 0.5rem; border-radius: 0.5rem; overflow: hidden;
                  background: var(--st-secondary-background-color, #f0f2f6); margin-bottom: 0.75rem; }
.feed-bar-fill { height: 100%; background: var(--st-primary-color, #ff4b4b); }
.feed-summary .feed-bar-text { font-size: 0.875rem; }
.live-chart { width: 100%; min-width: 0; }
"""

_element = st.components.v2.component(
    "lenet_feed",
    html='<div class="feed"></div>',
    css=_CSS,
    js=CHART_JS + _JS,
    isolate_styles=False,  # plotly styles its toolbar and hover labels from the page's <head>
)


def _pace(teacher_s: float, viewer_s: float) -> dict:
    """While runs train, a teacher's pace or a viewer's slower one; at rest, the idle pace."""
    busy_s = pace_s(teacher_s, viewer_s)
    return {"busy_ms": int(1000 * busy_s), "idle_ms": int(1000 * max(busy_s, IDLE_REFRESH_S))}


def _live_query(experiment_id: int | None) -> dict:
    return {"experiment": experiment_id or "", "present": int(presenting())}


def _mount(role: str, key: str, where=None, **data) -> None:
    data = {"role": role, "training": bool(runs_now().active), **data}
    with where or contextlib.nullcontext():
        _element(data=data, key=key, on_changed_change=lambda: None)


def watch_live(experiment_id: int | None, now: feed.OnScreen, part: str = "page") -> None:
    """Rerun Live when a run starts, ends or is asked to stop, or the queue changes: the whole page
    (`part` "page") when whether anything trains or has run changes, or else the fragment this is
    called in (`part` "runs": its bars, Stop buttons and queue)."""
    _mount(
        "watch",
        f"feed_watch_{part}",
        path=feed.LIVE_PATH,
        query=_live_query(experiment_id),
        pace=_pace(TRAINING_REFRESH_S, VIEWER_REFRESH_S),
        watches=part,
        drawn=feed.WATCHED_KEYS[part](now),  # what this rerun draws
    )


def progress_bar(experiment_id: int | None, row: dict, where=None) -> None:
    """A running run's bar, following the feed (`row`: feed.progress_row)."""
    _mount(
        "bar",
        f"feed_bar_{row['id']}",
        where,
        path=feed.LIVE_PATH,
        query=_live_query(experiment_id),
        pace=_pace(TRAINING_REFRESH_S, VIEWER_REFRESH_S),
        row=row,
    )


def live_curves(experiment_id: int | None, kind: str) -> None:
    """The per-epoch figure (accuracy and loss side by side) or the per-step one (training loss and
    accuracy), redrawn in place when it changes, at most every 3 s (per-epoch) or 6 s (per-step),
    as drawn first by this rerun."""
    revision, figure = feed.live_charts(experiment_id, presenting(), kind)
    every_s = CHART_REFRESH_S if kind == "epochs" else STEP_CHART_REFRESH_S
    _mount(
        "charts",
        f"feed_{kind}",
        path=feed.LIVE_PATH,
        query=_live_query(experiment_id),
        pace=_pace(TRAINING_REFRESH_S, VIEWER_REFRESH_S),
        kind=kind,
        every_ms=int(1000 * pace_s(every_s)),
        chart={"revision": revision, "figure": json.loads(figure)},
    )


def sidebar_summary(bars: bool = True) -> None:
    """What trains now, in the sidebar of every page: how many runs train and wait, until about
    when, and (`bars`) each running run's bar, which Live leaves to its page."""
    _mount(
        "summary",
        "feed_summary",
        path=feed.RUNS_PATH,
        query={},
        pace=_pace(SIDEBAR_REFRESH_S, ROOM_SLOW_REFRESH_S),
        state=feed.runs_state(),
        bars=bars,
    )
