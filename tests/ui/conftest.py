"""Helpers for the dashboard's AppTests: run app.py on a page with URL parameters, find what a page shows."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO

APP = str(REPO / "app.py")
TIMEOUT = 240  # cold model loads on two shared CPU cores
PAGES = {name: f"pages/{name}.py" for name in ("compare", "neighbours", "projection", "batch", "evaluate", "models")}


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch):
    """Every test starts as a new server would (no background warm-up: the CPU is the test's)."""
    import streamlit as st

    monkeypatch.setenv("SIMDASH_WARM", "0")
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def app(page: str | None = None, session: dict | None = None, **query: str | list[str]):
    """An AppTest of app.py (optionally switched to ``page``: a key of :data:`PAGES`), run once, with URL
    ``query`` parameters and ``session`` state set before the first run."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(query)
    for k, v in (session or {}).items():
        at.session_state[k] = v
    at.run()
    if page:
        at.switch_page(PAGES[page]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def as_read(frame: pd.DataFrame) -> pd.DataFrame:
    """An st.table's cells and headers as a reader sees them: st.table renders Markdown, so the backslash escapes
    that keep user text from becoming links (ui.escape.plain) do not show."""
    def unescape(v):
        return _ESCAPED.sub(r"\1", v) if isinstance(v, str) else v

    out = frame.map(unescape)
    out.columns = [unescape(c) for c in frame.columns]
    return out


_ESCAPED = re.compile(r"\\(.)")


def _tables(at) -> list[pd.DataFrame]:
    return [as_read(e.value) for e in at.table if isinstance(e.value, pd.DataFrame)] + \
        [e.value for e in at.dataframe if isinstance(e.value, pd.DataFrame)]


def table_with(at, column: str) -> pd.DataFrame:
    """The first st.table or st.dataframe shown with ``column`` (an st.table as read: see :func:`as_read`)."""
    for value in _tables(at):
        if column in value.columns:
            return value
    raise AssertionError(f"no table with a {column!r} column; tables: {[list(v.columns) for v in _tables(at)]}")


def tables_with(at, column: str) -> list[pd.DataFrame]:
    """Every st.table / st.dataframe shown with ``column``."""
    return [v for v in _tables(at) if column in v.columns]


def texts(elements) -> list[str]:
    """The text values of a list of elements (captions, infos, errors...), as read (Markdown escapes removed)."""
    return [_ESCAPED.sub(r"\1", str(e.value)) for e in elements]


__all__ = ["APP", "PAGES", "Path", "app", "table_with", "tables_with", "texts"]
