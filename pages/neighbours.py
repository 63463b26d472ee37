"""Neighbours: each model's top-k corpus matches for a few queries, how much they agree, and a pair-scorer rerank."""

from __future__ import annotations

import re
import time

import pandas as pd
import streamlit as st

from backend.lab.retrieval import candidate_union, overlap_matrix, topk_sets
from backend.lab.verdicts import overlap_verdict
from ui import state
from ui.charts import overlap_heatmap
from ui.frame import page_settings
from ui.i18n import lang, t, tw
from ui.jobs import job_result_ui, start_job
from ui.tables import answered_label, neighbours_frame, rerank_frame
from ui.theme import swatch
from ui.widgets import (
    Corpus,
    Progress,
    corpus_ui,
    download_ui,
    embedded_routes_ui,
    load_models_ui,
    models_ui,
    plain,
    short_error,
    text_table_ui,
    verdict_ui,
    warnings_ui,
)

DEFAULT_QUERIES = "I can't log in to my account.\nWill it rain this weekend?\n我的包裹什么时候到？"


def search(queries: list[str], texts: list[str], k: int, keys: list[str], options: dict) -> tuple[dict, dict, dict]:
    """Every model's top-k (the backend caches the corpus vectors); ``(results, errors, notes)`` per model."""
    be = state.backend()
    results, errors, notes = {}, {}, {}
    bar = Progress(t("Embedding the corpus…"))
    for i, key in enumerate(keys):
        try:
            route = be.route_texts(key, [*texts, *queries], options.get(key))
            used, notes[key] = route.key, route.note
            results[key] = be.neighbours(used, queries, texts, k, route.options, progress=lambda d, n, i=i, key=key: bar(
                i * n + d, n * len(keys), t("Embedding the corpus with {key} ({i} of {n})…", key=key, i=i + 1, n=len(keys))))
        except Exception as exc:
            errors[key] = str(exc).strip("'\"")
    bar.done()
    return results, errors, notes


def search_embedded(queries: list[str], corpus: Corpus, k: int, keys: list[str],
                    options: dict) -> tuple[dict, dict, dict, list]:
    """Every model's top-k in an embedded corpus, through its search index, and the models shown (the file's own
    vectors answer: a variant's for a model it lacks, its own models when it holds none of the selected).

    An index not built yet (a large corpus, approximate) is built as a background job with progress and Cancel;
    the page shows the other models meanwhile, and no visitor waits on another's build.
    """
    be = state.backend()
    results, errors, notes, todo = {}, {}, {}, []
    routes = embedded_routes_ui(corpus, keys, options)
    options = {shown: r.options for shown, r in routes.items()}
    for shown, route in routes.items():
        key = route.key
        try:
            ec = be.open_corpus(corpus.path, key, options.get(shown))
            if be.has_index(key, ec, options.get(shown)):
                t0 = time.perf_counter()
                results[shown] = be.search(key, queries, ec, k, options.get(shown))
                notes[shown] = t("searched in {ms} ms ({n} queries, embedding them included)",
                                 ms=f"{(time.perf_counter() - t0) * 1e3:.0f}", n=len(queries))
            else:
                todo.append((key, ec))
        except Exception as exc:
            errors[shown] = str(exc).strip("'\"")
    if todo:
        name = f"nb_index_{corpus.name}"
        job = st.session_state.get(f"lab_job_{name}")
        if job is not None:
            job_result_ui(name)  # progress with Cancel while it runs; its error or "cancelled" after
        if job is None or not job.running:
            st.info(t("{keys}: {corpus} has {n} texts, above the exact-search limit; an approximate index (IVF, "
                      "recall@10 measured against exact search) is built once, saved beside the file and reused.",
                      keys=", ".join(key for key, _ in todo), corpus=plain(corpus.name), n=f"{len(corpus.texts):,}"))
            if st.button(t("Build the search index"), key="nb_build_index", type="primary"):
                message = t("Building the index of {key} ({i} of {n})…", key="{key}", i="{i}", n=len(todo))
                start_job(name, lambda job: build_indexes(job, be, todo, options, message))
                st.rerun()
    return results, errors, notes, list(routes)


