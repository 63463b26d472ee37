"""One sentence a person can act on, computed from the numbers a page shows.

Every table and chart in the dashboard ends with a verdict ("On these pairs sbert agrees best with the gold
labels ..."), so nobody has to read a table to learn what it says. A :class:`Verdict` is a template and its
values: :meth:`Verdict.text` fills the English template; the dashboard translates the template first (every
template is in :data:`TEMPLATES`, and the interface's i18n test requires a translation of each).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: every verdict's wording, by id. Values are formatted with str.format; keep the placeholders in translations.
TEMPLATES: dict[str, str] = {
    "metrics_graded": "On these pairs {best} agrees best with the gold labels (Spearman {best_value:.1f}), "
                      "{gap:.1f} points ahead of {second}; {worst} is last ({worst_value:.1f}).",
    "metrics_binary": "On these pairs {best} separates similar from dissimilar pairs best (ROC-AUC {best_value:.3f}), "
                      "{gap:.3f} ahead of {second}; {worst} is last ({worst_value:.3f}).",
    "metrics_one": "{best} reaches {metric} {best_value:.3f} on these pairs.",
    "auc_inverted": "{model} ranks dissimilar pairs above similar ones (ROC-AUC {auc:.3f} < 0.5): is the label "
                    "inverted (1 = different)?",
    "probe": "On your data, layer {best_layer} with {best_pooling} pooling is best (Spearman {best_value:.1f}); "
             "bert-as-service's default, layer -2 with mean pooling, scores {default_value:.1f} and ranks "
             "{default_rank} of {cells}.",
    "probe_default_best": "On your data, bert-as-service's default (layer -2, mean pooling) is also the best cell "
                          "(Spearman {best_value:.1f}).",
    "calibration": "A {model} score of {threshold:.3f} is where a pair becomes more likely similar than not; "
                   "random pairs score above {q95:.3f} only 5% of the time.",
    "calibration_no_threshold": "{model}'s scores never make a pair more likely similar than not on these labels; "
                                "random pairs score above {q95:.3f} only 5% of the time.",
    "rerank_better": "Reranking {retriever}'s top {k} with {reranker} raises MRR@10 by {delta:.1f} points "
                     "({before:.1f} -> {after:.1f}): keep the reranker ({ms:.0f} ms per query).",
    "rerank_worse": "Reranking {retriever}'s top {k} with {reranker} lowers MRR@10 by {delta:.1f} points "
                    "({before:.1f} -> {after:.1f}): keep the retriever's order.",
    "rerank_same": "Reranking {retriever}'s top {k} with {reranker} leaves MRR@10 within 0.5 points "
                   "({before:.1f} -> {after:.1f}): it costs {ms:.0f} ms per query for nothing.",
    "retrieval_only": "{retriever} puts a relevant sentence first for {top1:.0f}% of the queries (MRR@10 {mrr:.1f}).",
    "disagreement": "The models disagree most on row {row}: {highest} ranks it higher than {high_rank:.0f}% of the "
                    "pairs, {lowest} higher than only {low_rank:.0f}%.",
    "pairs_agree": "The models agree on every pair (all scores within {spread:.2f} of each other).",
    "pairs_disagree": "The models disagree most on pair #{pair}: {high_model} gives {high:.2f}, {low_model} "
                      "{low:.2f}.",
    "overlap": "{a} and {b} return the most similar top-{k} neighbours (overlap {best:.2f}); {c} shares least with "
               "the others (mean overlap {worst:.2f}).",
    "overlap_two": "{a} and {b} share {best:.0%} of their top-{k} neighbours on average.",
    "batch_missing": "{model} could not score {n} of {total} rows: the warnings_{model} column says why.",
}


@dataclass(frozen=True)
class Verdict:
    """A sentence as a template id and its values.

    Attributes
    ----------
    id : str
        Key of :data:`TEMPLATES`.
    values : dict
        The template's fields.
    level : {"info", "warning"}
        A warning is something to fix before trusting the numbers (an inverted label).
    """

    id: str
    values: dict[str, Any] = field(default_factory=dict)
    level: str = "info"

    @property
    def template(self) -> str:
        """The English template."""
        return TEMPLATES[self.id]

    def text(self, template: str | None = None) -> str:
        """The sentence: ``template`` (a translation of :attr:`template`) or the English one, filled in."""
        return (template or self.template).format(**self.values)


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float, np.floating)) and math.isfinite(float(x))


def ranking_verdict(values: Mapping[str, float | None], metric: str) -> Verdict | None:
    """Best, runner-up and last model by a metric (Spearman x100 for graded labels, ROC-AUC for binary).

    Returns None when no model has a value.
    """
    ok = sorted(((k, float(v)) for k, v in values.items() if _finite(v)), key=lambda kv: -kv[1])
    if not ok:
        return None
    if len(ok) == 1:
        return Verdict("metrics_one", {"best": ok[0][0], "best_value": ok[0][1], "metric": metric})
    vid = "metrics_binary" if metric == "ROC-AUC" else "metrics_graded"
    return Verdict(vid, {"best": ok[0][0], "best_value": ok[0][1], "second": ok[1][0], "gap": ok[0][1] - ok[1][1],
                         "worst": ok[-1][0], "worst_value": ok[-1][1]})


def inverted_auc(values: Mapping[str, float | None]) -> list[Verdict]:
    """A warning for each model whose ROC-AUC is below 0.5 (it ranks the classes the wrong way round)."""
    return [Verdict("auc_inverted", {"model": k, "auc": float(v)}, "warning")
            for k, v in values.items() if _finite(v) and float(v) < 0.5]


def metrics_verdicts(report: Any) -> list[Verdict]:
    """Verdicts of an :class:`~backend.lab.evaluation.EvaluationReport`: the ranking, then any inverted AUC."""
    graded = report.data.kind == "graded"
    ms = {n: r.metrics for n, r in report.results.items() if r.metrics is not None}
    main = ranking_verdict({n: (m.spearman if graded else m.auc) for n, m in ms.items()},
                           "Spearman" if graded else "ROC-AUC")
    return ([main] if main else []) + inverted_auc({n: m.auc for n, m in ms.items()})


def label_metrics_verdicts(metrics: pd.DataFrame) -> list[Verdict]:
    """Verdicts of the Batch page's agreement table (``model, metric, value, pairs``)."""
    if metrics.empty:
        return []
    metric = str(metrics["metric"].iloc[0])
    values = dict(zip(metrics["model"], metrics["value"], strict=True))
    if metric == "ROC-AUC":
        main = ranking_verdict(values, "ROC-AUC")
        return ([main] if main else []) + inverted_auc(values)
    main = ranking_verdict({k: None if not _finite(v) else float(v) * 100 for k, v in values.items()}, "Spearman")
    return [main] if main else []


