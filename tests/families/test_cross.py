"""The shipped cross-encoder through the dashboard's backend: scores, truncation per side, no vectors."""

from __future__ import annotations

import numpy as np
import pytest

from backend.results import RoleError

pytestmark = pytest.mark.slow


def test_cross_scores_paraphrase_above_unrelated_in_both_languages(backend):
    r = backend.similarity(["The chef chops onions for the soup.", "The chef chops onions for the soup.", "我想退货"],
                           ["A cook is cutting onions for a soup.", "The stock market fell sharply today.", "怎么申请退款"],
                           ["cross"])["cross"]
    assert r.error is None and r.used == ["cross", "cross", "cross-zh"]
    assert r.scores.min() >= 0 and r.scores.max() <= 1
    assert r.scores[0] > r.scores[1] + 0.3


def test_a_long_pair_is_cut_on_the_longer_side_and_says_where(backend):
    long = " ".join(["onion"] * 400)
    r = backend.similarity([long, "short"], ["a short one", long], ["cross"])["cross"]
    assert np.isfinite(r.scores).all()
    w0, w1 = " ".join(r.warnings[0]), " ".join(r.warnings[1])
    assert "A truncated: 400 word pieces" in w0 and "B truncated" not in w0 and "cut after 'onion'" in w0
    assert "B truncated: 400 word pieces" in w1 and "the pair's limit is 256" in w1


def test_a_cross_encoder_gives_no_vectors_and_says_so(backend):
    with pytest.raises(RoleError, match="cross scores pairs only"):
        backend.embed("cross", ["a text"])
    assert "cross" not in backend.keys_with_role("encoder") and "cross" in backend.keys_with_role("pair_scorer")


def test_a_batch_that_runs_out_of_memory_is_halved_and_scoring_goes_on(backend, monkeypatch):
    import torch

    model = backend.model("cross")
    real = type(model)._predict_batch
    sizes: list[int] = []

    def tight(self, a, b, batch_size):
        sizes.append(batch_size)
        if batch_size > 4:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, a, b, batch_size)

    monkeypatch.setattr(type(model), "_predict_batch", tight)
    a = [f"The chef chops {n} onions." for n in range(10)]
    b = [f"A cook cuts {n} onions." for n in range(10)]
    scores = model.score(a, b, batch_size=16)
    assert np.isfinite(scores).all() and scores.shape == (10,)
    assert sizes[:3] == [16, 8, 4] and model.max_batch == 4
    assert "batch size halved to 4" in model.notes[-1]
    monkeypatch.undo()
    model.max_batch = 1 << 16
    np.testing.assert_allclose(model.score(a, b), scores, atol=1e-6)
