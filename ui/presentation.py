"""Presentation mode (?present=1): the projector's styling, and tables and charts drawn for it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lenet import charts

from .live_charts import LiveFigure, live_chart
from .shared import SharedFigure

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


# On a phone (the width under which charts.STACKED stacks two plots) plotly shows its mode bar (zoom,
# pan, download) all the time, with no hover to hide it, over the right end of a chart's title; a
# drag still zooms there and a double tap resets.
NARROW_CSS = (
    f"@media (max-width: {charts.STACKED['below_px']}px) "
    "{ .js-plotly-plot .modebar-container { display: none; } }"
)


# Nothing animated; and an element being redrawn keeps its full opacity: Streamlit fades it to 0.33
# after 0.5 s (a transition), which without transitions became a flash of every element at each rerun
STILL_CSS = """
*, *::before, *::after { transition: none !important; animation: none !important; }
[data-stale="true"] { opacity: 1 !important; }
"""


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
    """Draw a plotly figure (in `where`, a column or container), for the projector when presenting.
    A plain dict one (`charts.*_spec`) is drawn as Live draws it (`live_chart`): its plots stand one
    over the other on a phone."""
    if presenting() and not isinstance(figure, SharedFigure):  # shared ones are styled when built
        figure = charts.for_projector(figure)
    if isinstance(figure, dict):
        live_chart(LiveFigure(figure), key, where)
    else:
        (where or st).plotly_chart(figure, key=key)
