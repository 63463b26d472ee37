"""The Calibration tab: what a score means (P(similar), percentile among random pairs) and a threshold."""

from __future__ import annotations

import streamlit as st

from backend.lab.calibration import background_scores, calibrate, demo_corpus_texts, score_span
from backend.lab.evaluation import EvaluationReport, LabelledPairs
from backend.lab.verdicts import calibration_verdict
from backend.text import majority_language
from ui import state
from ui.charts import calibration_curve
from ui.escape import plain
from ui.i18n import t
from ui.lab.common import glossary_ui
from ui.widgets import Progress, download_ui, verdict_ui


def background_ui(key: str, name: str, options: dict, n_pairs: int, lang: str):
    """Scores of random demo-corpus pairs in the data's language (kept per model, options and size)."""
    bg_id = (key, repr(sorted(options.items())), n_pairs, lang)
    if st.session_state.get("lab_bg_id") != bg_id:
        bar = Progress(t("Scoring {n} random demo-corpus pairs with {key}…", n=f"{n_pairs:,}", key=name))
        try:
            st.session_state["lab_bg"] = background_scores(state.backend(), key, demo_corpus_texts(lang), n_pairs, 0,
                                                           options or None, progress=bar)
            st.session_state["lab_bg_id"] = bg_id
        except RuntimeError as exc:
            st.error(t("{key} failed: {error}", key=name, error=plain(str(exc))))
            return None
        finally:
            bar.done()
    bg = st.session_state["lab_bg"]
    if len(bg.scores) == 0:
        st.warning(t("{key} could score none of the random demo-corpus pairs (unknown words?): no background "
                     "percentiles.", key=name))
        return None
    return bg


def calibration_tab(report: EvaluationReport | None, data: LabelledPairs) -> None:
    """Fit P(similar) on the evaluated scores; show the curve, the thresholds and a verdict."""
    if report is None or not report.scores():
        st.info(t("Evaluate in the Metrics tab first: calibration fits on those scores."))
        return
    c1, c2, c3 = st.columns(3)
    name = c1.selectbox(t("Model"), list(report.scores()), key="lab_cal_model")
    method = c2.radio(t("Mapping"), ["isotonic", "logistic"], horizontal=True, key="lab_cal_method",
                      help=t("Isotonic: step-wise, no shape assumed (wants a few hundred pairs). Logistic: a sigmoid."))
    n_pairs = int(c3.number_input(t("Random background pairs"), 200, 20_000, 2_000, step=200, key="lab_cal_pairs",
                                  help=t("Scores of random pairs of the demo corpus: what 'unrelated' looks like.")))
    r = report.results[name]
    # The background corpus in the data's language: random English pairs say nothing about Chinese scores.
    bg = background_ui(r.key, name, r.options, n_pairs, majority_language(data.a))
    res = calibrate(r.scores, report.data.binary(), bg, method, name)
    cal = res.calibrator
    verdict_ui([calibration_verdict(name, None if cal is None else cal.threshold_, bg)])
    for note in res.notes:
        st.caption(f"ℹ️ {plain(note)}")
    if cal is not None:
        m1, m2, m3 = st.columns(3)
        m1.metric(t("Suggested threshold (P = 0.5)"), "–" if cal.threshold_ is None else f"{cal.threshold_:.3f}")
        m2.metric(t("F1-optimal threshold"), "–" if r.metrics.threshold is None else f"{r.metrics.threshold:.3f}")
        m3.metric(t("Brier score (in-sample)"), f"{res.brier:.3f}")
        background = bg.scores if bg is not None else None
        grid, p = cal.curve(201, *score_span(cal.range_, background))
        st.plotly_chart(calibration_curve(name, grid, p, method, background, tr=t), key="lab_cal_fig")
    glossary_ui("Brier", "percentile")
    x = st.number_input(t("What does this score mean?"), -1.0, 1.0, 0.5, step=0.05, key="lab_cal_x")
    one = res.table([x])
    st.dataframe(one, hide_index=True, key="lab_cal_one", column_config={
        "percentile": st.column_config.NumberColumn(t("beats % of random pairs"), format="%.1f"),
        "p_similar": st.column_config.NumberColumn("P(similar)", format="%.2f")})
    download_ui(one, "score_meaning.csv", key="lab_cal_download")
    if bg is not None:
        st.caption(t("Background quantiles (score beating that share of random pairs):") + " "
                   + ", ".join(f"{int(k * 100)}% → {v:.3f}" for k, v in bg.quantiles().items()))
