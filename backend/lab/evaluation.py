"""Labelled evaluation: how well each model's scores agree with gold similarity labels.

A labelled file holds sentence pairs and a gold label per pair, either **graded** (STS-B style, e.g. 0–5) or
**binary** (0/1, paraphrase / duplicate). :func:`load_labelled_pairs` reads it and decides which;
:func:`evaluate` scores every pair with each model (chunk by chunk, with progress) and
:func:`compute_metrics` turns scores and labels into numbers:

graded labels
    Spearman and Pearson correlation x 100 (SentEval / Sentence-BERT convention: cosine score vs gold).
    ROC-AUC, average precision and the F1-optimal threshold are *also* computed, by binarising the gold
    label at the midpoint of its range (``label >= (lo + hi) / 2`` is "similar": 2.5 on a 0–5 scale), so a
    graded set still yields a usable decision threshold (the calibration tab builds on it).
binary labels
    ROC-AUC, average precision, the F1-optimal threshold with its F1 and accuracy. Spearman and Pearson
    are left ``None``: against a two-valued label they reduce to (a rescaling of) AUC and point-biserial
    correlation, which are less readable than AUC itself.

Scale: correlations are x 100 (the way papers print them); AUC, average precision, F1 and accuracy are
fractions in [0, 1]; the threshold is in the model's own score units (cosine for encoders). A metric that
is undefined (constant scores or labels, fewer than two scored pairs, one class only) is ``None`` with a
note saying why, never NaN.

The module also holds the disagreement explorer (:func:`disagreements`: pairs whose *ranks* differ most
between models) and the Sentence-BERT-paper-style table (:func:`paper_table`).
"""

from __future__ import annotations

import io
import math
import warnings as _warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from backend.base import ProgressFn
from backend.files.io import (
    FAQ_ZH,
    TableError,
    guess_label_column,
    load_demo_corpus,
    read_table,
    require_columns,
    resolve_pair_columns,
)
from backend.jobs import StopRequested
from backend.options import defaults as option_defaults
from backend.registry import ModelRequest
from backend.text import clean_text

LabelKind = Literal["graded", "binary"]

#: fewer scored pairs than this give a warning: a correlation over 9 points has a confidence interval
#: wider than the differences between models.
MIN_ROWS = 10
#: rows scored per call in :func:`evaluate`; small enough for a smooth progress bar, large enough that
#: batching inside the models stays efficient.
CHUNK = 2048
#: spreadsheet words accepted as binary labels.
_BOOL_WORDS = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0, "y": 1.0, "n": 0.0}


# ------------------------------------------------------------------------------------------- data
@dataclass
class LabelledPairs:
    """Sentence pairs with gold labels.

    Attributes
    ----------
    a, b : list of str
        Aligned texts.
    labels : np.ndarray (n,) float64
        Gold labels; NaN where empty, non-numeric or outside the declared range.
    kind : {"graded", "binary"}
    label_range : tuple of float
        ``(lo, hi)``: declared by the caller or inferred (0–1, 0–5, else the data's min/max).
    columns : tuple of str
        ``(a_col, b_col, label_col)`` as read.
    notes : list of str
        What the user should know (inferred range, dropped labels, few rows).
    """

    a: list[str]
    b: list[str]
    labels: np.ndarray
    kind: LabelKind
    label_range: tuple[float, float]
    columns: tuple[str, str, str] = ("sentence1", "sentence2", "score")
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.a)

    @property
    def midpoint(self) -> float:
        """Where a graded label is cut into similar / not similar."""
        return (self.label_range[0] + self.label_range[1]) / 2

    def binary(self) -> np.ndarray:
        """Labels as 0/1 floats (NaN kept): graded labels are cut at :attr:`midpoint`."""
        return binarise(self.labels, self.kind, self.label_range)

    def head(self, n: int) -> LabelledPairs:
        """The first ``n`` pairs (same kind and range)."""
        return LabelledPairs(self.a[:n], self.b[:n], self.labels[:n], self.kind, self.label_range, self.columns,
                             list(self.notes))

    def frame(self) -> pd.DataFrame:
        """``sentence1, sentence2, label`` as a DataFrame (named after the original columns)."""
        return pd.DataFrame({self.columns[0]: self.a, self.columns[1]: self.b, self.columns[2]: self.labels})


