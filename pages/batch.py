"""Batch jobs on uploaded files: score every pair of a table with every chosen model, or match a file of questions
against an FAQ or corpus (:mod:`ui.batch_match`); download the result."""

from __future__ import annotations

import time

import streamlit as st

from backend.files.batch import score_frame
from backend.files.io import to_csv_bytes
from backend.lab.evaluation import label_metrics
from backend.lab.presets import example_pairs_frame
from backend.lab.verdicts import Verdict, label_metrics_verdicts
from ui import state
from ui.batch_match import match_ui
from ui.charts import metric_bars
from ui.escape import plain
from ui.frame import page_settings
from ui.i18n import t
from ui.sidebar import Settings
from ui.tables import BATCH_CHUNK_ROWS, LARGE_BATCH_ROWS, empty_cells, format_seconds
from ui.widgets import (
    Upload,
    download_ui,
    evaluate_link_ui,
    load_models_ui,
    models_ui,
    pair_columns_ui,
    short_error,
    table_ui,
    upload_ui,
    url_choice,
    verdict_ui,
)

#: the page's two jobs, as the URL names them (``?batch_mode=match``; the first is the default).
MODES = ["pairs", "match"]


def _use_example() -> None:
    data = example_pairs_frame().to_csv(index=False).encode("utf-8")
    st.session_state["batch_upload"] = Upload("example_pairs.csv", data, "example")


def _remove() -> None:
    for k in ("batch_upload", "batch_result"):
        st.session_state.pop(k, None)


