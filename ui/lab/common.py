"""What every lab tab shares: a glossary, and the background jobs of :mod:`ui.jobs`."""

from __future__ import annotations

import streamlit as st

from ui.i18n import t
from ui.jobs import job_result_ui, job_seconds, start_job

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


__all__ = ["GLOSSARY", "glossary_ui", "job_result_ui", "job_seconds", "start_job"]