def binarise(labels: np.ndarray, kind: LabelKind, label_range: tuple[float, float]) -> np.ndarray:
    """0/1 labels (NaN kept); a graded label is "similar" when ``>= (lo + hi) / 2``."""
    y = np.asarray(labels, dtype=np.float64)
    if kind == "binary":
        return y.copy()
    mid = (label_range[0] + label_range[1]) / 2
    return np.where(np.isnan(y), np.nan, (y >= mid).astype(np.float64))


def parse_labels(values: Sequence[Any]) -> tuple[np.ndarray, int]:
    """Numbers from a label column: numeric strings, and true/false/yes/no; returns ``(labels, n_bad)``.

    ``n_bad`` counts non-empty cells that are not labels (they become NaN).
    """
    s = pd.Series(list(values), dtype=object)
    text = s.map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip())
    num = pd.to_numeric(text.replace("", np.nan), errors="coerce")
    words = text.str.lower().map(_BOOL_WORDS)
    out = num.fillna(words).astype(np.float64).to_numpy(copy=True)
    out[~np.isfinite(out)] = np.nan
    n_bad = int(((text != "") & np.isnan(out)).sum())
    return out, n_bad


def infer_label_kind(labels: np.ndarray) -> tuple[LabelKind, tuple[float, float], list[str]]:
    """Decide graded vs binary and the label range from the labels themselves.

    Binary when every label is 0 or 1. Otherwise graded, on 0–1 or 0–5 when the labels fit (the common
    scales), else on the data's own min–max (with a note: the midpoint cut then depends on the sample).
    """
    y = np.asarray(labels, dtype=np.float64)
    y = y[np.isfinite(y)]
    if y.size == 0:
        return "graded", (0.0, 5.0), ["no usable labels"]
    uniq = np.unique(y)
    if set(uniq.tolist()) <= {0.0, 1.0}:
        return "binary", (0.0, 1.0), []
    lo, hi = float(uniq[0]), float(uniq[-1])
    if lo >= 0 and hi <= 1:
        return "graded", (0.0, 1.0), []
    if lo >= 0 and hi <= 5:
        return "graded", (0.0, 5.0), []
    return "graded", (lo, hi), [f"label range inferred from the data as {lo:g}–{hi:g}; declare it if that is wrong"]


def labelled_from_frame(
    frame: pd.DataFrame, a_col: str | None = None, b_col: str | None = None, label_col: str | None = None,
    label_range: tuple[float, float] | None = None, kind: LabelKind | None = None,
) -> LabelledPairs:
    """Build :class:`LabelledPairs` from a table, guessing columns that are not given.

    Parameters
    ----------
    frame : DataFrame
    a_col, b_col, label_col : str, optional
        Column names; guessed when None (``sentence1``/``sentence2``, a numeric ``score``/``label``...).
    label_range : (lo, hi), optional
        Declared label range; labels outside it are dropped (NaN) with a note. Inferred when None.
    kind : {"graded", "binary"}, optional
        Force the label kind (else inferred).

    Raises
    ------
    TableError
        Text or label columns missing; the message names what is needed and the file's columns.
    """
    a_col, b_col = resolve_pair_columns(frame, a_col, b_col)
    if label_col:
        require_columns(frame, label_col)
    else:
        label_col = guess_label_column(frame, exclude=(a_col, b_col))
    if not label_col:
        raise TableError(
            "no label column found: evaluation needs a numeric gold label per pair (a graded score such as 0–5, "
            "or a binary 0/1 label), in a column named score, label, gold or similarity, or named with "
            f"--label-col; the file has: {', '.join(map(repr, frame.columns))}"
        )
    labels, n_bad = parse_labels(frame[label_col].tolist())
    notes = []
    if n_bad:
        notes.append(f"{n_bad} label(s) in {label_col!r} are not numbers; those pairs are skipped")
    inferred_kind, inferred_range, more = infer_label_kind(labels)
    notes += more
    if label_range is not None:
        lo, hi = float(label_range[0]), float(label_range[1])
        if not lo < hi:
            raise ValueError(f"label range must have lo < hi, not {lo:g}–{hi:g}")
        outside = np.isfinite(labels) & ((labels < lo) | (labels > hi))
        if outside.any():
            notes.append(
                f"{int(outside.sum())} label(s) outside the declared range {lo:g}–{hi:g} were ignored "
                f"(e.g. {labels[outside][0]:g}); those pairs are skipped"
            )
            labels = np.where(outside, np.nan, labels)
        rng = (lo, hi)
        inferred_kind, _, _ = infer_label_kind(labels)
    else:
        rng = inferred_range
    kind = kind or inferred_kind
    if kind == "binary":
        rng = (0.0, 1.0)
        bad = np.isfinite(labels) & ~np.isin(labels, (0.0, 1.0))
        if bad.any():
            raise ValueError(f"binary labels must be 0 or 1; {int(bad.sum())} are not (e.g. {labels[bad][0]:g})")
    n_ok = int(np.isfinite(labels).sum())
    if n_ok < MIN_ROWS:
        notes.append(f"only {n_ok} labelled pair(s): metrics over fewer than {MIN_ROWS} pairs are very noisy")
    a = [clean_text(t) for t in frame[a_col].tolist()]
    b = [clean_text(t) for t in frame[b_col].tolist()]
    return LabelledPairs(a, b, labels, kind, rng, (a_col, b_col, label_col), notes)


