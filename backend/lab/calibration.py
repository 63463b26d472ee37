"""Calibration: what a model's raw score *means*.

A cosine of 0.6 is high for GloVe averages and unremarkable for Sentence-BERT; raw scores are not
comparable across models. Two ways to read one:

* **Background percentile** (no labels needed): the share of *random* pairs from a corpus (by default
  the demo corpus, our own writing, in the model's language) that score at or below it. "0.6 is higher than
  97% of random pairs" means the same thing for every model. :class:`Background`.
* **P(similar)** (labels needed): a monotone map from score to the probability that a pair is similar,
  fitted on labelled pairs with isotonic regression (non-parametric, step-wise) or logistic regression
  (a sigmoid; smoother, needs less data), and the score at which that probability reaches 0.5 as the
  suggested threshold. :class:`Calibrator`. Graded labels are binarised at their range midpoint, as in
  :mod:`backend.lab.evaluation`.

Both maps are monotone non-decreasing in the score (tested), so calibrating never reorders pairs:
rank metrics (Spearman, AUC) are unchanged by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from backend.base import ProgressFn

Method = Literal["isotonic", "logistic"]


def demo_corpus_texts(lang: str = "en") -> list[str]:
    """Texts of the bundled demo corpus (our own writing) in one language (``"en"``, ``"zh"``) or ``"all"``."""
    from backend.files.io import load_demo_corpus

    return load_demo_corpus(lang)["text"].tolist()


def random_pairs(n_texts: int, n_pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n_pairs`` random index pairs ``(i, j)`` with ``i != j`` from ``range(n_texts)`` (with replacement).

    Raises
    ------
    ValueError
        Fewer than two texts.
    """
    if n_texts < 2:
        raise ValueError(f"random pairs need at least 2 texts, not {n_texts}")
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, n_texts, n_pairs)
    # Shift by 1..n-1 so that j is uniform over the other texts and never equals i.
    ib = (ia + rng.integers(1, n_texts, n_pairs)) % n_texts
    return ia, ib


@dataclass
class Background:
    """Scores of random pairs: the reference a score's percentile is read against.

    Attributes
    ----------
    scores : np.ndarray (m,)
        Sorted, finite.
    model : str
    n_texts : int
        Texts the pairs were drawn from.
    """

    scores: np.ndarray
    model: str = ""
    n_texts: int = 0

    def __post_init__(self) -> None:
        s = np.asarray(self.scores, dtype=np.float64)
        self.scores = np.sort(s[np.isfinite(s)])

    def percentile(self, score: float | Sequence[float] | np.ndarray) -> np.ndarray | float:
        """Share (x 100) of background pairs scoring **at or below** ``score`` (``percentileofscore``, "weak").

        Monotone non-decreasing in ``score``; NaN in, NaN out; a scalar in gives a float out.
        """
        if len(self.scores) == 0:
            raise ValueError("empty background: no random pair could be scored")
        x = np.asarray(score, dtype=np.float64)
        out = 100.0 * np.searchsorted(self.scores, x, side="right") / len(self.scores)
        out = np.where(np.isnan(x), np.nan, out)
        return float(out) if out.ndim == 0 else out

    def quantiles(self, qs: Sequence[float] = (0.5, 0.9, 0.95, 0.99)) -> dict[float, float]:
        """Scores at those quantiles of the background (e.g. the score that beats 95% of random pairs)."""
        return {float(q): float(np.quantile(self.scores, q)) for q in qs}


def background_scores(
    be, key: str, texts: Sequence[str], n_pairs: int = 2000, seed: int = 0, options: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
) -> Background:
    """Score ``n_pairs`` random pairs of ``texts`` with model ``key``.

    Random pairs of a topical corpus are mostly unrelated, so this is the distribution of scores for
    "nothing in common"; a few same-topic pairs slip in, as they would in any real collection.

    Raises
    ------
    RuntimeError
        The model failed (the message is the model's error).
    """
    texts = list(texts)
    ia, ib = random_pairs(len(texts), n_pairs, seed)
    r = be.score_pairs(key, [texts[i] for i in ia], [texts[j] for j in ib], options, progress)
    if r.error:
        raise RuntimeError(r.error)
    return Background(np.asarray(r.scores, dtype=np.float64), key, len(texts))


