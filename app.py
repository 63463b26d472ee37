"""Sentence similarity, side by side: the dashboard's entry point (``streamlit run app.py``).

Draws the language switch, the navigation and the shared sidebar, then runs the chosen page (``ui/frame.py``).
Models are not loaded here: the cached backend (``ui/state.py``) loads them lazily, in a background thread, so the
first page is usable within seconds.
"""

from __future__ import annotations

import os

# Sleeping (not spinning) OpenMP workers: many visitors' requests share two cores, and spinning threads starve the
# forward passes (measured with bench/bench_server.py). Read when torch loads, so set before anything imports it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ui.frame import run_app

run_app()
