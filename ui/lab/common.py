"""What every lab tab shares: background jobs with a progress bar and a Cancel button, and a glossary."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from backend.jobs import BackgroundJob
from ui.i18n import t

#: one line per term a lab tab uses, for people who do not read IR papers.
GLOSSARY = {
    "Spearman": "how well a model's scores put the pairs in the gold order (x100; 100 = the same order).",
    "Pearson": "how close the scores are to a straight line against the gold labels (x100).",
    "ROC-AUC": "the chance that a random similar pair scores above a random dissimilar one (0.5 = a coin).",
    "F1": "the balance of precision and recall at the best threshold.",
    "recall@k": "the share of relevant sentences found in the top k.",
    "MRR@10": "1 / the rank of the first relevant sentence, averaged over queries (0 beyond rank 10).",
    "nDCG@10": "how high the relevant sentences sit in the top 10, 1 when they are all at the top.",
    "Brier": "the mean squared error of P(similar) against the 0/1 labels (0 = perfect, 0.25 = a coin).",
    "percentile": "the share of random pairs a score beats.",
}


def glossary_ui(*terms: str) -> None:
    """A caption explaining ``terms`` in one line each."""
    st.caption(" · ".join(f"**{x}**: {t(GLOSSARY[x])}" for x in terms))


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
        st.error(t("Failed: {error}", error=s.error))
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
