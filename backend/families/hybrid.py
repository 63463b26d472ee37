"""A hybrid pair scorer: a fine-tuned cross-encoder fused with a bi-encoder's cosine by weights fitted on dev.

The study notes' ranker is a cross-encoder; on STS-B-sized training data a small one can still trail the
bi-encoder it should refine. The two make different mistakes (the cross-encoder reads word order and negation,
the bi-encoder was trained on a billion pairs), so a weighted sum of their evidence beats both:

    score = sigmoid(w_cross * logit(p_cross) + w_cos * cosine + bias)

with three numbers fitted by :func:`backend.cross.fusion.fit_fusion` (binary cross-entropy against gold / 5 on a dev
set) and stored with their provenance in ``fusion.json`` (``python -m backend.cross fuse``). It is named for what it
is: it needs both models, costs both models' time, and its weights were chosen on dev, so its dev number is
optimistic by the amount the card's cross-validated figure shows.

The folder's ``fusion.json`` names its two parts by family and source (not by registry key), so a hybrid folder is
self-contained and a registry table is all a new one needs.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from backend.base import PairScorer, PairScores, ProgressFn
from backend.families._onnx import RUNTIME_OPTION
from backend.options import Option
from backend.registry import ModelSpec

if TYPE_CHECKING:
    # Importing backend.cross.fusion costs about two seconds (scipy's optimiser and statistics, and torch through
    # backend/cross/__init__.py): it is imported where a fusion is read or applied, not when this family's roles
    # and options are asked.
    from backend.cross.fusion import FusionConfig


class HybridModel(PairScorer):
    """Cross-encoder probability and bi-encoder cosine, fused by a fitted logistic layer."""

    OPTIONS = (
        RUNTIME_OPTION,
        Option("symmetric", bool, True, "Let the cross-encoder read both orders and average (a cosine is "
               "symmetric already); off halves the cross-encoder's cost.", runtime=True, label="both orders",
               label_zh="两个顺序", why_zh="让交叉编码器读 (a, b) 和 (b, a) 两个顺序并取平均（余弦本身就是对称的）；"
               "关闭可让交叉编码器的耗时减半。"),
    )
    default_batch_size = 32

    def __init__(self, spec: ModelSpec, device: str = "cpu") -> None:
        super().__init__(spec, device)
        from backend.cross.fusion import read_fusion
        from backend.families import build_model

        t0 = time.perf_counter()
        self.fusion: FusionConfig = read_fusion(spec.resolve_source())
        runtime = str(self.options["runtime"])
        parts = {}
        for role, part in (("cross", self.fusion.cross), ("encoder", self.fusion.encoder)):
            options = {**part.get("options", {}), "runtime": runtime}
            sub = ModelSpec(key=f"{spec.key}.{role}", family=part["family"], label=f"{spec.label} ({role})",
                            source=part["source"], language=spec.language, options=options, default=False,
                            licence=spec.licence)
            parts[role] = build_model(sub, device)
        self.cross, self.encoder = parts["cross"], parts["encoder"]
        self.languages = ("en", "zh") if spec.language == "multi" else (spec.language,)
        self._apply_options()
        self.load_seconds = time.perf_counter() - t0

    @classmethod
    def weights_digest(cls, spec: ModelSpec) -> str:
        """The fusion file's fingerprint and both parts': retraining a part changes the hybrid's id too."""
        from backend.registry import weights_digest

        own = weights_digest(spec.source)
        try:
            cross, encoder = _parts(spec.resolve_source(), own)
        except (FileNotFoundError, ValueError):
            return own
        return "+".join([own, weights_digest(cross), weights_digest(encoder)])

    def _apply_options(self) -> None:
        # A view of the cross-encoder with this option (shares its weights; the original is left as it was).
        self.cross = self.cross.with_options(symmetric=bool(self.options["symmetric"]))

    @property
    def score_meaning(self) -> str:  # type: ignore[override]
        """What the number is, for cards and axis labels."""
        return "sigmoid of a fitted mix of the cross-encoder's logit and the bi-encoder's cosine, in [0, 1]"

    def info(self) -> dict[str, Any]:
        out = super().info()
        out.update(
            parameters=int(self.cross.info().get("parameters", 0)) + int(self.encoder.info().get("parameters", 0)),
            max_tokens=self.cross.info().get("max_tokens"),
            score=self.score_meaning,
            architecture=f"{self.cross.info().get('architecture')} + {self.encoder.info().get('architecture')}",
            fusion={k: round(v, 4) for k, v in self.fusion.weights.items()},
            dev_spearman=self.fusion.metrics.get("dev_spearman"),
            runtime=self.cross.info().get("runtime"),
        )
        return out

    def _score_pairs(self, a: list[str], b: list[str], batch_size: int, progress: ProgressFn | None) -> PairScores:
        from backend.cross.fusion import fused_scores

        half = (lambda done, total: progress(done // 2, len(a))) if progress else None
        cross = self.cross._score_pairs(a, b, batch_size, half)
        texts = list(dict.fromkeys(a + b))
        enc = self.encoder.encode_detailed(texts, batch_size=batch_size)
        row = {t: i for i, t in enumerate(texts)}
        ia, ib = [row[t] for t in a], [row[t] for t in b]
        cos = (enc.vectors[ia] * enc.vectors[ib]).sum(1)
        ok = enc.valid[ia] & enc.valid[ib]
        scores = fused_scores(self.fusion, cross.scores, np.where(ok, cos, np.nan))
        warnings = [list(w) for w in cross.warnings]
        for i, (x, y) in enumerate(zip(ia, ib, strict=True)):
            # the bi-encoder's own notes (truncation, ...) once, beside the cross-encoder's
            for m in [f"A: {m}" for m in enc.warnings[x]] + [f"B: {m}" for m in enc.warnings[y]]:
                if m not in warnings[i]:
                    warnings[i].append(m)
            if not ok[i]:
                warnings[i].append("the bi-encoder gave no vector: no fused score")
        if progress is not None:
            progress(len(a), len(a))
        return PairScores(scores.astype(np.float32), warnings, self.key)


@functools.lru_cache(maxsize=64)
def _parts(folder: str, digest: str) -> tuple[str, str]:
    """The sources of a fusion folder's two parts, read once per version of the folder (``digest``): the model's
    id is asked on every request, and reading the JSON each time would put file I/O on that path."""
    from backend.cross.fusion import read_fusion

    fusion = read_fusion(folder)
    return fusion.cross["source"], fusion.encoder["source"]


Model = HybridModel
