"""Streamlit entry point: page config, navigation over views/, and the shared sidebar.

The page scripts live in views/, not pages/: Streamlit also serves a pages/ folder as old-style
pages, and a fresh tab opened on such a URL ran the page without this entry point.
"""

import streamlit as st

import ui

st.set_page_config(page_title="LeNet-5 regularization lab", page_icon="👟", layout="wide")

navigation = st.navigation(
    [
        st.Page("views/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("views/train.py", title="Train", icon=":material/model_training:"),
        st.Page("views/live.py", title="Live", icon=":material/monitoring:"),
        st.Page("views/results.py", title="Results", icon=":material/leaderboard:"),
        st.Page("views/sandbox.py", title="Sandbox", icon=":material/draw:"),
    ]
)
ui.sidebar_status()
navigation.run()
