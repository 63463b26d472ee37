"""The dashboard's streamlit-free helpers: tables, overlaps, metrics, chunked scoring, figures, colours."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.lab.retrieval import overlap_matrix
from backend.registry import Registry
from backend.results import ModelResult, Neighbours
from ui import charts, tables, theme

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------- architecture
@pytest.mark.parametrize("module", ["ui/theme.py", "ui/charts.py", "ui/tables.py", "ui/locale_zh.py"])
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
    # a new model never takes a registered model's colour
    assert not set(theme.SPARE_COLORS) & set(theme.MODEL_COLORS.values())


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
        "w2v": _result("w2v", [0.5, float("nan")], warnings=[[], ["A: no known words: every word is out of vocabulary (x)"]]),
        "esim": _result("esim", [0.9, 0.1], used=["esim", "esim-zh"]),
        "bert": _result("bert", None, error="bert could not be loaded"),
    }
    f = tables.scores_frame(["x", "y"], ["u", "v"], results)
    assert f["pair"].tolist() == [1, 2]
    assert f["score_w2v"].iloc[0] == 0.5 and math.isnan(f["score_w2v"].iloc[1])
    assert f["scored_by_esim"].tolist() == ["esim", "esim-zh"] and f["scored_by_w2v"].tolist() == ["w2v", "w2v"]
    assert f["score_bert"].isna().all() and f["warnings_bert"].iloc[0].startswith("failed:")
    cells = tables.score_cells_frame(["x", "y"], ["u", "v"], results)
    assert cells["w2v"].tolist() == ["0.500", "n/a: A: no known words: every word is out of vocabulary (x)"]
    assert cells["esim"].tolist() == ["0.900", "0.100 → esim-zh"]
    assert cells["bert"].tolist() == ["n/a: failed: bert could not be loaded"] * 2


def test_score_cell_never_shows_none_or_nan():
    assert tables.score_cell(0.81234, []) == "0.812"
    assert tables.score_cell(float("nan"), ["A: text looks Chinese", "B: empty text: no score"]) == "n/a: B: empty text: no score"
    assert tables.score_cell(float("nan"), []) == "n/a: undefined"
    assert tables.score_cell(None, ["x"], na=lambda r: f"无: {r}") == "无: x"


def test_explain_frame_rows_per_model():
    results = {"w2v": _result("w2v", [float("nan")], warnings=[["A: no known words: x"]]),
               "bert": _result("bert", None, error="boom")}
    f = tables.explain_frame(0, results, {"w2v": "GloVe"}, {"w2v": "weighting=sif"})
    assert f["model"].tolist() == ["GloVe", "bert"]
    assert f["score"].tolist() == ["n/a: A: no known words: x", "n/a: failed: boom"]
    assert f["settings"].iloc[0] == "weighting=sif"
    assert tables.settings_text({"layer": -2, "pooling": "mean", "max_tokens": 256}, ["layer", "pooling"]) == \
        "layer=-2, pooling=mean"


def test_cluster_names_sort_as_numbers():
    names = tables.cluster_names([0, 9, 10, -1, 1])
    assert names == ["cluster 01", "cluster 10", "cluster 11", "no vector", "cluster 02"]
    assert sorted(n for n in names if n != "no vector") == ["cluster 01", "cluster 02", "cluster 10", "cluster 11"]


# ---------------------------------------------------------------------------------------- neighbours
def _nb(key, idx, sc):
    return Neighbours(np.array(idx), np.array(sc, dtype=np.float32), [[] for _ in idx], [], key)


def test_neighbours_frame_candidate_union_and_rerank():
    corpus = ["c0", "c1", "c2", "c3"]
    res = {"w2v": _nb("w2v", [[0, 1]], [[0.9, 0.8]]), "sbert": _nb("sbert", [[2, 0]], [[0.7, 0.6]])}
    f = tables.neighbours_frame(["q"], corpus, ["l0", "l1", "l2", "l3"], res)
    assert len(f) == 4 and set(f["model"]) == {"w2v", "sbert"}
    assert f.loc[(f.model == "sbert") & (f["rank"] == 1), "text"].item() == "c2"
    from backend.lab.retrieval import candidate_union

    cands = candidate_union(res, 0)
    assert cands == [0, 2, 1]  # best ranks first, no duplicates
    rr = tables.rerank_frame("q", cands, corpus, None, np.array([0.1, 0.9, np.nan]), res, 0)
    assert rr["text"].tolist() == ["c2", "c0", "c1"]  # NaN (no score) last
    assert rr["rerank"].tolist() == [1, 2, 3]
    assert rr.loc[0, "rank_sbert"] == 1 and pd.isna(rr.loc[0, "rank_w2v"])


# ------------------------------------------------------------------------------------------- models
def test_empty_cells_and_format_seconds():
    f = pd.DataFrame({"a": ["x", "", " ", "y"], "b": ["y", "z", "w", ""]})
    assert tables.empty_cells(f, "a", "b") == 3
    assert tables.format_seconds(None) == "…"
    assert tables.format_seconds(4.24) == "4.2 s"
    assert tables.format_seconds(200) == "3 min 20 s"
    assert tables.format_seconds(3900) == "1 h 05 min"


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
    m = overlap_matrix({"w2v": [{1}], "sbert": [{1, 2}]})
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
    from backend.lab.evaluation import roc_pr_curves

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


def test_probe_heatmap_axes_are_categorical_and_complete():
    """Every hidden state is a row named both ways (the sidebar's negative index and the layer), none dropped."""
    frame = pd.DataFrame([[50.0, np.nan], [61.25, 40.0], [70.0, 45.0]], index=pd.Index([0, 1, 2], name="layer"),
                         columns=["mean", "cls"])
    fig = charts.probe_heatmap(frame, "bert", 1500, whitened=True)
    assert len(fig.data) == 1
    rows = ["-3 · embeddings", "-2 · layer 1", "-1 · layer 2"]
    assert list(fig.data[0].y) == rows and list(fig.data[0].x) == ["mean", "cls"]
    assert fig.layout.yaxis.type == "category" and list(fig.layout.yaxis.categoryarray) == rows
    assert [list(r) for r in fig.data[0].text] == [["50.0", "–"], ["61.2", "40.0"], ["70.0", "45.0"]]
    assert "1,500 pairs" in fig.layout.title.text and "whitened" in fig.layout.title.text
    assert fig.layout.xaxis.title.text == "pooling"
    assert charts.layer_label(0, 7) == "-7 · embeddings" and charts.layer_label(5, 7) == "-2 · layer 5"


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




def test_nearest_words_frame():
    f = tables.nearest_words_frame([("dog", 0.9), ("cat", 0.8)])
    assert list(f.columns) == ["word", "cosine"] and f["word"].tolist() == ["dog", "cat"]
