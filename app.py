"""Sentence similarity, side by side: the dashboard's entry point (``streamlit run app.py``).

Draws the language switch, the navigation and the shared sidebar, then runs the chosen page (``ui/frame.py``).
Models are not loaded here: the cached backend (``ui/state.py``) loads them lazily, in a background thread, so the
first page is usable within seconds.
"""

from __future__ import annotations

from ui.frame import run_app

run_app()
