"""The Disagreements tab: the pairs the models rank most differently, readable in full."""

from __future__ import annotations

import streamlit as st

from backend.lab.evaluation import EvaluationReport, disagreements
from backend.lab.verdicts import disagreement_verdict
from ui.i18n import t
from ui.widgets import download_ui, text_table_ui, verdict_ui


def disagreements_tab(report: EvaluationReport | None) -> None:
    """Pick a gold range and a row count; the widest-spread pairs, with each model's rank."""
    if report is None or len(report.scores()) < 2:
        st.info(t("Evaluate at least two models in the Metrics tab first."))
        return
    d = report.data
    st.caption(t("Each model's scores become percentile ranks (a cosine of 0.6 means different things per model); the "
                 "spread is the highest minus the lowest rank a pair gets."))
    c1, c2 = st.columns([3, 1])
    if d.kind == "binary":
        picks = {"all": t("all"), "1": t("similar (1)"), "0": t("not similar (0)")}
        pick = c1.radio(t("Gold label"), list(picks), format_func=picks.get, horizontal=True, key="lab_dis_label")
        between = None if pick == "all" else (float(pick), float(pick))
    else:
        lo, hi = d.label_range
        between = c1.slider(t("Gold label between"), float(lo), float(hi), (float(lo), float(hi)), key="lab_dis_range")
    top = int(c2.number_input(t("Rows"), 5, 500, 15, key="lab_dis_top"))
    frame = disagreements(d, report.scores(), top, between)
    verdict_ui([disagreement_verdict(frame)])
    names = list(report.scores())
    # Texts first and wrapping, then where each model ranks the pair: readable at a phone's width too.
    shown = frame[["row", "sentence1", "sentence2", "gold", *[f"rank_{k}" for k in names], "spread"]].copy()
    shown.columns = ["#", t("sentence 1"), t("sentence 2"), t("gold"), *[f"{t('rank')} {k}" for k in names], t("spread")]
    text_table_ui(shown, floats=2)
    download_ui(frame, "disagreements.csv", key="lab_dis_download")
