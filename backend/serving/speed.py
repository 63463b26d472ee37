"""How fast a model is on this machine: the latency of one pair and the throughput of a batch.

The Models page's "Measure speed" button and ``bench/`` scripts share :func:`measure_speed`. It times the model
itself, never a cache: every timed text is made new with a counter suffix.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from backend.base import Encoder, PairScorer, SentenceModel

#: sentences timed for throughput: enough batches to amortise start-up, few enough to finish in seconds.
BENCH_SENTENCES = 256


@dataclass
class Speed:
    """One model's speed on this machine.

    Attributes
    ----------
    latency_ms : float
        Median of five single-pair calls.
    per_second : float
        Throughput in :attr:`unit`.
    unit : {"sentences", "pairs"}
        Encoders are timed on sentences; pair scorers (which read two sentences per call) on pairs.
    """

    latency_ms: float
    per_second: float
    unit: str


def measure_speed(model: SentenceModel, corpus: Sequence[str], n: int = BENCH_SENTENCES,
                  seed: int | None = None) -> Speed:
    """Latency of one pair and throughput of ``model``, timed on the model itself (no Backend cache).

    Parameters
    ----------
    model : SentenceModel
        A loaded model.
    corpus : sequence of str
        Realistic sentences to sample from (the demo corpus).
    n : int
        Sentences timed for throughput (``n // 2`` pairs for a pair scorer).
    seed : int, optional
        Which sentences are sampled (default: a new sample each time).
    """
    rng = np.random.default_rng(seed if seed is not None else time.time_ns() % 2**32)
    # A counter suffix makes every text new, so no cache anywhere below the model can answer.
    texts = [f"{corpus[i]} ({j})" for j, i in enumerate(rng.integers(0, len(corpus), n))]
    latencies = []
    for j in range(5):
        t0 = time.perf_counter()
        model.score_detailed([texts[j]], [texts[-j - 1]])
        latencies.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    if isinstance(model, Encoder) and not isinstance(model, PairScorer):
        model.encode(texts)
        unit, count = "sentences", n
    else:
        model.score_detailed(texts[: n // 2], texts[n // 2 :])
        unit, count = "pairs", n // 2
    spent = max(time.perf_counter() - t0, 1e-9)
    return Speed(float(np.median(latencies) * 1000), count / spent, unit)


__all__ = ["BENCH_SENTENCES", "Speed", "measure_speed"]