def build_indexes(job, be, todo: list, options: dict, message: str) -> list:
    """The background job: each model's index in turn, reporting progress, stopping on Cancel.

    It runs outside the page's script, so it is handed the backend and its (translated) message up front."""
    infos = []
    for i, (key, ec) in enumerate(todo):
        idx = be.build_index(key, ec, options.get(key), progress=lambda d, n, i=i, key=key: job.report(
            (i + d / max(n, 1)) / len(todo), message.format(key=key, i=i + 1)), should_stop=job.should_stop)
        infos.append(idx.info)
    return infos


def notes_ui(notes: dict[str, str | None]) -> None:
    """Each routing note once, with the models it applies to: a mixed corpus gives every model the same note but
    its own name ("every text is embedded with w2v"), which then reads "with each model"."""
    def own_name(key: str) -> re.Pattern:
        return re.compile(rf"(?<![\w-]){re.escape(key)}(?![\w-])")  # w2v, not the w2v of w2v-zh

    by_note: dict[str, list[str]] = {}
    for key, note in notes.items():
        if note:
            by_note.setdefault(own_name(key).sub("\0", note), []).append(key)
    for keys in by_note.values():
        text = tw(notes[keys[0]])
        if len(keys) > 1:  # Chinese sets spaces around a key, not around words
            spaces = " ?" if lang() == "zh" else ""
            text = re.sub(f"{spaces}{own_name(keys[0]).pattern}{spaces}", t("each model"), text)
        st.caption("ℹ️ " + ", ".join(keys) + ": " + plain(text))


def model_column_ui(key: str, label: str, nb, q: int, texts: list[str], labels: list[str] | None) -> None:
    """One model's top-k for query ``q``: readable texts (they wrap), scores, and what to know.

    ``label`` names the model that answered (a language variant's label where one did: see :func:`shown_labels`)."""
    st.markdown(f"**{swatch(key, label)}**" + (f" · `{key}` → `{nb.model}`" if nb.model != key else ""),
                unsafe_allow_html=True)
    rows = [{"#": r + 1, t("score"): float(s), t("text"): texts[i], **({t("label"): labels[i]} if labels is not None else {})}
            for r, (i, s) in enumerate(zip(nb.indices[q].tolist(), nb.scores[q].tolist(), strict=True)) if i >= 0]
    if rows:
        text_table_ui(pd.DataFrame(rows))
    else:
        st.info(t("No neighbours for this query: {reason}", reason=plain(tw("; ".join(nb.warnings[q]) or t("no vector")))))
    if "pair_scorer" in state.backend().roles(nb.model):
        st.caption(t("Ranked by the cosine of its encoder vectors; rerank below for its real pair score."))
    warnings_ui(nb.warnings[q])
    if getattr(nb, "search", None) is not None:
        st.caption("🔎 " + plain(tw(nb.search.describe())))


def shown_labels(results: dict, labels: dict[str, str]) -> dict[str, str]:
    """Each asked model's name as the page shows it: the label of the model whose vectors answered."""
    reg = state.backend().registry
    known = {**labels, **{nb.model: reg[nb.model].label for nb in results.values() if nb.model in reg}}
    return {key: answered_label(key, [nb.model], known) for key, nb in results.items()}


def rerank_display(frame: pd.DataFrame, keys: list[str], has_labels: bool) -> pd.DataFrame:
    """The rerank table as a person reads it: headers in the interface language, no empty label column."""
    out = frame.drop(columns=["query", "corpus_row", *([] if has_labels else ["label"])])
    names = {"rerank": t("rerank"), "text": t("text"), "label": t("label"), "rerank_score": t("rerank score")}
    names |= {f"rank_{k}": t("rank {key}", key=k) for k in keys}
    return out.rename(columns=names)


