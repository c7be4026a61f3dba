"""Streamlit entry point: page config, navigation over pages/, and the shared sidebar."""

import streamlit as st

import ui

st.set_page_config(page_title="LeNet-5 regularization lab", page_icon="👟", layout="wide")

navigation = st.navigation(
    [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/live.py", title="Live", icon=":material/monitoring:"),
        st.Page("pages/results.py", title="Results", icon=":material/leaderboard:"),
    ]
)
ui.sidebar_status()
navigation.run()
