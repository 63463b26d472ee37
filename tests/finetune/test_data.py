"""Labelled pairs for fine-tuning are refused with the reason when nothing can be learnt from them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.finetune.data import MIN_PAIRS, read_labelled, split_holdout, subsample


def pairs(n: int, labels=None) -> pd.DataFrame:
    labels = labels if labels is not None else [i % 6 for i in range(n)]
    return pd.DataFrame({"sentence1": [f"a {i}" for i in range(n)], "sentence2": [f"b {i}" for i in range(n)],
                         "score": labels})


def test_fewer_than_twenty_pairs_are_refused_with_the_count():
    with pytest.raises(ValueError, match=f"19 usable pair.*at least {MIN_PAIRS}"):
        read_labelled(pairs(19))


def test_every_label_equal_is_refused():
    with pytest.raises(ValueError, match="every label is 3"):
        read_labelled(pairs(30, [3] * 30))


def test_a_scale_above_five_is_asked_for_then_read():
    ten = pairs(30, [i % 11 for i in range(30)])
    with pytest.raises(ValueError, match="--label-max 10"):
        read_labelled(ten)
    got = read_labelled(ten, label_max=10)
    assert got.label_max == 10 and got.y.max() == pytest.approx(1.0) and "0-10 scale (as given)" in got.notes[0]


def test_the_scale_found_is_said():
    assert "0-5 scale (inferred" in read_labelled(pairs(30)).notes[0]
    assert "binary" in read_labelled(pairs(30, [i % 2 for i in range(30)])).notes[0]


def test_two_text_columns_are_positive_pairs():
    got = read_labelled(pd.DataFrame({"q": [f"q{i}" for i in range(25)], "a": [f"a{i}" for i in range(25)]}))
    assert got.objective == "positive" and len(got) == 25


def test_splits_are_seeded_disjoint_and_nested():
    data = read_labelled(pairs(100))
    tr, ho = split_holdout(data, 0.2, 13)
    assert (len(tr), len(ho)) == (80, 20) and not set(tr.a) & set(ho.a)
    assert split_holdout(data, 0.2, 13)[1].a == ho.a
    small, big = subsample(tr, 30, 13), subsample(tr, 60, 13)
    assert set(small.a) <= set(big.a)
    assert np.isfinite(small.y).all()


def test_a_missing_training_extra_is_named(monkeypatch):
    import importlib.util

    from backend.finetune.data import missing_training_extra

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "datasets" else real(name, *a))
    assert missing_training_extra() == ["datasets"]
