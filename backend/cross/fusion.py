"""Fusing a cross-encoder with a bi-encoder: three weights fitted on dev, stored in ``fusion.json``.

``score = sigmoid(w_cross * logit(p_cross) + w_cos * cosine + bias)``, fitted by binary cross-entropy against
``gold / label_max`` (soft targets in [0, 1]) with L-BFGS. Three parameters on 1,500 pairs do not overfit much,
but they are chosen on the very pairs the dev number is measured on, so :func:`fit_fusion` also reports a
K-fold cross-validated Spearman (fit on K-1 folds, score the held-out one): the honest estimate for unseen pairs.

Used by ``python -m backend.cross fuse`` (writes the folder) and :mod:`backend.families.hybrid` (applies it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.stats import spearmanr

FORMAT = "simdash-hybrid"
FILE = "fusion.json"
FEATURES = ("cross_logit", "cosine")
_EPS = 1e-6


@dataclass(frozen=True)
class FusionConfig:
    """What ``fusion.json`` holds.

    Attributes
    ----------
    cross, encoder : dict
        The two parts: ``{"family": ..., "source": ..., "options": {...}}``.
    weights : dict
        ``cross_logit``, ``cosine`` and ``bias``.
    metrics : dict
        Dev Spearman of the fused score, of each part alone, and the cross-validated fused Spearman.
    provenance : dict
        Data, command, date.
    """

    cross: dict[str, Any]
    encoder: dict[str, Any]
    weights: dict[str, float]
    metrics: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


def _features(p_cross: np.ndarray, cosine: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p_cross, dtype=np.float64), _EPS, 1 - _EPS)
    return np.column_stack([np.log(p / (1 - p)), np.asarray(cosine, dtype=np.float64), np.ones(len(p))])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weights minimising mean BCE of sigmoid(x @ w) against soft targets y."""

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        p = np.clip(_sigmoid(x @ w), _EPS, 1 - _EPS)
        value = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
        return float(value), x.T @ (p - y) / len(y)

    return minimize(loss, np.array([1.0, 1.0, 0.0]), jac=True, method="L-BFGS-B").x


def fit_fusion(p_cross: np.ndarray, cosine: np.ndarray, gold: np.ndarray, *, folds: int = 5,
               seed: int = 13) -> tuple[dict[str, float], dict[str, float]]:
    """Fit the fusion weights on all pairs and estimate unseen-pair quality by K-fold cross-validation.

    Parameters
    ----------
    p_cross : array, shape (n,)
        The cross-encoder's scores in [0, 1].
    cosine : array, shape (n,)
        The bi-encoder's cosines.
    gold : array, shape (n,)
        Targets in [0, 1] (gold / 5 for STS).
    folds : int
        Cross-validation folds (seeded shuffle).

    Returns
    -------
    weights : dict
        ``cross_logit``, ``cosine``, ``bias``.
    metrics : dict
        Spearman x1 of the fused score (in-sample), of each part, and ``cv_spearman`` (out-of-fold).

    Raises
    ------
    ValueError
        Fewer than 20 usable pairs, or arrays of different lengths.
    """
    p_cross, cosine, gold = (np.asarray(v, dtype=np.float64) for v in (p_cross, cosine, gold))
    if not len(p_cross) == len(cosine) == len(gold):
        raise ValueError("p_cross, cosine and gold must have the same length")
    ok = np.isfinite(p_cross) & np.isfinite(cosine) & np.isfinite(gold)
    if ok.sum() < 20:
        raise ValueError(f"fusion needs at least 20 scored pairs, got {int(ok.sum())}")
    x, y = _features(p_cross[ok], cosine[ok]), gold[ok]
    w = _fit(x, y)
    out_of_fold = np.zeros(len(y))
    order = np.random.default_rng(seed).permutation(len(y))
    for k in range(folds):
        held = order[k::folds]
        train = np.setdiff1d(order, held)
        out_of_fold[held] = x[held] @ _fit(x[train], y[train])
    metrics = {
        "dev_spearman": float(spearmanr(x @ w, y).statistic),
        "cv_spearman": float(spearmanr(out_of_fold, y).statistic),
        "cross_spearman": float(spearmanr(p_cross[ok], y).statistic),
        "cosine_spearman": float(spearmanr(cosine[ok], y).statistic),
        "pairs": int(ok.sum()),
        "folds": folds,
    }
    return dict(zip((*FEATURES, "bias"), map(float, w), strict=True)), metrics


def fused_scores(config: FusionConfig, p_cross: np.ndarray, cosine: np.ndarray) -> np.ndarray:
    """The fused score in [0, 1]; NaN where either part is NaN."""
    x = _features(np.nan_to_num(p_cross, nan=0.5), np.nan_to_num(cosine, nan=0.0))
    w = np.array([config.weights["cross_logit"], config.weights["cosine"], config.weights["bias"]])
    out = _sigmoid(x @ w)
    out[~(np.isfinite(p_cross) & np.isfinite(cosine))] = np.nan
    return out


def write_fusion(folder: str | Path, config: FusionConfig) -> Path:
    """Write ``fusion.json`` into ``folder`` (created)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    body = {"format": FORMAT, "format_version": 1, "cross": config.cross, "encoder": config.encoder,
            "weights": config.weights, "metrics": config.metrics, "provenance": config.provenance}
    (out / FILE).write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def read_fusion(folder: str | Path) -> FusionConfig:
    """Read and check ``fusion.json``.

    Raises
    ------
    FileNotFoundError
        No such folder or file.
    ValueError
        Not our format, or a part or weight missing (named).
    """
    path = Path(folder) / FILE
    if not path.is_file():
        raise FileNotFoundError(f"{FILE} missing in hybrid model folder {folder}")
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ValueError(f"{path} is not a hybrid model file (format {FORMAT!r} expected)")
    for part in ("cross", "encoder"):
        spec = body.get(part)
        if not isinstance(spec, dict) or not {"family", "source"} <= set(spec):
            raise ValueError(f"{path}: {part!r} must name a family and a source")
    weights = body.get("weights")
    if not isinstance(weights, dict) or not all(
            isinstance(weights.get(k), int | float) for k in (*FEATURES, "bias")):
        raise ValueError(f"{path}: weights must give numbers for {', '.join((*FEATURES, 'bias'))}")
    return FusionConfig(body["cross"], body["encoder"], {k: float(weights[k]) for k in (*FEATURES, "bias")},
                        dict(body.get("metrics", {})), dict(body.get("provenance", {})))


__all__ = ["FILE", "FORMAT", "FusionConfig", "fit_fusion", "fused_scores", "read_fusion", "write_fusion"]
