"""Compare pairs: every chosen model's score for each sentence pair, side by side, and why."""

from __future__ import annotations

import streamlit as st

from backend.lab.verdicts import pairs_verdict
from ui import state
from ui.charts import score_bars
from ui.frame import page_settings
from ui.i18n import t, tw
from ui.pairs import pairs_ui, why_ui
from ui.tables import answered_label, score_cells_frame, scores_frame
from ui.widgets import (
    Progress,
    download_ui,
    load_models_ui,
    model_header_ui,
    models_ui,
    text_table_ui,
    verdict_ui,
)

#: up to this many pairs the score table wraps every text; more are shown in a scrolling grid.
WRAP_MAX_PAIRS = 50


def compare_ui() -> None:
    """The Compare pairs page."""
    settings = page_settings()
    st.title(t("Compare pairs"))
    st.caption(t("Every model's similarity for each pair, side by side. Pick a preset or type your own pairs."))
    a, b = pairs_ui()
    keys = models_ui(settings)
    if not a:
        st.info(t("Type a pair or choose a preset."), icon=":material/edit_note:")
        st.stop()
    errors = load_models_ui(keys)
    bar = Progress(t("Scoring {n} pair(s) with {m} models…", n=len(a), m=len(keys)))
    results = state.backend().similarity(a, b, keys, settings.options, progress=bar)
    bar.done()
    errors |= {k: r.error for k, r in results.items() if r.error}
    # Columns and bars are named by the model that answered: sbert's scores of Chinese pairs are m3e-small's.
    reg = state.backend().registry
    labels = {k: reg[k].label for k in {u for r in results.values() for u in r.used} if k in reg}
    shown = {k: settings.labels.get(k, k) if r.error else answered_label(k, r.used, {**settings.labels, **labels})
             for k, r in results.items()}
    model_header_ui(keys, shown, errors, {k: r.seconds for k, r in results.items()})
    verdict_ui([pairs_verdict({k: r.scores for k, r in results.items()})])
    cells = score_cells_frame(a, b, results, na=lambda reason: t("n/a: {reason}", reason=tw(reason)))
    cells.columns = [t(c) if c in ("A", "B") else c for c in cells.columns]
    if len(a) <= WRAP_MAX_PAIRS:
        text_table_ui(cells)
    else:
        st.dataframe(cells, hide_index=True, width="stretch", key="cmp_scores")
    frame = scores_frame(a, b, results)
    download_ui(frame, "pair_scores.csv", key="cmp_download", label=t("Download scores (with who scored and why)"))
    st.plotly_chart(score_bars(frame, keys, shown, tr=t), key="cmp_chart")
    why_ui(a, b, results, settings)


compare_ui()
