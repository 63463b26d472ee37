"""Calibration: percentiles agree with scipy, fitted maps are monotone and cross 0.5 where they should."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from backend.lab.calibration import (
    Background,
    Calibrator,
    background_scores,
    calibrate,
    demo_corpus_texts,
    random_pairs,
)


def noisy_binary(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(float)
    s = np.clip(0.35 + 0.3 * y + rng.normal(0, 0.12, n), -1, 1)
    return s, y


def test_percentile_matches_scipy_and_is_monotone():
    rng = np.random.default_rng(0)
    bg = Background(np.round(rng.normal(0.2, 0.1, 500), 2))
    for x in (-1.0, 0.05, 0.2, 0.2001, 0.33, 2.0):
        assert bg.percentile(x) == pytest.approx(stats.percentileofscore(bg.scores, x, kind="weak"))
    grid = np.linspace(-1, 1, 1001)
    p = bg.percentile(grid)
    assert np.all(np.diff(p) >= 0) and p[0] == 0 and p[-1] == 100
    assert np.isnan(bg.percentile([np.nan]))[0]
    assert bg.quantiles((0.5,))[0.5] == pytest.approx(np.median(bg.scores))


def test_background_drops_nan_and_empty_background_raises():
    bg = Background(np.array([0.3, np.nan, 0.1]))
    assert bg.scores.tolist() == [0.1, 0.3]
    with pytest.raises(ValueError):
        Background(np.array([np.nan])).percentile(0.5)


def test_random_pairs_never_pair_a_text_with_itself():
    ia, ib = random_pairs(5, 2000, seed=1)
    assert len(ia) == 2000 and np.all(ia != ib)
    assert set(ib.tolist()) == set(range(5))
    with pytest.raises(ValueError):
        random_pairs(1, 3)


@pytest.mark.parametrize("method", ["isotonic", "logistic"])
def test_calibration_map_is_monotone_bounded_and_threshold_separates(method):
    s, y = noisy_binary()
    cal = Calibrator(method).fit(s, y)
    grid = np.linspace(-1, 1, 2001)
    p = cal.predict(grid)
    assert np.all(np.diff(p) >= -1e-12), "P(similar) must never fall as the score rises"
    assert p.min() >= 0 and p.max() <= 1
    # classes centred at 0.35 and 0.65: P crosses 0.5 near the middle
    assert 0.42 < cal.threshold_ < 0.58
    assert cal.predict([cal.threshold_ + 1e-6])[0] >= 0.5 - 1e-6
    assert cal.predict([cal.threshold_ - 0.05])[0] < 0.5
    assert cal.brier(s, y) < 0.2  # better than a coin (0.25)


def test_calibration_keeps_ranking_so_auc_is_unchanged():
    from sklearn.metrics import roc_auc_score

    s, y = noisy_binary(300, seed=2)
    cal = Calibrator("logistic").fit(s, y)
    assert roc_auc_score(y, cal.predict(s)) == pytest.approx(roc_auc_score(y, s))


def test_logistic_on_anticorrelated_scores_says_so():
    s, y = noisy_binary()
    cal = Calibrator("logistic").fit(-s, y)
    assert not cal.increasing_ and cal.threshold_ is None
    assert any("decreasing" in n for n in cal.notes_)


def test_one_class_gives_no_calibrator_but_a_note():
    s, _ = noisy_binary(20)
    r = calibrate(s, np.ones(20))
    assert r.calibrator is None and "both classes" in r.notes[0]
    with pytest.raises(ValueError):
        Calibrator("spline")


def test_calibrate_table_combines_percentile_and_probability():
    s, y = noisy_binary()
    bg = Background(np.random.default_rng(3).normal(0.1, 0.1, 300))
    r = calibrate(s, y, bg, "isotonic", "m")
    t = r.table([0.0, 0.5, 0.9])
    assert list(t.columns) == ["score", "percentile", "p_similar"]
    assert t["percentile"].is_monotonic_increasing and t["p_similar"].is_monotonic_increasing
    assert r.brier is not None and any("in-sample" in n for n in r.notes)


def test_background_scores_on_the_demo_corpus():
    texts = demo_corpus_texts("en")
    assert len(texts) > 100 and all(t for t in texts)
    from tests.fakes import fake_backend

    seen: list[tuple[str, str]] = []

    def by_length(x: str, y: str) -> float:
        seen.append((x, y))
        return len(x) / 100

    be = fake_backend(scorers={"m": by_length})
    bg = background_scores(be, "m", texts, n_pairs=300, seed=0)
    assert len(bg.scores) == 300 and np.isfinite(bg.scores).all()
    assert seen and all(x != y for x, y in seen)  # a random pair is never a text with itself
    assert len(demo_corpus_texts("zh")) > 0 and len(demo_corpus_texts("all")) > len(texts)


def test_score_span():
    from backend.lab.calibration import score_span

    assert score_span((0.2, 0.8)) == (0.2, 0.8)
    assert score_span((0.2, 0.8), np.array([-0.1, 0.5])) == (-0.1, 0.8)
    assert score_span((0.2, 0.8), np.array([])) == (0.2, 0.8)