def neighbours_ui() -> None:
    """The Neighbours page."""
    settings = page_settings()
    be = state.backend()
    st.title(t("Neighbours"))
    st.caption(t("Each model's nearest corpus sentences for your queries (exact cosine search), side by side."))
    corpus = corpus_ui()
    if corpus is None:
        st.stop()
    c1, c2 = st.columns([3, 1])
    text = c1.text_area(t("Queries, one per line"), DEFAULT_QUERIES, key="nb_queries", bind="query-params", height=110)
    k = c2.slider(t("Top k"), 1, 25, 5, key="nb_k", bind="query-params")
    scorers = be.keys_with_role("pair_scorer", state.visible_keys())
    none = t("(no rerank)")
    reranker = c2.selectbox(t("Rerank the union with"), [none, *scorers], key="nb_reranker", bind="query-params",
                            help=t("Collect every model's top k and let a pair scorer, which reads query and candidate "
                                   "together, reorder them."))
    queries = [q.strip() for q in text.splitlines() if q.strip()]
    keys = models_ui(settings, role="encoder")
    if not queries:
        st.info(t("Type a query (one per line) to see each model's nearest sentences."), icon=":material/edit_note:")
        st.stop()
    errors = load_models_ui(keys)
    ok = [x for x in keys if x not in errors]
    if corpus.path is None:
        results, search_errors, notes = search(queries, corpus.texts, k, ok, settings.options)
    else:
        results, search_errors, notes, keys = search_embedded(queries, corpus, k, ok, settings.options)
    errors |= search_errors
    sets = {key: topk_sets(nb.indices) for key, nb in results.items()}
    overlap = overlap_matrix(sets) if len(results) >= 2 else None
    if overlap is not None:
        verdict_ui([overlap_verdict(overlap, k)])
    notes_ui(notes)
    names = shown_labels(results, settings.labels)
    reranked = []
    for q, tab in enumerate(st.tabs([f"{q + 1}. {plain(x, 40)}" for q, x in enumerate(queries)])):
        with tab:
            grid = st.columns(min(2, len(keys)))
            for j, key in enumerate(keys):
                with grid[j % len(grid)]:
                    if key in errors:
                        st.error(t("{key} failed: {error}", key=key, error=short_error(errors[key])))
                        continue
                    if key not in results:
                        st.caption(t("{key}: waiting for its search index.", key=key))
                        continue
                    model_column_ui(key, names[key], results[key], q, corpus.texts, corpus.labels)
            if reranker != none and results:
                cands = candidate_union(results, q)
                r = be.rerank(reranker, queries[q], [corpus.texts[i] for i in cands], settings.options.get(reranker))
                if r.error:
                    st.error(t("Rerank with {key} failed: {error}", key=reranker, error=short_error(r.error)))
                    continue
                frame = rerank_frame(queries[q], cands, corpus.texts, corpus.labels, r.scores, results, q)
                answered = [u for u in dict.fromkeys(r.used) if u != reranker]  # a Chinese query: esim-zh
                st.markdown(t("**Union of {n} candidates reranked by {key}** (rank … = each model's own rank; "
                              "— = not in its top k)", n=len(cands),
                              key=f"{reranker} → {', '.join(answered)}" if answered else reranker))
                text_table_ui(rerank_display(frame, list(results), corpus.labels is not None))
                reranked.append(frame)
    if results:
        download_ui(neighbours_frame(queries, corpus.texts, corpus.labels, results), "neighbours.csv",
                    key="nb_download", label=t("Download all neighbours"))
    if reranked:
        download_ui(pd.concat(reranked), "neighbours_reranked.csv", key="nb_download_rerank",
                    label=t("Download the rerank"))
    if overlap is not None:
        st.plotly_chart(overlap_heatmap(overlap, names, k, tr=t), key="nb_overlap")
        st.caption(t("1.00 = two models return the same top-k set; 0 = nothing in common."))
        download_ui(overlap.reset_index(names="model"), "neighbour_overlap.csv", key="nb_download_overlap",
                    label=t("Download the overlap matrix"))


neighbours_ui()
