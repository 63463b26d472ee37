"""Sentence similarity, side by side: the dashboard's entry point (``streamlit run app.py``).

Draws the language switch and the shared sidebar, then runs the page chosen in the navigation. Models are not
loaded here: the cached backend (``ui/state.py``) loads them lazily, and in a background thread, so the first
page is usable within seconds.

Pages live in ``pages/`` under file names that differ from their URL paths (``pages/batch_scoring.py`` is
``/batch``). Streamlit runs a ``pages/`` file directly, without this script, only when a fresh server's first
request names that file's own stem; no URL path here is such a stem, so a deep link on a fresh server finds no
page of its own, runs this script, and ``st.navigation`` (which turns the old ``pages/`` mode off) opens the page.
"""

from __future__ import annotations

import streamlit as st

from ui.i18n import language_ui, t
from ui.sidebar import hardware_ui, sidebar_ui

st.set_page_config(page_title="Sentence similarity, side by side · 句子相似度对比", page_icon="🔎", layout="wide")

#: (file, URL path, title, icon); the first is the default page.
PAGES = [
    ("pages/compare_pairs.py", "compare", "Compare pairs", ":material/compare_arrows:"),
    ("pages/nearest_neighbours.py", "neighbours", "Neighbours", ":material/travel_explore:"),
    ("pages/projection_map.py", "projection", "Projection", ":material/scatter_plot:"),
    ("pages/batch_scoring.py", "batch", "Batch scoring", ":material/table_view:"),
    ("pages/evaluation_lab.py", "evaluate", "Evaluation lab", ":material/science:"),
    ("pages/model_cards.py", "models", "Models", ":material/memory:"),
]

language_ui()
page = st.navigation([st.Page(f, title=t(title), icon=icon, url_path=url, default=(i == 0))
                      for i, (f, url, title, icon) in enumerate(PAGES)])
settings = sidebar_ui()
try:
    page.run()
finally:
    # After the page, so the sidebar's device/precision line covers the models the page just loaded (also
    # when the page stopped early with st.stop()).
    hardware_ui(settings.keys)
