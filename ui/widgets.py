"""UI pieces several pages share: model loading with progress, per-model status, downloads, the corpus picker."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from backend.io import TableError, guess_label_column, guess_text_columns, to_csv_bytes
from ui import state
from ui.sidebar import Settings, bert_note
from ui.theme import swatch

EVALUATE_PAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pages", "evaluate.py")


def ensure_loaded_ui(keys: list[str]) -> dict[str, str]:
    """Load the models a page needs, with a progress bar when any is not in memory yet.

    A model that already failed to load is retried quietly (its files may have landed since), without a
    status box on every rerun: its column shows the error.

    Returns
    -------
    dict
        ``{key: error}`` for models that failed to load (their columns show it; the others carry on).
    """
    be = state.backend()
    errors: dict[str, str] = {}
    todo = state.unloaded(keys)
    for key in [k for k in todo if k in be.load_errors]:
        try:
            be.model(key)
        except Exception as exc:
            errors[key] = str(exc).strip("'\"")
    todo = [k for k in todo if k not in be.load_errors and k not in errors]
    if not todo:
        return errors
    with st.status(f"Loading {', '.join(todo)} (first use only)…", expanded=False) as status:
        bar = st.progress(0.0)
        for n, key in enumerate(todo):
            bar.progress(n / len(todo), text=f"loading {key} ({n + 1}/{len(todo)})")
            try:
                be.model(key)
            except Exception as exc:
                errors[key] = str(exc).strip("'\"")
        bar.progress(1.0, text="done")
        failed = [k for k in todo if k in errors]
        status.update(label=f"Loaded {len(todo) - len(failed)} of {len(todo)} models"
                      + (f"; failed: {', '.join(failed)}" if failed else ""),
                      state="error" if len(failed) == len(todo) else "complete")
    return errors


def model_header_ui(settings: Settings, errors: dict[str, str], seconds: dict[str, float] | None = None) -> None:
    """One column per model: its colour, label and either its time or its error."""
    cols = st.columns(max(len(settings.keys), 1))
    for col, key in zip(cols, settings.keys, strict=False):
        with col:
            st.markdown(f"**{swatch(key, settings.labels.get(key, key))}**", unsafe_allow_html=True)
            if key in errors:
                st.error(f"failed: {short_error(errors[key])}", icon=":material/error:")
            elif seconds and key in seconds:
                st.caption(f"`{key}` · {seconds[key] * 1000:.0f} ms")
            else:
                st.caption(f"`{key}`")


def short_error(message: str) -> str:
    """A model error without the "<key> could not be loaded:" preamble and with project paths made relative."""
    from backend.registry import PROJECT_ROOT

    msg = str(message).split(" could not be loaded: ", 1)[-1]
    return msg.replace(str(PROJECT_ROOT) + os.sep, "")


def bert_note_ui(keys: list[str]) -> None:
    """Say plainly, wherever BERT is shown, that this BERT is a MiniLM backbone (the registry note)."""
    if "bert" in keys:
        note = bert_note(state.backend().registry)
        if note:
            st.caption(f"⚠️ **About BERT:** {note}")


def download_ui(frame: pd.DataFrame, file_name: str, key: str, label: str = "Download CSV",
                data: bytes | None = None) -> None:
    """A CSV download of ``frame`` (formula cells escaped by :func:`backend.io.to_csv_bytes`); no rerun on click."""
    st.download_button(
        f"⬇ {label}", data=data if data is not None else to_csv_bytes(frame), file_name=file_name,
        mime="text/csv", key=key, on_click="ignore",
        help="UTF-8 with BOM so Excel shows Chinese; cells starting with = + - @ are escaped.",
    )


def evaluate_link_ui(text: str = "Open the Evaluation lab") -> None:
    """A link to the Evaluation lab page when it exists (another engineer adds it)."""
    if os.path.exists(EVALUATE_PAGE):
        st.page_link("pages/evaluate.py", label=text, icon=":material/science:")


@dataclass
class Corpus:
    """The texts the Neighbours and Projection pages search and map.

    Attributes
    ----------
    texts : list of str
    labels : list of str or None
        A label per text (the demo corpus's topic), when a label column was chosen.
    label_name : str
    name : str
        Where it came from ("demo corpus", a file name).
    """

    texts: list[str]
    labels: list[str] | None
    label_name: str
    name: str


def corpus_ui() -> Corpus | None:
    """Pick the corpus: the bundled demo corpus, or an uploaded CSV/TXT with chosen text and label columns.

    The uploaded file is kept in ``st.session_state`` so it survives reruns and page switches. Returns None
    (after an error message) when the upload cannot be used.
    """
    source = st.radio("Corpus", ["demo", "upload"], horizontal=True, key="corpus_source", persist_state="session",
                      format_func=lambda s: {"demo": "demo corpus (420 sentences, 12 topics, en + zh)",
                                             "upload": "my own file (CSV/TSV/TXT)"}[s])
    if source == "demo":
        df = state.demo_corpus()
        return Corpus(df["text"].tolist(), df["topic"].tolist(), "topic", "demo corpus")
    up = st.file_uploader("Corpus file", type=["csv", "tsv", "txt"], key="corpus_file",
                          help="One text per line (.txt), or a table with a text column and optionally a label column.")
    if up is not None:
        data = up.getvalue()
        digest = hashlib.sha1(data).hexdigest()
        if st.session_state.get("corpus_upload", ("", b"", ""))[2] != digest:
            st.session_state["corpus_upload"] = (up.name, data, digest)
            for k in ("corpus_text_col", "corpus_label_col"):
                st.session_state.pop(k, None)
    stored = st.session_state.get("corpus_upload")
    if not stored:
        st.info("Upload a file, or switch to the demo corpus.")
        return None
    name, data, _ = stored
    try:
        table = state.read_upload(name, data)
    except TableError as exc:
        st.error(f"Cannot read {name}: {exc}")
        return None
    for note in table.notes:
        st.caption(f"ℹ️ {name}: {note}")
    frame = table.frame
    cols = list(frame.columns)
    guess_a, _ = guess_text_columns(frame)
    c1, c2 = st.columns(2)
    text_col = c1.selectbox("Text column", cols, index=cols.index(guess_a) if guess_a in cols else 0, key="corpus_text_col",
                            persist_state="session")
    label_opts = ["(none)", *[c for c in cols if c != text_col]]
    guess_l = guess_label_column(frame, exclude=(text_col,))
    label_col = c2.selectbox("Label column (colours, optional)", label_opts,
                             index=label_opts.index(guess_l) if guess_l in label_opts else 0, key="corpus_label_col",
                             persist_state="session")
    texts = frame[text_col].astype(str).tolist()
    if not any(t.strip() for t in texts):
        st.error(f"Column {text_col!r} of {name} has no text.")
        return None
    labels = frame[label_col].astype(str).tolist() if label_col != "(none)" else None
    st.caption(f"{name}: {len(texts):,} rows · encoding {table.encoding} · column {text_col!r}")
    return Corpus(texts, labels, label_col if labels else "", name)


def options_json(options: dict[str, Any] | None) -> str:
    """A stable string of a model's options (the hash key of the cached calls)."""
    import json

    return json.dumps(options or {}, sort_keys=True, default=str)


class LazyProgress:
    """A progress bar that appears only once the work has taken longer than ``after`` seconds.

    Warm models answer in milliseconds, and a bar flashing on every rerun is noise; anything slower than
    half a second shows its progress.
    """

    def __init__(self, text: str, after: float = 0.5) -> None:
        import time

        self._clock = time.perf_counter
        self.t0 = self._clock()
        self.after = after
        self.text = text
        self.slot = st.empty()

    def __call__(self, fraction: float, text: str | None = None) -> None:
        """Show ``fraction`` (0..1) done, if the work has been going for more than ``after`` seconds."""
        if self._clock() - self.t0 > self.after:
            self.slot.progress(min(max(fraction, 0.0), 1.0), text=text or self.text)

    def done(self) -> None:
        """Remove the bar."""
        self.slot.empty()
