"""Stand-in model families for tests: real :class:`~backend.base.Encoder` / :class:`~backend.base.PairScorer`
subclasses whose numbers are chosen by the test, run through a real :class:`~backend.serving.Backend`.

Only ``_encode`` / ``_score_pairs`` are faked; cleaning, empty text, warnings, caching, language routing and
chunking are the project's own code, so a test that passes here exercises what users run.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from backend.base import Encoder, Encoding, PairScorer, PairScores
from backend.families import register_family
from backend.options import Option
from backend.registry import ModelSpec, Registry
from backend.serving import Backend

#: per-key behaviour for the fake families: set by :func:`fake_backend`.
TEXT_VECTORS: dict[str, Callable[[str], np.ndarray]] = {}
PAIR_SCORES: dict[str, Callable[[str, str], float]] = {}
CALLS: list[tuple[str, int]] = []


class FakeEncoder(Encoder):
    """Vectors from ``TEXT_VECTORS[key](text)`` (normalised); a ``scale`` option to test options."""

    OPTIONS = (Option("scale", float, 1.0, "multiplies the vector (cosine ignores it)", low=0.0, high=10.0, runtime=True),)
    dim = 8

    def _encode(self, texts, batch_size, show_progress_bar, progress):
        CALLS.append((self.key, len(texts)))
        v = np.stack([np.asarray(TEXT_VECTORS[self.key](t), dtype=np.float32) for t in texts]) * self.options["scale"]
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        ok = norms[:, 0] > 0
        v[ok] /= norms[ok]
        if progress:
            progress(len(texts), len(texts))
        return Encoding(v.astype(np.float32), ok, [[] for _ in texts])


class FakePairScorer(PairScorer):
    """Scores from ``PAIR_SCORES[key](a, b)``; NaN where the function returns NaN, with a warning."""

    symmetric = False

    def _score_pairs(self, a, b, batch_size, progress):
        CALLS.append((self.key, len(a)))
        s = np.array([PAIR_SCORES[self.key](x, y) for x, y in zip(a, b, strict=True)], dtype=np.float32)
        w = [["A: nothing to read: no score"] if np.isnan(v) else [] for v in s]
        if progress:
            progress(len(a), len(a))
        return PairScores(s, w, self.key)


class BrokenModel(Encoder):
    """A model whose files are missing: it fails to load, like a registry entry pointing nowhere."""

    def __init__(self, spec, device="cpu"):
        super().__init__(spec, device)
        raise FileNotFoundError(f"model files not found: {spec.source}")


register_family("fake_encoder", FakeEncoder)
register_family("fake_pair", FakePairScorer)
register_family("fake_broken", BrokenModel)


def word_vec(text: str) -> np.ndarray:
    """A deterministic 8-d vector per text (word counts hashed into 8 slots): texts sharing words point alike."""
    v = np.zeros(8, dtype=np.float32)
    for w in text.lower().split():
        v[sum(map(ord, w)) % 8] += 1
    return v


def word_overlap(a: str, b: str) -> float:
    """Jaccard overlap of the two texts' words: a pair score with known values."""
    wa, wb = set(a.lower().split()), set(b.lower().split())
    return len(wa & wb) / max(len(wa | wb), 1)


def fake_backend(encoders: dict[str, Callable[[str], np.ndarray]] | None = None,
                 scorers: dict[str, Callable[[str, str], float]] | None = None,
                 broken: tuple[str, ...] = (), languages: dict[str, str] | None = None,
                 variants: dict[str, dict[str, str]] | None = None, **backend_kw) -> Backend:
    """A real Backend over fake families: ``encoders`` give vectors, ``scorers`` pair scores, ``broken`` fail.

    The persistent cache is off unless ``cache_dir`` is given: two tests may register the same fake key with
    different vectors, and must not read each other's. Other keywords go to :class:`Backend`.
    """
    TEXT_VECTORS.update(encoders or {})
    PAIR_SCORES.update(scorers or {})
    langs, var = languages or {}, variants or {}
    specs = [ModelSpec(k, "fake_encoder", k.upper(), f"path:{k}", language=langs.get(k, "en"),
                       variants=var.get(k, {})) for k in encoders or {}]
    specs += [ModelSpec(k, "fake_pair", k.upper(), f"path:{k}", language=langs.get(k, "en"),
                        variants=var.get(k, {})) for k in scorers or {}]
    specs += [ModelSpec(k, "fake_broken", k, "path:missing") for k in broken]
    backend_kw.setdefault("cache_dir", "memory")
    return Backend(Registry(specs), device="cpu", **backend_kw)
