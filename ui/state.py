"""The one place the dashboard reaches the backend, and what a browser session keeps.

``backend()`` is a ``st.cache_resource``: one backend shared by every session and page of the server process,
either the embedded :class:`~backend.serving.Backend` (models in this process, loaded lazily and warmed in a
background thread) or, with ``SIMDASH_BACKEND_URL`` set, a client of a backend server
(:mod:`backend.serving.client`). Both implement :class:`~backend.serving.protocol.BackendProtocol`, and pages call
only what it declares.

Caching rule (Streamlit's): a cached function may not touch an element created outside it. So nothing here that
reports progress is wrapped in ``st.cache_data``: repeated work is answered by the backend's own caches
(vectors, projections, clusters), and the caller draws the progress bar. Only pure reads (an uploaded file's
parse) are ``st.cache_data``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence

import numpy as np
import pandas as pd
import streamlit as st

from backend.files.io import load_demo_corpus
from backend.serving.protocol import BackendProtocol

_LOG = logging.getLogger(__name__)
#: a session not seen for this long has ended (Streamlit has no end-of-session hook): its trained models and
#: their files are removed.
SESSION_TTL_S = 2 * 3600


#: seconds the background warm-up waits after the server starts: the first visitor's page goes first (answered
#: from the persistent cache it loads no model; warming the defaults beside it took the CPU it needed), the
#: warm-up then readies the models for what is not cached. ``SIMDASH_WARM_DELAY_S`` overrides it.
WARM_DELAY_S = 20.0


def _warm(be: BackendProtocol, keys: Sequence[str]) -> None:
    """Load ``keys`` and compile UMAP in the background; failures are recorded by the Backend, not raised."""
    time.sleep(float(os.environ.get("SIMDASH_WARM_DELAY_S") or WARM_DELAY_S))
    for key in keys:
        try:
            be.load(key)
        except Exception as exc:  # the page shows the error in this model's column
            _LOG.info("warm-up: %s", exc)
    try:
        # umap's numba functions compile on the first fit (seconds): do it before anyone opens Projection.
        from backend.lab.projection import reduce_2d

        reduce_2d(np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32), "umap", 0)
    except Exception as exc:
        _LOG.info("warm-up umap: %s", exc)


@st.cache_resource(show_spinner=False)
def backend() -> BackendProtocol:
    """The process-wide backend (created once, shared by all sessions): either implementation of
    :class:`~backend.serving.protocol.BackendProtocol`.

    ``SIMDASH_BACKEND_URL=http://host:8000`` makes it a client of ``python -m backend serve`` there; otherwise the
    models run in this process and a daemon thread loads the defaults (``SIMDASH_WARM=0`` turns that off).
    """
    url = os.environ.get("SIMDASH_BACKEND_URL", "").strip()
    if url:
        from backend.serving.client import RemoteBackend

        return RemoteBackend(url, api_key=os.environ.get("SIMDASH_API_KEY") or None)
    from backend.serving import Backend

    be = Backend()
    if os.environ.get("SIMDASH_WARM", "1") != "0":
        threading.Thread(target=_warm, args=(be, be.registry.defaults()), name="simdash-warm", daemon=True).start()
    return be


@st.cache_resource(show_spinner=False)
def _sessions() -> dict[str, float]:
    """Last time each session ran a page (shared by all sessions)."""
    return {}


_SESSIONS_LOCK = threading.Lock()


def session_id() -> str:
    """This browser session's id: the ``owner`` of the models trained in it (``Registry.visible(owner)``).

    Twelve hex digits (48 random bits). Each call also records that the session is alive and removes the models
    of sessions idle for :data:`SESSION_TTL_S`.
    """
    sid = st.session_state.setdefault("session_id", uuid.uuid4().hex[:12])
    now = time.time()
    seen = _sessions()
    with _SESSIONS_LOCK:
        seen[sid] = now
        gone = [s for s, t in seen.items() if now - t > SESSION_TTL_S]
        for s in gone:
            del seen[s]
    be = backend()
    for s in gone:
        be.remove_owner(s)  # a remote backend holds its session models in this process too
    return sid


def visible_keys() -> list[str]:
    """Registry keys this session may list: the shared models plus the ones trained in this session."""
    return backend().registry.visible(session_id())


def demo_corpus() -> pd.DataFrame:
    """The bundled demo corpus (``text, topic, lang``; read once per process by the backend)."""
    return load_demo_corpus()


@st.cache_data(show_spinner=False, max_entries=16)
def read_upload(name: str, data: bytes, encoding: str | None = None):
    """:func:`backend.files.io.read_table` of uploaded bytes (the name tells a .txt file apart); cached per file."""
    import io

    from backend.files.io import read_table

    buf = io.BytesIO(data)
    buf.name = name
    return read_table(buf, encoding=encoding)
