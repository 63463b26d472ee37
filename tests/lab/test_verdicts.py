"""backend.lab.verdicts: each verdict says what its numbers say, in one sentence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.lab.verdicts import (
    MIN_RANK_PAIRS,
    TEMPLATES,
    Verdict,
    bootstrap_leads,
    calibration_verdict,
    disagreement_verdict,
    label_metrics_verdicts,
    metrics_verdicts,
    normal_lead_interval,
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
    m = pd.DataFrame({"model": ["x", "y"], "metric": ["ROC-AUC"] * 2, "value": [0.3, 0.8], "pairs": [40, 40]})
    vs = label_metrics_verdicts(m)
    assert [v.level for v in vs] == ["info", "warning"] and "x ranks dissimilar pairs above" in vs[1].text()


# ------------------------------------------------------------------------------------- sample size
def _report(scores: dict[str, np.ndarray], labels: np.ndarray, kind: str = "binary"):
    """An EvaluationReport of given scores, its metrics computed as the Evaluation lab computes them."""
    from backend.lab.evaluation import EvaluationReport, LabelledPairs, ModelEvaluation, compute_metrics

    n = len(labels)
    rng = (0.0, 1.0) if kind == "binary" else (0.0, 5.0)
    data = LabelledPairs(["a"] * n, ["b"] * n, np.asarray(labels, dtype=float), kind, rng)
    results = {k: ModelEvaluation(k, k, {}, "x", "x", k, s, compute_metrics(s, data.labels, kind, rng))
               for k, s in scores.items()}
    return EvaluationReport(data, results)


def test_nine_rows_give_a_too_few_verdict_naming_n_not_a_ranking():
    # the user's case: "cross separates best (ROC-AUC 0.500)" on 9 rows
    m = pd.DataFrame({"model": ["cross", "sbert"], "metric": ["ROC-AUC"] * 2, "value": [0.5, 0.45], "pairs": [9, 9]})
    v = label_metrics_verdicts(m)[0]
    assert v.id == "metrics_too_few" and v.values["n"] == 9 and v.values["min_n"] == MIN_RANK_PAIRS == 30
    assert v.text().startswith("Only 9 scored pairs: too few to rank the models")
    assert "best" not in v.text()
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0, 1.0])
    rng = np.random.default_rng(0)
    v = metrics_verdicts(_report({"cross": rng.normal(size=9), "sbert": y + rng.normal(size=9)}, y))[0]
    assert v.id == "metrics_too_few" and "Only 9 scored pairs" in v.text()
    # the smallest n decides: a model that scored only 12 of 500 pairs cannot be ranked against the others
    assert ranking_verdict({"a": 0.9, "b": 0.6}, "ROC-AUC", {"a": 500, "b": 12}).values["n"] == 12


def test_a_clear_winner_on_500_pairs_is_ranked_and_a_close_race_is_not():
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.5).astype(float)
    good, bad = y + rng.normal(0, 0.5, 500), y + rng.normal(0, 2.0, 500)
    v = metrics_verdicts(_report({"sbert": good, "w2v": bad}, y))[0]
    assert v.id == "metrics_binary" and v.values["best"] == "sbert" and v.values["n"] == 500
    assert v.values["lo"] > 0.1 and "sbert separates similar from dissimilar pairs best" in v.text()
    # two models of the same quality: whichever is ahead on this sample, the lead is within noise
    twin = y + rng.normal(0, 0.5, 500)
    v = metrics_verdicts(_report({"sbert": good, "twin": twin}, y))[0]
    assert v.id == "metrics_binary_tie" and v.values["lo"] < 0 < v.values["hi"] and "within noise" in v.text()
    assert "separates similar from dissimilar pairs best" not in v.text()


def test_graded_ranking_uses_spearman_points_and_every_rival_counts():
    rng = np.random.default_rng(1)
    y = rng.uniform(0, 5, 400)
    scores = {"sbert": y + rng.normal(0, 1, 400), "bert": y + rng.normal(0, 3, 400), "w2v": y + rng.normal(0, 6, 400)}
    v = metrics_verdicts(_report(scores, y, "graded"))[0]
    assert v.id == "metrics_graded" and (v.values["best"], v.values["worst"]) == ("sbert", "w2v")
    assert v.values["lo"] > 5  # Spearman points, like the table
    scores["twin"] = y + rng.normal(0, 1, 400)
    v = metrics_verdicts(_report(scores, y, "graded"))[0]
    assert v.id == "metrics_graded_tie" and {v.values["best"], v.values["second"]} == {"sbert", "twin"}


def test_batch_table_uses_the_normal_bound_alone_and_the_bootstrap_with_its_file():
    rng = np.random.default_rng(2)
    y = (rng.random(300) < 0.5).astype(float)
    frame = pd.DataFrame({"gold": y, "score_a": y + rng.normal(0, 0.4, 300), "score_b": y + rng.normal(0, 0.45, 300)})
    from backend.lab.evaluation import label_metrics

    m = label_metrics(frame, "gold", ["a", "b"])
    alone, with_file = label_metrics_verdicts(m)[0], label_metrics_verdicts(m, frame=frame, label_col="gold")[0]
    # AUC 0.970 against 0.928 on 300 pairs: the normal bound, which knows only n, is too wide to call it; the
    # bootstrap over the file's rows is narrower (the bound is conservative by design) and does
    assert alone.id == "metrics_binary_tie" and alone.values["lo"] < 0
    assert with_file.id == "metrics_binary" and with_file.values["lo"] > 0
    assert with_file.values["hi"] - with_file.values["lo"] < alone.values["hi"] - alone.values["lo"]
    clear = pd.DataFrame({"model": ["a", "b"], "metric": ["ROC-AUC"] * 2, "value": [0.95, 0.70], "pairs": [500, 500]})
    assert label_metrics_verdicts(clear)[0].id == "metrics_binary"
    graded = pd.DataFrame({"model": ["a", "b"], "metric": ["Spearman ρ"] * 2, "value": [0.80, 0.78], "pairs": [100, 100]})
    assert label_metrics_verdicts(graded)[0].id == "metrics_graded_tie"


def test_bootstrap_is_the_naive_bootstrap_done_faster_and_is_seeded():
    from scipy import stats
    from sklearn.metrics import roc_auc_score

    from backend.lab.verdicts import _resample_counts, _resampled_metric

    rng = np.random.default_rng(3)
    y = np.round(rng.uniform(0, 5, 60) * 2) / 2  # ties in the labels
    s = y + rng.normal(0, 1, 60)
    s[:6] = s[0]  # and in the scores
    counts = _resample_counts(60, 8, seed=5)
    idx = np.random.default_rng(5).integers(0, 60, size=(8, 60))  # the same draws, as index lists
    naive = [stats.spearmanr(s[i], y[i]).statistic * 100 for i in idx]
    assert np.allclose(_resampled_metric(s, y, counts, "Spearman", None), naive)
    yb = (y >= 2.5).astype(float)
    assert np.allclose(_resampled_metric(s, yb, counts, "ROC-AUC", None), [roc_auc_score(yb[i], s[i]) for i in idx])
    other = y + rng.normal(0, 2, 60)
    first = bootstrap_leads({"s": s, "o": other}, y, "s", "Spearman")
    assert first == bootstrap_leads({"s": s, "o": other}, y, "s", "Spearman") and first["o"][0] < first["o"][1]


def test_normal_interval_narrows_with_n():
    lo30, hi30 = normal_lead_interval(80, 70, 30, 30, "Spearman")
    lo3k, hi3k = normal_lead_interval(80, 70, 3000, 3000, "Spearman")
    assert lo30 < 0 < 10 < hi30 and 0 < lo3k < 10 < hi3k
    assert normal_lead_interval(0.9, 0.8, 2, 2, "ROC-AUC")[0] < 0
    assert normal_lead_interval(80, 70, 3, 3, "Spearman") == (-np.inf, np.inf)


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


def _ranking(relevant: int, rank: int, size: int = 10) -> list[int]:
    """A ranked list of corpus rows with ``relevant`` at 1-based ``rank`` (distractors 10,000.. elsewhere)."""
    hits = [10_000 + i for i in range(max(size, rank) - 1)]
    hits.insert(rank - 1, relevant)
    return hits


def _rerank_result(ranks_before: list[int], ranks_after: list[int]):
    """A RetrievalResult in which query ``i``'s relevant row ``i`` moves from ``ranks_before[i]`` to ``ranks_after[i]``."""
    from backend.lab.retrieval import RetrievalResult, ir_metrics

    relevant = [{i} for i in range(len(ranks_before))]
    before = [_ranking(i, r) for i, r in enumerate(ranks_before)]
    after = [_ranking(i, r) for i, r in enumerate(ranks_after)]
    res = RetrievalResult("sbert", "cross", 10, before, after, ir_metrics(before, relevant), ir_metrics(after, relevant),
                          0.1, 2.0)
    return res, relevant


