"""A fine-tuned cross-encoder: one BERT reads both sentences (``[CLS] a [SEP] b [SEP]``) and gives one score.

This is the study notes' ranking model ("recall with sentence vectors, then rank with a fine-tuned BERT that reads
both sentences"). It is a pair scorer only: it gives no sentence vectors, so it appears on Compare, Batch, the
Evaluation lab and as a reranker, never on Neighbours or Projection. The score is ``sigmoid(logit)`` in [0, 1]
(trained on STS-B gold / 5): a probability-like value, not a cosine.

Weights are a compact checkpoint folder (``backend/cross/checkpoint.py``: fp16 safetensors without the frozen
word embeddings, which come from the installed base model), trained by ``python -m backend.cross train``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from backend.base import PairScorer, PairScores, ProgressFn, truncation_message
from backend.families._hf import TransformerModel, quiet_transformers
from backend.families._onnx import RUNTIME_OPTION, OnnxRunner
from backend.options import Option

if TYPE_CHECKING:
    import torch


class CrossEncoderModel(TransformerModel, PairScorer):
    """A compact cross-encoder checkpoint in the :class:`~backend.base.PairScorer` role."""

    OPTIONS = (
        Option("symmetric", bool, True, "Average the scores of (a, b) and (b, a): a cross-encoder reads its input in "
               "order, so the two can differ a little; averaging makes the score symmetric at twice the cost.",
               runtime=True, label="both orders", label_zh="两个顺序",
               why_zh="对 (a, b) 和 (b, a) 两个顺序的分数取平均：交叉编码器按顺序读输入，两个顺序的分数可能略有不同；"
               "取平均使分数对称，但耗时加倍。"),
        Option("max_tokens", int, 0, "Word pieces read per pair, [CLS] and both [SEP]s included (0 = the "
               "checkpoint's own limit); a longer pair is cut, longer side first, with a warning.", low=0, high=512),
        RUNTIME_OPTION,
    )
    default_batch_size = 32
    #: pairs per forward call between lock releases, so a long job lets other requests through.
    BATCHES_PER_CALL = 4

    onnx_prefix = "cross"
    #: traced on pairs, as the network reads them: ``[CLS] a [SEP] b [SEP]``, with token types.
    EXPORT_EXAMPLE = (("an example", "a longer example sentence"), ("a", "b"))

    def _load(self, path: str) -> None:
        # backend.cross.checkpoint imports torch: here, not with this file.
        from backend.cross.checkpoint import SECTION, load_compact, read_compact_config

        quiet_transformers()
        self.config = read_compact_config(path)[SECTION]
        # Half precision halves a GPU's memory traffic; on a CPU it is slower than fp32, so it stays fp32 there.
        self.net = load_compact(path, self.device, self.torch_dtype if self.device != "cpu" else None)
        self.torch_dtype = next(self.net.model.parameters()).dtype  # what was loaded: the card shows this
        limit = int(self.options["max_tokens"]) or int(self.config.get("max_length", 128))
        self.max_tokens = self.cap_tokens(limit, self.net.model.config)
        self.net.max_length = self.max_tokens
        self.tokenizer = self.net.tokenizer
        self.max_batch = 1 << 16  # lowered when a batch runs out of memory
        self.notes: list[str] = []

    @property
    def network(self) -> torch.nn.Module:
        """The Hugging Face classifier inside sentence-transformers' ``CrossEncoder``."""
        return self.net.model

    def _export(self, path: str) -> OnnxRunner:
        """Export the classification network (word pieces of the pair -> one logit) to ONNX once; the sigmoid is
        applied outside, in fp32, as on the torch path."""
        # The compact folder holds only the trained tensors; the fingerprint also covers the base they complete.
        return self.export_onnx(path, self.net.model, lambda model, inputs: model(**inputs).logits, "logits",
                                what=f"logits of {self.config.get('base_source')}")

    def _predict(self, a: list[str], b: list[str], batch_size: int) -> np.ndarray:
        """Scores of aligned pairs (call with the lock held); a batch that runs out of memory is halved and retried,
        down to one pair, and the smaller size is kept for the rest of this model's life."""
        import torch

        while True:
            try:
                return self._predict_batch(a, b, min(batch_size, self.max_batch))
            except (torch.OutOfMemoryError, MemoryError) as exc:
                if min(batch_size, self.max_batch) <= 1:
                    raise MemoryError(f"{self.key}: one pair does not fit in memory") from exc
                self.max_batch = max(1, min(batch_size, self.max_batch) // 2)
                self.notes.append(f"ran out of memory; batch size halved to {self.max_batch}")
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()

    def _predict_batch(self, a: list[str], b: list[str], batch_size: int) -> np.ndarray:
        if self.onnx is None:
            from backend.cross.checkpoint import score_pairs

            return score_pairs(self.net, a, b, symmetric=self.symmetric, batch_size=batch_size)
        pairs = list(zip(a, b, strict=True))
        if self.symmetric:
            pairs += [(y, x) for x, y in pairs]
        logits = np.zeros(len(pairs), dtype=np.float32)
        for s in range(0, len(pairs), batch_size):
            feats = self.tokenizer(pairs[s : s + batch_size], padding=True, truncation="longest_first",
                                   max_length=self.max_tokens, return_tensors="np")
            logits[s : s + batch_size] = self.onnx(dict(feats))[0].reshape(-1)
        scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        if self.symmetric:
            scores = (scores[: len(a)] + scores[len(a) :]) / 2
        return scores.astype(np.float32)

    def _apply_options(self) -> None:
        self.symmetric = bool(self.options["symmetric"])

    @property
    def score_meaning(self) -> str:  # type: ignore[override]
        """What the number is, for cards and axis labels."""
        return "sigmoid of one logit in [0, 1] (STS-B gold / 5), not a cosine"

    def info(self) -> dict[str, Any]:
        out = super().info()
        training = self.config.get("training", {}) or {}
        out.update(
            score=self.score_meaning,
            base=self.config.get("base_source"),
            dev_spearman=training.get("dev_spearman"),
            symmetric=self.symmetric,
        )
        return out

    def _truncation(self, a: list[str], b: list[str]) -> list[list[str]]:
        """Which side of each over-long pair is cut and after which word piece (longest-first, as the tokenizer)."""
        budget = self.max_tokens - self.tokenizer.num_special_tokens_to_add(pair=True)
        out: list[list[str]] = [[] for _ in a]
        long = [i for i in range(len(a)) if len(a[i]) + len(b[i]) > budget]  # fewer characters cannot overflow
        if not long:
            return out
        with self.lock:
            ids_a = self.tokenizer([a[i] for i in long], add_special_tokens=False)["input_ids"]
            ids_b = self.tokenizer([b[i] for i in long], add_special_tokens=False)["input_ids"]
        for i, xa, xb in zip(long, ids_a, ids_b, strict=True):
            la, lb = len(xa), len(xb)
            if la + lb <= budget:
                continue
            ka, kb = la, lb
            while ka + kb > budget:  # the tokenizer's "longest_first": one token off the longer side at a time
                if ka > kb:
                    ka -= 1
                else:
                    kb -= 1
            for side, ids, n, kept in (("A", xa, la, ka), ("B", xb, lb, kb)):
                if kept < n:
                    last = self.tokenizer.convert_ids_to_tokens(ids[kept - 1]) if kept else ""
                    out[i].append(truncation_message(n, kept, last, "word pieces", kept=kept, side=side)
                                  + f" (the pair's limit is {self.max_tokens})")
        return out

    def _score_pairs(self, a: list[str], b: list[str], batch_size: int, progress: ProgressFn | None) -> PairScores:
        scores = np.zeros(len(a), dtype=np.float32)
        # Longest pairs first (fewer pad tokens per batch); the lock is held per call, not for the whole request.
        order = np.argsort([-(len(x) + len(y)) for x, y in zip(a, b, strict=True)], kind="stable")
        step = batch_size * self.BATCHES_PER_CALL
        for start in range(0, len(a), step):
            idx = order[start : start + step]
            with self.lock:
                scores[idx] = self._predict([a[i] for i in idx], [b[i] for i in idx], batch_size)
            if progress is not None:
                progress(start + len(idx), len(a))
        return PairScores(scores, self._truncation(a, b), self.key)


Model = CrossEncoderModel
