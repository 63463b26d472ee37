"""Background jobs in a page: start one, show its progress with a Cancel button, then its result.

Long work (an evaluation, a probe, training, a search index over a million vectors) runs as a
:class:`backend.jobs.BackgroundJob` kept in this session; the page redraws its progress every second, so it stays
responsive and other visitors are never blocked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from backend.jobs import BackgroundJob
from ui.escape import plain
from ui.i18n import t


def start_job(name: str, fn: Callable[[BackgroundJob], Any], signature: Any = None) -> None:
    """Start ``fn`` in a background thread, kept in this session under ``name`` (one per name)."""
    old = st.session_state.get(f"lab_job_{name}")
    if old is not None and old.running:
        old.cancel()
    st.session_state[f"lab_job_{name}"] = BackgroundJob(fn, name).start()
    st.session_state[f"lab_sig_{name}"] = signature


@st.fragment(run_every=1.0)
def _job_progress_ui(name: str) -> None:
    job: BackgroundJob | None = st.session_state.get(f"lab_job_{name}")
    if job is None or not job.running:
        st.rerun()  # the whole page, to show the result
    s = job.state()
    st.progress(s.fraction, text=f"{s.message or t('working…')} · {s.seconds:.0f} s")
    if st.button(t("Cancel"), key=f"lab_cancel_{name}"):
        job.cancel()


def job_result_ui(name: str, signature: Any = None) -> Any:
    """The finished job's result, or None (showing progress, the error or "cancelled" instead)."""
    job: BackgroundJob | None = st.session_state.get(f"lab_job_{name}")
    if job is None:
        return None
    if job.running:
        _job_progress_ui(name)
        return None
    s = job.state()
    if s.status == "failed":
        st.error(t("Failed: {error}", error=plain(str(s.error))))
        return None
    if s.status == "cancelled":
        st.warning(t("Cancelled after {s} s.", s=f"{s.seconds:.0f}"))
        return s.result
    if signature is not None and st.session_state.get(f"lab_sig_{name}") != signature:
        st.warning(t("The data, models or options changed since this result was computed; run it again to update it."))
    return s.result


def job_seconds(name: str) -> float | None:
    """Wall time of the last finished job ``name`` (the next run's estimate)."""
    job: BackgroundJob | None = st.session_state.get(f"lab_job_{name}")
    return None if job is None or job.running else job.state().seconds