def probe_verdict(result: Any) -> Verdict | None:
    """Which layer and pooling is best, and where bert-as-service's default (layer -2, mean) ranks.

    Layers are named by their negative ``hidden_states`` index, as the sidebar names them.
    """
    best = result.best()
    if best is None:
        return None
    n_states = result.spearman.shape[0]
    layer, pooling, value = best
    neg = layer - n_states
    mean_col = list(result.poolings).index("mean") if "mean" in result.poolings else None
    default = float(result.spearman[n_states - 2, mean_col]) if mean_col is not None and n_states >= 2 else float("nan")
    if neg == -2 and pooling == "mean":
        return Verdict("probe_default_best", {"best_value": value})
    finite = np.sort(result.spearman[np.isfinite(result.spearman)])[::-1]
    rank = int(np.sum(finite > default)) + 1 if math.isfinite(default) else len(finite)
    return Verdict("probe", {"best_layer": neg, "best_pooling": pooling, "best_value": value,
                             "default_value": default, "default_rank": rank, "cells": len(finite)})


def calibration_verdict(model: str, threshold: float | None, background: Any) -> Verdict | None:
    """Where a score turns into "more likely similar" and what random pairs score (95th percentile)."""
    if background is None or len(background.scores) == 0:
        return None
    q95 = float(np.quantile(background.scores, 0.95))
    if threshold is None or not math.isfinite(threshold):
        return Verdict("calibration_no_threshold", {"model": model, "q95": q95})
    return Verdict("calibration", {"model": model, "threshold": float(threshold), "q95": q95})


