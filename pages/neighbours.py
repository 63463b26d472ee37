"""Neighbours: each model's top-k corpus matches for a few queries, how much the models agree, and an ESIM rerank."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ui import state
from ui.charts import overlap_heatmap
from ui.sidebar import Settings, current_settings
from ui.tables import candidate_union, neighbours_frame, overlap_matrix, rerank_frame, topk_sets
from ui.widgets import (
    Corpus,
    LazyProgress,
    bert_note_ui,
    corpus_ui,
    download_ui,
    ensure_loaded_ui,
    model_header_ui,
    options_json,
    short_error,
)

DEFAULT_QUERIES = "I can't log in to my account.\nWill it rain this weekend?\n我的包裹什么时候到？"
RERANKER = "esim"


def search(queries: list[str], corpus: Corpus, k: int, settings: Settings) -> tuple[dict, dict[str, str]]:
    """Top-k per model (cached); returns ``(results, errors)`` with a failed model in ``errors`` only."""
    results, errors = {}, {}
    n = len(settings.keys)
    bar = LazyProgress("Embedding the corpus…")
    for i, key in enumerate(settings.keys):
        opts = settings.options.get(key)
        try:
            results[key] = state.neighbours(
                key, tuple(queries), tuple(corpus.texts), k, options_json(opts), _options=opts,
                _progress=lambda d, t, i=i, key=key: bar((i + d / max(t, 1)) / n, f"Embedding the corpus with {key} ({i + 1}/{n})…"),
            )
        except Exception as exc:
            errors[key] = str(exc).strip("'\"")
    bar.done()
    return results, errors


def rerank_ui(queries: list[str], q: int, corpus: Corpus, results: dict) -> pd.DataFrame | None:
    """ESIM's scores for the union of every model's candidates of query ``q`` (reads each pair together)."""
    cands = candidate_union(results, q)
    r = state.backend().rerank(RERANKER, queries[q], [corpus.texts[i] for i in cands])
    if r.error:
        st.error(f"Rerank with {RERANKER} failed: {r.error}")
        return None
    frame = rerank_frame(queries[q], cands, corpus.texts, corpus.labels, r.scores, results, q)
    st.markdown(f"**Union of {len(cands)} candidates reranked by {RERANKER}** (rank_* = each model's own rank)")
    st.dataframe(frame.drop(columns=["query", "corpus_row"]), hide_index=True, width="stretch",
                 column_config={"rerank_score": st.column_config.NumberColumn("ESIM score", format="%.3f")},
                 key=f"nb_rerank_{q}")
    return frame


def neighbours_ui() -> None:
    """The Neighbours page."""
    settings = current_settings()
    st.title("Neighbours")
    st.caption("Each model's nearest corpus sentences for your queries (exact cosine search), side by side.")
    corpus = corpus_ui()
    if corpus is None:
        st.stop()
    c1, c2 = st.columns([3, 1])
    text = c1.text_area("Queries, one per line", DEFAULT_QUERIES, key="nb_queries", bind="query-params", height=110)
    k = c2.slider("Top k", 1, 25, 5, key="nb_k", bind="query-params")
    rerank = c2.toggle(f"Rerank the union with {RERANKER.upper()}", key="nb_rerank", bind="query-params",
                       disabled=RERANKER not in state.backend().registry,
                       help="Collect every model's top-k and let ESIM, which reads query and candidate together, reorder them.")
    queries = [q.strip() for q in text.splitlines() if q.strip()]
    if not settings.keys:
        st.info("Choose at least one model in the sidebar.")
        st.stop()
    if not queries:
        st.info("Type a query (one per line) to see each model's nearest sentences.", icon=":material/edit_note:")
        st.stop()
    ensure_loaded_ui(settings.keys)
    results, errors = search(queries, corpus, k, settings)
    model_header_ui(settings, errors)
    reranked = []
    for q, tab in enumerate(st.tabs([f"{q + 1}. {t[:40]}" for q, t in enumerate(queries)])):
        with tab:
            for col, key in zip(st.columns(len(settings.keys)), settings.keys, strict=True):
                with col:
                    if key in errors:
                        st.error(f"{key} failed: {short_error(errors[key])}")
                        continue
                    one = neighbours_frame([queries[q]], corpus.texts, corpus.labels,
                                           {key: _one(results[key], q)})
                    shown = ["rank", "score", "text"] + (["label"] if corpus.labels else [])
                    st.dataframe(one[shown], hide_index=True, width="stretch", key=f"nb_top_{q}_{key}",
                                 column_config={"score": st.column_config.NumberColumn(format="%.3f", width=55),
                                                "rank": st.column_config.NumberColumn("#", width=30),
                                                "text": st.column_config.TextColumn(width="large")})
                    if state.backend().registry[key].family == "esim":
                        st.caption("ESIM ranks here by the cosine of its encoder vectors; turn on the rerank for its "
                                   "real pair score.")
                    warns = results[key].warnings[q]
                    if warns:
                        st.caption("⚠️ " + "; ".join(warns))
            if rerank and results:
                frame = rerank_ui(queries, q, corpus, results)
                if frame is not None:
                    reranked.append(frame)
    bert_note_ui(settings.keys)
    if results:
        download_ui(neighbours_frame(queries, corpus.texts, corpus.labels, results), "neighbours.csv",
                    key="nb_download", label="Download all neighbours")
    if reranked:
        download_ui(pd.concat(reranked), "neighbours_reranked.csv", key="nb_download_rerank", label="Download the ESIM rerank")
    if len(results) >= 2:
        sets = {key: topk_sets(nb.indices) for key, nb in results.items()}
        st.plotly_chart(overlap_heatmap(overlap_matrix(sets), settings.labels, k), key="nb_overlap")
        st.caption("1.00 = two models return the same top-k set; 0 = nothing in common.")


def _one(nb, q: int):
    """A Neighbours view holding only query ``q`` (so neighbours_frame can build one model's column)."""
    from backend.service import Neighbours

    return Neighbours(nb.indices[q : q + 1], nb.scores[q : q + 1], nb.warnings[q : q + 1], nb.corpus_warnings, nb.model)


neighbours_ui()
