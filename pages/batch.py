"""Batch scoring: upload a table of sentence pairs, score every row with every chosen model, download the result."""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import streamlit as st

from backend.io import TableError, guess_label_column, guess_text_columns, to_csv_bytes
from ui import state
from ui.charts import metric_bars
from ui.sidebar import Settings, current_settings
from ui.tables import (
    BATCH_CHUNK_ROWS,
    LARGE_BATCH_ROWS,
    BatchProgress,
    empty_cells,
    example_pairs_frame,
    format_seconds,
    label_metrics,
    score_in_chunks,
)
from ui.widgets import (
    bert_note_ui,
    download_ui,
    ensure_loaded_ui,
    evaluate_link_ui,
    options_json,
    short_error,
)

NO_LABEL = "(none)"


def _version() -> int:
    return st.session_state.setdefault("batch_version", 0)


def set_upload(name: str, data: bytes) -> None:
    """Keep an uploaded file in the session (it survives reruns and page switches) and forget old results."""
    digest = hashlib.sha1(data).hexdigest()
    if st.session_state.get("batch_upload", ("", b"", ""))[2] == digest:
        return
    st.session_state["batch_upload"] = (name, data, digest)
    st.session_state.pop("batch_result", None)
    # New keys for the column pickers: the old file's choices do not apply to the new one.
    st.session_state["batch_version"] = _version() + 1


def _use_example() -> None:
    set_upload("example_pairs.csv", example_pairs_frame().to_csv(index=False).encode("utf-8"))


def _remove() -> None:
    for k in ("batch_upload", "batch_result"):
        st.session_state.pop(k, None)
    st.session_state["batch_version"] = _version() + 1


def upload_ui() -> tuple[str, pd.DataFrame] | None:
    """The uploader; returns ``(file name, frame)`` of the kept file, or None after saying what is wrong."""
    c1, c2 = st.columns([3, 1], vertical_alignment="center")
    up = c1.file_uploader("Table of sentence pairs (CSV, TSV or semicolon-separated; UTF-8, UTF-8 BOM or GBK)",
                          type=["csv", "tsv", "txt"], key=f"batch_file_{_version()}")
    c2.button("Use an example file", key="batch_example", on_click=_use_example, width="stretch",
              help="The 30 preset pairs with a 0/1 'same meaning' label (our own judgement).")
    if up is not None:
        set_upload(up.name, up.getvalue())
    stored = st.session_state.get("batch_upload")
    if not stored:
        st.info("Upload a table with two text columns (e.g. sentence1, sentence2), or use the example file.", icon=":material/upload_file:")
        return None
    name, data, _ = stored
    c2.button("Remove the file", key="batch_remove", on_click=_remove, width="stretch")
    try:
        table = state.read_upload(name, data)
    except TableError as exc:
        st.error(f"Cannot read {name}: {exc}")
        return None
    sep = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe", "\n": "one text per line"}.get(table.separator, table.separator)
    st.caption(f"**{name}**: {len(table.frame):,} rows × {table.frame.shape[1]} columns · {table.encoding} · {sep}")
    for note in table.notes:
        st.info(f"{name}: {note}")
    if table.frame.empty:
        st.error(f"{name} has a header but no rows.")
        return None
    if table.frame.shape[1] < 2:
        st.error(f"{name} has only one column ({table.frame.columns[0]!r}); batch scoring needs two text columns. "
                 "Is the separator right? (comma, tab and semicolon are detected)")
        return None
    return name, table.frame


def columns_ui(frame: pd.DataFrame) -> tuple[str, str, str | None] | None:
    """Pick the two text columns (guessed) and an optional gold column; None after an error message."""
    cols = list(frame.columns)
    ga, gb = guess_text_columns(frame)
    ga = ga if ga in cols else cols[0]
    gb = gb if gb in cols and gb != ga else next(c for c in cols if c != ga)
    v = _version()
    c1, c2, c3 = st.columns(3)
    a_col = c1.selectbox("Sentence A column", cols, index=cols.index(ga), key=f"batch_a_{v}")
    b_col = c2.selectbox("Sentence B column", cols, index=cols.index(gb), key=f"batch_b_{v}")
    label_opts = [NO_LABEL, *[c for c in cols if c not in (a_col, b_col)]]
    gl = guess_label_column(frame, exclude=(a_col, b_col))
    label = c3.selectbox("Gold score / label column (optional)", label_opts,
                         index=label_opts.index(gl) if gl in label_opts else 0, key=f"batch_label_{v}",
                         help="A numeric column: 0/1 gives ROC-AUC per model, graded scores give Spearman.")
    if a_col == b_col:
        st.error("Choose two different columns for sentence A and sentence B.")
        return None
    if label != NO_LABEL and pd.to_numeric(frame[label], errors="coerce").notna().mean() < 0.5:
        st.warning(f"Column {label!r} is mostly not numbers, so it cannot be a gold score; ignoring it.")
        label = NO_LABEL
    missing = empty_cells(frame, a_col, b_col)
    if missing:
        st.warning(f"{missing:,} of {len(frame):,} rows have an empty {a_col!r} or {b_col!r}; they get no score "
                   "(an empty cell in the result).")
    return a_col, b_col, (None if label == NO_LABEL else label)