def run_ui(frame, cols, keys: list[str], options: dict, signature: tuple) -> None:
    """Score all rows (chunked, with a progress bar and a time estimate) and keep the result in the session."""
    load_models_ui(keys)
    n = len(frame)
    bar = st.progress(0.0, text=t("starting…"))
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        rows, elapsed = min(n, done // max(len(keys), 1)), time.perf_counter() - t0
        text = t("{done} / {total} pairs · {elapsed} elapsed", done=f"{rows:,}", total=f"{n:,}",
                 elapsed=format_seconds(elapsed))
        if rows >= min(n, BATCH_CHUNK_ROWS):
            text += " · " + t("about {left} left", left=format_seconds(elapsed / rows * (n - rows)))
        bar.progress(done / max(total, 1), text=text)

    scored = score_frame(state.backend(), frame, cols.a, cols.b, keys, options=options, progress=progress,
                         chunk=BATCH_CHUNK_ROWS)
    bar.empty()
    st.session_state["batch_result"] = {"signature": signature, "scored": scored, "csv": to_csv_bytes(scored.frame),
                                        "keys": keys}


def result_ui(result: dict, label: str | None, labels: dict[str, str], current: bool) -> None:
    """Errors, what is missing and why, a preview, the download and (with a gold column) each model's agreement."""
    scored, keys = result["scored"], result["keys"]
    out = scored.frame
    if not current:
        st.warning(t("The file, columns, models or options changed since this result was computed; score again to "
                     "update it."))
    st.subheader(t("Result: {n} rows in {s}", n=f"{len(out):,}", s=format_seconds(scored.seconds)))
    for key, err in scored.errors.items():
        st.error(t("{key} failed, its column is empty: {error}", key=key, error=short_error(err)))
    verdict_ui([Verdict("batch_missing", {"model": k, "n": f"{v:,}", "total": f"{len(out):,}"})
                for k, v in scored.missing().items() if v])
    st.dataframe(out.head(1000), hide_index=True, width="stretch", key="batch_preview",
                 column_config={f"score_{k}": st.column_config.NumberColumn(labels.get(k, k), format="%.3f") for k in keys})
    if len(out) > 1000:
        st.caption(t("Showing the first 1,000 rows; the download has them all."))
    download_ui(out, "scored_pairs.csv", key="batch_download", data=result["csv"],
                label=t("Download all {n} rows (score, who scored it and why a score is missing)", n=f"{len(out):,}"))
    if label and label in out:
        metrics = label_metrics(out, label, [k for k in keys if k not in scored.errors])
        if len(metrics):
            st.subheader(t("Agreement with {col}", col=plain(label)))
            verdict_ui(label_metrics_verdicts(metrics, frame=out, label_col=label))
            c1, c2 = st.columns([2, 3])
            c1.dataframe(metrics, hide_index=True, width="stretch", key="batch_metrics",
                         column_config={"value": st.column_config.NumberColumn(format="%.3f")})
            with c1:
                download_ui(metrics, "batch_metrics.csv", key="batch_metrics_download", label=t("Download metrics"))
            c2.plotly_chart(metric_bars(metrics, labels, tr=t), key="batch_metrics_chart")
            st.caption(t("ROC-AUC for a 0/1 column, Spearman ρ for graded scores. For STS-B benchmarks, calibration "
                         "and layer probes, use the Evaluation lab."))
            evaluate_link_ui()


def pairs_ui(settings: Settings) -> None:
    """The pairs job: upload, columns, models, score, result."""
    st.caption(t("Adds score, scored-by and warnings columns per model to every row of your file. Large files are "
                 "scored in chunks."))
    c1, c2 = st.columns([3, 1], vertical_alignment="center")
    with c1:
        up = upload_ui("batch_upload", t("Table of sentence pairs (CSV, TSV or semicolon-separated; any common "
                                         "encoding)"))
    c2.button(t("Use an example file"), key="batch_example", on_click=_use_example, width="stretch",
              help=t("The preset pairs with a 0/1 'same meaning' label (our own judgement)."))
    if up is None:
        st.info(t("Upload a table with two text columns (e.g. sentence1, sentence2), or use the example file."),
                icon=":material/upload_file:")
        st.stop()
    c2.button(t("Remove the file"), key="batch_remove", on_click=_remove, width="stretch")
    table = table_ui(up, f"batch_{up.digest[:8]}")
    cols = pair_columns_ui(table.frame, f"batch_{up.digest[:8]}") if table is not None else None
    if cols is None:
        st.stop()
    frame = table.frame
    missing = empty_cells(frame, cols.a, cols.b)
    if missing:
        st.warning(t("{n} of {total} rows have an empty cell in a text column; they get no score, and the download "
                     "says so.", n=f"{missing:,}", total=f"{len(frame):,}"))
    with st.expander(t("Preview of {name}", name=plain(up.name))):
        st.dataframe(frame.head(20), hide_index=True, width="stretch", key="batch_input_preview")
    keys = models_ui(settings)
    signature = (up.digest, table.encoding, cols.a, cols.b, tuple(keys), repr(sorted(settings.options.items())))
    if len(frame) > LARGE_BATCH_ROWS:
        st.info(t("{n} rows: they are scored in chunks of {chunk}; the time left is shown while it runs. Keep this tab "
                  "open, or use `python -m backend score` for files of millions of rows.", n=f"{len(frame):,}",
                  chunk=f"{BATCH_CHUNK_ROWS:,}"))
    if st.button(t("Score {n} pairs with {m} model(s)", n=f"{len(frame):,}", m=len(keys)), type="primary",
                 key="batch_run"):
        run_ui(frame, cols, keys, settings.options, signature)
    result = st.session_state.get("batch_result")
    if result:
        result_ui(result, cols.label, settings.labels, result["signature"] == signature)


def batch_ui() -> None:
    """The Batch page: score the pairs of a table, or match questions against an FAQ or corpus."""
    settings = page_settings()
    st.title(t("Batch scoring"))
    jobs = {"pairs": t("Score the pairs of a table"), "match": t("Match questions against an FAQ or corpus")}
    mode = url_choice(st.radio, t("Job"), MODES, "batch_mode", jobs.get, horizontal=True)
    if mode == "match":
        match_ui(settings)
    else:
        pairs_ui(settings)


batch_ui()