def load_labelled_pairs(
    source: str | Path | bytes | io.IOBase, a_col: str | None = None, b_col: str | None = None,
    label_col: str | None = None, label_range: tuple[float, float] | None = None, kind: LabelKind | None = None,
    max_rows: int | None = None, encoding: str | None = None,
) -> LabelledPairs:
    """Read a labelled pairs file (CSV/TSV, any encoding :func:`backend.files.io.read_table` accepts).

    See :func:`labelled_from_frame` for the parameters; ``max_rows`` stops after that many rows; ``encoding``
    overrides detection.
    """
    table = read_table(source, max_rows=max_rows, encoding=encoding)
    data = labelled_from_frame(table.frame, a_col, b_col, label_col, label_range, kind)
    data.notes = table.notes + data.notes
    return data


def demo_labelled_pairs(n: int = 200, seed: int = 0, lang: str = "en") -> LabelledPairs:
    """A small binary labelled set from the demo corpus (our own writing): same topic = 1, else 0.

    Half the pairs share a topic. Topic agreement is a coarse notion of similarity, so the numbers it
    gives are for trying the tools, not for comparing models seriously.
    """
    corpus = load_demo_corpus(lang)
    rng = np.random.default_rng(seed)
    by_topic = {t: g.index.to_numpy() for t, g in corpus.groupby("topic")}
    topics = list(by_topic)
    a, b, y = [], [], []
    for i in range(n):
        if i % 2 == 0:
            t = topics[rng.integers(len(topics))]
            x, z = rng.choice(by_topic[t], size=2, replace=False)
            label = 1.0
        else:
            t1, t2 = rng.choice(len(topics), size=2, replace=False)
            x, z = rng.choice(by_topic[topics[t1]]), rng.choice(by_topic[topics[t2]])
            label = 0.0
        a.append(corpus.at[int(x), "text"])
        b.append(corpus.at[int(z), "text"])
        y.append(label)
    return LabelledPairs(a, b, np.array(y), "binary", (0.0, 1.0), ("sentence1", "sentence2", "label"),
                         ["demo set: same topic = 1, different topic = 0 (demo corpus, our own writing)"])


def load_faq_zh() -> LabelledPairs:
    """The bundled Chinese FAQ-matching set (our own writing): 1 = same intent, 0 = different intent.

    Customer-service questions over twelve topics (returns, logistics, payments, credit, accounts,
    membership, repairs, invoices, coupons, bank cards, telecom, travel), half of them same-intent pairs.
    A third of the different-intent pairs are hard negatives: same topic, a character Jaccard of at least
    0.5, another intent (开通 / 关闭免密支付); about half of the same-intent pairs are paraphrases with a
    character Jaccard under 0.2. The ``topic`` column is not part of the result (read the CSV for it).
    """
    frame = pd.read_csv(FAQ_ZH, dtype=str, keep_default_na=False)
    data = labelled_from_frame(frame, "sentence1", "sentence2", "label", kind="binary")
    data.notes.append("Chinese FAQ set: 1 = same intent, 0 = different intent (our own writing)")
    return data