def run_ui(frame: pd.DataFrame, a_col: str, b_col: str, settings: Settings, signature: tuple) -> None:
    """Score all rows (chunked, with a progress bar and a time estimate) and keep the result in the session."""
    ensure_loaded_ui(settings.keys)
    n = len(frame)
    with st.status(f"Scoring {n:,} pairs with {', '.join(settings.keys)}…", expanded=True) as status:
        bar = st.progress(0.0, text="starting…")

        def progress(p: BatchProgress) -> None:
            text = f"{p.done:,} / {p.total:,} pairs · {format_seconds(p.elapsed)} elapsed"
            if p.estimate is not None:
                text += f" · first chunk → about {format_seconds(p.estimate)} in total, {format_seconds(p.remaining)} left"
            bar.progress(p.done / max(p.total, 1), text=text)

        out, errors, seconds = score_in_chunks(state.backend(), frame, a_col, b_col, settings.keys, progress,
                                               options=settings.options)
        status.update(label=f"Scored {n:,} pairs in {format_seconds(seconds)}"
                      + (f" ({', '.join(errors)} failed)" if errors else ""),
                      state="error" if len(errors) == len(settings.keys) else "complete", expanded=False)
    st.session_state["batch_result"] = {
        "signature": signature, "frame": out, "errors": errors, "seconds": seconds, "csv": to_csv_bytes(out),
        "keys": list(settings.keys),
    }


def result_ui(result: dict[str, Any], label: str | None, settings: Settings, current: bool) -> None:
    """Errors, a preview, the download and (with a gold column) each model's agreement with it."""
    out: pd.DataFrame = result["frame"]
    keys = result["keys"]
    if not current:
        st.warning("The file, columns, models or options changed since this result was computed; score again to update it.")
    for key, err in result["errors"].items():
        st.error(f"{key} failed, its column is empty: {short_error(err)}")
    gaps = {k: int(out[f"score_{k}"].isna().sum()) for k in keys if k not in result["errors"]}
    if any(gaps.values()):
        st.caption("Rows without a score (empty text, no known words): " + ", ".join(f"{k} {v:,}" for k, v in gaps.items() if v))
    st.subheader(f"Result: {len(out):,} rows")
    config = {f"score_{k}": st.column_config.NumberColumn(settings.labels.get(k, k), format="%.3f") for k in keys}
    st.dataframe(out.head(1000), hide_index=True, width="stretch", column_config=config, key="batch_preview")
    if len(out) > 1000:
        st.caption("Showing the first 1,000 rows; the download has them all.")
    download_ui(out, "scored_pairs.csv", key="batch_download", label=f"Download all {len(out):,} rows", data=result["csv"])
    bert_note_ui(keys)
    if label and label in out:
        metrics = label_metrics(out, label, [k for k in keys if k not in result["errors"]])
        if len(metrics):
            st.subheader(f"Agreement with {label!r}")
            metrics_shown = metrics
            c1, c2 = st.columns([2, 3])
            c1.dataframe(metrics_shown, hide_index=True, width="stretch", key="batch_metrics",
                         column_config={"value": st.column_config.NumberColumn(format="%.3f")})
            with c1:
                download_ui(metrics, "batch_metrics.csv", key="batch_metrics_download", label="Download metrics")
            c2.plotly_chart(metric_bars(metrics, settings.labels), key="batch_metrics_chart")
            st.caption("ROC-AUC for a 0/1 column, Spearman ρ for graded scores. For STS-B benchmarks, significance "
                       "and layer probes, use the Evaluation lab.")
            evaluate_link_ui()


def batch_ui() -> None:
    """The Batch scoring page."""
    settings = current_settings()
    st.title("Batch scoring")
    st.caption("Adds a score_<model> column per model to every row of your file. Large files are scored in chunks.")
    got = upload_ui()
    if got is None:
        st.stop()
    name, frame = got
    picked = columns_ui(frame)
    if picked is None:
        st.stop()
    a_col, b_col, label = picked
    with st.expander(f"Preview of {name}"):
        st.dataframe(frame.head(20), hide_index=True, width="stretch", key="batch_input_preview")
    if not settings.keys:
        st.info("Choose at least one model in the sidebar.")
        st.stop()
    signature = (st.session_state["batch_upload"][2], a_col, b_col, tuple(settings.keys),
                 options_json(settings.options))
    if len(frame) > LARGE_BATCH_ROWS:
        st.info(f"{len(frame):,} rows: they are scored in chunks of {BATCH_CHUNK_ROWS:,}; the time the whole file "
                "will take is estimated from the first chunk and shown while it runs. Keep this tab open.")
    if st.button(f"Score {len(frame):,} pairs with {len(settings.keys)} model(s)", type="primary", key="batch_run"):
        run_ui(frame, a_col, b_col, settings, signature)
    result = st.session_state.get("batch_result")
    if result:
        result_ui(result, label, settings, result["signature"] == signature)


batch_ui()