class Calibrator:
    """A monotone map from a model's score to P(similar), fitted on labelled pairs.

    Follows the sklearn estimator contract: ``__init__`` stores parameters, :meth:`fit` does the work.

    Parameters
    ----------
    method : {"isotonic", "logistic"}
        Isotonic regression (step-wise, no shape assumed; wants a few hundred labelled pairs) or logistic
        regression on the score (a sigmoid; fine with tens).

    Attributes
    ----------
    threshold_ : float or None
        The lowest score with P(similar) >= 0.5 (None if P never reaches 0.5 on the fitted range).
    increasing_ : bool
        False when a logistic fit found scores *falling* with similarity (then the map is decreasing and
        the model is worse than useless on this data; a note says so).
    notes_ : list of str
    """

    def __init__(self, method: Method = "isotonic") -> None:
        if method not in ("isotonic", "logistic"):
            raise ValueError(f"method must be 'isotonic' or 'logistic', not {method!r}")
        self.method = method

    def fit(self, scores: np.ndarray, positive: np.ndarray) -> Calibrator:
        """Fit on scores and 0/1 labels (pairs with a NaN in either are ignored).

        Raises
        ------
        ValueError
            Fewer than 2 usable pairs, or only one class.
        """
        s = np.asarray(scores, dtype=np.float64)
        y = np.asarray(positive, dtype=np.float64)
        ok = np.isfinite(s) & np.isfinite(y)
        s, y = s[ok], y[ok].astype(int)
        if len(s) < 2 or y.min() == y.max():
            raise ValueError("calibration needs labelled pairs of both classes (similar and not similar)")
        self.notes_: list[str] = []
        self.n_ = len(s)
        self.range_ = (float(s.min()), float(s.max()))
        if self.method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            self.model_ = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(s, y)
            self.increasing_ = True
        else:
            from sklearn.linear_model import LogisticRegression

            # Cosines span a narrow range (often 0.2-0.9): the default L2 penalty (C=1) would flatten the
            # sigmoid, so regularise only lightly.
            self.model_ = LogisticRegression(C=1e4, max_iter=1000).fit(s[:, None], y)
            self.increasing_ = bool(self.model_.coef_[0, 0] > 0)
            if not self.increasing_:
                self.notes_.append("scores fall as similarity rises on these labels: the fitted map is decreasing")
        if self.n_ < 50:
            self.notes_.append(f"fitted on only {self.n_} pairs: the map is rough")
        self.threshold_ = self._threshold()
        if self.threshold_ is None:
            self.notes_.append("P(similar) never reaches 0.5 on the labelled scores: no threshold suggested")
        return self

    def predict(self, scores: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """P(similar) for each score; NaN stays NaN."""
        x = np.atleast_1d(np.asarray(scores, dtype=np.float64))
        out = np.full(x.shape, np.nan)
        ok = np.isfinite(x)
        if ok.any():
            if self.method == "isotonic":
                out[ok] = self.model_.predict(x[ok])
            else:
                out[ok] = self.model_.predict_proba(x[ok][:, None])[:, 1]
        return out

    def _threshold(self) -> float | None:
        lo, hi = self.range_
        if self.method == "logistic":
            w, b = float(self.model_.coef_[0, 0]), float(self.model_.intercept_[0])
            if w <= 0:
                return None
            t = -b / w
            return t if lo <= t <= hi else (lo if t < lo else None)
        # Isotonic regression interpolates linearly between its breakpoints: find where it crosses 0.5.
        xs, ys = self.model_.X_thresholds_, self.model_.y_thresholds_
        above = np.flatnonzero(ys >= 0.5)
        if len(above) == 0:
            return None
        k = int(above[0])
        if k == 0:
            return float(xs[0])
        x0, x1, y0, y1 = xs[k - 1], xs[k], ys[k - 1], ys[k]
        return float(x0 + (0.5 - y0) * (x1 - x0) / (y1 - y0))

    def curve(self, n: int = 101, lo: float | None = None, hi: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, P(similar))`` on an even grid over the fitted range (for the chart)."""
        lo = self.range_[0] if lo is None else lo
        hi = self.range_[1] if hi is None else hi
        grid = np.linspace(lo, hi, n)
        return grid, self.predict(grid)

    def brier(self, scores: np.ndarray, positive: np.ndarray) -> float:
        """Mean squared error of P(similar) against 0/1 labels (lower is better; 0.25 = a coin)."""
        p = self.predict(scores)
        y = np.asarray(positive, dtype=np.float64)
        ok = np.isfinite(p) & np.isfinite(y)
        return float(np.mean((p[ok] - y[ok]) ** 2))


@dataclass
class CalibrationResult:
    """One model's calibration on a labelled set and a background corpus.

    Attributes
    ----------
    model : str
    background : Background or None
    calibrator : Calibrator or None
        None when the labels have one class only (``notes`` says so).
    brier : float or None
        In-sample Brier score of the fitted map.
    notes : list of str
    """

    model: str
    background: Background | None
    calibrator: Calibrator | None
    brier: float | None = None
    notes: list[str] = field(default_factory=list)

    def table(self, scores: Sequence[float]) -> pd.DataFrame:
        """For each score: background percentile and P(similar) (the page's "what does 0.7 mean?")."""
        s = np.asarray(scores, dtype=np.float64)
        return pd.DataFrame({
            "score": s,
            "percentile": self.background.percentile(s) if self.background else np.nan,
            "p_similar": self.calibrator.predict(s) if self.calibrator else np.nan,
        })


def calibrate(
    scores: np.ndarray, positive: np.ndarray, background: Background | None = None, method: Method = "isotonic",
    model: str = "",
) -> CalibrationResult:
    """Fit a :class:`Calibrator` on one model's scores of labelled pairs and attach its background.

    Parameters
    ----------
    scores : np.ndarray (n,)
        The model's scores of the labelled pairs (from :func:`backend.lab.evaluation.evaluate`).
    positive : np.ndarray (n,)
        0/1 labels (``LabelledPairs.binary()``), NaN where unknown.
    background : Background, optional
    method : {"isotonic", "logistic"}
    """
    try:
        cal = Calibrator(method).fit(scores, positive)
    except ValueError as exc:
        return CalibrationResult(model, background, None, None, [str(exc)])
    notes = [*cal.notes_, "Brier score is in-sample (fitted and measured on the same pairs)"]
    return CalibrationResult(model, background, cal, cal.brier(scores, positive), notes)


def score_span(fitted: tuple[float, float], background: np.ndarray | None = None) -> tuple[float, float]:
    """The score range a calibration curve is drawn over: the fitted scores' range, widened to the background's."""
    lo, hi = float(fitted[0]), float(fitted[1])
    if background is not None and len(background):
        lo, hi = min(lo, float(np.min(background))), max(hi, float(np.max(background)))
    return lo, hi


__all__ = ["Background", "CalibrationResult", "Calibrator", "background_scores", "calibrate", "demo_corpus_texts",
           "random_pairs"]