def test_reranker_gain_within_noise_on_few_queries_is_not_kept():
    # 20 queries: five move 2 -> 1, five 1 -> 2, one 3 -> 2, nine stay: +0.8 MRR points, mostly noise
    before = [2] * 5 + [1] * 5 + [3] + [1] * 9
    after = [1] * 5 + [2] * 5 + [2] + [1] * 9
    res, relevant = _rerank_result(before, after)
    v = retrieval_verdict(res, 20, relevant=relevant)
    assert v.id == "rerank_noise" and v.values["change"] == pytest.approx(100 * (1 / 2 - 1 / 3) / 20)
    assert v.values["lo"] < 0 < v.values["hi"]
    assert "the reranker's gain (+0.8 MRR@10 points" in v.text() and "within noise on 20 queries" in v.text()
    assert "keep the reranker" not in v.text()
    # the same result without the per-query ranks: the conservative bound says noise too
    assert retrieval_verdict(res, 20).id == "rerank_noise"


def test_large_reranker_gain_is_kept_and_a_large_loss_is_refused():
    # 200 queries, 150 of them lifted from rank 3 to rank 1: +50 MRR points, far outside the noise
    res, relevant = _rerank_result([3] * 150 + [1] * 50, [1] * 200)
    v = retrieval_verdict(res, 200, relevant=relevant)
    assert v.id == "rerank_better" and v.values["lo"] > 40 and "keep the reranker" in v.text()
    assert v.values["delta"] == pytest.approx(50) and v.values["ms"] == pytest.approx(10)
    res, relevant = _rerank_result([1] * 200, [3] * 150 + [1] * 50)
    assert "keep the retriever's order" in retrieval_verdict(res, 200, relevant=relevant).text()


