"""BERT layer probe: which hidden layer and which pooling give the best sentence similarity?

For a BERT-family model (``family = "bert"``, :class:`~backend.families.bert.BertPoolingModel`) every
hidden state — index 0 is the embedding output, 1..L the transformer layers, as in transformers'
``hidden_states`` — is pooled three ways (masked mean, [CLS], masked max) in a single forward pass
(:meth:`~backend.families.bert.BertPoolingModel.encode_layers`), and the cosine of each pair is correlated
with the gold labels (Spearman x 100). The result is a (layers x poolings) matrix, plus ``first_last_avg``
(the mean of the first and last layers' masked means, Su et al. 2021).

Whitening (optional; Su, Cao, Liu & Ou 2021, "Whitening Sentence Representations for Better Semantics and
Faster Retrieval"): vectors are centred and multiplied by ``U diag(1/sqrt(s))`` from the SVD of their
covariance, which makes them isotropic and often repairs raw BERT's anisotropy. Here the whitening is
**fitted on the evaluation sentences themselves** (each layer x pooling separately), i.e. it sees the test
sentences (not their labels): numbers with whitening are optimistic compared with a whitening fitted on a
separate corpus, and the UI says so.

Why bert-as-service chose the penultimate layer, and whether that holds for a given model, is what this
probe answers on the user's own labelled data.
"""

from __future__ import annotations

import math
import warnings as _warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from backend.base import ProgressFn
from backend.lab.evaluation import LabelledPairs
from backend.text import clean_text

#: poolings of the matrix (``first_last_avg`` is reported beside it: it is one number, not one per layer).
PROBE_POOLINGS: tuple[str, ...] = ("mean", "cls", "max")


@dataclass
class ProbeResult:
    """Spearman x 100 for every hidden layer x pooling.

    Attributes
    ----------
    model : str
    spearman : np.ndarray, shape (n_layers + 1, n_poolings)
        Row ``i`` is ``hidden_states[i]`` (0 = embeddings); NaN where undefined (constant cosines).
    poolings : tuple of str
    first_last_avg : float or None
    whitened : bool
    n, skipped : int
        Pairs used / left out (empty text or no label).
    notes : list of str
    """

    model: str
    spearman: np.ndarray
    poolings: tuple[str, ...]
    first_last_avg: float | None
    whitened: bool
    n: int
    skipped: int
    notes: list[str] = field(default_factory=list)

    @property
    def layers(self) -> list[int]:
        """Hidden-state indices, 0 (embeddings) .. n_layers."""
        return list(range(self.spearman.shape[0]))

    def frame(self) -> pd.DataFrame:
        """The matrix as a DataFrame: index ``layer`` (0 = embeddings), one column per pooling."""
        return pd.DataFrame(self.spearman, index=pd.Index(self.layers, name="layer"), columns=list(self.poolings))

    def best(self) -> tuple[int, str, float] | None:
        """``(layer, pooling, spearman)`` of the best cell, or None when every cell is undefined."""
        if not np.isfinite(self.spearman).any():
            return None
        i, j = np.unravel_index(np.nanargmax(self.spearman), self.spearman.shape)
        return int(i), self.poolings[j], float(self.spearman[i, j])

    def as_json(self) -> dict[str, Any]:
        """``{"model", "layers", "poolings", "spearman": [[...]], "first_last_avg", "whitened", "n", "skipped"}``.

        ``spearman[i][j]`` is layer ``layers[i]`` with pooling ``poolings[j]``; null where undefined.
        """
        return {
            "model": self.model,
            "layers": self.layers,
            "poolings": list(self.poolings),
            "spearman": [[_num(v) for v in row] for row in self.spearman],
            "first_last_avg": _num(self.first_last_avg),
            "whitened": self.whitened,
            "n": self.n,
            "skipped": self.skipped,
        }


def layer_name(index: int, n_states: int) -> str:
    """A hidden state named both ways: its negative index (as ``--models bert:layer=-2`` and the sidebar name it)
    and what it is: ``"-2 · layer 5"``, ``"-7 · embeddings"``."""
    neg = index - n_states
    return f"{neg} · embeddings" if index == 0 else f"{neg} · layer {index}"


def _num(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), 4)


