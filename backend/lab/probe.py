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

Layer mix (ELMo's scalar mix, Peters et al. 2018): instead of picking one layer, learn softmax weights over all
hidden states, ``mix = sum_j softmax(s)_j h_j``, on part of the labelled pairs (:func:`learn_layer_mix`: a
CoSENT ranking loss on the pairs' cosines, Adam, seeded) and report its Spearman on the *held-out* rest beside the
best single layer on the same held-out pairs, so the comparison is honest. ELMo's scale ``gamma`` cannot act on
the vector here (a cosine does not change when a vector is scaled), so it scales the cosines inside the loss
instead, where it is learnt too: with a fixed scale the loss would prefer to blur the cosines by mixing in noisy
layers whenever the pairs are hard to order, which is the opposite of what the mix is for. The mix is learnt on the
per-layer *mean*-pooled (or [CLS]) vectors, which is exact because those poolings are linear: pooling the mixed
hidden states, as the ``bert`` family's ``layer_mix`` option does, gives the same vector. (Max pooling is not
linear, hence not offered.) The result carries the option to paste: ``bert:pooling=mean:layer_mix=0.01;...``
(semicolons: ``--models`` splits models at commas).

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
#: poolings a layer mix can be learnt on: the linear ones, for which mixing pooled vectors equals pooling the mix.
MIX_POOLINGS: tuple[str, ...] = ("mean", "cls")
#: share of the pairs held out to measure the mix (never seen by its training).
MIX_TEST_FRACTION = 0.3
#: fewer usable pairs and no mix is learnt: 50 leaves 15 held-out pairs, about the least a Spearman can be read on.
MIX_MIN_PAIRS = 50
#: Adam steps over minibatches of pairs; the weights of a handful of layers settle within a couple of hundred.
MIX_STEPS = 300
#: pairs per step: the CoSENT loss compares every two pairs of a batch, so its cost grows with the square.
MIX_BATCH = 256
#: seeds the held-out split and the minibatches: the same data give the same mix.
MIX_SEED = 0


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
    mix_weights : np.ndarray (n_layers + 1,) or None
        The learnt layer mix (sums to 1; embedding output first); None when none was learnt (too few pairs).
    mix_spearman : float or None
        The mix's Spearman x 100 on the held-out pairs.
    mix_baseline : float or None
        The best single layer's Spearman x 100 on the same held-out pairs (same pooling): what the mix must beat.
    mix_note : str
        How the mix was learnt and measured, or why there is none.
    mix_pooling : str
    """

    model: str
    spearman: np.ndarray
    poolings: tuple[str, ...]
    first_last_avg: float | None
    whitened: bool
    n: int
    skipped: int
    notes: list[str] = field(default_factory=list)
    mix_weights: np.ndarray | None = None
    mix_spearman: float | None = None
    mix_baseline: float | None = None
    mix_note: str = ""
    mix_pooling: str = "mean"

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

    def mix_option(self) -> str | None:
        """The learnt mix as a model string to paste (``bert:pooling=mean:layer_mix=0.01;0.2;...``), or None.

        The pooling is named too: the weights were learnt for it, and the registry's may differ.
        """
        if self.mix_weights is None:
            return None
        from backend.families.bert import format_layer_mix

        return f"{self.model}:pooling={self.mix_pooling}:layer_mix={format_layer_mix(self.mix_weights)}"

    def mix_frame(self) -> pd.DataFrame:
        """The mix weights by hidden state: index ``layer`` (0 = embeddings), column ``weight`` (empty without a mix)."""
        w = [] if self.mix_weights is None else list(self.mix_weights)
        return pd.DataFrame({"weight": w}, index=pd.Index(self.layers[:len(w)], name="layer"))

    def as_json(self) -> dict[str, Any]:
        """``{"model", "layers", "poolings", "spearman": [[...]], "first_last_avg", "whitened", "n", "skipped",
        "mix_weights", "mix_spearman", "mix_baseline", "mix_note", "mix_option"}``.

        ``spearman[i][j]`` is layer ``layers[i]`` with pooling ``poolings[j]``; null where undefined. The mix fields
        are null (``mix_note`` says why) when no mix was learnt.
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
            "mix_weights": None if self.mix_weights is None else [round(float(w), 6) for w in self.mix_weights],
            "mix_spearman": _num(self.mix_spearman),
            "mix_baseline": _num(self.mix_baseline),
            "mix_note": self.mix_note,
            "mix_option": self.mix_option(),
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


@dataclass
class LayerMix:
    """A learnt layer mix and how it did on held-out pairs.

    Attributes
    ----------
    weights : np.ndarray (n_states,)
        Softmax weights over the hidden states (embedding output first), summing to 1.
    spearman : float or None
        Spearman x 100 of the mix's cosines on the held-out pairs.
    baseline : float or None
        The best single hidden state's Spearman x 100 on the same held-out pairs.
    baseline_layer : int or None
        Which hidden state that is.
    n_train, n_test : int
    gamma : float
        The learnt scale of the cosines in the loss (ELMo's gamma; it does not enter the option).
    """

    weights: np.ndarray
    spearman: float | None
    baseline: float | None
    baseline_layer: int | None
    n_train: int
    n_test: int
    gamma: float = 20.0


def _cosent_loss(cos: Any, y: Any, scale: Any = 20.0) -> Any:
    """CoSENT (Su 2022): ``log(1 + sum over y_i > y_j of exp(scale * (cos_j - cos_i)))``, a ranking loss on cosines.

    It asks only that more similar pairs get higher cosines, which is what Spearman measures; a regression on
    ``gold / 5`` would also ask raw BERT's cosines, all near 0.9, to spread to the label's scale. (A Pearson loss,
    tried too, settled on noise layers for binary labels in the synthetic test.)
    """
    import torch

    diff = scale * (cos[None, :] - cos[:, None])  # [i, j] = scale * (cos_j - cos_i)
    wanted = y[:, None] > y[None, :]
    return torch.logsumexp(torch.cat([torch.zeros(1, dtype=diff.dtype), diff[wanted]]), dim=0)


def _mix_cosines(states: np.ndarray, weights: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Pair cosines of the mixed vectors ``sum_j weights[j] * states[j]`` (float64)."""
    return _pair_cosines(np.einsum("l,lnd->nd", np.asarray(weights, dtype=np.float64), states), ia, ib, False, None)


def learn_layer_mix(
    states: np.ndarray, ia: np.ndarray, ib: np.ndarray, y: np.ndarray, test_fraction: float = MIX_TEST_FRACTION,
    steps: int = MIX_STEPS, batch: int = MIX_BATCH, lr: float = 0.05, seed: int = MIX_SEED,
) -> LayerMix:
    """Learn softmax weights over hidden states on part of the pairs; measure them on the rest.

    Parameters
    ----------
    states : np.ndarray (n_states, n_sentences, d)
        One pooled vector per hidden state and sentence (mean or [CLS]: a linear pooling).
    ia, ib : np.ndarray (n_pairs,) of int
        Each pair's two sentences (rows of ``states``).
    y : np.ndarray (n_pairs,)
        Gold labels (graded or binary).
    test_fraction : float
        Share of the pairs held out (seeded split); the weights never see them.
    steps, batch, lr : int, int, float
        Adam steps on minibatches of ``batch`` training pairs, and its learning rate (for the weights' logits
        and ``log gamma``).
    seed : int

    Returns
    -------
    LayerMix

    Raises
    ------
    ValueError
        Fewer than two pairs on either side of the split.
    """
    import torch

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_test = round(test_fraction * len(y))
    test, train = order[:n_test], order[n_test:]
    if len(test) < 2 or len(train) < 2:
        raise ValueError(f"{len(y)} pairs are too few to learn a layer mix and test it on held-out pairs")
    x = torch.from_numpy(np.ascontiguousarray(states, dtype=np.float32))
    yt = torch.as_tensor(y, dtype=torch.float32)
    # Start from the best single layer on the training pairs, not from a uniform mix: hidden states differ in size,
    # and from a uniform start the larger, noisier layers can pull the mix into a local optimum that fits the
    # training pairs by chance (it did on the synthetic test data, for 3 of 12 seeds).
    start = np.zeros(states.shape[0], dtype=np.float32)
    fit = np.array([_spearman(_pair_cosines(states[i], ia[train], ib[train], False, None), y[train])
                    for i in range(states.shape[0])])
    if np.isfinite(fit).any():
        start[int(np.nanargmax(fit))] = 2.0
    logits = torch.tensor(start, requires_grad=True)
    # gamma, as a log so it stays positive; 20 is CoSENT's usual fixed scale
    log_gamma = torch.tensor(math.log(20.0), requires_grad=True)
    opt = torch.optim.Adam([logits, log_gamma], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            pick = train if len(train) <= batch else rng.choice(train, size=batch, replace=False)
            w = torch.softmax(logits, dim=0)
            a = torch.einsum("l,lnd->nd", w, x[:, torch.as_tensor(ia[pick])])
            b = torch.einsum("l,lnd->nd", w, x[:, torch.as_tensor(ib[pick])])
            loss = _cosent_loss(torch.nn.functional.cosine_similarity(a, b, dim=1, eps=1e-12),
                                yt[torch.as_tensor(pick)], log_gamma.exp())
            opt.zero_grad()
            loss.backward()
            opt.step()
    weights = torch.softmax(logits.detach(), dim=0).double().numpy()
    mixed = _spearman(_mix_cosines(states, weights, ia[test], ib[test]), y[test])
    single = np.array([_spearman(_pair_cosines(states[i], ia[test], ib[test], False, None), y[test])
                       for i in range(states.shape[0])])
    best = int(np.nanargmax(single)) if np.isfinite(single).any() else None
    return LayerMix(weights, None if math.isnan(mixed) else mixed, None if best is None else float(single[best]), best,
                    len(train), len(test), float(log_gamma.detach().exp()))


def layer_probe(
    model, data: LabelledPairs, poolings: tuple[str, ...] = PROBE_POOLINGS, whiten: bool = False,
    whiten_dim: int | None = None, batch_size: int | None = None, progress: ProgressFn | None = None,
    mix: bool = True, mix_pooling: str = "mean", seed: int = MIX_SEED,
) -> ProbeResult:
    """Spearman x 100 of every layer x pooling on a labelled set, and a learnt layer mix beside them.

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
    mix : bool
        Learn a layer mix (:func:`learn_layer_mix`) when there are at least :data:`MIX_MIN_PAIRS` pairs.
    mix_pooling : {"mean", "cls"}
        The pooling the mix is learnt for (a linear one, see the module docstring).
    seed : int
        Seeds the mix's held-out split and minibatches.

    Raises
    ------
    ValueError
        The model has no per-layer encoder (not a BERT-family model), no usable pairs, or a ``mix_pooling`` the
        mix cannot use.
    """
    if mix and mix_pooling not in MIX_POOLINGS:
        raise ValueError(f"a layer mix is learnt on a linear pooling ({', '.join(MIX_POOLINGS)}), not {mix_pooling!r}")
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
    wanted = (*poolings, *([mix_pooling] if mix and mix_pooling not in poolings else []), "first_last_avg")
    layers = model.encode_layers(uniq, wanted, batch_size=batch_size, progress=progress)
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
    result = ProbeResult(getattr(model, "key", "model"), matrix, tuple(poolings), None if math.isnan(fla) else fla,
                         whiten, len(idx), int(len(data) - len(idx)), notes, mix_pooling=mix_pooling)
    if not mix:
        result.mix_note = "no layer mix asked for"
    elif len(idx) < MIX_MIN_PAIRS:
        result.mix_note = (f"no layer mix: {len(idx)} pairs are too few to learn one and test it on held-out pairs "
                           f"(it needs {MIX_MIN_PAIRS})")
    else:
        _add_mix(result, learn_layer_mix(layers[mix_pooling], ia, ib, yy, seed=seed), whiten)
    return result


def _add_mix(result: ProbeResult, m: LayerMix, whiten: bool) -> None:
    """Put a learnt mix on ``result``, with a note saying how it was measured."""
    result.mix_weights, result.mix_spearman, result.mix_baseline = m.weights, m.spearman, m.baseline
    n_states = len(m.weights)
    top = int(np.argmax(m.weights))

    def num(v: float | None) -> str:
        return "undefined" if v is None else f"{v:.1f}"

    where = "" if m.baseline_layer is None else f", {layer_name(m.baseline_layer, n_states)}"
    result.mix_note = (f"layer mix ({result.mix_pooling} pooling) learnt on {m.n_train} pairs, measured on the other "
                       f"{m.n_test}: Spearman {num(m.spearman)}; the best single layer on those pairs: "
                       f"{num(m.baseline)}{where}. Largest weight {m.weights[top]:.2f} on "
                       f"{layer_name(top, n_states)}.")
    if whiten:
        result.mix_note += " The mix is learnt and measured without whitening (the model family does not whiten)."


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


__all__ = ["MIX_POOLINGS", "PROBE_POOLINGS", "LayerMix", "ProbeResult", "fit_whitening", "layer_probe",
           "learn_layer_mix", "probe_model"]