# ----------------------------------------------------------------------------------------- metrics
@dataclass
class PairMetrics:
    """Agreement of one model's scores with the gold labels.

    Attributes
    ----------
    n : int
        Pairs with both a score and a label.
    skipped : int
        Pairs without a score (empty text, all words unknown) or without a usable label.
    spearman, pearson : float or None
        x 100.
    auc, average_precision, best_f1, accuracy : float or None
        Fractions in [0, 1] (graded labels: binarised at the range midpoint).
    threshold : float or None
        Score at or above which a pair is called similar, chosen to maximise F1.
    notes : list of str
        Why a metric is undefined, small-sample warnings.
    """

    n: int
    skipped: int
    spearman: float | None = None
    pearson: float | None = None
    auc: float | None = None
    average_precision: float | None = None
    best_f1: float | None = None
    threshold: float | None = None
    accuracy: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The CLI contract: ``n, spearman, pearson, auc, best_f1, threshold, skipped`` (rounded) and ``notes``
        (why a metric is null)."""
        return {
            "n": int(self.n),
            "spearman": _round(self.spearman, 4),
            "pearson": _round(self.pearson, 4),
            "auc": _round(self.auc, 6),
            "best_f1": _round(self.best_f1, 6),
            "threshold": _round(self.threshold, 6),
            "skipped": int(self.skipped),
            "notes": list(self.notes),
        }


def _round(x: float | None, nd: int) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


def _finite_or_none(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def f1_optimal_threshold(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float, float]:
    """The threshold that maximises F1 when pairs with ``score >= threshold`` are called similar.

    Parameters
    ----------
    scores : np.ndarray (n,)
        Finite scores.
    positive : np.ndarray (n,)
        0/1 gold labels, both classes present.

    Returns
    -------
    (threshold, f1, accuracy)
        Ties in F1 go to the highest threshold (the most conservative rule with that F1).
    """
    from sklearn.metrics import precision_recall_curve

    y = np.asarray(positive).astype(int)
    s = np.asarray(scores, dtype=np.float64)
    precision, recall, thresholds = precision_recall_curve(y, s)
    # The last (precision=1, recall=0) point has no threshold.
    p, r = precision[:-1], recall[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    best = np.flatnonzero(f1 == f1.max())
    i = int(best[np.argmax(thresholds[best])])
    thr = float(thresholds[i])
    acc = float(np.mean((s >= thr).astype(int) == y))
    return thr, float(f1[i]), acc


def compute_metrics(
    scores: np.ndarray, labels: np.ndarray, kind: LabelKind, label_range: tuple[float, float] = (0.0, 5.0)
) -> PairMetrics:
    """Metrics of one model's scores against gold labels (see the module docstring for definitions).

    Parameters
    ----------
    scores : np.ndarray (n,)
        NaN where the model gave no score.
    labels : np.ndarray (n,)
        NaN where there is no usable label.
    kind : {"graded", "binary"}
    label_range : (lo, hi)
        For graded labels, where to binarise (the midpoint).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    s_all = np.asarray(scores, dtype=np.float64)
    y_all = np.asarray(labels, dtype=np.float64)
    if s_all.shape != y_all.shape:
        raise ValueError(f"scores and labels differ in length ({s_all.shape} vs {y_all.shape})")
    ok = np.isfinite(s_all) & np.isfinite(y_all)
    n = int(ok.sum())
    m = PairMetrics(n=n, skipped=int(len(s_all) - n))
    if m.skipped:
        m.notes.append(f"{m.skipped} of {len(s_all)} pairs skipped (no score: empty text or no known words; or no label)")
    if n < 2:
        m.notes.append(f"{n} scored pair(s): no metric is defined")
        return m
    if n < MIN_ROWS:
        m.notes.append(f"only {n} scored pairs: metrics are very noisy")
    s, y = s_all[ok], y_all[ok]
    const_s = bool(np.ptp(s) == 0)
    if const_s:
        m.notes.append("every pair got the same score: correlations undefined, AUC is 0.5 by construction")
    if kind == "graded":
        if np.ptp(y) == 0:
            m.notes.append("every gold label is the same: correlations undefined")
        elif not const_s:
            with _warnings.catch_warnings():
                _warnings.simplefilter("ignore")
                m.spearman = _finite_or_none(stats.spearmanr(s, y).statistic * 100)
                m.pearson = _finite_or_none(stats.pearsonr(s, y).statistic * 100)
    yb = binarise(y, kind, label_range).astype(int)
    if yb.min() == yb.max():
        which = "similar" if yb[0] == 1 else "not similar"
        cut = "" if kind == "binary" else f" (graded labels cut at {(label_range[0] + label_range[1]) / 2:g})"
        m.notes.append(f"every pair is {which}{cut}: AUC, average precision and F1 undefined")
        return m
    m.auc = float(roc_auc_score(yb, s))
    m.average_precision = float(average_precision_score(yb, s))
    m.threshold, m.best_f1, m.accuracy = f1_optimal_threshold(s, yb)
    return m


