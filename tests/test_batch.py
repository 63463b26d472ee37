"""backend.batch: the columns a scored table gets (the CLI's and the Batch page's download)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.batch import score_frame
from tests.fakes import CALLS, fake_backend


def test_every_row_says_its_score_who_scored_it_and_why_one_is_missing():
    be = fake_backend(encoders={"e": lambda t: np.arange(8.0) + len(t)}, scorers={"p": lambda a, b: 0.25},
                      broken=("gone",))
    frame = pd.DataFrame({"a": ["one", "", "three"], "b": ["uno", "dos", "tres"], "id": [1, 2, 3]})
    out = score_frame(be, frame, "a", "b", ["e", "p", "gone"])
    f = out.frame
    assert len(f) == 3 and f["id"].tolist() == [1, 2, 3]  # rows in = rows out, in order
    assert list(f.columns[3:6]) == ["score_e", "scored_by_e", "warnings_e"]
    assert np.isnan(f.loc[1, "score_e"]) and "A: empty text" in f.loc[1, "warnings_e"]
    assert f["score_p"].tolist()[0] == pytest.approx(0.25) and f["scored_by_p"].tolist() == ["p"] * 3
    assert f["score_gone"].isna().all() and f.loc[0, "warnings_gone"].startswith("failed: ")
    assert set(out.errors) == {"gone"} and out.missing() == {"e": 1, "p": 1}


def test_each_model_gets_its_own_options_and_requests_name_their_columns():
    from backend.registry import ModelRequest

    be = fake_backend(encoders={"e": lambda t: np.ones(8)})
    frame = pd.DataFrame({"a": ["x", "y"], "b": ["u", "v"]})
    out = score_frame(be, frame, "a", "b", [ModelRequest("e:scale=2", "e", {"scale": 2}), "e"], options={"e": {"scale": 3}})
    assert out.names == ["e:scale=2", "e"] and "score_e:scale=2" in out.frame and "score_e" in out.frame
    bad = score_frame(be, frame, "a", "b", ["e"], options={"e": {"scale": 50}})
    assert "must be within 0..10" in bad.errors["e"]


def test_language_variant_is_named_per_row():
    be = fake_backend(scorers={"m": lambda a, b: 0.1, "m-zh": lambda a, b: 0.9}, languages={"m-zh": "zh"},
                      variants={"m": {"zh": "m-zh"}})
    CALLS.clear()
    out = score_frame(be, pd.DataFrame({"a": ["a cat", "一只猫"], "b": ["a dog", "一只狗"]}), "a", "b", ["m"]).frame
    assert out["scored_by_m"].tolist() == ["m", "m-zh"] and out["score_m"].tolist() == pytest.approx([0.1, 0.9])
    assert "scored by m-zh" in out.loc[1, "warnings_m"]
