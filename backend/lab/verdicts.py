"""One sentence a person can act on, computed from the numbers a page shows.

Every table and chart in the dashboard ends with a verdict ("On these pairs sbert agrees best with the gold
labels ..."), so nobody has to read a table to learn what it says. A :class:`Verdict` is a template and its
values: :meth:`Verdict.text` fills the English template; the dashboard translates the template first (every
template is in :data:`TEMPLATES`, and the interface's i18n test requires a translation of each).

A verdict that ranks ("X agrees best", "keep the reranker") knows its sample size. Below
:data:`MIN_RANK_PAIRS` scored pairs (:data:`MIN_RANK_QUERIES` queries) it says there are too few to rank
instead of ranking. Above, the leader is named only when its lead exceeds its uncertainty: the 95% interval of
the lead, from a seeded paired bootstrap (:func:`bootstrap_leads`: the same resampled pairs for every model)
where the per-pair scores are at hand, else from a conservative normal approximation that knows only ``n``
(:func:`normal_lead_interval`), must exclude 0. A reranker is kept only when the bootstrap interval of its
MRR gain over queries (:func:`rerank_gain_interval`) excludes 0.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: fewer scored pairs than this and no model is ranked: with 30 pairs a Spearman of 0.5 still has a 95% interval
#: of about 0.16..0.73, and an AUC's is wider than the gaps between models usually are.
MIN_RANK_PAIRS = 30
#: fewer queries than this and reranking gets no verdict: a bootstrap over a handful of queries has too few
#: distinct resamples for its interval to mean anything.
MIN_RANK_QUERIES = 10
#: resamples of every bootstrap; 1,000 puts the 2.5% and 97.5% percentiles within a few hundredths of their limit.
BOOTSTRAP_RESAMPLES = 1000
#: the bootstrap's seed: the same data give the same verdict on every rerun of a page.
BOOTSTRAP_SEED = 0
#: above this many pairs the normal approximation takes over from the bootstrap: the interval is then narrow
#: anyway, and 1,000 resamples of a huge file would make a page wait.
BOOTSTRAP_MAX_ITEMS = 10_000
#: two-sided 95% normal quantile.
_Z95 = 1.959964

#: every verdict's wording, by id. Values are formatted with str.format; keep the placeholders in translations.
TEMPLATES: dict[str, str] = {
    "metrics_graded": "On these pairs {best} agrees best with the gold labels (Spearman {best_value:.1f}), "
                      "{gap:.1f} points ahead of {second}; {worst} is last ({worst_value:.1f}).",
    "metrics_binary": "On these pairs {best} separates similar from dissimilar pairs best (ROC-AUC {best_value:.3f}), "
                      "{gap:.3f} ahead of {second}; {worst} is last ({worst_value:.3f}).",
    "metrics_one": "{best} reaches {metric} {best_value:.3f} on these pairs.",
    "metrics_too_few": "Only {n} scored pairs: too few to rank the models (a ranking needs at least {min_n}; on so "
                       "few pairs the differences between models are mostly chance).",
    "metrics_graded_tie": "On these {n} pairs {best} has the highest Spearman ({best_value:.1f}), but its lead over "
                          "{second} ({gap:.1f} points, 95% interval {lo:.1f} to {hi:.1f}) is within noise: no model "
                          "agrees clearly best with the gold labels.",
    "metrics_binary_tie": "On these {n} pairs {best} has the highest ROC-AUC ({best_value:.3f}), but its lead over "
                          "{second} ({gap:.3f}, 95% interval {lo:.3f} to {hi:.3f}) is within noise: no model "
                          "separates similar from dissimilar pairs clearly best.",
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
    "rerank_noise": "Reranking {retriever}'s top {k} with {reranker}: the reranker's gain ({change:+.1f} MRR@10 "
                    "points, {before:.1f} -> {after:.1f}) is within noise on {n} queries (95% interval {lo:+.1f} to "
                    "{hi:+.1f}); it costs {ms:.0f} ms per query.",
    "rerank_too_few": "Only {n} queries: too few to tell whether reranking {retriever}'s top {k} with {reranker} "
                      "pays (MRR@10 {before:.1f} -> {after:.1f}; a verdict needs at least {min_n} queries).",
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


# ------------------------------------------------------------------------------------------ uncertainty
def _resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """How often each of ``n`` items is drawn in each resample: array (resamples, n) of ints summing to n per row.

    Counts instead of index lists: every statistic below is a weighted one over the *original* order, so the
    items are sorted once, not once per resample.
    """
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    flat = idx + (np.arange(resamples) * n)[:, None]
    return np.bincount(flat.ravel(), minlength=resamples * n).reshape(resamples, n)


def _weighted_ranks(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties shared) of each item within each resample, as if its copies were listed.

    Parameters
    ----------
    values : np.ndarray (n,)
        Finite values.
    counts : np.ndarray (B, n)
        Copies of each item per resample (:func:`_resample_counts`).

    Returns
    -------
    np.ndarray (B, n)
        An item drawn ``c`` times occupies ``c`` consecutive ranks, tied with equal values; its rank is their
        mean (items drawn 0 times get a rank too, which their zero weight ignores).
    """
    order = np.argsort(values, kind="stable")
    v = values[order]
    n = len(v)
    # tie groups in sorted order: every item knows where its group starts and ends (the same for all resamples)
    new = np.ones(n, dtype=bool)
    new[1:] = v[1:] != v[:-1]
    start = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    last = np.ones(n, dtype=bool)
    last[:-1] = new[1:]
    end = np.minimum.accumulate(np.where(last, np.arange(n), n)[::-1])[::-1]
    cs = np.zeros((counts.shape[0], n + 1))
    np.cumsum(counts[:, order], axis=1, out=cs[:, 1:])
    before, through = cs[:, start], cs[:, end + 1]
    ranks = np.empty_like(before)
    ranks[:, order] = before + (through - before + 1) / 2
    return ranks


