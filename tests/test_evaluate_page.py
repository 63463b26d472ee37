"""The Evaluation lab page renders, evaluates an uploaded labelled file and trains word2vec (Streamlit AppTest).

A small registry of two word-vector models over a generated vocabulary keeps the page fast: no large
weights are loaded. The numbers the page shows are compared with :func:`backend.evaluation.evaluate`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
PAGE = str(REPO / "pages" / "evaluate.py")
WORDS = ["cat", "dog", "sleeps", "runs", "the", "a", "small", "big", "house", "garden", "sun", "rain", "reads", "book"]


@pytest.fixture()
def tiny_env(tmp_path, monkeypatch):
    """Registry with two tiny w2v models; the cached Backend is rebuilt for it."""
    rng = np.random.default_rng(0)
    for name in ("v1", "v2"):
        lines = [f"{len(WORDS)} 8"] + [w + " " + " ".join(f"{v:.4f}" for v in rng.normal(size=8)) for w in WORDS]
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n")
    toml = ""
    for key, name in (("tinya", "v1"), ("tinyb", "v2")):
        toml += (f'[models.{key}]\nfamily = "w2v"\nlabel = "{key}"\nsource = "path:{tmp_path / (name + ".txt")}"\n'
                 f'language = "en"\n[models.{key}.options]\nformat = "word2vec"\nweighting = "mean"\n\n')
    (tmp_path / "registry.toml").write_text(toml)
    monkeypatch.setenv("SIMDASH_REGISTRY", str(tmp_path / "registry.toml"))
    monkeypatch.setenv("SIMDASH_WARM", "0")
    from ui import state

    state.backend.clear()
    yield tmp_path
    state.backend.clear()


def labelled_csv(n: int = 40, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    a = [" ".join(rng.choice(WORDS, 4)) for _ in range(n)]
    b = [" ".join(rng.choice(WORDS, 4)) for _ in range(n)]
    score = np.round(rng.uniform(0, 5, n), 1)
    return pd.DataFrame({"sentence1": a, "sentence2": b, "score": score}).to_csv(index=False).encode()


def wait_for(at, name: str, timeout: float = 60.0):
    """Join the page's background job ``name`` and rerun the page to show its result."""
    job = at.session_state[f"eval_job_{name}"]
    job.join(timeout)
    assert not job.running, f"{name} did not finish in {timeout} s"
    at.run()
    return job.state()


def frame_with(at, *columns: str) -> pd.DataFrame:
    """The first dataframe shown with all of ``columns`` (AppTest does not expose a dataframe's key)."""
    for el in at.dataframe:
        if set(columns) <= set(el.value.columns):
            return el.value
    raise AssertionError(f"no dataframe with {columns}; have {[list(e.value.columns) for e in at.dataframe]}")


def test_page_renders_and_evaluates_an_uploaded_file(tiny_env):
    from streamlit.testing.v1 import AppTest

    from backend.evaluation import evaluate, load_labelled_pairs
    from backend.registry import ModelRequest
    from backend.service import Backend

    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "Evaluation lab"
    assert [t.label for t in at.tabs] == ["Metrics", "Calibration", "Layer probe", "Disagreements", "Recall → rerank",
                                          "Train"]
    data = labelled_csv()
    at.file_uploader(key="eval_file").set_value(("pairs.csv", data, "text/csv")).run()
    assert not at.exception
    assert any("40 pairs" in c.value and "graded" in c.value for c in at.caption)
    at.button(key="eval_run").click().run()
    state = wait_for(at, "metrics")
    assert state.status == "done", state.error
    assert not at.exception
    shown = frame_with(at, "model", "spearman", "auc").set_index("model")
    # the same models with the sidebar's options (word vectors: SIF weighting by default)
    opts = at.session_state["settings"].options
    models = [ModelRequest(k, k, dict(opts.get(k, {}))) for k in ("tinya", "tinyb")]
    want = evaluate(Backend(device="cpu"), load_labelled_pairs(data), models).table().set_index("model")
    assert list(shown.index) == ["tinya", "tinyb"]
    for k in ("tinya", "tinyb"):
        assert shown.at[k, "n"] == 40
        assert shown.at[k, "spearman"] == pytest.approx(want.at[k, "spearman"])
        assert shown.at[k, "auc"] == pytest.approx(want.at[k, "auc"])
    # the Disagreements tab works on the same scores (two models)
    dis = frame_with(at, "spread")
    assert len(dis) > 0 and {"rank_tinya", "rank_tinyb", "spread"} <= set(dis.columns)
    assert dis["spread"].is_monotonic_decreasing
    # charts: scatter, distributions, ROC, PR
    assert len(at.get("plotly_chart")) >= 4


