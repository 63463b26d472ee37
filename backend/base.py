"""The two roles every model plays, and the result objects that carry warnings with the numbers.

* A **sentence encoder** maps texts to vectors: ``encode(texts) -> np.ndarray`` of shape ``(n, d)``.
* A **pair scorer** maps two aligned lists of texts to scores: ``score(a, b) -> np.ndarray`` of shape ``(n,)``.

Embedding models do both (their pair score is the cosine of the two vectors). ESIM is first a pair scorer
(it reads both sentences together) and second an encoder (its input-encoding layer pooled).

Every call also reports per-text warnings (empty text, unknown words, truncation, a language the model was
not trained on) through the ``*_detailed`` variants, so the dashboard and the command line can say *why* a
number looks the way it does. A score that cannot be defined (e.g. every word unknown) is ``NaN`` in the
array **and** has a warning: callers turn it into ``None``/"no score", never into a silent NaN.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from backend.registry import ModelSpec
from backend.text import clean_text, detect_language

ProgressFn = Callable[[int, int], None]
"""``progress(done, total)``: called as batches finish."""


@dataclass
class Encoding:
    """Vectors for a list of texts, with what went wrong for each.

    Attributes
    ----------
    vectors : np.ndarray, shape (n, d), float32
        L2-normalised rows; a row is all zeros where ``valid`` is False.
    valid : np.ndarray, shape (n,), bool
        False where no vector could be made (empty text, every word unknown).
    warnings : list of list of str
        Human-readable warnings per text (may be empty lists).
    """

    vectors: np.ndarray
    valid: np.ndarray
    warnings: list[list[str]]

    def __len__(self) -> int:
        return len(self.warnings)


@dataclass
class PairScores:
    """Scores for aligned pairs ``(a[i], b[i])``.

    Attributes
    ----------
    scores : np.ndarray, shape (n,), float32
        Similarity per pair; NaN where undefined (then ``warnings[i]`` says why).
    warnings : list of list of str
        Warnings per pair (both sides' warnings, prefixed "A:"/"B:").
    model : str
        Key of the model that actually scored (a language variant may stand in for the requested one).
    """

    scores: np.ndarray
    warnings: list[list[str]]
    model: str = ""


class UnknownOptionError(TypeError):
    """Raised for keyword arguments a model does not know (like sentence-transformers, we never ignore them)."""


class SentenceModel:
    """Base class for every model family.

    Subclasses implement :meth:`_encode` (encoders) and/or :meth:`_score` (pair scorers) on *cleaned,
    non-empty* texts; this class does the cleaning, empty-text handling, warnings and cosine scoring.

    Parameters
    ----------
    spec : ModelSpec
        The registry entry this model was built from.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    """

    #: does this family produce sentence vectors?
    can_encode: bool = True
    #: does this family score pairs (natively or by cosine)?
    can_score: bool = True
    #: languages the weights were trained on ("en", "zh"); texts in others get a warning.
    languages: tuple[str, ...] = ("en",)

    def __init__(self, spec: ModelSpec, device: str = "cpu") -> None:
        self.spec = spec
        self.device = device
        # One lock per model: HF fast tokenizers are not thread-safe, and Streamlit serves sessions as threads.
        self.lock = threading.RLock()
        self.load_seconds: float = 0.0

    # ----------------------------------------------------------------------------------------- identity
    @property
    def key(self) -> str:
        """Registry key (``"w2v"``, ``"bert"``, ...)."""
        return self.spec.key

    @property
    def config_id(self) -> str:
        """Stable id of everything that changes this model's output (key, source, options)."""
        return self.spec.config_id

    def info(self) -> dict[str, Any]:
        """Facts for the model card: family, source, dimension, parameters, device, dtype, ..."""
        return {
            "key": self.key,
            "family": self.spec.family,
            "label": self.spec.label,
            "source": self.spec.source,
            "language": self.spec.language,
            "options": dict(self.spec.options),
            "device": self.device,
            "load_seconds": round(self.load_seconds, 2),
            "note": self.spec.note,
        }

    def with_options(self, **options: Any) -> SentenceModel:
        """A view of this model with other *inference* options (layer, pooling, weighting), sharing weights.

        Raises
        ------
        UnknownOptionError
            For an option this family does not have.
        """
        unknown = set(options) - set(self.runtime_options)
        if unknown:
            raise UnknownOptionError(f"{self.key}: unknown option(s) {sorted(unknown)}; known: {sorted(self.runtime_options)}")
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.spec = self.spec.with_options(**options)
        clone._apply_options()
        return clone

    #: option names that :meth:`with_options` may change without reloading weights.
    runtime_options: tuple[str, ...] = ()

    def _apply_options(self) -> None:
        """Hook: re-read ``self.spec.options`` after :meth:`with_options`."""

    # ----------------------------------------------------------------------------------------- encoding
    def encode(
        self,
        texts: str | Sequence[str],
        batch_size: int | None = None,
        show_progress_bar: bool = False,
        progress: ProgressFn | None = None,
    ) -> np.ndarray:
        """Encode texts as L2-normalised float32 vectors.

        Parameters
        ----------
        texts : str or sequence of str
            One text gives a 1-D array; a list gives shape ``(n, d)``.
        batch_size : int, optional
            Texts per forward pass (family default when None).
        show_progress_bar : bool
            Print a tqdm bar on stderr.
        progress : callable, optional
            ``progress(done, total)`` callback (the dashboard's progress bar).

        Returns
        -------
        np.ndarray
            Shape ``(d,)`` or ``(n, d)``; zero rows for texts with no vector (see :meth:`encode_detailed`).
        """
        single = isinstance(texts, str)
        enc = self.encode_detailed([texts] if single else list(texts), batch_size, show_progress_bar, progress)
        return enc.vectors[0] if single else enc.vectors

    def encode_detailed(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        show_progress_bar: bool = False,
        progress: ProgressFn | None = None,
    ) -> Encoding:
        """Like :meth:`encode` but returns an :class:`Encoding` with validity and warnings per text."""
        if not self.can_encode:
            raise NotImplementedError(f"{self.key} does not produce sentence vectors")
        cleaned = [clean_text(t) for t in texts]
        warnings: list[list[str]] = [self._language_warnings(t) for t in cleaned]
        idx = [i for i, t in enumerate(cleaned) if t]
        for i, t in enumerate(cleaned):
            if not t:
                warnings[i].append("empty text: no vector")
        vectors = np.zeros((len(cleaned), self.dim), dtype=np.float32)
        valid = np.zeros(len(cleaned), dtype=bool)
        if idx:
            sub = self._encode([cleaned[i] for i in idx], batch_size or self.default_batch_size, show_progress_bar, progress)
            rows = np.asarray(idx, dtype=np.int64)
            vectors[rows] = sub.vectors
            valid[rows] = sub.valid
            for j, w in enumerate(sub.warnings):
                if w:
                    warnings[idx[j]].extend(w)
        return Encoding(vectors, valid, warnings)

    default_batch_size: int = 64

    @property
    def dim(self) -> int:
        """Output dimension of :meth:`encode`."""
        raise NotImplementedError

    def _encode(self, texts: list[str], batch_size: int, show_progress_bar: bool, progress: ProgressFn | None) -> Encoding:
        """Encode cleaned, non-empty texts. Subclasses of encoders implement this."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ scoring
    def score(self, a: Sequence[str], b: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Similarity of each pair ``(a[i], b[i])``; shape ``(n,)``, NaN where undefined."""
        return self.score_detailed(a, b, batch_size).scores

    def score_detailed(
        self,
        a: Sequence[str],
        b: Sequence[str],
        batch_size: int | None = None,
        progress: ProgressFn | None = None,
    ) -> PairScores:
        """Score pairs and say why any score is missing. Default: cosine of :meth:`encode_detailed` vectors."""
        a, b = list(a), list(b)
        if len(a) != len(b):
            raise ValueError(f"a and b must have the same length ({len(a)} != {len(b)})")
        # Encode the union once: duplicates (a text on both sides, repeated rows) cost nothing extra.
        uniq = list(dict.fromkeys([*a, *b]))
        pos = {t: i for i, t in enumerate(uniq)}
        enc = self.encode_detailed(uniq, batch_size, progress=progress)
        ia = np.fromiter((pos[t] for t in a), dtype=np.int64, count=len(a))
        ib = np.fromiter((pos[t] for t in b), dtype=np.int64, count=len(b))
        return cosine_pair_scores(enc, ia, ib, self.key)

    # ------------------------------------------------------------------------------------------ helpers
    def _language_warnings(self, text: str) -> list[str]:
        if not text:
            return []
        lang = detect_language(text)
        if lang in ("unknown",) or lang in self.languages:
            return []
        if lang == "mixed":
            if "zh" in self.languages and "en" in self.languages:
                return []
            return [f"mixed Chinese/English text; {self.key} was trained on {'/'.join(self.languages)} only"]
        return [f"text looks {'Chinese' if lang == 'zh' else 'English'}; {self.key} was trained on {'/'.join(self.languages)} only"]


def cosine_pair_scores(enc: Encoding, ia: np.ndarray, ib: np.ndarray, model: str) -> PairScores:
    """Cosine scores for pairs of rows of an :class:`Encoding` (rows are already unit length).

    Computed in float32 from float32 vectors; clipped to [-1, 1] against rounding.
    """
    va, vb = enc.vectors[ia], enc.vectors[ib]
    scores = np.clip(np.einsum("ij,ij->i", va, vb, dtype=np.float32), -1.0, 1.0).astype(np.float32)
    ok = enc.valid[ia] & enc.valid[ib]
    scores[~ok] = np.nan
    warnings = [
        [f"A: {w}" for w in enc.warnings[i]] + [f"B: {w}" for w in enc.warnings[j]]
        for i, j in zip(ia.tolist(), ib.tolist(), strict=True)
    ]
    return PairScores(scores, warnings, model)


def normalize_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalise rows in float32; returns ``(unit_rows, nonzero_mask)`` (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1)
    ok = norms > 1e-12
    out = np.zeros_like(x)
    out[ok] = x[ok] / norms[ok, None]
    return out, ok


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Index batches of items sorted by decreasing length (fewer pad tokens; the longest batch first so
    an out-of-memory error shows up at once). Callers scatter results back with the indices."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