def retrieval_verdict(result: Any, n_queries: int) -> Verdict | None:
    """Whether reranking paid, by MRR@10 (x100), with its cost per query."""
    mrr_key = next((m for m in result.metrics_before if m.startswith("mrr@")), None)
    if mrr_key is None:
        return None
    before = 100 * result.metrics_before[mrr_key]
    if not result.reranker or result.error:
        top1 = 100 * result.metrics_before.get("recall@1", float("nan"))
        return Verdict("retrieval_only", {"retriever": result.retriever, "top1": top1, "mrr": before})
    after = 100 * result.metrics_after[mrr_key]
    values = {"retriever": result.retriever, "reranker": result.reranker, "k": result.k, "before": before,
              "after": after, "delta": abs(after - before), "ms": 1000 * result.rerank_seconds / max(n_queries, 1)}
    vid = "rerank_same" if abs(after - before) < 0.5 else "rerank_better" if after > before else "rerank_worse"
    return Verdict(vid, values)


def disagreement_verdict(frame: pd.DataFrame) -> Verdict | None:
    """The pair the models disagree on most (first row of :func:`backend.lab.evaluation.disagreements`)."""
    if frame.empty:
        return None
    row = frame.iloc[0]
    hi, lo = str(row["highest"]), str(row["lowest"])
    return Verdict("disagreement", {"row": int(row["row"]), "highest": hi, "lowest": lo,
                                    "high_rank": 100 * float(row[f"rank_{hi}"]), "low_rank": 100 * float(row[f"rank_{lo}"])})


def pairs_verdict(scores: Mapping[str, np.ndarray]) -> Verdict | None:
    """Across the Compare page's pairs: where the models' scores are furthest apart (or that they agree)."""
    names = [k for k, v in scores.items() if v is not None]
    if len(names) < 2:
        return None
    m = np.column_stack([np.asarray(scores[k], dtype=np.float64) for k in names])
    ok = np.isfinite(m).sum(axis=1) >= 2
    if not ok.any():
        return None
    # rows with fewer than two scores are -inf (never the furthest apart), computed on the others only so that
    # numpy has no all-NaN row to warn about
    spread = np.full(len(m), -np.inf)
    spread[ok] = np.nanmax(m[ok], axis=1) - np.nanmin(m[ok], axis=1)
    i = int(np.argmax(spread))
    if spread[i] < 0.1:
        return Verdict("pairs_agree", {"spread": float(spread[i])})
    hi, lo = int(np.nanargmax(m[i])), int(np.nanargmin(m[i]))
    return Verdict("pairs_disagree", {"pair": i + 1, "high_model": names[hi], "high": float(m[i, hi]),
                                      "low_model": names[lo], "low": float(m[i, lo])})


def overlap_verdict(matrix: pd.DataFrame, k: int) -> Verdict | None:
    """Which two models' neighbours overlap most, and which model shares least (from the Jaccard matrix)."""
    names = list(matrix.columns)
    if len(names) < 2:
        return None
    z = matrix.to_numpy(dtype=float).copy()
    np.fill_diagonal(z, np.nan)
    i, j = np.unravel_index(np.nanargmax(z), z.shape)
    if len(names) == 2:
        return Verdict("overlap_two", {"a": names[i], "b": names[j], "best": float(z[i, j]), "k": k})
    mean = np.nanmean(z, axis=1)
    c = int(np.nanargmin(mean))
    return Verdict("overlap", {"a": names[i], "b": names[j], "best": float(z[i, j]), "c": names[c],
                               "worst": float(mean[c]), "k": k})


__all__ = ["TEMPLATES", "Verdict", "calibration_verdict", "disagreement_verdict", "inverted_auc",
           "label_metrics_verdicts", "metrics_verdicts", "overlap_verdict", "pairs_verdict", "probe_verdict",
           "ranking_verdict", "retrieval_verdict"]