# -------------------------------------------------------------------------------------- evaluation
@dataclass
class ModelEvaluation:
    """One model's scores and metrics on a labelled set.

    Attributes
    ----------
    name : str
        How the model was asked for (``"bert"``, ``"bert:pooling=cls"``).
    key : str
        Registry key.
    options : dict
        Runtime options given on top of the registry's.
    family, source, label : str
        From the registry (the paper table matches on them).
    scores : np.ndarray (n,) or None
        None when the model failed.
    metrics : PairMetrics or None
    error : str or None
    seconds : float
    """

    name: str
    key: str
    options: dict[str, Any]
    family: str
    source: str
    label: str
    scores: np.ndarray | None
    metrics: PairMetrics | None
    error: str | None = None
    seconds: float = 0.0
    effective_options: dict[str, Any] = field(default_factory=dict)
    language: str = "en"


@dataclass
class EvaluationReport:
    """Every model's evaluation on one labelled set."""

    data: LabelledPairs
    results: dict[str, ModelEvaluation]

    def as_json(self) -> dict[str, dict[str, Any]]:
        """``{"<name>": {"n", "spearman", "pearson", "auc", "best_f1", "threshold", "skipped", "notes"}}``.

        A model that failed has ``n = 0``, every metric null, every pair skipped and its error in ``notes``.
        """
        out = {}
        for name, r in self.results.items():
            if r.metrics is None:
                out[name] = PairMetrics(n=0, skipped=len(self.data), notes=[f"error: {r.error}"]).as_json()
            else:
                out[name] = r.metrics.as_json()
        return out

    def table(self) -> pd.DataFrame:
        """One row per model: every metric, seconds and error, for display."""
        rows = []
        for name, r in self.results.items():
            m = r.metrics
            rows.append({
                "model": name,
                "n": m.n if m else 0,
                "skipped": m.skipped if m else len(self.data),
                "spearman": m.spearman if m else None,
                "pearson": m.pearson if m else None,
                "auc": m.auc if m else None,
                "avg_precision": m.average_precision if m else None,
                "best_f1": m.best_f1 if m else None,
                "threshold": m.threshold if m else None,
                "accuracy": m.accuracy if m else None,
                "seconds": round(r.seconds, 2),
                "notes": "; ".join(([f"error: {r.error}"] if r.error else []) + (m.notes if m else [])),
            })
        return pd.DataFrame(rows)

    def scores(self) -> dict[str, np.ndarray]:
        """Scores per model that did not fail."""
        return {n: r.scores for n, r in self.results.items() if r.scores is not None}


def evaluate(
    be, data: LabelledPairs, models: Sequence[str | ModelRequest] | None = None,
    progress: ProgressFn | None = None, chunk: int = CHUNK, should_stop: Callable[[], bool] | None = None,
) -> EvaluationReport:
    """Score every pair with each model (:meth:`backend.serving.Backend.similarity`) and compute the metrics.

    Parameters
    ----------
    be : Backend
    data : LabelledPairs
    models : sequence, optional
        Registry keys, or :class:`~backend.registry.ModelRequest` objects from
        :meth:`~backend.registry.Registry.parse_models` (``bert:pooling=cls``); default: the registry's defaults.
    progress : callable, optional
        ``progress(done, total)`` in pairs over all models.
    chunk : int
        Pairs per scoring call (the progress granularity; big files never go to a model in one piece).
    should_stop : callable, optional
        Checked between chunks; raises :class:`~backend.jobs.StopRequested` when it returns True.

    Returns
    -------
    EvaluationReport
        A model that fails has ``error`` set; the others are unaffected.
    """
    requests = be.registry.requests(models or None)
    scored = be.similarity(data.a, data.b, requests, progress=progress, should_stop=should_stop, chunk=chunk)
    results: dict[str, ModelEvaluation] = {}
    for r in requests:
        spec = be.registry[r.key]
        res = scored[r.name]
        # Family defaults first, so the paper table sees e.g. w2v's weighting even when the registry leaves it out.
        try:
            family_defaults = option_defaults(be.option_specs(r.key))
        except ValueError:  # the family file is missing: the model's error below says so
            family_defaults = {}
        effective = {**family_defaults, **spec.options, **r.options}
        if res.error is not None or res.scores is None:
            results[r.name] = ModelEvaluation(r.name, r.key, r.options, spec.family, spec.source, spec.label, None, None,
                                              res.error, res.seconds, effective, spec.language)
            continue
        col = res.scores.astype(np.float64)
        metrics = compute_metrics(col, data.labels, data.kind, data.label_range)
        results[r.name] = ModelEvaluation(r.name, r.key, r.options, spec.family, spec.source, spec.label, col, metrics,
                                          None, res.seconds, effective, spec.language)
    return EvaluationReport(data, results)


