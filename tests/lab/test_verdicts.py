"""backend.lab.verdicts: each verdict says what its numbers say, in one sentence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.lab.verdicts import (
    TEMPLATES,
    Verdict,
    calibration_verdict,
    disagreement_verdict,
    label_metrics_verdicts,
    overlap_verdict,
    pairs_verdict,
    probe_verdict,
    ranking_verdict,
    retrieval_verdict,
)


def test_every_template_formats_with_its_verdicts_values():
    assert all("{" in t for t in TEMPLATES.values())
    v = ranking_verdict({"sbert": 86.7, "bert": 76.3, "w2v": 69.2}, "Spearman")
    assert v.text() == ("On these pairs sbert agrees best with the gold labels (Spearman 86.7), 10.4 points ahead of "
                        "bert; w2v is last (69.2).")
    assert v.text("{best}!") == "sbert!"  # a translated template is filled with the same values


def test_ranking_skips_undefined_and_binary_uses_auc():
    v = ranking_verdict({"a": 0.9, "b": None, "c": float("nan"), "d": 0.7}, "ROC-AUC")
    assert v.id == "metrics_binary" and v.values["best"] == "a" and v.values["worst"] == "d"
    assert ranking_verdict({"a": None}, "ROC-AUC") is None
    assert ranking_verdict({"a": 0.8}, "ROC-AUC").id == "metrics_one"


def test_inverted_label_is_a_warning():
    m = pd.DataFrame({"model": ["x", "y"], "metric": ["ROC-AUC"] * 2, "value": [0.3, 0.8], "pairs": [4, 4]})
    vs = label_metrics_verdicts(m)
    assert [v.level for v in vs] == ["info", "warning"] and "x ranks dissimilar pairs above" in vs[1].text()


class _Probe:
    poolings = ("mean", "cls", "max")

    def __init__(self, m):
        self.spearman = np.asarray(m, dtype=float)

    def best(self):
        i, j = np.unravel_index(np.nanargmax(self.spearman), self.spearman.shape)
        return int(i), self.poolings[j], float(self.spearman[i, j])


def test_probe_verdict_names_layers_as_the_sidebar_and_ranks_the_default():
    # hidden states 0..3 (3 layers): -2 is row 2; the best cell is the last layer (-1) with mean
    m = [[50, np.nan, 52], [60, 40, 61], [70, 45, 69], [80, 50, 78]]
    v = probe_verdict(_Probe(m))
    assert v.values["best_layer"] == -1 and v.values["best_pooling"] == "mean"
    assert v.values["default_value"] == 70 and v.values["default_rank"] == 3 and v.values["cells"] == 11
    assert "layer -1 with mean pooling is best" in v.text()
    m[3] = [10, 10, 10]
    assert probe_verdict(_Probe(m)).id == "probe_default_best"


def test_retrieval_verdict_says_whether_reranking_paid():
    from types import SimpleNamespace

    R = SimpleNamespace(retriever="sbert", reranker="cross", k=20, error=None, rerank_seconds=2.0,
                        metrics_before={"recall@1": 0.8, "mrr@10": 0.90}, metrics_after={"recall@1": 0.85, "mrr@10": 0.93})

    v = retrieval_verdict(R, 100)
    assert v.id == "rerank_better" and v.values["delta"] == pytest.approx(3.0) and v.values["ms"] == pytest.approx(20)
    R.metrics_after = {"mrr@10": 0.87}
    assert "keep the retriever's order" in retrieval_verdict(R, 100).text()
    R.metrics_after = {"mrr@10": 0.902}
    assert retrieval_verdict(R, 100).id == "rerank_same"
    R.reranker = None
    assert retrieval_verdict(R, 100).id == "retrieval_only"


def test_pairs_overlap_disagreement_calibration():
    v = pairs_verdict({"a": np.array([0.9, 0.5]), "b": np.array([0.2, 0.55]), "c": None})
    assert v.values["pair"] == 1 and v.values["high_model"] == "a" and v.values["low_model"] == "b"
    assert pairs_verdict({"a": np.array([0.5]), "b": np.array([0.52])}).id == "pairs_agree"
    m = pd.DataFrame([[1, 0.8, 0.1], [0.8, 1, 0.2], [0.1, 0.2, 1]], index=list("xyz"), columns=list("xyz"))
    v = overlap_verdict(m, 5)
    assert (v.values["a"], v.values["b"], v.values["c"]) == ("x", "y", "z")
    frame = pd.DataFrame({"row": [7], "highest": ["x"], "lowest": ["y"], "rank_x": [0.9], "rank_y": [0.1]})
    assert disagreement_verdict(frame).text().startswith("The models disagree most on row 7: x ranks it higher than 90%")

    class B:
        scores = np.linspace(0, 1, 101)

    assert calibration_verdict("m", 0.6, B).values["q95"] == pytest.approx(0.95)
    assert calibration_verdict("m", None, B).id == "calibration_no_threshold"
    assert isinstance(Verdict("overlap_two", {"a": 1, "b": 2, "best": 0.5, "k": 3}).text(), str)
