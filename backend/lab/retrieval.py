"""Recall -> rerank: a bi-encoder retrieves the top k, a cross-encoder (ESIM) reorders them.

This is the classic two-stage search (the sentence-transformers "retrieve & re-rank" recipe): a bi-encoder
embeds the corpus once and finds candidates with one matrix product (:meth:`Backend.neighbours`); a
cross-encoder, which reads query and candidate *together*, is too slow for the whole corpus but affordable
for k candidates per query (:meth:`Backend.rerank`). The report says what each stage costs and gains.

The retrieval task is built from labelled pairs (:func:`build_retrieval_task`): the queries are the first
sentences of the *positive* pairs (graded label >= ``min_score``, 4 on a 0–5 scale; or binary label 1), a
query's relevant documents are the second sentences it is paired with positively, and the corpus is every
distinct second sentence in the file (the others act as distractors).

Metrics follow sentence-transformers' ``InformationRetrievalEvaluator`` exactly (binary relevance):

* recall@k = |relevant in top k| / |relevant|, averaged over queries;
* MRR@k = 1 / rank of the first relevant document within the top k (0 if none), averaged;
* nDCG@k = DCG@k / IDCG@k with DCG = sum of rel_i / log2(i + 1) over ranks i = 1..k, and the ideal DCG
  of ``|relevant|`` ones (so a query with 12 relevant documents cannot reach 1 at k = 10 unless all
  top-10 are relevant).

Reranking only reorders the k retrieved candidates: recall@k at k equal to the retrieval depth cannot
change; recall at smaller cut-offs, MRR and nDCG can.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backend.base import ProgressFn
from backend.jobs import StopRequested
from backend.lab.evaluation import LabelledPairs
from backend.text import clean_text


@dataclass
class RetrievalTask:
    """Queries, a corpus and which corpus rows are relevant to each query.

    Attributes
    ----------
    queries : list of str
    corpus : list of str
    relevant : list of set of int
        ``relevant[i]`` = corpus indices relevant to ``queries[i]`` (never empty).
    notes : list of str
    """

    queries: list[str]
    corpus: list[str]
    relevant: list[set[int]]
    notes: list[str] = field(default_factory=list)


def build_retrieval_task(data: LabelledPairs, min_score: float | None = None) -> RetrievalTask:
    """Turn labelled pairs into a retrieval task (see the module docstring).

    Parameters
    ----------
    data : LabelledPairs
    min_score : float, optional
        Graded labels at or above this make a pair relevant; default 80% up the label range (4 on 0–5).

    Raises
    ------
    ValueError
        No positive pair to make a query from.
    """
    lo, hi = data.label_range
    y = np.asarray(data.labels, dtype=np.float64)
    if data.kind == "binary":
        positive = y == 1
        rule = "label = 1"
    else:
        cut = lo + 0.8 * (hi - lo) if min_score is None else float(min_score)
        positive = np.isfinite(y) & (y >= cut)
        rule = f"label >= {cut:g}"
    a = [clean_text(t) for t in data.a]
    b = [clean_text(t) for t in data.b]
    corpus = list(dict.fromkeys(t for t in b if t))
    pos = {t: i for i, t in enumerate(corpus)}
    rel: dict[str, set[int]] = {}
    for i in np.flatnonzero(positive):
        if a[i] and b[i]:
            rel.setdefault(a[i], set()).add(pos[b[i]])
    if not rel:
        raise ValueError(f"no positive pair ({rule}) with two texts: nothing to retrieve")
    queries = list(rel)
    notes = [f"{len(queries)} queries (first sentences of pairs with {rule}), corpus of {len(corpus)} distinct "
             "second sentences"]
    return RetrievalTask(queries, corpus, [rel[q] for q in queries], notes)


def _dcg(relevances: Sequence[int], k: int) -> float:
    return float(sum(r / np.log2(i + 2) for i, r in enumerate(relevances[:k])))


def ir_metrics(
    ranked: Sequence[Sequence[int]], relevant: Sequence[set[int]], recall_at: Sequence[int] = (1, 5, 10),
    mrr_at: int = 10, ndcg_at: int = 10,
) -> dict[str, float]:
    """recall@k, MRR@k and nDCG@k as sentence-transformers' ``InformationRetrievalEvaluator`` computes them.

    Parameters
    ----------
    ranked : sequence of sequence of int
        Corpus indices per query, best first (``-1`` padding is ignored).
    relevant : sequence of set of int
        Relevant corpus indices per query (non-empty).

    Returns
    -------
    dict
        ``{"recall@1": ..., "recall@5": ..., "recall@10": ..., "mrr@10": ..., "ndcg@10": ...}`` in [0, 1].
    """
    if len(ranked) != len(relevant):
        raise ValueError(f"{len(ranked)} rankings for {len(relevant)} queries")
    if not ranked:
        raise ValueError("no queries")
    recalls = {k: [] for k in recall_at}
    mrr, ndcg = [], []
    for hits, rel in zip(ranked, relevant, strict=True):
        hits = [int(h) for h in hits if h >= 0]
        for k in recall_at:
            recalls[k].append(sum(h in rel for h in hits[:k]) / len(rel))
        mrr.append(next((1.0 / (r + 1) for r, h in enumerate(hits[:mrr_at]) if h in rel), 0.0))
        ndcg.append(_dcg([int(h in rel) for h in hits], ndcg_at) / _dcg([1] * len(rel), ndcg_at))
    out = {f"recall@{k}": float(np.mean(v)) for k, v in recalls.items()}
    out[f"mrr@{mrr_at}"] = float(np.mean(mrr))
    out[f"ndcg@{ndcg_at}"] = float(np.mean(ndcg))
    return out


@dataclass
class RetrievalResult:
    """Both stages' rankings, metrics and timings.

    Attributes
    ----------
    retriever, reranker : str
    k : int
        Candidates retrieved (and reranked) per query.
    before, after : list of list of int
        Corpus indices per query, best first, from the retriever / after reranking.
    metrics_before, metrics_after : dict
    recall_seconds, rerank_seconds : float
        Wall time of each stage (the retriever's includes embedding the corpus unless cached).
    notes : list of str
    error : str or None
        The reranker's error when it failed; ``after`` is then the retriever's order (metrics unchanged).
    """

    retriever: str
    reranker: str | None
    k: int
    before: list[list[int]]
    after: list[list[int]]
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    recall_seconds: float
    rerank_seconds: float
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def table(self) -> pd.DataFrame:
        """``metric, before, after, change`` rows, plus the two timings."""
        rows = [{"metric": m, "before": v, "after": self.metrics_after.get(m), "change": self.metrics_after.get(m, v) - v}
                for m, v in self.metrics_before.items()]
        return pd.DataFrame(rows, columns=["metric", "before", "after", "change"])

    def per_query(self, task: RetrievalTask) -> pd.DataFrame:
        """Per query: rank (1-based) of the first relevant document before and after reranking (None = missed)."""
        def first(hits: list[int], rel: set[int]) -> int | None:
            return next((r + 1 for r, h in enumerate(hits) if h in rel), None)

        rows = [{"query": q, "relevant": len(rel), "rank_before": first(bf, rel), "rank_after": first(af, rel),
                 "top_after": task.corpus[af[0]] if af else ""}
                for q, rel, bf, af in zip(task.queries, task.relevant, self.before, self.after, strict=True)]
        return pd.DataFrame(rows)


def _rerank_order(candidates: list[int], scores: np.ndarray) -> list[int]:
    """Candidates by descending score; unscored (NaN) ones last; ties keep retrieval order."""
    s = np.asarray(scores, dtype=np.float64)
    key = np.where(np.isfinite(s), -s, np.inf)
    return [candidates[i] for i in np.argsort(key, kind="stable")]


def recall_rerank(
    be, task: RetrievalTask, retriever: str = "sbert", reranker: str | None = "esim", k: int = 20,
    retriever_options: dict[str, Any] | None = None, reranker_options: dict[str, Any] | None = None,
    recall_at: Sequence[int] = (1, 5, 10), progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RetrievalResult:
    """Retrieve the top ``k`` with a bi-encoder, rerank them with a pair scorer, and measure both.

    Parameters
    ----------
    be : Backend
        Anything with ``neighbours(key, queries, corpus, k, options)`` and ``rerank(key, query, candidates,
        options)``.
    task : RetrievalTask
    retriever : str
        A model that produces vectors (sbert, bert, w2v; ESIM's encoder vector works too).
    reranker : str or None
        A pair scorer (ESIM); None measures retrieval only.
    k : int
        Candidates per query.
    progress : callable, optional
        ``progress(done, total)`` over queries during reranking.
    should_stop : callable, optional
        Checked between queries; raises :class:`~backend.jobs.StopRequested`.

    A reranker that fails (e.g. its files are missing) does not lose the retrieval: the result keeps the
    retriever's order as ``after`` and says why in ``error``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, not {k}")
    t0 = time.perf_counter()
    notes = list(task.notes)
    # The one routing rule (backend.routing): the corpus and its queries go to one model by their dominant
    # language (sbert -> sbert-zh on Chinese data), and the result names it.
    if hasattr(be, "route_texts"):
        route = be.route_texts(retriever, [*task.corpus, *task.queries], retriever_options)
        if route.note:
            notes.append(f"retriever {retriever}: {route.note}")
        retriever, retriever_options = route.key, route.options
    nb = be.neighbours(retriever, task.queries, task.corpus, k=k, options=retriever_options)
    recall_s = time.perf_counter() - t0
    before = [[int(j) for j in row if j >= 0] for row in nb.indices]
    if max(recall_at) > k:
        notes.append(f"recall@{max(recall_at)} is limited by retrieving only {k} candidates")
    after = before
    rerank_s = 0.0
    error = None
    if reranker:
        after = []
        t1 = time.perf_counter()
        for i, (q, cands) in enumerate(zip(task.queries, before, strict=True)):
            if should_stop and should_stop():
                raise StopRequested("reranking stopped")
            if cands:
                r = be.rerank(reranker, q, [task.corpus[j] for j in cands], reranker_options)
                if r.error:
                    error = f"{reranker} failed, the retriever's order is kept: {r.error}"
                    after = before
                    break
                after.append(_rerank_order(cands, r.scores))
            else:
                after.append([])
            if progress:
                progress(i + 1, len(task.queries))
        rerank_s = time.perf_counter() - t1
        if error is None and hasattr(be, "route_pair") and task.queries:
            # Pairs are routed one by one (Chinese on either side -> the zh variant): name what read them.
            used = be.route_pair(reranker, task.queries[0], task.corpus[before[0][0]] if before[0] else "",
                                 reranker_options).key
            if used != reranker:
                notes.append(f"reranker {reranker}: scored by {used} (the {be.registry[used].language} variant of "
                             f"{reranker})")
                reranker = used
        if error is None:
            notes.append(f"reranking reorders the top {k} only: recall@{k} cannot change")
    return RetrievalResult(
        retriever, reranker, k, before, after, ir_metrics(before, task.relevant, recall_at),
        ir_metrics(after, task.relevant, recall_at), recall_s, rerank_s, notes, error,
    )


def topk_sets(indices: np.ndarray) -> list[set[int]]:
    """The set of corpus rows in each query's top-k (padding ``-1`` dropped)."""
    return [{int(i) for i in row if i >= 0} for row in np.atleast_2d(indices)]

def jaccard(x: set[int], y: set[int]) -> float:
    """|x ∩ y| / |x ∪ y|; two empty sets count as identical (1.0)."""
    union = x | y
    return 1.0 if not union else len(x & y) / len(union)

def overlap_matrix(sets: Mapping[str, list[set[int]]]) -> pd.DataFrame:
    """Mean Jaccard overlap of the top-k sets between every two models, averaged over queries.

    Parameters
    ----------
    sets : mapping
        ``{model: [top-k set of query 0, query 1, ...]}``; every list has the same length.

    Returns
    -------
    pandas.DataFrame
        Square, symmetric, models on both axes, ones on the diagonal.
    """
    keys = list(sets)
    m = np.ones((len(keys), len(keys)))
    for i, ki in enumerate(keys):
        for j, kj in enumerate(keys):
            if j <= i:
                continue
            vals = [jaccard(x, y) for x, y in zip(sets[ki], sets[kj], strict=True)]
            m[i, j] = m[j, i] = float(np.mean(vals)) if vals else float("nan")
    return pd.DataFrame(m, index=keys, columns=keys)

def candidate_union(results: Mapping[str, Any], q: int) -> list[int]:
    """Corpus rows in any model's top-k for query ``q``, in first-seen order (best ranks first)."""
    seen: dict[int, None] = {}
    ranks = [nb.indices[q].tolist() for nb in results.values()]
    for r in range(max((len(x) for x in ranks), default=0)):
        for lst in ranks:
            if r < len(lst) and lst[r] >= 0:
                seen.setdefault(int(lst[r]), None)
    return list(seen)


__all__ = ["RetrievalResult", "RetrievalTask", "build_retrieval_task", "candidate_union", "ir_metrics", "jaccard",
           "overlap_matrix", "recall_rerank", "topk_sets"]