# ---------------------------------------------------------------------------------------- curves
def roc_pr_curves(scores: np.ndarray, labels: np.ndarray, kind: LabelKind,
                  label_range: tuple[float, float]) -> dict[str, np.ndarray] | None:
    """ROC and precision-recall curve points for charts, or None when a class is missing.

    Returns
    -------
    dict
        ``fpr, tpr`` (ROC) and ``precision, recall`` (PR), each np.ndarray.
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    s, y = np.asarray(scores, dtype=np.float64), binarise(labels, kind, label_range)
    ok = np.isfinite(s) & np.isfinite(y)
    s, y = s[ok], y[ok].astype(int)
    if len(s) < 2 or y.min() == y.max():
        return None
    fpr, tpr, _ = roc_curve(y, s)
    precision, recall, _ = precision_recall_curve(y, s)
    return {"fpr": fpr, "tpr": tpr, "precision": precision, "recall": recall}


def binned_trend(scores: np.ndarray, labels: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Mean gold label per score bin (equal-count bins): the trend line of a score-vs-gold scatter.

    Equal-count bins (quantiles of the score) keep every point of the line backed by the same number of
    pairs; a straight least-squares line would hide a model that is only good at one end of the scale.

    Returns
    -------
    (x, y) : np.ndarray
        Mean score and mean gold label per bin, ordered by score (fewer than ``bins`` points when scores tie).
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    ok = np.isfinite(s) & np.isfinite(y)
    s, y = s[ok], y[ok]
    if len(s) == 0:
        return np.array([]), np.array([])
    order = np.argsort(s, kind="stable")
    parts = [p for p in np.array_split(order, min(bins, len(s))) if len(p)]
    return np.array([s[p].mean() for p in parts]), np.array([y[p].mean() for p in parts])


# -------------------------------------------------------------------------------------- disagreement
def rank_scores(scores: np.ndarray) -> np.ndarray:
    """Percentile ranks in (0, 1] (average rank for ties, divided by the count); NaN stays NaN.

    Ranks, not raw scores, make models comparable: a cosine of 0.6 is high for GloVe and low for SBERT.
    """
    s = np.asarray(scores, dtype=np.float64)
    out = np.full(s.shape, np.nan)
    ok = np.isfinite(s)
    if ok.any():
        out[ok] = stats.rankdata(s[ok]) / ok.sum()
    return out


def disagreements(
    data: LabelledPairs, scores: dict[str, np.ndarray], top: int = 20,
    label_between: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Pairs on which the models' rankings differ most.

    Each model's scores become percentile ranks (:func:`rank_scores`); a pair's *spread* is the largest
    minus the smallest rank across models. The gold label's rank is shown beside (not in the spread).

    Parameters
    ----------
    data : LabelledPairs
    scores : dict
        Model name -> scores (n,); at least two models.
    top : int
        Rows returned, largest spread first.
    label_between : (lo, hi), optional
        Keep only pairs whose gold label is within ``[lo, hi]`` (e.g. only the gold-similar pairs).

    Returns
    -------
    DataFrame
        ``row, sentence1, sentence2, gold, gold_rank, rank_<model>..., score_<model>..., spread,
        highest, lowest``. Pairs that some model could not score are left out.
    """
    if len(scores) < 2:
        raise ValueError("disagreement needs at least two models' scores")
    names = list(scores)
    ranks = np.column_stack([rank_scores(scores[k]) for k in names])
    ok = np.isfinite(ranks).all(axis=1)
    y = np.asarray(data.labels, dtype=np.float64)
    if label_between is not None:
        ok &= np.isfinite(y) & (y >= label_between[0]) & (y <= label_between[1])
    idx = np.flatnonzero(ok)
    spread = ranks[idx].max(axis=1) - ranks[idx].min(axis=1)
    order = idx[np.argsort(-spread, kind="stable")][:top]
    gold_rank = rank_scores(y)
    rows = []
    for i in order:
        r = ranks[i]
        row = {"row": int(i), "sentence1": data.a[i], "sentence2": data.b[i], "gold": _finite_or_none(y[i]),
               "gold_rank": _round(gold_rank[i], 3)}
        for j, k in enumerate(names):
            row[f"rank_{k}"] = round(float(r[j]), 3)
        for k in names:
            row[f"score_{k}"] = round(float(scores[k][i]), 4)
        row["spread"] = round(float(r.max() - r.min()), 3)
        row["highest"] = names[int(np.argmax(r))]
        row["lowest"] = names[int(np.argmin(r))]
        rows.append(row)
    cols = ["row", "sentence1", "sentence2", "gold", "gold_rank", *[f"rank_{k}" for k in names],
            *[f"score_{k}" for k in names], "spread", "highest", "lowest"]
    return pd.DataFrame(rows, columns=cols)