def _weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of ``x`` and ``y`` with weights ``w`` (NaN where a row is constant)."""
    sw = w.sum(axis=1, keepdims=True)
    dx = x - (w * x).sum(axis=1, keepdims=True) / sw
    dy = y - (w * y).sum(axis=1, keepdims=True) / sw
    vx, vy = (w * dx * dx).sum(axis=1), (w * dy * dy).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (w * dx * dy).sum(axis=1) / np.sqrt(vx * vy)
    # A constant row (every drawn pair tied) leaves only rounding in its variance; a row that is not constant has
    # a rank variance of the order of its size, far above this.
    tiny = 1e-9 * sw.ravel()
    r[(vx <= tiny) | (vy <= tiny)] = np.nan
    return r


def _resampled_metric(scores: np.ndarray, labels: np.ndarray, counts: np.ndarray, metric: str,
                      label_ranks: np.ndarray | None) -> np.ndarray:
    """The metric of each resample: Spearman x100 (graded) or ROC-AUC (binary 0/1 labels); NaN where undefined."""
    rs = _weighted_ranks(scores, counts)
    if metric == "ROC-AUC":
        pos = labels == 1
        n_pos = counts[:, pos].sum(axis=1).astype(np.float64)
        n_neg = counts.sum(axis=1) - n_pos
        # Mann-Whitney: the positives' rank sum, less the smallest it could be, over the number of pairs
        u = (counts[:, pos] * rs[:, pos]).sum(axis=1) - n_pos * (n_pos + 1) / 2
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)
    ry = label_ranks if label_ranks is not None else _weighted_ranks(labels, counts)
    return 100 * _weighted_pearson(rs, ry, counts.astype(np.float64))


_LEAD_CACHE: dict[str, dict[str, tuple[float, float]]] = {}


def bootstrap_leads(
    scores: Mapping[str, np.ndarray], labels: np.ndarray, best: str, metric: str,
    resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
) -> dict[str, tuple[float, float]]:
    """95% interval of ``best``'s lead over every other model, by a paired bootstrap over pairs.

    Every resample draws pairs with replacement and computes each model's metric on the *same* pairs, so what
    the models have in common (an easy pair is easy for all) cancels out of the lead, as it should. Pairs that
    some model could not score, or that have no label, are left out for all models.

    Parameters
    ----------
    scores : mapping
        Model -> scores (n,), NaN where not scored; must contain ``best``.
    labels : np.ndarray (n,)
        Gold labels: graded for ``"Spearman"``, 0/1 for ``"ROC-AUC"``; NaN where missing.
    best : str
        The model whose lead is measured.
    metric : {"Spearman", "ROC-AUC"}
        Spearman in points (x100), like the tables.
    resamples, seed : int

    Returns
    -------
    dict
        ``{other: (lo, hi)}``, the 2.5% and 97.5% percentiles of ``metric(best) - metric(other)``; empty when
        fewer than 2 pairs are usable. Cached by content, so a page's reruns pay once.
    """
    names = [best, *[k for k in scores if k != best]]
    y_all = np.asarray(labels, dtype=np.float64)
    m = np.column_stack([np.asarray(scores[k], dtype=np.float64) for k in names])
    ok = np.isfinite(y_all) & np.isfinite(m).all(axis=1)
    y, m = y_all[ok], m[ok]
    if len(y) < 2 or len(names) < 2:
        return {}
    h = hashlib.sha1(f"{metric}|{resamples}|{seed}|{names}".encode())
    h.update(np.ascontiguousarray(y).tobytes())
    h.update(np.ascontiguousarray(m).tobytes())
    key = h.hexdigest()
    if key in _LEAD_CACHE:
        return dict(_LEAD_CACHE[key])
    n = len(y)
    diffs: dict[str, list[np.ndarray]] = {k: [] for k in names[1:]}
    # chunks of resamples keep the (chunk x n) arrays near 16 MB whatever the file's size
    step = max(1, min(resamples, 2_000_000 // n))
    for done in range(0, resamples, step):
        counts = _resample_counts(n, min(step, resamples - done), seed + done)
        yr = None if metric == "ROC-AUC" else _weighted_ranks(y, counts)
        lead = _resampled_metric(m[:, 0], y, counts, metric, yr)
        for j, k in enumerate(names[1:], start=1):
            diffs[k].append(lead - _resampled_metric(m[:, j], y, counts, metric, yr))
    out = {}
    for k, parts in diffs.items():
        d = np.concatenate(parts)
        d = d[np.isfinite(d)]
        out[k] = (float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))) if len(d) else (-math.inf, math.inf)
    if len(_LEAD_CACHE) > 64:
        _LEAD_CACHE.clear()
    _LEAD_CACHE[key] = out
    return dict(out)


def normal_lead_interval(best_value: float, other_value: float, n_best: int, n_other: int,
                         metric: str) -> tuple[float, float]:
    """A conservative 95% interval of a lead when only each metric and its ``n`` are known.

    Spearman (in points, x100): the standard error of Fisher's z is ``sqrt(1.06 / (n - 3))`` (Fieller, Hartley &
    Pearson 1957), carried back to rho by the delta method (``(1 - rho^2) * se_z``). ROC-AUC: the largest
    variance an AUC can have given its value, ``A(1 - A) / min(n_pos, n_neg)`` (Cortes & Mohri 2004), with the
    classes taken as balanced (``n / 2`` each), which the table does not tell; an unbalanced set has a wider
    interval than this. The two models' errors are added as if independent: on the same pairs they are
    positively correlated, so the lead's true error is smaller, which is what makes the interval conservative.

    Returns
    -------
    (lo, hi)
        Infinite when an ``n`` is too small for the formula.
    """
    def se(value: float, n: int) -> float:
        if metric == "ROC-AUC":
            half = n / 2
            return math.sqrt(max(value * (1 - value), 0.0) / half) if half >= 1 else math.inf
        if n <= 3:
            return math.inf
        rho = max(-0.999, min(0.999, value / 100))
        return 100 * (1 - rho * rho) * math.sqrt(1.06 / (n - 3))

    lead = best_value - other_value
    half = _Z95 * math.hypot(se(best_value, n_best), se(other_value, n_other))
    return lead - half, lead + half


# -------------------------------------------------------------------------------------------- verdicts
def ranking_verdict(
    values: Mapping[str, float | None], metric: str, n: Mapping[str, int] | int | None = None,
    leads: Mapping[str, tuple[float, float]] | None = None, min_n: int = MIN_RANK_PAIRS,
) -> Verdict | None:
    """Best, runner-up and last model by a metric (Spearman x100 for graded labels, ROC-AUC for binary).

    Parameters
    ----------
    values : mapping
        Model -> metric; None or NaN models are left out.
    metric : {"Spearman", "ROC-AUC"}
    n : int or mapping, optional
        Scored pairs (per model, or one number for all). With it, fewer than ``min_n`` gives a "too few"
        verdict instead of a ranking, and the leader is named only when its lead over every other model
        exceeds its uncertainty. Without it nothing is known about the uncertainty and the models are ranked
        as they stand (for callers that have checked the sample size themselves).
    leads : mapping, optional
        ``{other: (lo, hi)}``, the 95% interval of the leader's lead over each other model
        (:func:`bootstrap_leads`); missing ones come from :func:`normal_lead_interval`.
    min_n : int

    Returns
    -------
    Verdict or None
        None when no model has a value. ``metrics_too_few``; ``metrics_one`` for one model;
        ``metrics_graded`` / ``metrics_binary`` when the leader is clear (its values gain ``n``, ``lo``, ``hi``:
        the interval of its lead over the runner-up); ``metrics_graded_tie`` / ``metrics_binary_tie`` naming the
        model it is not clearly ahead of.
    """
    ok = sorted(((k, float(v)) for k, v in values.items() if _finite(v)), key=lambda kv: -kv[1])
    if not ok:
        return None
    counts = None if n is None else {k: int(n if isinstance(n, int) else n.get(k, 0)) for k, _ in ok}
    if counts is not None and min(counts.values()) < min_n:
        return Verdict("metrics_too_few", {"n": min(counts.values()), "min_n": min_n, "metric": metric})
    if len(ok) == 1:
        return Verdict("metrics_one", {"best": ok[0][0], "best_value": ok[0][1], "metric": metric})
    binary = metric == "ROC-AUC"
    best, best_value = ok[0]
    values_out = {"best": best, "best_value": best_value, "second": ok[1][0], "gap": best_value - ok[1][1],
                  "worst": ok[-1][0], "worst_value": ok[-1][1]}
    if counts is None:
        return Verdict("metrics_binary" if binary else "metrics_graded", values_out)
    intervals = {}
    for k, v in ok[1:]:
        given = (leads or {}).get(k)
        intervals[k] = given if given is not None else normal_lead_interval(best_value, v, counts[best], counts[k],
                                                                              metric)
    # the model the leader is least clearly ahead of decides: "best" must beat every one of them
    weakest = min(intervals, key=lambda k: intervals[k][0])
    lo, hi = intervals[weakest]
    n_shown = min(counts.values())
    if lo > 0:
        lo2, hi2 = intervals[ok[1][0]]
        return Verdict("metrics_binary" if binary else "metrics_graded", {**values_out, "n": n_shown, "lo": lo2,
                                                                          "hi": hi2})
    return Verdict("metrics_binary_tie" if binary else "metrics_graded_tie",
                   {"best": best, "best_value": best_value, "second": weakest, "gap": best_value - float(values[weakest]),
                    "lo": lo, "hi": hi, "n": n_shown})


def inverted_auc(values: Mapping[str, float | None]) -> list[Verdict]:
    """A warning for each model whose ROC-AUC is below 0.5 (it ranks the classes the wrong way round)."""
    return [Verdict("auc_inverted", {"model": k, "auc": float(v)}, "warning")
            for k, v in values.items() if _finite(v) and float(v) < 0.5]


def _leads_from_scores(values: Mapping[str, float | None], scores: Mapping[str, np.ndarray], labels: np.ndarray,
                       metric: str, min_n: int) -> dict[str, tuple[float, float]] | None:
    """The bootstrap intervals of the leader's lead, or None when the per-pair data cannot give them (then the
    normal approximation from ``n`` decides)."""
    ok = sorted(((k, float(v)) for k, v in values.items() if _finite(v) and k in scores), key=lambda kv: -kv[1])
    if len(ok) < 2 or len(ok) < sum(_finite(v) for v in values.values()):
        return None
    y = np.asarray(labels, dtype=np.float64)
    common = np.isfinite(y) & np.all([np.isfinite(np.asarray(scores[k], dtype=np.float64)) for k, _ in ok], axis=0)
    if not min_n <= int(common.sum()) <= BOOTSTRAP_MAX_ITEMS:
        return None
    return bootstrap_leads({k: scores[k] for k, _ in ok}, y, ok[0][0], metric)


def metrics_verdicts(report: Any) -> list[Verdict]:
    """Verdicts of an :class:`~backend.lab.evaluation.EvaluationReport`: the ranking, then any inverted AUC.

    The ranking knows its sample size (see :func:`ranking_verdict`); its uncertainty comes from a paired
    bootstrap over the pairs every ranked model scored.
    """
    graded = report.data.kind == "graded"
    metric = "Spearman" if graded else "ROC-AUC"
    ms = {n: r.metrics for n, r in report.results.items() if r.metrics is not None}
    values = {n: (m.spearman if graded else m.auc) for n, m in ms.items()}
    scores = {n: r.scores for n, r in report.results.items() if r.scores is not None}
    labels = report.data.labels if graded else report.data.binary()
    leads = _leads_from_scores(values, scores, labels, metric, MIN_RANK_PAIRS)
    main = ranking_verdict(values, metric, {n: m.n for n, m in ms.items()}, leads)
    return ([main] if main else []) + inverted_auc({n: m.auc for n, m in ms.items()})


def label_metrics_verdicts(metrics: pd.DataFrame, frame: pd.DataFrame | None = None,
                           label_col: str | None = None) -> list[Verdict]:
    """Verdicts of the Batch page's agreement table (``model, metric, value, pairs``).

    Parameters
    ----------
    metrics : DataFrame
        From :func:`backend.lab.evaluation.label_metrics`.
    frame, label_col : optional
        The scored file (``score_<model>`` columns) and its gold column: with them the lead's uncertainty comes
        from a paired bootstrap over the rows, without them from the normal approximation of ``pairs``.
    """
    if metrics.empty:
        return []
    metric = str(metrics["metric"].iloc[0])
    binary = metric == "ROC-AUC"
    raw = dict(zip(metrics["model"], metrics["value"], strict=True))
    n = {str(k): int(v) for k, v in zip(metrics["model"], metrics["pairs"], strict=True)}
    values = raw if binary else {k: None if not _finite(v) else float(v) * 100 for k, v in raw.items()}
    leads = None
    if frame is not None and label_col is not None and label_col in frame:
        from backend.lab.evaluation import parse_labels

        gold, _ = parse_labels(frame[label_col].tolist())
        scores = {k: pd.to_numeric(frame[f"score_{k}"], errors="coerce").to_numpy(dtype=np.float64)
                  for k in raw if f"score_{k}" in frame}
        leads = _leads_from_scores(values, scores, gold, "ROC-AUC" if binary else "Spearman", MIN_RANK_PAIRS)
    main = ranking_verdict(values, "ROC-AUC" if binary else "Spearman", n, leads)
    return ([main] if main else []) + (inverted_auc(raw) if binary else [])


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


def _reciprocal_ranks(ranked: Sequence[Sequence[int]], relevant: Sequence[set[int]], cutoff: int) -> np.ndarray:
    """Per query: 1 / rank of the first relevant document within ``cutoff`` (0 if none), as MRR@cutoff averages."""
    return np.array([next((1.0 / (r + 1) for r, h in enumerate([h for h in hits if h >= 0][:cutoff]) if h in rel), 0.0)
                     for hits, rel in zip(ranked, relevant, strict=True)])


def rerank_gain_interval(before: np.ndarray, after: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES,
                         seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """95% bootstrap interval of the mean of ``after - before`` over queries (paired: one draw per query).

    Parameters
    ----------
    before, after : np.ndarray (n_queries,)
        Per-query reciprocal ranks without and with reranking.

    Returns
    -------
    (lo, hi)
        In the units given (fractions; x100 for MRR points).
    """
    d = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
    if len(d) == 0:
        return -math.inf, math.inf
    counts = _resample_counts(len(d), resamples, seed)
    means = counts @ d / len(d)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def retrieval_verdict(result: Any, n_queries: int, relevant: Sequence[set[int]] | None = None,
                      min_queries: int = MIN_RANK_QUERIES) -> Verdict | None:
    """Whether reranking paid, by MRR@10 (x100), with its cost per query.

    Parameters
    ----------
    result : RetrievalResult
    n_queries : int
    relevant : sequence of set of int, optional
        The task's relevant documents per query (``RetrievalTask.relevant``): with them the gain's uncertainty
        is a paired bootstrap over the queries' reciprocal ranks; without them a conservative normal bound
        (a reciprocal rank lies in [0, 1], so its standard deviation is at most ``sqrt(m (1 - m))`` for mean ``m``).
    min_queries : int
        Fewer queries give ``rerank_too_few``.

    Returns
    -------
    Verdict or None
        ``rerank_better`` (keep it) only when the gain's 95% interval is above 0, ``rerank_worse`` when below,
        ``rerank_same`` for a change under half a point, else ``rerank_noise``; ``retrieval_only`` without a
        reranker.
    """
    mrr_key = next((m for m in result.metrics_before if m.startswith("mrr@")), None)
    if mrr_key is None:
        return None
    before = 100 * result.metrics_before[mrr_key]
    if not result.reranker or result.error:
        top1 = 100 * result.metrics_before.get("recall@1", float("nan"))
        return Verdict("retrieval_only", {"retriever": result.retriever, "top1": top1, "mrr": before})
    after = 100 * result.metrics_after[mrr_key]
    values = {"retriever": result.retriever, "reranker": result.reranker, "k": result.k, "before": before,
              "after": after, "delta": abs(after - before), "change": after - before, "n": n_queries,
              "ms": 1000 * result.rerank_seconds / max(n_queries, 1)}
    if n_queries < min_queries:
        return Verdict("rerank_too_few", {**values, "min_n": min_queries})
    if relevant is not None and len(relevant) == n_queries:
        cutoff = int(mrr_key.split("@", 1)[1])
        lo, hi = rerank_gain_interval(_reciprocal_ranks(result.before, relevant, cutoff),
                                      _reciprocal_ranks(result.after, relevant, cutoff))
        lo, hi = 100 * lo, 100 * hi
    else:
        mb, ma = before / 100, after / 100
        sd = math.sqrt(max(mb * (1 - mb), 0.0)) + math.sqrt(max(ma * (1 - ma), 0.0))
        half = 100 * _Z95 * sd / math.sqrt(n_queries)
        lo, hi = after - before - half, after - before + half
    values.update(lo=lo, hi=hi)
    if abs(after - before) < 0.5:
        return Verdict("rerank_same", values)
    if lo > 0:
        return Verdict("rerank_better", values)
    if hi < 0:
        return Verdict("rerank_worse", values)
    return Verdict("rerank_noise", values)


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


__all__ = ["BOOTSTRAP_RESAMPLES", "MIN_RANK_PAIRS", "MIN_RANK_QUERIES", "TEMPLATES", "Verdict", "bootstrap_leads",
           "calibration_verdict", "disagreement_verdict", "inverted_auc", "label_metrics_verdicts", "metrics_verdicts",
           "normal_lead_interval", "overlap_verdict", "pairs_verdict", "probe_verdict", "ranking_verdict",
           "rerank_gain_interval", "retrieval_verdict"]
