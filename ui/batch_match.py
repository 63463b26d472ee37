"""The Batch page's second job: match every question of a file against an FAQ or corpus file.

Per question and model the k best corpus texts (:class:`backend.files.match.Matcher`, the core of
``python -m backend match``), a rerank by a pair scorer on request, and, when the questions name their right answer,
each model's top-1 accuracy (:func:`backend.files.match_eval.top1_accuracy`). Widgets only: every number comes from
those two modules.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from backend.files.io import FAQ_ZH, TableError, to_csv_bytes
from backend.files.match import (
    COLUMNS,
    MATCH_CHUNK_ROWS,
    QUERY_NAMES,
    RERANK_COLUMNS,
    TEXT_NAMES,
    MatchCorpus,
    Matcher,
    pick_column,
)
from backend.files.match_eval import guess_label_columns, top1_accuracy
from ui import state
from ui.escape import plain
from ui.i18n import t, tw
from ui.sidebar import Settings
from ui.tables import format_seconds
from ui.widgets import (
    Progress,
    Upload,
    download_ui,
    load_models_ui,
    models_ui,
    short_error,
    table_ui,
    upload_ui,
    url_choice,
)

#: the committed Chinese FAQ example: 60 user questions (query, intent) and 30 FAQs (intent, text).
EXAMPLE_FILES = {"match_questions": FAQ_ZH.with_name("faq_zh_questions.csv"),
                 "match_corpus": FAQ_ZH.with_name("faq_zh_corpus.csv")}
#: session-state keys of this job (the two files and the last result).
STATE_KEYS = ("match_questions", "match_corpus", "match_result")
#: result rows drawn on the page; the download has them all (a browser table of 100,000 rows is slow to scroll).
PREVIEW_ROWS = 1000
#: top-k slider: the CLI allows any k; beyond 20 rows per question and model a page is no longer read.
K_MIN, K_MAX, K_DEFAULT = 1, 20, 5


@dataclass
class MatchColumns:
    """The columns a match reads.

    Attributes
    ----------
    query : str
        The questions' text column.
    text : str
        The corpus's text column.
    label : str or None
        The questions' column naming each one's right answer (for top-1 accuracy).
    corpus_label : str or None
        The corpus column ``label`` names (an ``intent`` in both files, or the corpus texts themselves).
    """

    query: str
    text: str
    label: str | None = None
    corpus_label: str | None = None


# ------------------------------------------------------------------------------------------------ files
def use_example() -> None:
    """Keep the Chinese FAQ example's two files in the session, as if uploaded."""
    for key, path in EXAMPLE_FILES.items():
        data = path.read_bytes()
        st.session_state[key] = Upload(path.name, data, hashlib.sha1(data).hexdigest())
    st.session_state.pop("match_result", None)


def remove_files() -> None:
    """Forget both files and the result."""
    for key in STATE_KEYS:
        st.session_state.pop(key, None)


def files_ui() -> tuple[Upload, Upload]:
    """The questions file and the corpus file (uploaded or the example); stops the page until both are there."""
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="center")
    with c1:
        questions = upload_ui("match_questions", t("Questions (CSV, TSV or TXT: one question per row)"))
    with c2:
        corpus = upload_ui("match_corpus", t("FAQ or corpus to match against (CSV, TSV or TXT)"))
    c3.button(t("Use the Chinese FAQ example"), key="match_example", on_click=use_example, width="stretch",
              help=t("60 user questions and 30 FAQs of a payment app; each question names its FAQ's intent."))
    if questions is None or corpus is None:
        st.info(t("Upload a questions file and an FAQ or corpus file, or use the Chinese FAQ example."),
                icon=":material/upload_file:")
        st.stop()
    c3.button(t("Remove the files"), key="match_remove", on_click=remove_files, width="stretch")
    return questions, corpus