# ------------------------------------------------------------------------------------------- paper
@dataclass(frozen=True)
class PublishedResult:
    """One row of Reimers & Gurevych (2019), Table 1 (STS-B test, Spearman x 100), or a later model card."""

    model: str
    spearman: float
    family: str
    #: what distinguishes it within the family: a pooling for raw BERT, a source substring for SBERT.
    variant: str
    source: str


#: STS-B **test** numbers; ours are on dev, so the columns are beside each other, not comparable exactly.
PUBLISHED_STSB: tuple[PublishedResult, ...] = (
    PublishedResult("Avg. GloVe embeddings (300-d)", 58.02, "w2v", "", "Reimers & Gurevych 2019, Table 1"),
    PublishedResult("Avg. BERT embeddings (bert-as-service)", 46.35, "bert", "mean", "Reimers & Gurevych 2019, Table 1"),
    PublishedResult("BERT CLS-vector", 16.50, "bert", "cls", "Reimers & Gurevych 2019, Table 1"),
    PublishedResult("SBERT-NLI-base", 77.03, "sbert", "nli", "Reimers & Gurevych 2019, Table 1"),
    PublishedResult("all-MiniLM-L6-v2", 82.03, "sbert", "minilm", "sentence-transformers model card / MTEB"),
)


def _published_row_for(r: ModelEvaluation) -> PublishedResult | None:
    """The published row our model stands beside, or None when it has no true counterpart.

    The published rows are English models, so only English models match: a plain GloVe average (not SIF), raw
    BERT by its pooling, and an SBERT model by its source. A near miss (SIF weighting, a Chinese encoder) gets its
    own row rather than a misleading neighbour.
    """
    if r.language != "en":
        return None
    for p in PUBLISHED_STSB:
        if p.family != r.family:
            continue
        if p.family == "w2v" and str(r.effective_options.get("weighting")) == "mean":
            return p
        if p.family == "bert" and str(r.effective_options.get("pooling", "mean")) == p.variant:
            return p
        if p.family == "sbert" and p.variant in r.source.lower():
            return p
    return None


def paper_table(report: EvaluationReport) -> pd.DataFrame:
    """A table like Table 1 of the Sentence-BERT paper: published STS-B test numbers beside ours.

    One row per published result (ours blank where we did not evaluate a counterpart) and one per our
    model without a published counterpart (ESIM). Ours are Spearman x 100 of cosine (or ESIM's score) vs
    gold on the evaluated file; quote them as dev numbers.

    Returns
    -------
    DataFrame
        ``model, published_test, ours, our_model, note``.
    """
    matched: dict[str, ModelEvaluation] = {}
    extra: list[ModelEvaluation] = []
    for r in report.results.values():
        p = _published_row_for(r)
        if p is None or p.model in matched:
            extra.append(r)
        else:
            matched[p.model] = r
    rows = []
    for p in PUBLISHED_STSB:
        r = matched.get(p.model)
        rows.append({
            "model": p.model,
            "published_test": p.spearman,
            "ours": _ours(r),
            "our_model": f"{r.name} ({r.label})" if r else "",
            "note": (f"error: {r.error}" if r and r.error else "") if r else "not evaluated",
        })
    for r in extra:
        # name the options too: "GloVe avg (SIF)" asked for with weighting=mean is not SIF
        label = r.label if r.name == r.key else f"{r.label}, {r.name.split(':', 1)[1]}"
        rows.append({"model": label, "published_test": None, "ours": _ours(r), "our_model": r.name,
                     "note": f"error: {r.error}" if r.error else "no published counterpart"})
    return pd.DataFrame(rows, columns=["model", "published_test", "ours", "our_model", "note"])


