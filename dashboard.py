"""Streamlit entry point: page config, navigation over pages/, and the shared sidebar."""

import streamlit as st

import ui

st.set_page_config(page_title="LeNet-5 regularization lab", page_icon="👟", layout="wide")

navigation = st.navigation(
    [
        st.Page("pages/home.py", title="Home", icon="🏠", default=True),
        st.Page("pages/train.py", title="Train", icon="🏋️"),
        st.Page("pages/live.py", title="Live", icon="📈"),
        st.Page("pages/results.py", title="Results", icon="🏆"),
    ]
)
ui.sidebar_status()
navigation.run()
