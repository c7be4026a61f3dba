"""The page frame: page config, the navigation, the sidebar (training status, the teacher's
controls) and presentation mode, drawn by `setup_page()` at the top of every page."""

from __future__ import annotations

from typing import NamedTuple

import streamlit as st

from .actions import keep_pool_warm
from .feed_view import sidebar_summary
from .presentation import CARRIED_PARAMS, NARROW_CSS, PROJECTOR_CSS, STILL_CSS, presenting
from .roles import role_controls

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
    PageInfo("pages/class.py", "Class", ":material/groups:"),
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
        sidebar_summary(bars=not live)  # Live's page shows every running run's bar itself
        role_controls()
    styles = [NARROW_CSS, PROJECTOR_CSS if presenting() else "", STILL_CSS if live else ""]
    st.html(f"<style>{''.join(styles)}</style>")
    keep_pool_warm()
