"""backend.serving.speed: timings on fresh texts, in the unit the model's role reads."""

from __future__ import annotations

import numpy as np

from backend.serving.speed import measure_speed
from tests.fakes import fake_backend


def test_measure_speed_units_and_fresh_texts():
    seen: list[str] = []

    def vec(t: str) -> np.ndarray:
        seen.append(t)
        return np.ones(8)

    be = fake_backend(encoders={"fake": vec}, scorers={"fake_cross": lambda a, b: 0.0})
    out = measure_speed(be.model("fake"), ["one", "two"], n=8, seed=0)
    assert out.unit == "sentences" and out.per_second > 0 and out.latency_ms >= 0
    timed = seen[10:]  # after the five single-pair latency calls (two texts each)
    assert len(timed) == len(set(timed)) == 8  # every timed text is new (no cache can answer)
    assert measure_speed(be.model("fake_cross"), ["one"], n=8, seed=0).unit == "pairs"
