"""The one place the dashboard reaches the backend: a cached :class:`~backend.service.Backend` and cached results.

``backend()`` is a ``st.cache_resource``: one Backend (models, vector cache) shared by every session and
page of the server process. On creation it starts a daemon thread that loads the default models and
warms UMAP's JIT, so the first page is usable at once and the first comparison does not pay for every
load. ``SIMDASH_WARM=0`` turns the warm-up off (the tests do, to keep CPU for themselves).

Neighbours and projections are also kept in ``st.cache_data`` keyed by their inputs, so revisiting a page
or flipping back to an earlier setting is instant.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from backend.io import load_demo_corpus
from backend.service import Backend, Neighbours

_LOG = logging.getLogger(__name__)


def _warm(be: Backend, keys: Sequence[str]) -> None:
    """Load ``keys`` and compile UMAP in the background; failures are recorded by the Backend, not raised."""
    for key in keys:
        try:
            be.model(key)
        except Exception as exc:  # the page shows the error in this model's column
            _LOG.info("warm-up: %s", exc)
    try:
        # umap's numba functions compile on the first fit (seconds): do it before anyone opens Projection.
        from backend.service import reduce_2d

        reduce_2d(np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32), "umap", 0)
    except Exception as exc:
        _LOG.info("warm-up umap: %s", exc)


@st.cache_resource(show_spinner=False)
def backend() -> Backend:
    """The process-wide Backend (created once, shared by all sessions); starts the warm-up thread."""
    be = Backend()
    if os.environ.get("SIMDASH_WARM", "1") != "0":
        threading.Thread(target=_warm, args=(be, be.registry.defaults()), name="simdash-warm", daemon=True).start()
    return be


def session_id() -> str:
    """This browser session's id: the ``owner`` of the models trained in it (``Registry.visible(owner)``).

    Kept in ``st.session_state``, so it lives as long as the browser tab's session. Twelve hex digits (48 random
    bits): two sessions of a long-running server sharing an id, and so each other's models, is vanishingly
    unlikely, while session models' keys (``w2v-<id>-1``) stay readable.
    """
    return st.session_state.setdefault("session_id", uuid.uuid4().hex[:12])


def visible_keys() -> list[str]:
    """Registry keys this session may list: the shared models plus the ones trained in this session."""
    return backend().registry.visible(session_id())


def unloaded(keys: Sequence[str]) -> list[str]:
    """Those of ``keys`` not in memory yet (the page says it is loading them)."""
    loaded = set(backend().loaded())
    return [k for k in keys if k not in loaded]


def info_or_error(key: str, options: dict[str, Any] | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """``(Backend.info(key), None)``, or ``(None, error message)`` when the model fails to load."""
    try:
        return backend().info(key, **(options or {})), None
    except Exception as exc:
        return None, str(exc).strip("'\"")


def loaded_info(key: str) -> dict[str, Any] | None:
    """Model card facts only if ``key`` is already in memory (never triggers a load: the sidebar uses it)."""
    be = backend()
    if key not in be.loaded():
        return None
    try:
        return be.info(key)
    except Exception:
        return None


def loaded_layers(key: str) -> int | None:
    """Transformer layers of model ``key`` if it is in memory and has layers (never triggers a load)."""
    be = backend()
    if key not in be.loaded():
        return None
    try:
        return getattr(be.model(key), "n_layers", None)
    except Exception:
        return None


def demo_corpus() -> pd.DataFrame:
    """The bundled demo corpus (``text, topic, lang``; read once per process by the backend)."""
    return load_demo_corpus()


@st.cache_data(show_spinner=False, max_entries=64)
def neighbours(key: str, queries: tuple[str, ...], corpus: tuple[str, ...], k: int, options_json: str,
               _options: dict[str, Any] | None = None, _progress: Callable[[int, int], None] | None = None) -> Neighbours:
    """Cached :meth:`Backend.neighbours` (``options_json`` is the hash key of ``_options``).

    Exceptions (a model that fails to load) are not cached, so a model that lands later is picked up.
    """
    return backend().neighbours(key, list(queries), list(corpus), k, _options, _progress)


@st.cache_data(show_spinner=False, max_entries=64)
def projection(key: str, texts: tuple[str, ...], method: str, seed: int, options_json: str,
               _options: dict[str, Any] | None = None, _progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Cached :meth:`Backend.project` coordinates, shape (n, 2)."""
    return backend().project(key, list(texts), method, seed, options=_options, progress=_progress)  # type: ignore[arg-type]


@st.cache_data(show_spinner=False, max_entries=64)
def clusters(key: str, texts: tuple[str, ...], n_clusters: int, seed: int, options_json: str,
             _options: dict[str, Any] | None = None) -> list[str]:
    """KMeans cluster names of ``texts`` in model ``key``'s embedding space (its own clusters, not UMAP's)."""
    from ui.tables import kmeans_labels

    enc = backend().embed(key, list(texts), _options)
    return kmeans_labels(enc.vectors, enc.valid, n_clusters, seed)


@st.cache_data(show_spinner=False, max_entries=16)
def read_upload(name: str, data: bytes):
    """:func:`backend.io.read_table` of uploaded bytes (the name tells a .txt file apart); cached per file."""
    import io

    from backend.io import read_table

    buf = io.BytesIO(data)
    buf.name = name
    return read_table(buf)
