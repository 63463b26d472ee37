"""The Recall → rerank tab: retrieve with a bi-encoder, rerank with a pair scorer, and whether it paid."""

from __future__ import annotations

import streamlit as st

from backend.jobs import BackgroundJob
from backend.lab.evaluation import LabelledPairs
from backend.lab.retrieval import build_retrieval_task, recall_rerank
from backend.lab.verdicts import retrieval_verdict
from ui import state
from ui.escape import plain
from ui.i18n import t
from ui.lab.common import glossary_ui, job_result_ui, start_job
from ui.sidebar import Settings
from ui.widgets import download_ui, text_table_ui, verdict_ui


def retrieval_tab(data: LabelledPairs, data_id: str, settings: Settings) -> None:
    """Pick a retriever (an encoder), a reranker (a pair scorer) and k; run in the background."""
    be = state.backend()
    visible = state.visible_keys()
    encoders = be.keys_with_role("encoder", visible)
    scorers = be.keys_with_role("pair_scorer", visible)
    st.caption(t("Queries: first sentences of the positive pairs; relevant: their second sentences; corpus: every "
                 "distinct second sentence. A bi-encoder retrieves the top k, a pair scorer (which reads query and "
                 "candidate together) reorders them. Metrics as sentence-transformers' InformationRetrievalEvaluator "
                 "defines them."))
    glossary_ui("recall@k", "MRR@10", "nDCG@10")
    c1, c2, c3, c4 = st.columns(4)
    retriever = c1.selectbox(t("Retriever"), encoders, index=encoders.index("sbert") if "sbert" in encoders else 0,
                             key="lab_ret_model")
    none = t("(none)")
    options = [none, *scorers]
    reranker = c2.selectbox(t("Reranker"), options, index=options.index("cross") if "cross" in options else
                            (options.index("esim") if "esim" in options else 0), key="lab_ret_rerank")
    k = c3.slider("k", 5, 100, 20, key="lab_ret_k")
    min_score = None
    if data.kind == "graded":
        lo, hi = data.label_range
        min_score = c4.number_input(t("Relevant if gold ≥"), float(lo), float(hi), lo + 0.8 * (hi - lo), key="lab_ret_min")
    try:
        task = build_retrieval_task(data, min_score)
    except ValueError as exc:
        st.error(plain(str(exc)))
        return
    st.caption(task.notes[0])
    signature = (data_id, retriever, reranker, k, min_score, repr(sorted(settings.options.items())))
    if st.button(t("Retrieve and rerank"), type="primary", key="lab_ret_run"):
        rk = None if reranker == none else reranker
        first, msg = t("retrieving with {key}", key=retriever), t("reranking query {d} / {n}")

        def fn(job: BackgroundJob):
            job.report(0.0, first)
            return recall_rerank(be, task, retriever, rk, k, settings.options.get(retriever),
                                 settings.options.get(rk) if rk else None,
                                 progress=lambda d, n: job.report(d / max(n, 1), msg.format(d=f"{d:,}", n=f"{n:,}")),
                                 should_stop=job.should_stop)

        start_job("retrieval", fn, signature)
    res = job_result_ui("retrieval", signature)
    if res is None:
        return
    if res.error:
        st.error(plain(str(res.error)))
    verdict_ui([retrieval_verdict(res, len(task.queries), relevant=task.relevant)])
    c1, c2 = st.columns(2)
    c1.metric(t("Recall ({key})", key=res.retriever), f"{res.recall_seconds:.2f} s")
    c2.metric(t("Rerank ({key})", key=res.reranker or none), f"{res.rerank_seconds:.2f} s")
    table = res.table()
    st.dataframe(table, hide_index=True, key="lab_ret_table", column_config={
        c: st.column_config.NumberColumn(format="%.3f") for c in ("before", "after", "change")})
    download_ui(table, "recall_rerank.csv", key="lab_ret_download")
    for note in res.notes[1:]:
        st.caption(f"ℹ️ {plain(note)}")
    with st.expander(t("Per query")):
        per_query = res.per_query(task)
        text_table_ui(per_query.head(50))
        download_ui(per_query, "recall_rerank_per_query.csv", key="lab_ret_download_q")
