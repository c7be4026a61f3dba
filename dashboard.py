"""Streamlit entry point: the router over pages/.

Navigation is hidden here and drawn by each page's `ui.setup_page()` instead, together with the
page config and the sidebar status: Streamlit serves a pages/ folder as old-style pages until the
first `st.navigation` call in the process, so a deep link opened first on a fresh server runs its
page script alone, and that page must still be whole.
"""

import streamlit as st

import ui

st.navigation(
    [st.Page(page.path, title=page.title, icon=page.icon, default=i == 0) for i, page in enumerate(ui.PAGES)],
    position="hidden",
).run()
