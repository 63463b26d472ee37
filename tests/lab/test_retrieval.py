"""Recall -> rerank: metrics equal sentence-transformers' evaluator, a perfect reranker scores 1 after reranking."""

from __future__ import annotations

import numpy as np
import pytest

from backend.lab.evaluation import LabelledPairs, StopRequested
from backend.lab.retrieval import (
    RetrievalTask,
    build_retrieval_task,
    ir_metrics,
    jaccard,
    overlap_matrix,
    recall_rerank,
    topk_sets,
)
from backend.results import ModelResult, Neighbours


def graded_pairs() -> LabelledPairs:
    """Three queries with 1, 2 and 1 relevant documents, plus distractors (our own sentences)."""
    rows = [
        ("how do I bake bread", "a simple bread recipe", 4.6),
        ("how do I bake bread", "baking a loaf at home", 4.2),
        ("how do I bake bread", "the history of wheat", 2.0),
        ("where is the station", "directions to the train station", 4.8),
        ("where is the station", "the station closes at midnight", 3.0),
        ("is it going to rain", "tomorrow's weather forecast", 4.0),
        ("is it going to rain", "", 5.0),  # empty text: ignored
        ("what time is it", "a watch repair shop", 1.0),  # no positive pair: not a query
    ]
    a, b, y = zip(*rows, strict=True)
    return LabelledPairs(list(a), list(b), np.array(y), "graded", (0.0, 5.0))


def test_build_task_from_graded_pairs():
    t = build_retrieval_task(graded_pairs())
    assert t.queries == ["how do I bake bread", "where is the station", "is it going to rain"]
    assert len(t.corpus) == 7  # distinct non-empty second sentences, distractors included
    assert [{t.corpus[j] for j in r} for r in t.relevant] == [
        {"a simple bread recipe", "baking a loaf at home"}, {"directions to the train station"},
        {"tomorrow's weather forecast"},
    ]
    assert len(build_retrieval_task(graded_pairs(), min_score=4.5).queries) == 2


def test_build_task_from_binary_pairs_and_no_positive():
    d = LabelledPairs(["q1", "q2", "q3"], ["d1", "d2", "d3"], np.array([1.0, 0.0, 1.0]), "binary", (0.0, 1.0))
    t = build_retrieval_task(d)
    assert t.queries == ["q1", "q3"] and [t.corpus[next(iter(r))] for r in t.relevant] == ["d1", "d3"]
    d.labels[:] = 0
    with pytest.raises(ValueError, match="no positive pair"):
        build_retrieval_task(d)


def test_ir_metrics_equal_sentence_transformers_information_retrieval_evaluator():
    from sentence_transformers.evaluation import InformationRetrievalEvaluator

    rng = np.random.default_rng(0)
    n_docs, n_q = 40, 25
    relevant = [set(rng.choice(n_docs, size=rng.integers(1, 13), replace=False).tolist()) for _ in range(n_q)]
    ranked = [rng.permutation(n_docs)[:20].tolist() for _ in range(n_q)]
    ours = ir_metrics(ranked, relevant, recall_at=(1, 5, 10), mrr_at=10, ndcg_at=10)
    ev = InformationRetrievalEvaluator(
        {i: f"q{i}" for i in range(n_q)}, {j: f"d{j}" for j in range(n_docs)}, dict(enumerate(relevant)),
        mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[1], precision_recall_at_k=[1, 5, 10], map_at_k=[10],
    )
    # strictly decreasing scores keep our order through its (-score, corpus_id) sort
    results = [[{"corpus_id": c, "score": 1.0 - r / 100} for r, c in enumerate(hits)] for hits in ranked]
    theirs = ev.compute_metrics(results)
    for k in (1, 5, 10):
        assert ours[f"recall@{k}"] == pytest.approx(theirs["recall@k"][k])
    assert ours["mrr@10"] == pytest.approx(theirs["mrr@k"][10])
    assert ours["ndcg@10"] == pytest.approx(theirs["ndcg@k"][10])


