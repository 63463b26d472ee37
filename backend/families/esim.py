"""ESIM as a dashboard model: a native pair scorer (cross-encoder) that can also give sentence vectors.

The score of a pair is ESIM's own output, ``sigmoid(logit)`` in [0, 1] (the network was trained on
``score / 5`` for STS data), **not** a cosine. :meth:`ESIMModel.encode` returns the "ESIM encoder vector":
the input-encoding BiLSTM states of one sentence, masked mean + max pooled and L2-normalised; it is a by-product
for the embedding map, not what the pair score is computed from.

Weights come from a checkpoint folder (``model.safetensors`` + ``config.json`` + ``vocab.txt``) written by
``python -m backend.esim train``; nothing is unpickled. Text-handling settings (``max_len``, tokenisation) live
in that ``config.json``, so a checkpoint always reads text the way it was trained to.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from backend.base import (
    NO_WORDS,
    Encoder,
    Encoding,
    PairScorer,
    PairScores,
    ProgressFn,
    length_sorted_batches,
    normalize_rows,
    truncation_message,
)
from backend.registry import ModelSpec
from backend.text import clean_text, has_words, script_name

if TYPE_CHECKING:
    # torch (and backend.esim.model, which needs it) is imported in the methods that run the network: asking this
    # family's roles and options imports this file, and that must not cost torch's second of imports.
    import torch

ALL_UNKNOWN = "every token was unknown to ESIM's vocabulary"


class ESIMModel(PairScorer, Encoder):
    """ESIM checkpoint wrapped in the :class:`~backend.base.SentenceModel` interface.

    Parameters
    ----------
    spec : ModelSpec
        Registry entry; ``spec.resolve_source()`` is the checkpoint folder.
    device : str
        ``"cpu"`` (fp32) or ``"cuda[:i]"`` (bf16/fp16 autocast, fp32 scores).

    Raises
    ------
    FileNotFoundError
        The folder or one of its files is missing (the message names it).
    ValueError
        The files do not fit together.
    """

    default_batch_size = 128
    score_meaning = "native ESIM score (sigmoid output in [0, 1]), not a cosine"
    # It reads its two inputs in different roles (premise, hypothesis): trained with sides swapped at random, so
    # (a, b) and (b, a) are close, but not equal.
    symmetric = False

    def __init__(self, spec: ModelSpec, device: str = "cpu") -> None:
        super().__init__(spec, device)
        from backend.esim.model import load_checkpoint

        t0 = time.perf_counter()
        self.net, self.vocab = load_checkpoint(spec.resolve_source(), device)
        self.config = self.net.config
        self.languages = {"zh": ("zh",), "en": ("en",)}.get(spec.language, ("en", "zh"))
        self._autocast: torch.dtype | None = None
        if device.startswith("cuda"):
            from backend.devices import pick_dtype

            # Half precision halves the GPU's memory traffic; the sigmoid and the scores stay fp32.
            self._autocast = pick_dtype(device)
        self.load_seconds = time.perf_counter() - t0

    # ------------------------------------------------------------------------------------------ facts
    @property
    def dim(self) -> int:
        """Size of the ESIM encoder vector: mean + max of a 2 x hidden BiLSTM."""
        return 4 * self.config.hidden_size

    @property
    def max_tokens(self) -> int:
        """Tokens read per sentence; the rest is truncated with a warning."""
        return int(self.config.max_len)

    def info(self) -> dict[str, Any]:
        out = super().info()
        training = dict(self.config.training)
        out.update(
            dim=self.dim,
            vector="ESIM encoder vector (input-encoding BiLSTM, mean + max pooled, L2-normalised)",
            score=self.score_meaning,
            parameters=self.net.num_parameters(),
            max_tokens=self.max_tokens,
            dtype="fp32" if self._autocast is None else f"fp32 weights, {str(self._autocast).split('.')[-1]} autocast",
            vocabulary=len(self.vocab),
            tokens="characters" if self.config.language == "zh" and self.config.chinese == "char" else "words",
            objective=self.config.objective,
            dev_spearman=training.get("dev_spearman"),
            embeddings=training.get("embeddings"),
            seed=training.get("seed"),
        )
        return out

    # ------------------------------------------------------------------------------------- tokenising
    def _prepare(self, text: str) -> tuple[list[str], list[int], list[str]]:
        """Tokens (after truncation), their ids and warnings for one cleaned, non-empty text."""
        warnings: list[str] = []
        toks = self.vocab.tokenize(text)
        if not has_words(text):
            return [], [], [NO_WORDS]
        if not toks:
            # Letters in a script ESIM's tokeniser skips (texts without any letter never get here).
            return [], [], [f"no words {self.key} can read ({script_name(text).title() or 'this'} script)"]
        if len(toks) > self.max_tokens:
            warnings.append(truncation_message(len(toks), self.max_tokens, toks[self.max_tokens - 1]))
            toks = toks[: self.max_tokens]
        ids = self.vocab.ids(toks)
        unknown = [t for t, i in zip(toks, ids, strict=True) if i == 1]
        if len(unknown) == len(toks):
            warnings.append(ALL_UNKNOWN)
        elif unknown:
            shown = ", ".join(dict.fromkeys(unknown[:8]))
            warnings.append(f"unknown to ESIM's vocabulary: {shown}{' …' if len(unknown) > 8 else ''}")
        return toks, ids, warnings

    # --------------------------------------------------------------------------------------- scoring
    def _score_pairs(self, a: list[str], b: list[str], batch_size: int, progress: ProgressFn | None) -> PairScores:
        """Native ESIM similarity of cleaned, non-empty pairs, in [0, 1]; NaN where a side has no words."""
        import torch

        from backend.esim.model import predict_ids

        prepared: dict[str, tuple[list[int], list[str]]] = {}

        def prep(text: str) -> tuple[list[int], list[str]]:
            if text not in prepared:
                _, ids, warns = self._prepare(text)
                prepared[text] = (ids, [f"{warns[0]}: no score"] if not ids else warns)
            return prepared[text]

        n = len(a)
        scores = np.full(n, np.nan, dtype=np.float32)
        warnings: list[list[str]] = []
        ok: list[int] = []
        for i in range(n):
            (xa, wa), (xb, wb) = prep(a[i]), prep(b[i])
            warnings.append([f"A: {w}" for w in wa] + [f"B: {w}" for w in wb])
            if xa and xb:
                ok.append(i)
        # Longest pairs first, then one lock per forward batch: a long job interleaves with other requests.
        ok.sort(key=lambda i: -max(len(prepared[a[i]][0]), len(prepared[b[i]][0])))
        for start in range(0, len(ok), batch_size):
            rows = ok[start : start + batch_size]
            with self.lock, torch.inference_mode():
                sims = predict_ids(self.net, [prepared[a[i]][0] for i in rows], [prepared[b[i]][0] for i in rows],
                                   batch_size, self.device, self._autocast)
            scores[np.asarray(rows)] = sims.numpy()
            if progress is not None:
                progress(start + len(rows), len(ok))
        if not ok and progress is not None:
            progress(n, n)
        return PairScores(scores, warnings, self.key)

    def align(self, a: str, b: str) -> dict[str, Any]:
        """ESIM's soft alignment of two texts, for a heatmap.

        Returns
        -------
        dict
            ``tokens_a``, ``tokens_b`` (lists of str, after truncation), ``matrix`` (np.ndarray of shape
            (len_a, len_b), float32: row i is token i of ``a``'s attention over ``b``, summing to 1),
            ``score`` (float, NaN when undefined) and ``warnings`` (list of str).
        """
        import torch

        from backend.esim.model import pad_batch

        out: dict[str, Any] = {"warnings": []}
        sides = []
        for tag, raw in (("A", a), ("B", b)):
            text = clean_text(raw)
            if not text:
                toks, ids, warns = [], [], ["empty text: no score"]
            else:
                toks, ids, warns = self._prepare(text)
            out["warnings"].extend(f"{tag}: {w}" for w in warns)
            sides.append((toks, ids))
        (ta, ia), (tb, ib) = sides
        out.update(tokens_a=ta, tokens_b=tb, matrix=np.zeros((len(ta), len(tb)), dtype=np.float32), score=float("nan"))
        if ia and ib:
            with self.lock, torch.inference_mode():
                xa, la = pad_batch([ia], self.device)
                xb, lb = pad_batch([ib], self.device)
                res = self.net(xa, la, xb, lb)  # fp32 even on a GPU: one pair, and the heatmap should be exact
            out["matrix"] = res.attention[0].float().cpu().numpy()
            out["score"] = float(torch.sigmoid(res.logits.float())[0])
        return out

    # -------------------------------------------------------------------------------------- encoding
    def _encode(self, texts: list[str], batch_size: int, show_progress_bar: bool, progress: ProgressFn | None) -> Encoding:
        import torch

        from backend.esim.model import pad_batch

        n = len(texts)
        vectors = np.zeros((n, self.dim), dtype=np.float32)
        valid = np.zeros(n, dtype=bool)
        warnings: list[list[str]] = []
        ids: list[list[int]] = []
        for text in texts:
            _, x, warns = self._prepare(text)
            ids.append(x)
            warnings.append([f"{warns[0]}: no vector"] if not x else warns)
        todo = [i for i in range(n) if ids[i]]
        batches = length_sorted_batches([len(ids[i]) for i in todo], batch_size)
        if show_progress_bar:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc=f"encode {self.key}")
        done = 0
        for batch in batches:
            rows = [todo[j] for j in batch]
            x, lengths = pad_batch([ids[i] for i in rows], self.device)
            with self.lock, torch.inference_mode():  # per batch: other requests interleave with a long job
                if self._autocast is not None:
                    with torch.autocast(device_type="cuda", dtype=self._autocast):
                        v = self.net.sentence_vector(x, lengths)
                else:
                    v = self.net.sentence_vector(x, lengths)
            unit, nonzero = normalize_rows(v.float().cpu().numpy())
            vectors[rows] = unit
            valid[rows] = nonzero
            done += len(rows)
            if progress is not None:
                progress(done, len(todo))
        return Encoding(vectors, valid, warnings)


Model = ESIMModel
