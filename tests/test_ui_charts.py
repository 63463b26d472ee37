"""The dashboard's streamlit-free helpers: tables, overlaps, metrics, chunked scoring, figures, colours."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.registry import Registry
from backend.service import ModelResult, Neighbours
from ui import charts, tables, theme

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------- architecture
@pytest.mark.parametrize("module", ["ui/theme.py", "ui/charts.py", "ui/tables.py"])
def test_pure_modules_do_not_import_streamlit(module):
    tree = ast.parse((REPO / module).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(n == "streamlit" or n.startswith("streamlit.") for n in names)


def test_backend_never_imports_streamlit():
    for path in (REPO / "backend").rglob("*.py"):
        assert "import streamlit" not in path.read_text(), path


# ------------------------------------------------------------------------------------------ colours
def test_every_registry_model_has_a_distinct_colour():
    keys = Registry.load().keys()
    colours = [theme.model_color(k) for k in keys]
    assert len(set(colours)) == len(colours)
    assert theme.model_color("w2v") == theme.MODEL_COLORS["w2v"]


def test_unknown_model_colour_is_stable():
    assert theme.model_color("my-new-model") == theme.model_color("my-new-model")
    assert theme.model_color("my-new-model") in theme.SPARE_COLORS


# ------------------------------------------------------------------------------------------ options
def test_build_options_by_family():
    reg = Registry.load()
    opts = tables.build_options(reg, ["w2v", "bert", "sbert", "esim"], -1, "cls", "mean")
    assert opts == {"bert": {"layer": -1, "pooling": "cls"}, "w2v": {"weighting": "mean"}}
    assert tables.build_options(reg, ["sbert"], -2, "mean", "sif") == {}


def test_layer_choices_follow_the_loaded_model():
    assert tables.layer_choices(6) == list(range(-7, 0))  # the bundled MiniLM backbone
    assert tables.layer_choices(12) == list(range(-13, 0))  # BERT-base: 13 hidden states
    assert tables.layer_choices(12, declared=6, keep=[-20]) == list(range(-13, 0))  # loaded: its own range wins


def test_layer_choices_before_the_model_is_loaded():
    assert tables.layer_choices() == list(range(-tables.DEFAULT_BERT_LAYERS - 1, 0))
    assert tables.layer_choices(None, declared=12) == list(range(-13, 0))
    assert tables.layer_choices(None, declared=0) == list(range(-7, 0))  # nonsense declaration: the default
    # the configured layer and a copied URL's layer stay selectable until the model says otherwise
    assert tables.layer_choices(None, keep=[-2, -10]) == list(range(-10, 0))
    assert tables.layer_choices(None, keep=[None, 3]) == list(range(-7, 0))  # positive indices need no room


# -------------------------------------------------------------------------------------------- pairs
def test_pairs_from_editor_skips_blank_rows_and_reports_half_rows():
    frame = pd.DataFrame({"sentence_a": ["a", " ", None, "c", ""], "sentence_b": ["b", "x", None, float("nan"), ""]})
    a, b, partial = tables.pairs_from_editor(frame)
    assert (a, b) == (["a"], ["b"])
    assert partial == [2, 4]


def test_pairs_from_editor_empty():
    assert tables.pairs_from_editor(None) == ([], [], [])
    assert tables.pairs_from_editor(pd.DataFrame({"sentence_a": [], "sentence_b": []})) == ([], [], [])


def _result(key, scores, used=None, warnings=None, error=None):
    n = len(scores) if scores is not None else 1
    return ModelResult(key, None if scores is None else np.array(scores, dtype=np.float32),
                       warnings or [[] for _ in range(n)], used or [key] * n, error)


def test_scores_frame_columns_variants_and_failures():
    results = {
        "w2v": _result("w2v", [0.5, float("nan")], warnings=[[], ["A: no known words"]]),
        "esim": _result("esim", [0.9, 0.1], used=["esim", "esim-zh"]),
        "bert": _result("bert", None, error="bert could not be loaded"),
    }
    f = tables.scores_frame(["x", "y"], ["u", "v"], results, warnings=True)
    assert f["pair"].tolist() == [1, 2]
    assert f["score_w2v"].iloc[0] == 0.5 and math.isnan(f["score_w2v"].iloc[1])
    assert f["scored_by_esim"].tolist() == ["esim", "esim-zh"]
    assert f["score_bert"].isna().all()
    assert f["warnings_bert"].iloc[0].startswith("failed:")
    assert f["warnings_w2v"].iloc[1] == "A: no known words"
    assert "scored_by_w2v" not in f


def test_explain_frame_rows_per_model():
    results = {"w2v": _result("w2v", [float("nan")], warnings=[["A: no known words"]]),
               "bert": _result("bert", None, error="boom")}
    f = tables.explain_frame(0, results, {"w2v": "GloVe"}, {"w2v": "SIF"})
    assert f["model"].tolist() == ["GloVe", "bert"]
    assert f["score"].isna().all()
    assert f["warnings"].tolist() == ["A: no known words", "failed: boom"]
    assert f["settings"].iloc[0] == "SIF"


def test_settings_text_per_family():
    assert "layer -2 of 6, mean pooling" in tables.settings_text({"family": "bert", "layer": -2, "layers": 6, "pooling": "mean", "max_tokens": 256})
    assert tables.settings_text({"family": "w2v", "weighting": "mean"}) == "plain average"
    assert tables.settings_text(None) == ""


# ----------------------------------------------------------------------------------------- overlaps
def test_jaccard_and_overlap_matrix():
    assert tables.jaccard({1, 2}, {2, 3}) == pytest.approx(1 / 3)
    assert tables.jaccard(set(), set()) == 1.0
    m = tables.overlap_matrix({"a": [{1, 2}, {5}], "b": [{1, 2}, {6}], "c": [{3, 4}, {5}]})
    assert m.loc["a", "b"] == pytest.approx(0.5)  # identical on query 1, disjoint on query 2
    assert m.loc["a", "c"] == pytest.approx(0.5)
    assert m.loc["b", "c"] == 0.0
    assert np.allclose(m.to_numpy(), m.to_numpy().T) and (np.diag(m) == 1).all()


def test_topk_sets_drop_padding():
    assert tables.topk_sets(np.array([[3, 1, -1], [-1, -1, -1]])) == [{1, 3}, set()]


def _nb(key, idx, sc):
    return Neighbours(np.array(idx), np.array(sc, dtype=np.float32), [[] for _ in idx], [], key)


def test_neighbours_frame_candidate_union_and_rerank():
    corpus = ["c0", "c1", "c2", "c3"]
    res = {"w2v": _nb("w2v", [[0, 1]], [[0.9, 0.8]]), "sbert": _nb("sbert", [[2, 0]], [[0.7, 0.6]])}
    f = tables.neighbours_frame(["q"], corpus, ["l0", "l1", "l2", "l3"], res)
    assert len(f) == 4 and set(f["model"]) == {"w2v", "sbert"}
    assert f.loc[(f.model == "sbert") & (f["rank"] == 1), "text"].item() == "c2"
    cands = tables.candidate_union(res, 0)
    assert cands == [0, 2, 1]  # best ranks first, no duplicates
    rr = tables.rerank_frame("q", cands, corpus, None, np.array([0.1, 0.9, np.nan]), res, 0)
    assert rr["text"].tolist() == ["c2", "c0", "c1"]  # NaN (no score) last
    assert rr["rerank"].tolist() == [1, 2, 3]
    assert rr.loc[0, "rank_sbert"] == 1 and pd.isna(rr.loc[0, "rank_w2v"])


def test_kmeans_labels_seeded_and_marks_missing_vectors():
    rng = np.random.default_rng(0)
    ex, ey = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    x = np.vstack([rng.normal(0, 0.01, (5, 3)) + ex, rng.normal(0, 0.01, (5, 3)) + ey, np.zeros((1, 3))])
    valid = np.array([True] * 10 + [False])
    lab = tables.kmeans_labels(x, valid, 2, seed=1)
    assert lab[-1] == "no vector"
    assert len(set(lab[:5])) == 1 and len(set(lab[5:10])) == 1 and lab[0] != lab[5]
    assert lab == tables.kmeans_labels(x, valid, 2, seed=1)


# -------------------------------------------------------------------------------------------- batch
def test_label_metrics_binary_uses_roc_auc():
    f = pd.DataFrame({"label": [0, 0, 1, 1], "score_a": [0.1, 0.2, 0.8, 0.9], "score_b": [0.9, 0.8, 0.2, np.nan]})
    m = tables.label_metrics(f, "label", ["a", "b"])
    assert m["metric"].tolist() == ["ROC-AUC", "ROC-AUC"]
    assert m.loc[0, "value"] == 1.0
    assert m.loc[1, "pairs"] == 3 and m.loc[1, "value"] == 0.0


def test_label_metrics_graded_uses_spearman_and_handles_constant():
    f = pd.DataFrame({"score": ["0.5", "2", "4.5", "5"], "score_a": [0.1, 0.3, 0.2, 0.9], "score_c": [0.5] * 4})
    m = tables.label_metrics(f, "score", ["a", "c", "missing"])
    assert m["metric"].tolist() == ["Spearman ρ", "Spearman ρ"]
    assert m.loc[0, "value"] == pytest.approx(0.8)
    assert math.isnan(m.loc[1, "value"])  # a constant score has no rank correlation


def test_is_binary():
    assert tables.is_binary(pd.Series(["0", "1", "1"]))
    assert not tables.is_binary(pd.Series([0, 1, 2]))
    assert not tables.is_binary(pd.Series([1, 1]))


def test_score_in_chunks_estimates_from_first_chunk_and_keeps_order():
    from tests.fakes import fake_backend

    be = fake_backend(scorers={"ok": lambda a, b: len(a) / 10}, broken=("bad",))
    frame = pd.DataFrame({"s1": [f"x{'y' * (i % 5)}" for i in range(10)], "s2": ["b"] * 10, "gold": range(10)})
    seen: list[tables.BatchProgress] = []
    out, errors, seconds = tables.score_in_chunks(be, frame, "s1", "s2", ["ok", "bad"], seen.append, chunk_rows=4)
    assert [c for c in out.columns if c.startswith("score_")] == ["score_ok", "score_bad"]
    assert out["score_ok"].tolist() == pytest.approx([len(s) / 10 for s in frame["s1"]])
    assert out["score_bad"].isna().all() and "model files not found" in errors["bad"]
    assert seen[-1].done == seen[-1].total == 10
    assert seen[0].estimate is None and seen[-1].estimate is not None
    assert seconds >= 0


def test_score_in_chunks_empty_frame():
    from tests.fakes import fake_backend

    be = fake_backend(scorers={"ok": lambda a, b: 1.0})
    out, errors, _ = tables.score_in_chunks(be, pd.DataFrame({"a": [], "b": []}), "a", "b", ["ok"])
    assert out.empty and "score_ok" in out and errors == {}


def test_empty_cells_and_format_seconds():
    f = pd.DataFrame({"a": ["x", "", " ", "y"], "b": ["y", "z", "w", ""]})
    assert tables.empty_cells(f, "a", "b") == 3
    assert tables.format_seconds(None) == "…"
    assert tables.format_seconds(4.24) == "4.2 s"
    assert tables.format_seconds(200) == "3 min 20 s"
    assert tables.format_seconds(3900) == "1 h 05 min"


def test_example_pairs_frame_is_a_valid_batch_file():
    from backend.io import guess_label_column, guess_text_columns

    f = tables.example_pairs_frame()
    assert guess_text_columns(f) == ("sentence1", "sentence2")
    assert guess_label_column(f, exclude=("sentence1", "sentence2")) == "label"
    assert tables.is_binary(f["label"])


def test_model_facts_and_counts():
    facts = dict(tables.model_facts({"family": "bert", "parameters": 22_713_216, "dim": 384, "max_tokens": 256,
                                     "layer": -2, "layers": 6, "pooling": "mean", "device": "cpu", "dtype": "fp32",
                                     "load_seconds": 1.5}))
    assert facts["parameters"] == "22.7 M"
    assert facts["layer / pooling"] == "-2 of 6 / mean"
    assert facts["load time"] == "1.50 s"
    assert dict(tables.model_facts({"family": "w2v", "max_tokens": None}))["max tokens"] == "no limit"
    esim = dict(tables.model_facts({"family": "esim", "score": "native", "dev_spearman": 0.76941}))
    assert esim["score"] == "native" and esim["STS-B dev Spearman"] == "0.769"
    assert tables.format_count(None) == "—" and tables.format_count(384) == "384"


def test_measure_speed_units_and_fresh_texts():

    seen: list[str] = []

    from tests.fakes import fake_backend

    def vec(t: str) -> np.ndarray:
        seen.append(t)
        return np.ones(8)

    be = fake_backend(encoders={"fake": vec}, scorers={"fake_cross": lambda a, b: 0.0})
    out = tables.measure_speed(be.model("fake"), ["one", "two"], n=8, seed=0)
    assert out["unit"] == "sentences" and out["per_second"] > 0 and out["latency_ms"] >= 0
    timed = seen[10:]  # after the five single-pair latency calls (two texts each)
    assert len(timed) == len(set(timed)) == 8  # every timed text is new (no cache can answer)
    assert tables.measure_speed(be.model("fake_cross"), ["one"], n=8, seed=0)["unit"] == "pairs"


# ------------------------------------------------------------------------------------------- charts
def test_score_bars_one_trace_per_model_in_its_colour():
    f = pd.DataFrame({"pair": [1, 2], "sentence_a": ["a", "b"], "sentence_b": ["c", "d"],
                      "score_w2v": [0.5, np.nan], "score_sbert": [-0.2, 0.9]})
    fig = charts.score_bars(f, ["w2v", "sbert"], {"w2v": "GloVe", "sbert": "SBERT"})
    assert [t.name for t in fig.data] == ["GloVe", "SBERT"]
    assert [t.marker.color for t in fig.data] == [theme.model_color("w2v"), theme.model_color("sbert")]
    assert fig.data[0].text[1] == "n/a"
    assert fig.layout.title.text and fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    assert fig.layout.yaxis.range[0] < -0.2  # negative cosines stay visible


def test_alignment_heatmap_unique_labels():
    fig = charts.alignment_heatmap(["the", "dog", "the"], ["a", "b"], np.full((3, 2), 0.5), "t")
    assert list(fig.data[0].y) == ["the", "dog", "the (2)"]
    assert fig.layout.xaxis.title.text == "sentence B tokens"


def test_overlap_heatmap_labels_and_range():
    m = tables.overlap_matrix({"w2v": [{1}], "sbert": [{1, 2}]})
    fig = charts.overlap_heatmap(m, {"w2v": "GloVe"}, 5)
    assert list(fig.data[0].x) == ["GloVe", "sbert"] and fig.data[0].zmax == 1
    assert "top-5" in fig.layout.title.text


def test_projection_scatter_groups_query_and_missing_points():
    coords = np.array([[0, 0], [1, 1], [np.nan, np.nan], [2, 2]], dtype=float)
    colors = charts.label_color_map(["food", "travel", "food", "food"])
    fig = charts.projection_scatter(coords, ["a", "b", "c", "d"], ["food", "travel", "food", "food"], colors,
                                    "SBERT", "sbert", query="q", query_xy=np.array([0.5, 0.5]))
    names = [t.name for t in fig.data]
    assert names == ["food", "travel", "query"]
    assert len(fig.data[0].x) == 2  # the NaN row (no vector) is left out
    assert fig.data[-1].marker.symbol == "star"
    assert theme.model_color("sbert") in fig.layout.title.text


def test_projection_scatter_draws_many_points_with_webgl_and_keeps_hover_text():
    n = charts.WEBGL_POINTS + 1
    rng = np.random.default_rng(0)
    texts = [f"text number {i} " + "word " * 40 for i in range(n)]
    groups = ["a" if i % 2 else "b" for i in range(n)]
    fig = charts.projection_scatter(rng.normal(size=(n, 2)), texts, groups, charts.label_color_map(groups), "T", "sbert",
                                    query="q", query_xy=np.array([0.0, 0.0]))
    assert [t.type for t in fig.data] == ["scattergl", "scattergl", "scatter"]  # the query star stays on top in SVG
    assert sum(len(t.x) for t in fig.data[:2]) == n and fig.data[0].customdata[0].startswith("text number")
    assert fig.data[0].customdata[0].count("<br>") <= 2  # shorter hover text: the figure stays small
    small = charts.projection_scatter(rng.normal(size=(10, 2)), texts[:10], groups[:10], {}, "T", "sbert")
    assert {t.type for t in small.data} == {"scatter"}


def test_label_color_map_is_shared_and_stable():
    a = charts.label_color_map(["b", "a", "no vector"])
    assert a == charts.label_color_map(["a", "b", "no vector", "a"])
    assert a["no vector"] == "#9E9E9E" and a["a"] != a["b"]


def test_metric_bars_and_wrap():
    m = pd.DataFrame({"model": ["w2v", "sbert"], "metric": ["ROC-AUC"] * 2, "value": [0.6, np.nan], "pairs": [4, 4]})
    fig = charts.metric_bars(m, {})
    assert list(fig.data[0].marker.color) == [theme.model_color("w2v"), theme.model_color("sbert")]
    assert "ROC-AUC" in fig.layout.title.text
    assert charts.wrap("word " * 40, 20, max_lines=2).count("<br>") == 1
    assert charts.short("abcdef", 4) == "abc…"


# ------------------------------------------------------------------------------------ evaluation lab
def test_score_vs_gold_one_panel_per_model_with_its_trend():
    rng = np.random.default_rng(0)
    gold = rng.uniform(0, 5, 50)
    scores = {"w2v": gold / 5 + rng.normal(0, 0.1, 50), "sbert": np.where(np.arange(50) % 7, gold / 5, np.nan)}
    fig = charts.score_vs_gold(scores, gold)
    assert len(fig.data) == 4  # points and trend per model
    assert [t.name for t in fig.data] == ["w2v", "w2v trend", "sbert", "sbert trend"]
    assert [t.marker.color for t in fig.data[::2]] == [theme.model_color("w2v"), theme.model_color("sbert")]
    assert [t.line.color for t in fig.data[1::2]] == [theme.model_color("w2v"), theme.model_color("sbert")]
    assert [a.text for a in fig.layout.annotations] == ["w2v", "sbert"]  # panel titles
    assert fig.layout.xaxis.title.text == fig.layout.xaxis2.title.text == "model score"
    assert fig.layout.yaxis.title.text == "gold label" and fig.layout.title.text
    assert len(fig.data[1].x) == 10  # deciles


def test_score_distributions_boxes_per_model_and_numeric_label_order():
    gold = np.array([10.0, 0.5, 4.2, 1.0, np.nan])
    fig = charts.score_distributions({"w2v": np.array([0.9, 0.1, 0.5, np.nan, 0.3]), "esim": np.ones(5)}, gold, False)
    assert [t.name for t in fig.data] == ["w2v", "esim"]
    assert [t.marker.color for t in fig.data] == [theme.model_color("w2v"), theme.model_color("esim")]
    assert list(fig.data[0].x) == ["10", "0", "4"]  # rows without a score or a label are left out
    assert list(fig.layout.xaxis.categoryarray) == ["0", "1", "4", "10"]  # by value, not as text
    assert fig.layout.xaxis.title.text == "gold label (rounded down)" and fig.layout.yaxis.title.text == "model score"
    binary = charts.score_distributions({"w2v": np.array([0.2, 0.8])}, np.array([0.0, 1.0]), True)
    assert binary.layout.xaxis.title.text == "gold label"


def test_roc_pr_lines_per_model_and_chance():
    from backend.evaluation import roc_pr_curves

    y = np.array([0, 0, 1, 1, 0, 1], dtype=float)
    curve = roc_pr_curves(np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9]), y, "binary", (0.0, 1.0))
    figs = charts.roc_pr({"w2v": curve, "bert": None, "sbert": curve}, {"w2v": 0.75, "sbert": None}, {"w2v": 0.8})
    assert figs is not None
    roc, pr = figs
    assert [t.name for t in roc.data] == ["w2v (AUC 0.750)", "sbert (AUC –)", "chance"]  # no curve for bert
    assert [t.name for t in pr.data] == ["w2v (AP 0.800)", "sbert (AP –)"]
    assert [t.line.color for t in pr.data] == [theme.model_color("w2v"), theme.model_color("sbert")]
    assert roc.layout.xaxis.title.text == "false positive rate" and roc.layout.yaxis.title.text == "true positive rate"
    assert pr.layout.xaxis.title.text == "recall" and pr.layout.yaxis.title.text == "precision"
    assert charts.roc_pr({"w2v": None}, {}, {}) is None


def test_calibration_curve_over_the_background():
    grid = np.linspace(0, 1, 11)
    fig = charts.calibration_curve("sbert", grid, grid**2, "isotonic", np.array([0.1, 0.2, 0.2]))
    hist, line = fig.data
    assert hist.type == "histogram" and hist.marker.color == "gray" and hist.yaxis == "y2"
    assert line.line.color == theme.model_color("sbert") and line.name == "P(similar), isotonic"
    assert fig.layout.xaxis.title.text == "model score"
    assert fig.layout.yaxis.title.text == "P(similar)" and list(fig.layout.yaxis.range) == [0, 1]
    assert fig.layout.yaxis2.title.text == "share of random pairs"
    assert len(charts.calibration_curve("sbert", grid, grid, "logistic").data) == 1  # no background


def test_probe_heatmap_labels_layers_and_undefined_cells():
    frame = pd.DataFrame([[50.0, np.nan], [61.25, 40.0]], index=pd.Index([0, 1], name="layer"), columns=["mean", "cls"])
    fig = charts.probe_heatmap(frame, "bert", 1500, whitened=True)
    assert len(fig.data) == 1
    assert list(fig.data[0].y) == ["0 (embeddings)", "1"] and list(fig.data[0].x) == ["mean", "cls"]
    assert [list(r) for r in fig.data[0].text] == [["50.0", "–"], ["61.2", "40.0"]]
    assert "1,500 pairs, whitened" in fig.layout.title.text
    assert fig.layout.xaxis.title.text == "pooling" and fig.layout.yaxis.title.text == "hidden layer"


def test_training_curves_one_line_per_metric_in_the_model_colour():
    history = [{"epoch": 1.0, "dev_spearman": 0.5, "dev_loss": 0.3}, {"epoch": 2.0, "dev_spearman": 0.6, "dev_loss": 0.2}]
    fig = charts.training_curves(history, ["dev_spearman", "dev_loss"], "esim", "ESIM", "metric")
    assert [t.name for t in fig.data] == ["dev_spearman", "dev_loss"]
    assert {t.line.color for t in fig.data} == {theme.model_color("esim")}
    assert fig.data[0].line.dash != fig.data[1].line.dash
    assert list(fig.data[1].y) == [0.3, 0.2] and list(fig.data[0].x) == [1.0, 2.0]
    assert fig.layout.xaxis.title.text == "epoch" and fig.layout.yaxis.title.text == "metric"
    assert fig.layout.showlegend
    one = charts.training_curves([{"epoch": 1.0, "loss": 9.0}], ["loss"], "w2v", "word2vec", "loss")
    assert one.data[0].line.color == theme.model_color("w2v") and not one.layout.showlegend


def test_parse_label_range():
    assert tables.parse_label_range("") is None and tables.parse_label_range("  ") is None
    assert tables.parse_label_range("0, 5") == (0.0, 5.0)
    for bad in ("5", "0,1,2", "a,b", "5,0"):
        with pytest.raises(ValueError, match="label range"):
            tables.parse_label_range(bad)


def test_majority_language_of_small_and_mixed_sets():
    zh = ["今天天气很好", "我喜欢读书"]
    assert tables.majority_language(zh * 40) == "zh"  # 80 pairs: fewer than the 200 sampled, still Chinese
    assert tables.majority_language(["The cat sleeps."] * 3 + zh) == "en"
    assert tables.majority_language([]) == "en"


def test_score_span_and_nearest_words_frame():
    assert tables.score_span((0.2, 0.8)) == (0.2, 0.8)
    assert tables.score_span((0.2, 0.8), np.array([-0.1, 0.5])) == (-0.1, 0.8)
    assert tables.score_span((0.2, 0.8), np.array([])) == (0.2, 0.8)
    f = tables.nearest_words_frame([("dog", 0.9), ("cat", 0.8)])
    assert list(f.columns) == ["word", "cosine"] and f["word"].tolist() == ["dog", "cat"]
