"""Sentence similarity, side by side: the dashboard's entry point (``streamlit run app.py``).

Draws the shared sidebar, then runs the page chosen in the navigation. Models are not loaded here: the
cached Backend (``ui/state.py``) loads them lazily, and in a background thread, so the first page is
usable within seconds.
"""

from __future__ import annotations

import os

import streamlit as st

from ui.sidebar import hardware_ui, sidebar_ui

HERE = os.path.dirname(os.path.abspath(__file__))

st.set_page_config(page_title="Sentence similarity, side by side", page_icon="🔎", layout="wide")

pages = [
    st.Page("pages/compare.py", title="Compare pairs", icon=":material/compare_arrows:", url_path="compare", default=True),
    st.Page("pages/neighbours.py", title="Neighbours", icon=":material/travel_explore:", url_path="neighbours"),
    st.Page("pages/projection.py", title="Projection", icon=":material/scatter_plot:", url_path="projection"),
    st.Page("pages/batch.py", title="Batch scoring", icon=":material/table_view:", url_path="batch"),
    st.Page("pages/models.py", title="Models", icon=":material/memory:", url_path="models"),
]
# The Evaluation lab is another engineer's page: include it once its file exists.
if os.path.exists(os.path.join(HERE, "pages", "evaluate.py")):
    pages.insert(4, st.Page("pages/evaluate.py", title="Evaluation lab", icon=":material/science:", url_path="evaluate"))

page = st.navigation(pages)
settings = sidebar_ui()
try:
    page.run()
finally:
    # After the page, so the sidebar's device/precision line covers the models the page just loaded (also
    # when the page stopped early with st.stop()).
    hardware_ui(settings.keys)
