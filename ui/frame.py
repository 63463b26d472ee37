"""The frame around every page: page config, the language switch, the navigation, the sidebar, the hardware line.

``app.py`` draws it and runs the chosen page. One case needs care: a ``pages/`` folder next to ``app.py`` makes
Streamlit, until the first ``st.navigation`` call in the process, run a page file *on its own* when a fresh server's
first request is a deep link (``/batch``). Every page therefore starts with :func:`page_settings`: it returns the
settings ``app.py`` drew in this run, or, when the page was started on its own, draws the frame itself through the
same public ``st.navigation`` (which also switches that old mode off for the rest of the process).
"""

from __future__ import annotations

import threading

import streamlit as st

from ui.i18n import language_ui, t
from ui.sidebar import Settings, hardware_ui, sidebar_ui

#: (file, title, icon); a file's name is its URL path (``pages/batch.py`` is ``/batch``); the first is the default.
PAGES = [
    ("pages/compare.py", "Compare pairs", ":material/compare_arrows:"),
    ("pages/neighbours.py", "Neighbours", ":material/travel_explore:"),
    ("pages/projection.py", "Projection", ":material/scatter_plot:"),
    ("pages/batch.py", "Batch scoring", ":material/table_view:"),
    ("pages/evaluate.py", "Evaluation lab", ":material/science:"),
    ("pages/models.py", "Models", ":material/memory:"),
]

# Streamlit runs each session's script in its own thread: this marks "the frame is drawn in this run".
_RUN = threading.local()


def draw_frame():
    """Page config, language, navigation and sidebar; returns ``(page to run, settings)``."""
    st.set_page_config(page_title="Sentence similarity, side by side · 句子相似度对比", page_icon="🔎", layout="wide")
    language_ui()
    page = st.navigation([st.Page(f, title=t(title), icon=icon, default=(i == 0))
                          for i, (f, title, icon) in enumerate(PAGES)])
    settings = sidebar_ui()
    _RUN.settings = settings
    return page, settings


def run_app() -> None:
    """What ``app.py`` does: draw the frame, run the chosen page, then the hardware line."""
    page, settings = draw_frame()
    try:
        page.run()
    finally:
        # After the page, so the sidebar's device/precision line covers the models the page just loaded (also when
        # the page stopped early with st.stop()).
        hardware_ui(settings.keys)
        _RUN.settings = None


def page_settings() -> Settings:
    """The sidebar's settings for this run.

    When Streamlit started this page file on its own, this draws the frame and then runs the page through the
    navigation (``page.run()``), exactly as every later run will, so its widgets get the same ids from the first run
    on (a click would otherwise be lost), and stops the outer, frameless run.
    """
    settings = getattr(_RUN, "settings", None)
    if settings is None:
        run_app()  # draws the frame; its st.navigation also switches the old pages/ mode off for the whole process
        st.stop()
    return settings