# ---------------------------------------------------------------------------------------------- columns
def column_ui(frame: pd.DataFrame, names: tuple[str, ...], label: str, missing: str, key: str) -> str | None:
    """A column picker defaulting to the first of ``names`` present (or the only column); without one, no default
    and the ``missing`` message as an error until a column is chosen."""
    cols = [str(c) for c in frame.columns]
    try:
        guess: str | None = pick_column(cols, None, names, "texts", "")
    except TableError:
        guess = None
    chosen = st.selectbox(label, cols, index=cols.index(guess) if guess in cols else None, key=key,
                          placeholder=t("choose a column"))
    if chosen is None:
        st.error(missing)
    return chosen


def own_columns(frame: pd.DataFrame, query_col: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """The questions with their columns that a match adds too (``text``, ``score``...) renamed ``<name>_input``:
    the result keeps both instead of dropping the file's own."""
    taken = {*COLUMNS, *RERANK_COLUMNS}
    renamed = {c: f"{c}_input" for c in frame.columns if c != query_col and c in taken}
    return frame.rename(columns=renamed), renamed


def label_ui(questions: pd.DataFrame, corpus: pd.DataFrame, query_col: str, text_col: str,
             key: str) -> tuple[str | None, str | None]:
    """The questions' right-answer column and the corpus column it names (guessed; optional)."""
    guess_q, guess_c = guess_label_columns(questions, corpus, query_col, text_col)
    none = t("(none)")
    options = [none, *[str(c) for c in questions.columns if c != query_col]]
    c1, c2 = st.columns(2)
    label = c1.selectbox(t("Right-answer column of the questions (optional)"), options,
                         index=options.index(guess_q) if guess_q in options else 0, key=f"{key}_label",
                         help=t("Names each question's right FAQ: an intent column both files have, or the FAQ's own "
                                "text. Gives each model's top-1 accuracy."))
    if label == none:
        return None, None
    cols = [str(c) for c in corpus.columns]
    default = guess_c if label == guess_q and guess_c in cols else label if label in cols else text_col
    corpus_label = c2.selectbox(t("The corpus column it names"), cols, index=cols.index(default),
                                key=f"{key}_corpus_label")
    return label, corpus_label


def columns_ui(questions: pd.DataFrame, corpus: pd.DataFrame, q_name: str, c_name: str,
               key: str) -> tuple[MatchColumns, pd.DataFrame] | None:
    """The question and corpus text columns and the optional label pair; None (after an error) when a column is
    missing or the corpus column is empty. Also returns the questions as matched (see :func:`own_columns`)."""
    c1, c2 = st.columns(2)
    with c1:
        query = column_ui(questions, QUERY_NAMES, t("Question column"),
                          t("Which column of {name} holds the questions? None is named {names}; choose it above.",
                            name=plain(q_name), names=", ".join(QUERY_NAMES)), f"{key}_query")
    with c2:
        text = column_ui(corpus, TEXT_NAMES, t("Corpus text column"),
                         t("Which column of {name} holds the FAQ or corpus texts? None is named {names}; choose it "
                           "above.", name=plain(c_name), names=", ".join(TEXT_NAMES)), f"{key}_text")
    if query is None or text is None:
        return None
    if not (corpus[text].dropna().astype(str).str.strip() != "").any():
        st.error(t("Column {col} of {name} has no text.", col=plain(text), name=plain(c_name)))
        return None
    questions, renamed = own_columns(questions, query)
    if renamed:
        st.caption("ℹ️ " + t("Your column(s) {cols} share a name with a result column; the result keeps them as {new}.",
                             cols=", ".join(map(plain, renamed)), new=", ".join(map(plain, renamed.values()))))
    label, corpus_label = label_ui(questions, corpus, query, text, key)
    return MatchColumns(query, text, label, corpus_label), questions


def settings_ui(settings: Settings) -> tuple[list[str], int, str | None]:
    """The encoders to match with (the sidebar's), top k and the optional reranker."""
    keys = models_ui(settings, role="encoder")
    c1, c2 = st.columns(2)
    k = c1.slider(t("Top k"), K_MIN, K_MAX, K_DEFAULT, key="match_k", bind="query-params",
                  help=t("Matches per question and model."))
    scorers = state.backend().keys_with_role("pair_scorer", state.visible_keys())
    # "" is no rerank: the URL holds a model key or nothing, whatever the interface language.
    choice = url_choice(c2.selectbox, t("Rerank with"), ["", *scorers], "match_rerank",
                        lambda key: key or t("(no rerank)"),
                        help=t("A pair scorer reads each question with each of its k candidates and reorders them "
                               "(adds rerank_score and rerank_rank)."))
    return keys, int(k), str(choice) or None


# ---------------------------------------------------------------------------------------------------- run
def run_ui(questions: pd.DataFrame, cols: MatchColumns, corpus_frame: pd.DataFrame, keys: list[str], k: int,
           reranker: str | None, options: dict[str, dict[str, Any]], signature: tuple) -> None:
    """Match every question (in chunks, with a progress bar) and keep the result in the session; an error is shown
    and nothing that was chosen is lost."""
    be = state.backend()
    failed = load_models_ui([*keys, *([reranker] if reranker else [])])
    for key, err in failed.items():
        st.error(t("{key} failed: {error}", key=key, error=short_error(err)))
    keys = [x for x in keys if x not in failed]
    if not keys or reranker in failed:
        return
    corpus = MatchCorpus.from_texts(corpus_frame[cols.text].tolist())
    if not corpus.texts:  # only invisible characters: empty once cleaned
        st.error(t("Column {col} of {name} has no text.", col=plain(cols.text), name=t("the corpus")))
        return
    n = len(questions)
    bar = Progress(t("Matching…"), after=0.0)  # a click asked for it: show it from the start (models load inside)
    bar(0, 1, t("starting…"))
    t0 = time.perf_counter()
    try:
        requests = be.registry.requests(keys, options)
        rerank = be.registry.requests([reranker], options)[0] if reranker else None
        matcher = Matcher(be, corpus, requests, k, rerank)
        steps = len(requests) * (2 if rerank is not None else 1)
        starts = list(range(0, n, MATCH_CHUNK_ROWS))
        parts = []
        for c, start in enumerate(starts):
            chunk = questions.iloc[start:start + MATCH_CHUNK_ROWS]

            def progress(done: int, total: int, c: int = c, start: int = start) -> None:
                step = min(done * steps // max(total, 1), steps - 1)
                what = (t("embedding with {key} ({i} of {m})", key=matcher.routes[requests[step].name].key, i=step + 1,
                          m=len(requests)) if step < len(requests) else t("reranking with {key}", key=reranker))
                bar(c + done / max(total, 1), len(starts), t("{what} · {done} / {total} questions", what=what,
                                                             done=f"{start:,}", total=f"{n:,}"))

            parts.append(matcher.match(chunk[cols.query].tolist(), chunk.drop(columns=[cols.query]), progress))
        out = pd.concat(parts, ignore_index=True)
    except Exception as exc:  # a model or option error: said on the page, the files and choices stay
        bar.done()
        st.error(t("Matching failed: {error}", error=short_error(str(exc))))
        return
    bar.done()
    st.session_state["match_result"] = {
        "signature": signature, "frame": out, "csv": to_csv_bytes(out), "seconds": time.perf_counter() - t0,
        "questions": n, "models": [r.name for r in requests], "k": k, "reranker": reranker,
        "corpus_size": len(corpus.texts), "skipped": corpus.skipped,
        "notes": {r.name: matcher.routes[r.name].note for r in requests if matcher.routes[r.name].note},
    }


# ------------------------------------------------------------------------------------------------ result
def shown_headers(frame: pd.DataFrame, ours: Sequence[str]) -> pd.DataFrame:
    """``frame`` with the columns ``ours`` (those a match or the accuracy adds) named in the interface language; the
    download keeps their own names, and a file's own column is never renamed, nor shadowed."""
    names = {"query": t("query"), "model": t("model"), "rank": t("rank"), "text": t("text"), "score": t("score"),
             "corpus_row": t("corpus_row"), "warnings": t("warnings"), "rerank_score": t("rerank_score"),
             "rerank_rank": t("rerank_rank"), "reranked_by": t("reranked_by"), "questions": t("questions"),
             "answerable": t("answerable"), "correct": t("correct"), "unmatched": t("unmatched"),
             "top1_accuracy": t("top1_accuracy"), "top1_after_rerank": t("top1_after_rerank")}
    taken = set(map(str, frame.columns))
    return frame.rename(columns={c: n for c, n in names.items()
                                 if c in ours and c in taken and (n == c or n not in taken)})


def accuracy_ui(out: pd.DataFrame, cols: MatchColumns, corpus_frame: pd.DataFrame, reranker: str | None) -> None:
    """One sentence on the best model's top-1 accuracy (and after the rerank), the table behind it, a download."""
    assert cols.label is not None and cols.corpus_label is not None
    labels = corpus_frame[cols.corpus_label].tolist()
    acc = top1_accuracy(out, labels, cols.label, "rank")
    if acc.empty:
        st.info(t("No question has a value in {col}: no accuracy to give.", col=plain(cols.label)))
        return
    if int(acc["answerable"].max()) == 0:
        st.warning(t("None of the values of {col} occur in the corpus column {ccol}: choose the column that names the "
                     "right answer.", col=plain(cols.label), ccol=plain(cols.corpus_label)))
        return
    best = acc.iloc[0]
    sentence = t("{model} puts the right answer first for {correct} of {n} questions ({acc}), the best of {m} "
                 "model(s).", model=best["model"], correct=int(best["correct"]), n=int(best["questions"]),
                 acc=f"{best['accuracy']:.0%}", m=len(acc))
    table = acc.rename(columns={"accuracy": "top1_accuracy"})
    if reranker and "rerank_rank" in out:
        racc = top1_accuracy(out, labels, cols.label, "rerank_rank")
        rbest = racc.iloc[0]
        # The pairs are routed one by one: a Chinese pair is read by the reranker's Chinese variant.
        answered = [u for u in dict.fromkeys(out["reranked_by"]) if u and u != reranker]
        sentence += " " + t("Reranked by {reranker}, {model}'s candidates have it first for {correct} ({acc}).",
                            reranker=f"{reranker} → {', '.join(answered)}" if answered else reranker,
                            model=rbest["model"], correct=int(rbest["correct"]), acc=f"{rbest['accuracy']:.0%}")
        table = table.merge(racc[["model", "accuracy"]].rename(columns={"accuracy": "top1_after_rerank"}), on="model")
    st.subheader(t("Top-1 accuracy against {col}", col=plain(cols.label)))
    st.success(sentence, icon=":material/lightbulb:")
    unanswerable = int(acc["questions"].iloc[0] - acc["answerable"].iloc[0])
    if unanswerable:
        st.caption(t("{n} labelled question(s) name an answer the corpus does not have; they count as misses.",
                     n=unanswerable))
    fmt = st.column_config.NumberColumn(format="%.3f")
    st.dataframe(shown_headers(table, list(table.columns)), hide_index=True, width="stretch", key="match_accuracy",
                 column_config={t("top1_accuracy"): fmt, t("top1_after_rerank"): fmt})
    download_ui(table, "match_accuracy.csv", key="match_accuracy_download", label=t("Download the accuracy table"))


def result_ui(result: dict, cols: MatchColumns, corpus_frame: pd.DataFrame, current: bool) -> None:
    """Notes (routing, k above the corpus size, empty input), the accuracy verdict, the rows and the download."""
    out: pd.DataFrame = result["frame"]
    if not current:
        st.warning(t("The files, columns, models or options changed since this result was computed; match again to "
                     "update it."))
    st.subheader(t("Result: {n} rows for {q} questions and {m} model(s) in {s}", n=f"{len(out):,}",
                   q=f"{result['questions']:,}", m=len(result["models"]), s=format_seconds(result["seconds"])))
    for name, note in result["notes"].items():
        st.caption("ℹ️ " + plain(name) + ": " + plain(tw(note)))
    if result["k"] > result["corpus_size"]:
        st.info(t("Top k = {k} is more than the corpus's {n} texts: every text is returned, ranked.", k=result["k"],
                  n=f"{result['corpus_size']:,}"))
    if result["skipped"]:
        st.caption("ℹ️ " + t("{n} empty corpus text(s) skipped.", n=f"{result['skipped']:,}"))
    unmatched = int(out["rank"].isna().sum())
    if unmatched:
        st.warning(t("{n} row(s) have no match (an empty question, or nothing a model can read in it); their warnings "
                     "column says why.", n=f"{unmatched:,}"))
    if current and cols.label is not None:
        accuracy_ui(out, cols, corpus_frame, result["reranker"])
    shown = out.head(PREVIEW_ROWS).copy()
    shown["warnings"] = shown["warnings"].map(tw)
    fmt = st.column_config.NumberColumn(format="%.3f")
    st.dataframe(shown_headers(shown, [*COLUMNS, *RERANK_COLUMNS]), hide_index=True, width="stretch", key="match_preview",
                 column_config={t("score"): fmt, t("rerank_score"): fmt})
    if len(out) > PREVIEW_ROWS:
        st.caption(t("Showing the first 1,000 rows; the download has them all."))
    download_ui(out, "matches.csv", key="match_download", data=result["csv"],
                label=t("Download all {n} rows (matches, scores and why a match is missing)", n=f"{len(out):,}"))


def match_ui(settings: Settings) -> None:
    """The match job: files, columns, models, run, result."""
    st.caption(t("Each question's k closest FAQ or corpus texts per model, optionally reranked by a pair scorer; "
                 "with a right-answer column, each model's top-1 accuracy. Files of any size: "
                 "`python -m backend match QUESTIONS CORPUS OUT`."))
    q_up, c_up = files_ui()
    c1, c2 = st.columns(2)
    with c1:
        q_table = table_ui(q_up, f"match_q_{q_up.digest[:8]}")
    with c2:
        c_table = table_ui(c_up, f"match_c_{c_up.digest[:8]}")
    if q_table is None or c_table is None:
        st.stop()
    corpus_frame = c_table.frame
    picked = columns_ui(q_table.frame, corpus_frame, q_up.name, c_up.name, f"match_{q_up.digest[:8]}_{c_up.digest[:8]}")
    if picked is None:
        st.stop()
    cols, questions = picked
    keys, k, reranker = settings_ui(settings)
    options = {key: settings.options.get(key) or {} for key in [*keys, *([reranker] if reranker else [])]}
    signature = (q_up.digest, q_table.encoding, c_up.digest, c_table.encoding, cols.query, cols.text, tuple(keys), k,
                 reranker, repr(sorted(options.items())))
    if st.button(t("Match {n} questions against {c} texts with {m} model(s)", n=f"{len(questions):,}",
                   c=f"{len(corpus_frame):,}", m=len(keys)), type="primary", key="match_run"):
        run_ui(questions, cols, corpus_frame, keys, k, reranker, options, signature)
    result = st.session_state.get("match_result")
    if result:
        result_ui(result, cols, corpus_frame, result["signature"] == signature)


__all__ = ["EXAMPLE_FILES", "MatchColumns", "columns_ui", "match_ui", "result_ui", "run_ui", "settings_ui",
           "use_example"]
