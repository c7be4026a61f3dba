"""The dashboard's server: Streamlit serving dashboard.py, and beside it the feed that Live and the
sidebar poll while runs train (ui/feed.py). `streamlit run app.py` finds `app` and serves it."""

import streamlit as st

from ui.feed import ROUTES

app = st.App("dashboard.py", routes=ROUTES)
