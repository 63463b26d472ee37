"""Streamlit pieces several pages share, written once: picking models and files, progress, downloads, verdicts.

Each ``*_ui`` function draws its widgets and returns what was chosen (or None after saying what is missing),
the way Streamlit's demo apps build pages; none of them computes a number the backend should.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from backend.files.io import (
    ENCODING_CHOICES,
    Table,
    TableError,
    guess_label_column,
    guess_text_columns,
    to_csv_bytes,
)
from backend.lab.verdicts import Verdict
from ui import state
from ui.escape import plain
from ui.i18n import t, tw, url_choice
from ui.sidebar import Settings
from ui.theme import swatch


# ------------------------------------------------------------------------------------------------ text
def short_error(message: str) -> str:
    """A model error without the "<key> could not be loaded:" preamble, with project paths made relative, in the
    interface language where the catalogue knows its phrases (:func:`ui.i18n.tw`)."""
    from backend.registry import PROJECT_ROOT

    msg = str(message).split(" could not be loaded: ", 1)[-1]
    return plain(tw(msg.replace(str(PROJECT_ROOT) + os.sep, "")))


#: what an empty cell reads in a table: the same in both languages (pandas would show ``<NA>``, ``nan`` or ``None``).
EMPTY = "—"


# ---------------------------------------------------------------------------------------------- models
def models_ui(settings: Settings, role: str | None = None) -> list[str]:
    """The sidebar's models that can do ``role`` ("encoder" for vectors); stops the page when none is left.

    Models left out for their role are named, with what they do instead.
    """
    be = state.backend()
    keys = list(settings.keys)
    if role is not None:
        able = set(be.keys_with_role(role, keys))
        left_out = [k for k in keys if k not in able]
        keys = [k for k in keys if k in able]
        if left_out:
            st.caption("ℹ️ " + t("Not shown here: {keys} (scores pairs only: it reads both texts together and gives no "
                                 "sentence vectors).", keys=", ".join(left_out)))
    if not keys:
        st.info(t("Choose at least one model in the sidebar") + (
            t(" that gives sentence vectors.") if role == "encoder" else "."))
        st.stop()
    return keys


def load_models_ui(keys: Sequence[str], eager: bool = False) -> dict[str, str]:
    """The models of a page that could not be loaded before (their columns show the error).

    Nothing is loaded here unless ``eager`` (the Models page, whose cards read the loaded weights): the backend
    asks its caches before the weights, so a page whose numbers are all cached loads no model at all, and one
    that needs a model loads it inside its own progress bar. ``eager`` loads the missing ones with a progress bar.

    Returns
    -------
    dict
        ``{key: error}`` for models that failed to load (the others carry on).
    """
    be = state.backend()
    failed = be.load_errors  # read once: over SIMDASH_BACKEND_URL each read asks the server
    errors = {k: str(failed[k]).strip("'\"") for k in keys if k in failed}
    todo = [k for k in keys if k not in set(be.loaded()) and k not in errors]
    if not eager or not todo:
        return errors
    bar = st.progress(0.0, text=t("Loading {keys} (first use only)…", keys=", ".join(todo)))
    for n, key in enumerate(todo):
        bar.progress(n / len(todo), text=t("Loading {key} ({n} of {total}, first use only)…", key=key, n=n + 1,
                                           total=len(todo)))
        try:
            be.load(key)
        except Exception as exc:
            errors[key] = str(exc).strip("'\"")
    bar.empty()
    return errors


def model_header_ui(keys: Sequence[str], labels: dict[str, str], errors: dict[str, str],
                    seconds: dict[str, float] | None = None) -> None:
    """One column per model: its colour, label and either its time or its error."""
    cols = st.columns(max(len(keys), 1))
    for col, key in zip(cols, keys, strict=False):
        with col:
            st.markdown(f"**{swatch(key, labels.get(key, key))}**", unsafe_allow_html=True)
            if key in errors:
                st.error(t("failed: {error}", error=short_error(errors[key])), icon=":material/error:")
            elif seconds and key in seconds:
                st.caption(f"`{key}` · {seconds[key] * 1000:.0f} ms")
            else:
                st.caption(f"`{key}`")


# -------------------------------------------------------------------------------------------- progress
class Progress:
    """A progress bar, created by the caller, that appears once work has taken longer than ``after`` seconds.

    Warm models answer in milliseconds, and a bar flashing on every rerun is noise; anything slower than half a
    second shows its progress. Call it as ``progress(done, total)`` (the backend's callback signature).
    """

    def __init__(self, text: str, after: float = 0.5) -> None:
        self.t0 = time.perf_counter()
        self.after, self.text = after, text
        self.slot = st.empty()

    def __call__(self, done: int, total: int, text: str | None = None) -> None:
        """Show ``done / total``, once the work has been going for more than ``after`` seconds."""
        if time.perf_counter() - self.t0 > self.after:
            self.slot.progress(min(max(done / max(total, 1), 0.0), 1.0), text=text or self.text)

    def done(self) -> None:
        """Remove the bar."""
        self.slot.empty()


# ---------------------------------------------------------------------------------------------- output
def download_ui(frame: pd.DataFrame, file_name: str, key: str, label: str | None = None,
                data: bytes | None = None) -> None:
    """A CSV download of ``frame`` (formula cells escaped by :func:`backend.files.io.to_csv_bytes`); no rerun on click."""
    st.download_button(
        "⬇ " + (label or t("Download CSV")), data=data if data is not None else to_csv_bytes(frame),
        file_name=file_name, mime="text/csv", key=key, on_click="ignore",
        help=t("UTF-8 with BOM so Excel shows Chinese; cells starting with = + - @ are escaped."),
    )


def verdict_ui(verdicts: Sequence[Verdict | None]) -> None:
    """Each verdict as one sentence (translated), warnings in a warning box."""
    for v in verdicts:
        if v is None:
            continue
        text = v.text(t(v.template))
        if v.level == "warning":
            st.warning(text, icon=":material/warning:")
        else:
            st.success(text, icon=":material/lightbulb:")


def text_table_ui(frame: pd.DataFrame, floats: int = 3) -> None:
    """A table whose long texts wrap instead of being cut (neighbours, disagreements, explanations).

    Numbers are shown with ``floats`` decimals; an empty cell (a missing number, a rank outside a model's top k)
    reads :data:`EMPTY`, never ``<NA>``, ``nan`` or ``None``.
    """
    def missing(v) -> bool:
        return v is None or (pd.api.types.is_scalar(v) and pd.isna(v))

    shown = frame.copy()
    for c in shown.columns:
        if pd.api.types.is_float_dtype(shown[c]):
            shown[c] = shown[c].map(lambda v: EMPTY if pd.isna(v) else f"{v:.{floats}f}")
        elif shown[c].map(missing).any():  # a column of text then: Arrow refuses numbers mixed with the mark
            shown[c] = shown[c].astype(object).map(lambda v: EMPTY if missing(v) else plain(str(v)))
        else:  # st.table renders Markdown in its cells: user text must not become links or images
            shown[c] = shown[c].map(lambda v: plain(v) if isinstance(v, str) else v)
    shown.columns = [plain(c) for c in shown.columns]
    st.table(shown.style.hide(axis="index"))


def warnings_ui(warnings: Sequence[str]) -> None:
    """A model's warnings for one text, as one caption (translated phrase by phrase)."""
    if warnings:
        st.caption("⚠️ " + "; ".join(plain(tw(w)) for w in warnings))


# ------------------------------------------------------------------------------------------------ files
@dataclass
class Upload:
    """A file kept in the session: it survives reruns and page switches."""

    name: str
    data: bytes
    digest: str


def upload_ui(key: str, label: str, types: Sequence[str] = ("csv", "tsv", "txt"), help: str | None = None) -> Upload | None:
    """A file uploader whose file is kept in ``st.session_state[key]``; returns it, or None."""
    up = st.file_uploader(label, type=list(types), key=f"{key}_file", help=help)
    if up is not None:
        data = up.getvalue()
        digest = hashlib.sha1(data).hexdigest()
        old = st.session_state.get(key)
        if old is None or old.digest != digest:
            st.session_state[key] = Upload(up.name, data, digest)
    return st.session_state.get(key)


def table_ui(upload: Upload, key: str) -> Table | None:
    """Read an uploaded table, saying how (rows, encoding, separator, notes), with an encoding picker for when
    detection guessed wrong; None after an error message."""
    auto = t("detect")
    choice = st.selectbox(t("Encoding"), [auto, *ENCODING_CHOICES], key=f"{key}_encoding",
                          help=t("Detected from the bytes; pick another if the text looks garbled."))
    try:
        table = state.read_upload(upload.name, upload.data, None if choice == auto else choice)
    except TableError as exc:
        st.error(t("Cannot read {name}: {error}", name=plain(upload.name), error=plain(tw(str(exc)))))
        return None
    sep = {"\t": t("tab"), ",": t("comma"), ";": t("semicolon"), "|": t("pipe"), "\n": t("one text per line")}
    st.caption(t("{name}: {rows} rows × {cols} columns · {encoding} · {sep}", name=plain(upload.name),
                 rows=f"{len(table.frame):,}", cols=table.frame.shape[1], encoding=table.encoding,
                 sep=sep.get(table.separator, table.separator)))
    for note in table.notes:
        st.info(f"{plain(upload.name)}: {plain(tw(note))}", icon=":material/info:")
    if table.frame.empty:
        st.error(t("{name} has a header but no rows.", name=plain(upload.name)))
        return None
    return table


@dataclass
class PairColumns:
    """The columns of a pairs table a page scores."""

    a: str
    b: str
    label: str | None


def pair_columns_ui(frame: pd.DataFrame, key: str, label_required: bool = False) -> PairColumns | None:
    """Pick the two text columns (guessed) and a gold-label column (guessed; optional unless ``label_required``)."""
    cols = list(frame.columns)
    if len(cols) < 2:
        st.error(t("The file has only one column ({col}); two text columns are needed. Is the separator right? "
                   "(comma, tab and semicolon are detected)", col=plain(cols[0]) if cols else ""))
        return None
    ga, gb = guess_text_columns(frame)
    ga = ga if ga in cols else cols[0]
    gb = gb if gb in cols and gb != ga else next(c for c in cols if c != ga)
    c1, c2, c3 = st.columns(3)
    a = c1.selectbox(t("Sentence A column"), cols, index=cols.index(ga), key=f"{key}_a")
    b = c2.selectbox(t("Sentence B column"), cols, index=cols.index(gb), key=f"{key}_b")
    none = t("(none)")
    options = [none, *[c for c in cols if c not in (a, b)]]
    gl = guess_label_column(frame, exclude=(a, b))
    label = c3.selectbox(t("Gold label column") + ("" if label_required else t(" (optional)")), options,
                         index=options.index(gl) if gl in options else 0, key=f"{key}_label",
                         help=t("A numeric column: 0/1 gives ROC-AUC per model, graded scores (e.g. 0–5) give Spearman."))
    if a == b:
        st.error(t("Choose two different columns for sentence A and sentence B."))
        return None
    if label != none and pd.to_numeric(frame[label], errors="coerce").notna().mean() < 0.5:
        st.warning(t("Column {col} is mostly not numbers, so it cannot be a gold label; ignoring it.", col=plain(label)))
        label = none
    if label == none and label_required:
        st.error(t("Choose the column that holds the gold label (a graded score such as 0–5, or 0/1)."))
        return None
    return PairColumns(a, b, None if label == none else label)


def embedded_routes_ui(corpus: Corpus, keys: list[str], options: dict) -> dict:
    """Which stored vectors answer for each selected model on an embedded corpus (its own models when none of the
    selected ones is in it), with one note saying what the file holds and how to add a model.

    Returns ``{key shown: Route}``; a route's ``key`` is the model whose stored vectors are read."""
    from backend.files.embed import corpus_keys
    from backend.routing import corpus_routes

    be = state.backend()
    try:
        held = corpus_keys(corpus.path)
    except Exception as exc:  # not an embedded corpus after all: the page's own error says why
        st.error(t("{name} cannot be read as an embedded corpus: {error}", name=plain(corpus.name),
                   error=short_error(str(exc))))
        return {}
    routes, missing = corpus_routes(be.registry, be.option_specs, held, keys, options)
    if missing or any(r.routed for r in routes.values()) or set(routes) - set(keys):
        used = ", ".join(f"{k} → {r.key}" if r.routed else k for k, r in routes.items())
        msg = t("{name} holds vectors of {held}; shown: {used}.", name=plain(corpus.name), held=", ".join(held),
                used=used)
        if missing:
            msg += " " + t("Not in the file: {missing}. To add one: `python -m backend embed CORPUS.csv "
                           "{name} --models {key}` (a new file with that model's vectors too).",
                           missing=", ".join(missing), name=plain(corpus.name), key=missing[0])
        st.info(msg)
    return routes


@dataclass
class Corpus:
    """The texts the Neighbours and Projection pages search and map.

    Attributes
    ----------
    texts : sequence of str
        A list, or an embedded corpus's texts read from its file on demand.
    labels : sequence of str or None
        A label per text (the demo corpus's topic), when a label column was chosen.
    label_name : str
    name : str
        Where it came from ("demo corpus", a file name).
    """

    texts: Sequence[str]
    labels: Sequence[str] | None
    label_name: str
    name: str
    path: Path | None = None  # an embedded corpus (python -m backend embed): vectors are read, not computed


@st.cache_resource(show_spinner=False, max_entries=4)
def _embedded_texts(path: str, mtime_ns: int):
    """One shared reader per file version (the texts stay in Arrow, read on demand)."""
    from backend.files.embed import read_corpus_texts

    return read_corpus_texts(path)


def embedded_corpus_ui() -> Corpus | None:
    """Pick an embedded corpus among the files in the corpora folder (never a typed path); its file name is kept in
    the URL (``?corpus_embedded=mine.parquet``), and a linked file that is not there is named, not dropped quietly."""
    from backend.files.embed import corpora_dir, list_embedded_corpora, read_embedding_metadata

    files = list_embedded_corpora()
    linked = st.query_params.get("corpus_embedded")
    if linked and linked not in {p.name for p in files}:
        st.warning(t("The embedded corpus {name} from the link is not in {folder}.", name=plain(linked),
                     folder=str(corpora_dir())), icon=":material/link_off:")
    if not files:
        st.info(t("No embedded corpus in {folder}. Make one with: python -m backend embed corpus.csv {folder}/mine.parquet "
                  "--models sbert,w2v (any size; --engine ray on a cluster), or set SIMDASH_CORPORA.",
                  folder=str(corpora_dir())))
        return None
    path = st.selectbox(t("Embedded corpus"), files, format_func=lambda p: p.name, key="corpus_embedded",
                        bind="query-params", persist_state="session")
    try:
        meta = read_embedding_metadata(path)
        texts, labels, label_name = _embedded_texts(str(path), path.stat().st_mtime_ns)
    except TableError as exc:
        st.error(plain(str(exc)))
        return None
    st.caption(t("{name}: {n} texts, vectors of {models}", name=plain(path.name), n=f"{len(texts):,}",
                 models=", ".join(m["name"] for m in meta["models"])))
    return Corpus(texts, labels, label_name, path.name, path)


#: the URL parameter that names the uploaded corpus file (its bytes stay in the browser session).
CORPUS_FILE_PARAM = "corpus_file"


def _demo_corpus(source: str = "demo") -> Corpus:
    demo = state.demo_corpus()
    if source != "demo":
        demo = demo[demo["lang"] == source[-2:]]
    return Corpus(demo["text"].tolist(), demo["topic"].tolist(), t("topic"), t("demo corpus"))


def corpus_ui() -> Corpus | None:
    """Pick the corpus: the bundled demo corpus (all, English or Chinese), an uploaded CSV/TXT, or an embedded file.

    The choice is kept in the URL (``?corpus_source=upload&corpus_file=mine.csv``, ``?corpus_embedded=...``). An
    upload lives only in its browser session, so a link or a reload that names a file this session does not hold
    says so and shows the demo corpus until the file is uploaded again.
    """
    demo = state.demo_corpus()
    counts = demo["lang"].value_counts()
    choices = {"demo": t("demo corpus ({n} sentences, {topics} topics, en + zh)", n=len(demo),
                         topics=demo["topic"].nunique()),
               "demo-en": t("demo corpus, English ({n})", n=int(counts.get("en", 0))),
               "demo-zh": t("demo corpus, Chinese ({n})", n=int(counts.get("zh", 0))),
               "upload": t("my own file (CSV/TSV/TXT)"),
               "embedded": t("an embedded corpus (vectors made by python -m backend embed)")}
    source = url_choice(st.radio, t("Corpus"), list(choices), "corpus_source", choices.get, horizontal=True)
    if source != "upload":
        st.query_params.pop(CORPUS_FILE_PARAM, None)
    if source == "embedded":
        return embedded_corpus_ui()
    if source.startswith("demo"):
        return _demo_corpus(source)
    up = upload_ui("corpus_upload", t("Corpus file"),
                   help=t("One text per line (.txt), or a table with a text column and optionally a label column."))
    if up is None:
        linked = st.query_params.get(CORPUS_FILE_PARAM)
        if linked:
            st.warning(t("The file {name} from the link is not in this session: upload it again; showing the demo "
                         "corpus.", name=plain(linked)), icon=":material/upload_file:")
            return _demo_corpus()
        st.info(t("Upload a file, or switch to the demo corpus."))
        return None
    st.query_params[CORPUS_FILE_PARAM] = up.name
    table = table_ui(up, "corpus")
    if table is None:
        return None
    frame = table.frame
    cols = list(frame.columns)
    guess_a, _ = guess_text_columns(frame)
    c1, c2 = st.columns(2)
    text_col = c1.selectbox(t("Text column"), cols, index=cols.index(guess_a) if guess_a in cols else 0,
                            key=f"corpus_text_{up.digest[:8]}")
    none = t("(none)")
    label_opts = [none, *[c for c in cols if c != text_col]]
    guess_l = guess_label_column(frame, exclude=(text_col,))
    label_col = c2.selectbox(t("Label column (colours, optional)"), label_opts,
                             index=label_opts.index(guess_l) if guess_l in label_opts else 0,
                             key=f"corpus_label_{up.digest[:8]}")
    texts = frame[text_col].astype(str).tolist()
    if not any(x.strip() for x in texts):
        st.error(t("Column {col} of {name} has no text.", col=plain(text_col), name=plain(up.name)))
        return None
    labels = frame[label_col].astype(str).tolist() if label_col != none else None
    return Corpus(texts, labels, label_col if labels else "", up.name)


def evaluate_link_ui() -> None:
    """A link to the Evaluation lab."""
    st.page_link("pages/evaluate.py", label=t("Open the Evaluation lab"), icon=":material/science:")