def test_retrieval_verdict_on_too_few_queries_and_without_a_reranker():
    res, relevant = _rerank_result([3] * 6, [1] * 6)
    v = retrieval_verdict(res, 6, relevant=relevant)
    assert v.id == "rerank_too_few" and v.text().startswith("Only 6 queries: too few")
    res, relevant = _rerank_result([1] * 200, [1] * 199 + [2])  # -0.25 points: not worth its cost either way
    assert retrieval_verdict(res, 200, relevant=relevant).id == "rerank_same"
    res.reranker = None
    assert retrieval_verdict(res, 200, relevant=relevant).id == "retrieval_only"


def test_reranker_bootstrap_matches_the_mrr_it_explains():
    from backend.lab.verdicts import _reciprocal_ranks, rerank_gain_interval

    res, relevant = _rerank_result([2, 4, 11, 1], [1, 2, 1, 3])
    rr = _reciprocal_ranks(res.after, relevant, 10)
    assert rr.tolist() == [1.0, 0.5, 1.0, pytest.approx(1 / 3)]
    assert rr.mean() == pytest.approx(res.metrics_after["mrr@10"])
    assert _reciprocal_ranks(res.before, relevant, 10)[2] == 0.0  # rank 11 is beyond MRR@10
    lo, hi = rerank_gain_interval(np.zeros(50), np.full(50, 0.2))
    assert lo == pytest.approx(0.2) and hi == pytest.approx(0.2)  # no spread, no uncertainty


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
