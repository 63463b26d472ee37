"""The Train tab's learning curve: is labelling more pairs worth it, on your own pairs?

:func:`backend.finetune.curve.learning_curve` trains the chosen kinds on seeded nested subsets of the pairs chosen
in the fine-tune part (:mod:`ui.lab.train_finetune`) and measures each on the same held-out pairs; this module
starts it as a background job and draws the rows, the untrained encoder as a line beside them, and the verdict of
:func:`backend.finetune.verdict.curve_verdicts`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend.finetune.curve import SIZES
from backend.finetune.data import missing_training_extra
from backend.finetune.verdict import KIND_NAMES, METRIC_NAMES, curve_metric, curve_verdicts
from backend.jobs import BackgroundJob
from ui.i18n import t
from ui.lab.common import job_result_ui, start_job
from ui.lab.train_finetune import ChosenPairs
from ui.theme import model_color
from ui.widgets import download_ui

#: the colour of each kind: the registry family it joins the comparison as.
_COLOR_OF = {"bi": "sbert", "cross": "cross", "esim": "esim"}


def curve_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a table: ``kind, n, epochs, spearman, auc, seconds`` (numbers as numbers; the trained models'
    temporary folders left out)."""
    frame = pd.DataFrame(list(rows), columns=["kind", "n", "epochs", "spearman", "auc", "seconds"])
    for col in ("n", "epochs", "spearman", "auc", "seconds"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


def curve_figure(frame: pd.DataFrame, metric: str) -> go.Figure:
    """Held-out ``metric`` against the number of training pairs (log x), a line per kind, the untrained encoder as a
    dashed line."""
    fig = go.Figure()
    for kind, name in KIND_NAMES.items():
        part = frame[(frame["kind"] == kind) & frame[metric].notna()].sort_values("n")
        if not part.empty:
            fig.add_trace(go.Scatter(x=part["n"], y=part[metric], mode="lines+markers", name=t(name),
                                     line={"color": model_color(_COLOR_OF[kind])}))
    base = frame[(frame["kind"] == "base") & frame[metric].notna()]
    if not base.empty:
        fig.add_hline(y=float(base[metric].iloc[0]), line_dash="dash", line_color="#9E9E9E",
                      annotation_text=t("untrained encoder"), annotation_position="bottom right")
    fig.update_layout(title=t("Held-out {metric} by training pairs", metric=METRIC_NAMES[metric]),
                      xaxis_title=t("training pairs (log scale)"), yaxis_title=METRIC_NAMES[metric], height=320,
                      margin={"t": 50, "b": 40})
    fig.update_xaxes(type="log")
    return fig


def _curve_task(chosen: ChosenPairs, sizes: list[int | str], kinds: list[str]):
    """The background job: the curve's rows (its trained models are deleted after; the rows are what is shown)."""
    def fn(job: BackgroundJob) -> list[dict[str, Any]]:
        from backend.finetune.curve import learning_curve

        out = tempfile.mkdtemp(prefix="simdash-curve-")
        try:
            return learning_curve(chosen.train, chosen.held_out, out, lang="zh" if chosen.base.language == "zh" else "en",
                                  bi_base=chosen.base.source, cross_base=chosen.base.source, sizes=sizes, kinds=kinds,
                                  seed=chosen.seed, progress=job.report, should_stop=job.should_stop)
        finally:
            shutil.rmtree(out, ignore_errors=True)

    return fn


def curve_ui(chosen: ChosenPairs | None) -> None:
    """Sizes and kinds, a Run button, then the curve, its table with a download, and a verdict."""
    st.caption(t("Trains each chosen model on seeded random subsets of the training pairs (nested: the 300 contain "
                 "the 100) and measures every one on the same held-out pairs, beside the untrained encoder (the base "
                 "model chosen above). Every point is a full training run: on a CPU, count minutes per point."))
    labels = {s: (t("all") if s == "all" else f"{s:,}") for s in SIZES}
    sizes = st.multiselect(t("Training-set sizes"), list(SIZES), default=list(SIZES), key="lab_curve_sizes",
                           format_func=labels.get)
    c = st.columns(len(KIND_NAMES))
    kinds = [k for i, (k, name) in enumerate(KIND_NAMES.items())
             if c[i].checkbox(t(name), value=True, key=f"lab_curve_{k}")]
    if chosen is None:
        st.info(t("Choose training pairs above first."), icon=":material/info:")
        return
    n_all = len(chosen.train)
    # Sizes beyond the pairs there are would all be "all": kept once.
    sizes = [s for s in sizes if s == "all" or int(s) < n_all] or ["all"]
    signature = (chosen.data_id, chosen.base.key, tuple(sizes), tuple(kinds))
    if missing := missing_training_extra():
        st.info(t("Fine-tuning needs the training extra ({packages}): pip install -r requirements-train.txt",
                  packages=", ".join(missing)), icon=":material/info:")
    elif kinds and st.button(t("Run the learning curve"), type="primary", key="lab_curve_run"):
        start_job("curve", _curve_task(chosen, sizes, kinds), signature)
    rows = job_result_ui("curve", signature)
    if not rows:
        return
    frame = curve_frame(rows)
    metric = curve_metric(rows)
    verdicts = curve_verdicts(rows, metric)
    if verdicts:
        names = {k: t(v) for k, v in KIND_NAMES.items()}
        st.success(" ".join(v.text(t(v.template), names) for v in verdicts), icon=":material/lightbulb:")
    shown = [m for m in ("spearman", "auc") if frame[m].notna().any()]
    for col, m in zip(st.columns(len(shown)) if shown else [], shown, strict=True):
        col.plotly_chart(curve_figure(frame, m), key=f"lab_curve_chart_{m}")
    st.dataframe(frame, hide_index=True, key="lab_curve_table")
    download_ui(frame, "learning_curve.csv", key="lab_curve_download")


__all__ = ["curve_figure", "curve_frame", "curve_ui"]
