"""The hybrid pair scorer: the fusion fit (on synthetic scores), its file's checks, and the shipped hybrids'
behaviour (identity, symmetry, paraphrase above unrelated and above negation, dev Spearman floors)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from backend.cross.fusion import FusionConfig, fit_fusion, fused_scores, read_fusion, write_fusion
from tests.conftest import read_stsb


def synthetic(n: int = 600, seed: int = 0):
    """Gold in [0, 1] and two noisy views of it with independent noise: the fused score must beat both."""
    rng = np.random.default_rng(seed)
    gold = rng.uniform(0, 1, n)
    p_cross = 1 / (1 + np.exp(-(6 * (gold - 0.5) + rng.normal(0, 1.5, n))))
    cosine = 0.2 + 0.6 * gold + rng.normal(0, 0.12, n)
    return p_cross, cosine, gold


def test_fusion_beats_each_part_and_its_honest_estimate_is_close():
    p_cross, cosine, gold = synthetic()
    weights, m = fit_fusion(p_cross, cosine, gold)
    assert weights["cross_logit"] > 0 and weights["cosine"] > 0
    assert m["dev_spearman"] > max(m["cross_spearman"], m["cosine_spearman"]) + 0.02
    # out-of-fold: a little lower than in-sample, never far (three weights do not overfit 600 pairs)
    assert m["dev_spearman"] - 0.02 < m["cv_spearman"] <= m["dev_spearman"] + 0.005
    config = FusionConfig({"family": "cross", "source": "x"}, {"family": "sbert", "source": "y"}, weights)
    fused = fused_scores(config, p_cross, cosine)
    assert np.all((fused >= 0) & (fused <= 1))
    assert spearmanr(fused, gold).statistic == pytest.approx(m["dev_spearman"], abs=1e-9)


def test_fusion_refuses_too_few_pairs_and_gives_nan_where_a_part_is_missing():
    p_cross, cosine, gold = synthetic(19)
    with pytest.raises(ValueError, match="at least 20"):
        fit_fusion(p_cross, cosine, gold)
    config = FusionConfig({}, {}, {"cross_logit": 1.0, "cosine": 1.0, "bias": 0.0})
    out = fused_scores(config, np.array([0.9, np.nan, 0.5]), np.array([0.8, 0.8, np.nan]))
    assert np.isfinite(out[0]) and np.isnan(out[1:]).all()


def test_fusion_file_round_trip_and_clear_errors(tmp_path):
    config = FusionConfig({"family": "cross", "source": "path:a"}, {"family": "sbert", "source": "package:b"},
                          {"cross_logit": 1.5, "cosine": 4.0, "bias": -3.0}, {"dev_spearman": 0.9})
    write_fusion(tmp_path, config)
    assert read_fusion(tmp_path) == config
    with pytest.raises(FileNotFoundError, match=r"fusion\.json missing"):
        read_fusion(tmp_path / "nowhere")
    body = json.loads((tmp_path / "fusion.json").read_text())
    for broken, match in (({**body, "format": "other"}, "not a hybrid model file"),
                          ({**body, "weights": {"cross_logit": 1.0}}, "weights must give numbers"),
                          ({**body, "encoder": {"family": "sbert"}}, "'encoder' must name a family and a source")):
        (tmp_path / "fusion.json").write_text(json.dumps(broken))
        with pytest.raises(ValueError, match=match):
            read_fusion(tmp_path)
    (tmp_path / "fusion.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_fusion(tmp_path)


# ------------------------------------------------------------------------------------------ shipped
OWN = {
    "hybrid": (["The chef chops onions for the soup.", "My flight leaves at noon."],
               ["A cook is cutting onions for a soup.", "The plane departs at twelve o'clock."],
               ["The stock market fell sharply today.", "Kittens sleep most of the day."]),
    "hybrid-zh": (["我想退货", "快递什么时候到？"], ["怎么申请退款", "包裹哪天能送来？"], ["今天股市大跌", "小猫整天都在睡觉"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("key", ["hybrid", "hybrid-zh"])
def test_shipped_hybrid_knows_identity_paraphrase_and_unrelated(backend, key):
    text, para, other = OWN[key]
    r = backend.similarity(text + text + text, text + para + other, [key])[key]
    assert r.error is None and set(r.used) == {key}
    same, close, far = r.scores[:2], r.scores[2:4], r.scores[4:]
    assert same.min() >= 0.95
    assert close.min() > far.max() + 0.2
    back = backend.similarity(para, text, [key])[key].scores
    assert np.abs(back - close).max() < 1e-5  # both orders averaged and a cosine: symmetric
    empty = backend.similarity(["", text[0]], [text[0], "   "], [key])[key]
    assert np.isnan(empty.scores).all() and "empty text" in " ".join(empty.warnings[0])


@pytest.mark.slow
@pytest.mark.parametrize(("key", "lang", "floor"), [("hybrid", "en", 0.88), ("hybrid-zh", "zh", 0.80)])
def test_shipped_hybrid_dev_spearman_floor(backend, key, lang, floor):
    dev = read_stsb("dev", lang)
    r = backend.similarity(dev["sentence1"].tolist(), dev["sentence2"].tolist(), [key])[key]
    gold = dev["score"].astype(float).to_numpy()
    assert spearmanr(r.scores, gold).statistic >= floor