def fit_whitening(x: np.ndarray, dim: int | None = None, rel_eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Fit the whitening map of Su et al. (2021): ``x -> (x - mu) @ W``.

    Parameters
    ----------
    x : np.ndarray, shape (n, d)
    dim : int, optional
        Keep only the top ``dim`` directions (their dimensionality reduction); default: all directions with
        non-negligible variance.
    rel_eps : float
        Directions with variance below ``rel_eps`` x the largest are dropped: with fewer sentences than
        dimensions the covariance is singular, and dividing by ~0 would blow noise up to unit scale.

    Returns
    -------
    (mu, W) : np.ndarray (d,), np.ndarray (d, k)
    """
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean(axis=0)
    cov = np.cov(x - mu, rowvar=False)
    u, s, _ = np.linalg.svd(cov)
    keep = s > rel_eps * s[0] if s[0] > 0 else np.zeros_like(s, dtype=bool)
    if dim is not None:
        keep &= np.arange(len(s)) < dim
    return mu, u[:, keep] / np.sqrt(s[keep])


def _pair_cosines(vecs: np.ndarray, ia: np.ndarray, ib: np.ndarray, whiten: bool, whiten_dim: int | None) -> np.ndarray:
    x = np.asarray(vecs, dtype=np.float64)
    if whiten:
        mu, w = fit_whitening(x, whiten_dim)
        x = (x - mu) @ w
    norms = np.linalg.norm(x, axis=1)
    x = x / np.where(norms > 1e-12, norms, 1.0)[:, None]
    return np.einsum("ij,ij->i", x[ia], x[ib])


def _spearman(s: np.ndarray, y: np.ndarray) -> float:
    # Cosines of identical vectors differ in the last bits; below 1e-9 they are the same number.
    if np.ptp(s) < 1e-9 or np.ptp(y) == 0:
        return math.nan
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        return float(stats.spearmanr(s, y).statistic * 100)


def layer_probe(
    model, data: LabelledPairs, poolings: tuple[str, ...] = PROBE_POOLINGS, whiten: bool = False,
    whiten_dim: int | None = None, batch_size: int | None = None, progress: ProgressFn | None = None,
) -> ProbeResult:
    """Spearman x 100 of every layer x pooling on a labelled set.

    Parameters
    ----------
    model : BertPoolingModel
        Anything with ``encode_layers(texts, poolings, batch_size, progress)`` and ``key``.
    data : LabelledPairs
        Graded or binary labels (binary labels give a rank correlation with ties; prefer graded).
    poolings : tuple of str
        Matrix columns; ``first_last_avg`` is always computed beside.
    whiten : bool
        Whiten each layer x pooling, fitted on the evaluation sentences (see the module docstring).
    whiten_dim : int, optional
        Keep this many whitened dimensions.
    batch_size : int, optional
    progress : callable, optional
        ``progress(done, total)`` over the unique sentences.

    Raises
    ------
    ValueError
        The model has no per-layer encoder (not a BERT-family model), or no usable pairs.
    """
    if not hasattr(model, "encode_layers"):
        raise ValueError(
            f"the layer probe needs a BERT-family model (family 'bert'); {getattr(model, 'key', model)!r} is not one"
        )
    a = [clean_text(t) for t in data.a]
    b = [clean_text(t) for t in data.b]
    y = np.asarray(data.labels, dtype=np.float64)
    ok = np.array([bool(x) and bool(z) for x, z in zip(a, b, strict=True)]) & np.isfinite(y)
    idx = np.flatnonzero(ok)
    if len(idx) < 2:
        raise ValueError(f"the probe needs at least 2 pairs with two texts and a label; found {len(idx)}")
    # Every distinct sentence is encoded once, however many pairs it appears in.
    uniq = list(dict.fromkeys([a[i] for i in idx] + [b[i] for i in idx]))
    pos = {t: k for k, t in enumerate(uniq)}
    ia = np.array([pos[a[i]] for i in idx])
    ib = np.array([pos[b[i]] for i in idx])
    yy = y[idx]
    layers = model.encode_layers(uniq, (*poolings, "first_last_avg"), batch_size=batch_size, progress=progress)
    n_h = layers[poolings[0]].shape[0]
    matrix = np.full((n_h, len(poolings)), np.nan)
    for j, p in enumerate(poolings):
        for i in range(n_h):
            matrix[i, j] = _spearman(_pair_cosines(layers[p][i], ia, ib, whiten, whiten_dim), yy)
    fla = _spearman(_pair_cosines(layers["first_last_avg"][0], ia, ib, whiten, whiten_dim), yy)
    notes = []
    if whiten:
        notes.append(f"whitening fitted on the {len(uniq)} evaluation sentences themselves (not their labels): "
                     "optimistic compared with whitening fitted on a separate corpus")
        if len(uniq) <= layers[poolings[0]].shape[2]:
            notes.append(f"fewer sentences ({len(uniq)}) than dimensions: whitening keeps at most {len(uniq) - 1} directions")
    if data.kind == "binary":
        notes.append("binary labels: Spearman with two-valued gold labels is mostly ties; graded labels are better")
    if "cls" in poolings and np.isnan(matrix[0, poolings.index("cls")]):
        notes.append("layer 0 with cls pooling is undefined: the embedding output at [CLS] is the same vector "
                     "for every sentence (token + position embedding), so every cosine is 1")
        matrix_rest = matrix.copy()
        matrix_rest[0, poolings.index("cls")] = 0.0
    else:
        matrix_rest = matrix
    if np.isnan(matrix_rest).any():
        notes.append("some cells are undefined (every pair got the same cosine)")
    return ProbeResult(getattr(model, "key", "model"), matrix, tuple(poolings), None if math.isnan(fla) else fla,
                       whiten, len(idx), int(len(data) - len(idx)), notes)


def probe_model(be, key: str, data: LabelledPairs, **kwargs: Any) -> ProbeResult:
    """:func:`layer_probe` on registry model ``key`` loaded through the backend.

    Raises
    ------
    ValueError
        ``key`` is not a BERT-family model.
    """
    spec = be.registry[key]
    if spec.family != "bert":
        raise ValueError(f"the layer probe needs a BERT-family model (family 'bert'); {key!r} is family {spec.family!r}")
    return layer_probe(be.model(key), data, **kwargs)


__all__ = ["PROBE_POOLINGS", "ProbeResult", "fit_whitening", "layer_probe", "probe_model"]