def _ours(r: ModelEvaluation | None) -> float | None:
    if r is None or r.metrics is None or r.metrics.spearman is None:
        return None
    return round(r.metrics.spearman, 2)


def format_table(frame: pd.DataFrame, floats: int = 2) -> str:
    """A plain-text table (no extra dependency), ``None``/NaN shown as ``-``."""
    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        if isinstance(v, float):
            return f"{v:.{floats}f}" if abs(v) >= 1 or v == 0 else f"{v:.3f}"
        return str(v)

    cols = list(frame.columns)
    body = [[cell(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max(len(str(c)), *(len(r[i]) for r in body)) if body else len(str(c)) for i, c in enumerate(cols)]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) or frame[c].map(lambda v: v is None or isinstance(v, float | int)).all()
               for c in cols]

    def line(vals: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(vals, widths, numeric, strict=True)).rstrip()

    return "\n".join([line([str(c) for c in cols]), line(["-" * w for w in widths]), *(line(r) for r in body)])


def is_binary(values: pd.Series) -> bool:
    """True when a gold column holds exactly two values, 0 and 1 (duplicate / not duplicate)."""
    v = pd.to_numeric(values, errors="coerce").dropna().unique()
    return len(v) == 2 and set(v.tolist()) <= {0, 1}

def label_metrics(frame: pd.DataFrame, label_col: str, keys: Sequence[str]) -> pd.DataFrame:
    """Agreement of each model's ``score_<key>`` with a gold column.

    ROC-AUC when the gold column is binary (0/1), else Spearman's rank correlation (graded STS-style
    scores); rows without a gold value or without a model score are left out, and counted.

    Returns
    -------
    pandas.DataFrame
        ``model, metric, value, pairs`` (``value`` NaN when it cannot be computed, e.g. one class only).
    """
    gold, _ = parse_labels(frame[label_col].tolist())
    binary = is_binary(frame[label_col])
    rows = []
    for key in keys:
        col = f"score_{key}"
        if col not in frame:
            continue
        scores = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
        # The Evaluation lab's own metric code, so the two pages can never disagree on a number.
        m = compute_metrics(scores, gold, "binary" if binary else "graded")
        value = m.auc if binary else (None if m.spearman is None else m.spearman / 100)
        rows.append({"model": key, "metric": "ROC-AUC" if binary else "Spearman ρ",
                     "value": float("nan") if value is None else float(value), "pairs": m.n})
    return pd.DataFrame(rows, columns=["model", "metric", "value", "pairs"])

def parse_label_range(text: str) -> tuple[float, float] | None:
    """The declared range of a gold label as typed (``"0,5"`` -> ``(0.0, 5.0)``); empty -> None (inferred).

    Raises
    ------
    ValueError
        With a message for the person who typed it: not two numbers, or the low end not first.
    """
    if not text.strip():
        return None
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"the label range must be two numbers, e.g. 0,5 (not {text.strip()!r})") from None
    if not lo < hi:
        raise ValueError(f"the label range must start with its low end, e.g. 0,5 (not {text.strip()!r})")
    return lo, hi


__all__ = [
    "PUBLISHED_STSB",
    "EvaluationReport",
    "LabelledPairs",
    "ModelEvaluation",
    "PairMetrics",
    "StopRequested",
    "binarise",
    "binned_trend",
    "compute_metrics",
    "demo_labelled_pairs",
    "disagreements",
    "evaluate",
    "f1_optimal_threshold",
    "format_table",
    "infer_label_kind",
    "is_binary",
    "label_metrics",
    "labelled_from_frame",
    "load_faq_zh",
    "load_labelled_pairs",
    "paper_table",
    "parse_label_range",
    "parse_labels",
    "rank_scores",
    "roc_pr_curves",
]