def test_missing_label_column_offers_the_mapping(tiny_env):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(PAGE, default_timeout=60).run()
    f = pd.DataFrame({"left": ["the cat sleeps"] * 12, "right": ["a dog runs"] * 12, "note": ["x"] * 12})
    at.file_uploader(key="eval_file").set_value(("nolabel.csv", f.to_csv(index=False).encode(), "text/csv")).run()
    assert not at.exception
    assert any("No gold label column" in e.value for e in at.error)
    label_box = next(s for s in at.selectbox if s.label == "Gold label")
    assert label_box.options == ["(choose)", "note"]


def test_train_tab_trains_word2vec_and_adds_it_to_the_comparison(tiny_env):
    from streamlit.testing.v1 import AppTest

    from ui import state

    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.number_input(key="w2v_epochs").set_value(2)
    at.number_input(key="w2v_dim").set_value(16)
    at.number_input(key="w2v_min").set_value(1)
    at.sidebar.multiselect(key="models").set_value(["tinyb"])
    at.run()
    at.button(key="w2v_run").click().run()
    st_ = wait_for(at, "w2v")
    assert st_.status == "done", st_.error
    assert not at.exception
    assert st_.result.epochs_done == 2 and len(st_.history) == 2
    assert any("16 dimensions" in s.value for s in at.success)
    at.button(key="w2v_add").click().run()
    assert not at.exception
    added = at.session_state["eval_session_models"]
    assert len(added) == 1 and added[0] in state.backend().registry
    assert state.backend().registry[added[0]].owner == at.session_state["session_id"]
    # in the sidebar's list on the run of the click, and the selection made before is kept
    models = at.sidebar.multiselect(key="models")
    assert models.options == ["tinya", "tinyb", added[0]]
    assert models.value == ["tinyb"]
    assert any(added[0] in s.value for s in at.success)
    r = state.backend().score_pairs(added[0], ["the password reset"], ["reset my password"])
    assert r.error is None


def test_models_trained_in_another_session_are_not_listed(tiny_env):
    """The registry is shared by every session; a session lists the shared models and its own only."""
    from dataclasses import replace

    from streamlit.testing.v1 import AppTest

    from ui import state

    reg = state.backend().registry
    reg.add(replace(reg["tinya"], key="w2v-other-1", owner="other", default=False))
    reg.add(replace(reg["tinya"], key="w2v-mine-1", owner="mine", default=False))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["session_id"] = "mine"
    # a link copied from the other session names its model: it is dropped, the shared one kept
    at.query_params["models"] = ["tinya", "w2v-other-1"]
    at.run()
    assert not at.exception
    models = at.sidebar.multiselect(key="models")
    assert models.options == ["tinya", "tinyb", "w2v-mine-1"]
    assert models.value == ["tinya"]
    at.radio(key="eval_source").set_value("demo").run()  # the Recall tab needs data
    assert at.sidebar.multiselect(key="models").value == ["tinya"]
    retriever = next(s for s in at.selectbox if s.label == "Retriever")
    assert "w2v-other-1" not in retriever.options and "w2v-mine-1" in retriever.options
    # a third session sees neither
    other = AppTest.from_file(PAGE, default_timeout=60).run()
    assert other.sidebar.multiselect(key="models").options == ["tinya", "tinyb"]


def test_waits_until_cancel(tiny_env):
    """A running job shows a progress bar and a Cancel button that stops it."""
    from streamlit.testing.v1 import AppTest

    from backend.w2v_training import BackgroundJob

    at = AppTest.from_file(PAGE, default_timeout=60).run()

    def slow(job: BackgroundJob) -> None:
        while not job.should_stop():
            job.report(0.5, "halfway")
            time.sleep(0.01)
        raise RuntimeError("stopped")

    at.session_state["eval_job_w2v"] = BackgroundJob(slow, "w2v").start()
    at.run()
    assert not at.exception
    assert any("halfway" in (p.proto.text or "") for p in at.get("progress"))
    at.button(key="eval_cancel_w2v").click().run()
    job = at.session_state["eval_job_w2v"]
    job.join(10)
    at.run()
    assert job.state().status == "cancelled"
    assert any("Cancelled" in w.value for w in at.warning)