def test_ir_metrics_by_hand():
    m = ir_metrics([[5, 1, -1], [2, 3, 4]], [{1}, {9, 4}], recall_at=(1, 3), mrr_at=10, ndcg_at=3)
    assert m["recall@1"] == 0 and m["recall@3"] == pytest.approx((1 + 0.5) / 2)
    assert m["mrr@10"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    idcg2 = 1 + 1 / np.log2(3)
    assert m["ndcg@3"] == pytest.approx(((1 / np.log2(3)) / 1 + (1 / np.log2(4)) / idcg2) / 2)


class FakeBackend:
    """Retrieves every relevant document but ranks it *last* of k; reranks with an oracle (or fails)."""

    def __init__(self, task: RetrievalTask, fail: bool = False) -> None:
        self.task, self.fail = task, fail
        self.reranked = 0

    def neighbours(self, key, queries, corpus, k=10, options=None, progress=None, exclude_self=False):
        rows = []
        for q in queries:
            rel = self.task.relevant[self.task.queries.index(q)]
            others = [j for j in range(len(corpus)) if j not in rel]
            row = (others[: k - len(rel)] + sorted(rel))[:k]
            rows.append(row + [-1] * (k - len(row)))
        idx = np.array(rows)
        return Neighbours(idx, np.zeros(idx.shape, dtype=np.float32), [[] for _ in queries], [], key)

    def rerank(self, key, query, candidates, options=None):
        self.reranked += 1
        if self.fail:
            return ModelResult(key, None, error="esim could not be loaded: model files not found")
        rel = {self.task.corpus[j] for j in self.task.relevant[self.task.queries.index(query)]}
        # perfect scorer; an unscorable candidate (NaN) must sink to the bottom
        s = [1.0 if c in rel else (np.nan if i == 0 else 0.0) for i, c in enumerate(candidates)]
        return ModelResult(key, np.array(s, dtype=np.float32), [[] for _ in candidates], [key] * len(candidates))


def test_perfect_reranker_gives_recall_and_mrr_of_one():
    task = build_retrieval_task(graded_pairs())
    be = FakeBackend(task)
    seen = []
    res = recall_rerank(be, task, "sbert", "esim", k=5, recall_at=(1, 5), progress=lambda d, t: seen.append(d))
    assert res.metrics_after["recall@5"] == 1.0 and res.metrics_after["mrr@10"] == 1.0
    assert res.metrics_after["ndcg@10"] == pytest.approx(1.0)
    # before: the relevant documents were at the bottom of the top 5
    assert res.metrics_before["recall@5"] == 1.0 and res.metrics_before["mrr@10"] < 0.5
    assert res.metrics_after["recall@1"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert seen == [1, 2, 3] and be.reranked == 3
    assert res.recall_seconds >= 0 and res.rerank_seconds >= 0
    t = res.table().set_index("metric")
    assert t.at["mrr@10", "change"] > 0
    pq = res.per_query(task)
    assert pq["rank_after"].tolist() == [1, 1, 1]


def test_retrieval_only_and_failures():
    task = build_retrieval_task(graded_pairs())
    res = recall_rerank(FakeBackend(task), task, "sbert", None, k=3)
    assert res.after == res.before and res.rerank_seconds == 0
    failed = recall_rerank(FakeBackend(task, fail=True), task, "sbert", "esim", k=3)
    assert "model files not found" in failed.error and failed.after == failed.before
    assert failed.metrics_after == failed.metrics_before
    with pytest.raises(StopRequested):
        recall_rerank(FakeBackend(task), task, "sbert", "esim", k=3, should_stop=lambda: True)
    with pytest.raises(ValueError):
        recall_rerank(FakeBackend(task), task, k=0)


@pytest.mark.slow
def test_real_retriever_with_oracle_reranker(backend):
    """Backend.neighbours for real (sbert on our sentences), the ESIM stage replaced by an oracle."""
    task = build_retrieval_task(graded_pairs())

    class OracleRerank:
        def neighbours(self, *args, **kwargs):
            return backend.neighbours(*args, **kwargs)

        def rerank(self, key, query, candidates, options=None):
            rel = {task.corpus[j] for j in task.relevant[task.queries.index(query)]}
            s = np.array([float(c in rel) for c in candidates], dtype=np.float32)
            return ModelResult(key, s, [[] for _ in candidates], [key] * len(candidates))

    res = recall_rerank(OracleRerank(), task, "sbert", "oracle", k=7)
    assert res.error is None
    assert res.metrics_before["recall@5"] > 0.5  # sbert finds these paraphrases
    assert res.metrics_after["mrr@10"] == 1.0 and res.metrics_after["recall@10"] == 1.0


def test_jaccard_and_overlap_matrix():
    assert jaccard({1, 2}, {2, 3}) == pytest.approx(1 / 3)
    assert jaccard(set(), set()) == 1.0
    m = overlap_matrix({"a": [{1, 2}, {5}], "b": [{1, 2}, {6}], "c": [{3, 4}, {5}]})
    assert m.loc["a", "b"] == pytest.approx(0.5)  # identical on query 1, disjoint on query 2
    assert m.loc["a", "c"] == pytest.approx(0.5)
    assert m.loc["b", "c"] == 0.0
    assert np.allclose(m.to_numpy(), m.to_numpy().T) and (np.diag(m) == 1).all()


def test_topk_sets_drop_padding():
    assert topk_sets(np.array([[3, 1, -1], [-1, -1, -1]])) == [{1, 3}, set()]
