"""The dashboard's user-interface layer.

Only the ``*_ui`` modules (``sidebar``, ``state``, ``widgets``) and the pages import streamlit. ``theme``,
``charts`` and ``tables`` are plain Python (pandas, plotly), so every number and figure the dashboard
shows is built by a function that a unit test can call without a Streamlit runtime.
"""
