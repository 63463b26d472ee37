"""The Evaluation lab page renders, evaluates an uploaded labelled file and trains word2vec (Streamlit AppTest).

A small registry of two word-vector models over a generated vocabulary keeps the page fast: no large
weights are loaded. The numbers the page shows are compared with :func:`backend.lab.evaluation.evaluate`.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from tests.ui.conftest import app

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
    yield tmp_path


def labelled_csv(n: int = 40, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    a = [" ".join(rng.choice(WORDS, 4)) for _ in range(n)]
    b = [" ".join(rng.choice(WORDS, 4)) for _ in range(n)]
    score = np.round(rng.uniform(0, 5, n), 1)
    return pd.DataFrame({"sentence1": a, "sentence2": b, "score": score}).to_csv(index=False).encode()


def wait_for(at, name: str, timeout: float = 60.0):
    """Join the page's background job ``name`` and rerun the page to show its result."""
    job = at.session_state[f"lab_job_{name}"]
    job.join(timeout)
    assert not job.running, f"{name} did not finish in {timeout} s"
    at.run()
    return job.state()


def frame_with(at, *columns: str) -> pd.DataFrame:
    """The first table shown with all of ``columns`` (AppTest does not expose a dataframe's key)."""
    for el in [*at.dataframe, *at.table]:
        if set(columns) <= set(el.value.columns):
            return el.value
    raise AssertionError(f"no table with {columns}; have {[list(e.value.columns) for e in [*at.dataframe, *at.table]]}")


def lab(**query):
    """The Evaluation lab, on the uploaded-file source."""
    at = app("evaluate", **query)
    at.radio(key="lab_source").set_value("upload").run()
    return at


def test_page_renders_and_evaluates_an_uploaded_file(tiny_env):
    from backend.lab.evaluation import evaluate, load_labelled_pairs
    from backend.registry import ModelRequest
    from backend.serving import Backend

    at = lab()
    assert [t.label for t in at.tabs] == ["Metrics", "Calibration", "Layer probe", "Disagreements", "Recall → rerank",
                                          "Train"]
    data = labelled_csv()
    at.file_uploader[0].set_value(("pairs.csv", data, "text/csv")).run()
    assert not at.exception
    assert any("40 pairs" in c.value and "graded" in c.value for c in at.caption)
    at.button(key="lab_metrics_run").click().run()
    state = wait_for(at, "metrics")
    assert state.status == "done", state.error
    assert not at.exception
    shown = frame_with(at, "model", "spearman", "auc").set_index("model")
    # the same models with the sidebar's options
    opts = at.session_state["settings"].options
    models = [ModelRequest(k, k, dict(opts.get(k, {}))) for k in ("tinya", "tinyb")]
    want = evaluate(Backend(device="cpu"), load_labelled_pairs(data), models).table().set_index("model")
    assert list(shown.index) == ["tinya", "tinyb"]
    for k in ("tinya", "tinyb"):
        assert shown.at[k, "n"] == 40
        assert float(shown.at[k, "spearman"]) == pytest.approx(want.at[k, "spearman"], abs=0.006)  # shown: 2 decimals
        assert float(shown.at[k, "auc"]) == pytest.approx(want.at[k, "auc"], abs=0.0006)
    best = max(("tinya", "tinyb"), key=lambda k: want.at[k, "spearman"])
    # 40 random pairs: the leader is named, but its lead is within noise (a paired bootstrap says so)
    assert any(f"{best} has the highest Spearman" in s.value and "within noise" in s.value
               for s in [*at.success, *at.info, *at.warning])
    # the Disagreements tab works on the same scores (two models), texts in full
    dis = frame_with(at, "spread")
    assert len(dis) > 0 and {"rank tinya", "rank tinyb"} <= set(dis.columns)
    assert [float(x) for x in dis["spread"]] == sorted((float(x) for x in dis["spread"]), reverse=True)
    assert any(s.value.startswith("The models disagree most on row") for s in at.success)
    # charts: scatter, distributions, ROC, PR; the glossary explains the metrics
    assert len(at.get("plotly_chart")) >= 4
    assert any("ROC-AUC" in c.value and "coin" in c.value for c in at.caption)


def test_a_sample_first_on_the_cpu_with_an_estimate_for_the_rest(tiny_env):
    at = lab()
    at.file_uploader[0].set_value(("pairs.csv", labelled_csv(600), "text/csv")).run()
    size = next(n for n in at.number_input if n.key.startswith("lab_metrics_n"))
    assert size.value == 500
    at.button(key="lab_metrics_run").click().run()
    assert wait_for(at, "metrics").status == "done"
    next(n for n in at.number_input if n.key.startswith("lab_metrics_n")).set_value(600).run()
    assert any("600 pairs should take about" in c.value for c in at.caption)


def test_missing_label_column_is_named(tiny_env):
    at = lab()
    f = pd.DataFrame({"left": ["the cat sleeps"] * 12, "right": ["a dog runs"] * 12, "note": ["x"] * 12})
    at.file_uploader[0].set_value(("nolabel.csv", f.to_csv(index=False).encode(), "text/csv")).run()
    assert not at.exception
    assert any("Choose the column that holds the gold label" in e.value for e in at.error)
    label = next(s for s in at.selectbox if s.key and s.key.endswith("_label"))
    assert label.options == ["(none)", "note"]  # the mapping is offered: the person can pick the column


def train_small_w2v(at):
    """Train a 16-d word2vec for 2 epochs in the lab's Train tab and return the finished job's state."""
    at.number_input(key="lab_w2v_epochs").set_value(2)
    at.number_input(key="lab_w2v_dim").set_value(16)
    at.number_input(key="lab_w2v_min").set_value(1)
    at.run()
    at.button(key="lab_w2v_run").click().run()
    return wait_for(at, "w2v")


def test_train_tab_trains_word2vec_and_adds_it_to_the_comparison(tiny_env):
    from ui import state

    at = app("evaluate", models=["tinyb"])
    st_ = train_small_w2v(at)
    assert st_.status == "done", st_.error
    assert st_.result.epochs_done == 2 and len(st_.history) == 2
    assert any("16 dimensions" in s.value for s in at.success)
    at.button(key="lab_w2v_add").click().run()
    assert not at.exception
    be = state.backend()
    mine = [s.key for s in be.registry if s.owner == at.session_state["session_id"]]
    assert len(mine) == 1
    # in the sidebar's list on the run of the click, and the selection made before is kept
    models = at.sidebar.multiselect(key="models")
    assert models.options == ["tinya", "tinyb", mine[0]] and models.value == ["tinyb"]
    assert any(mine[0] in s.value for s in at.success)
    assert be.score_pairs(mine[0], ["the cat sleeps"], ["a dog runs"]).error is None
    # a session keeps its last three trained models: a fourth removes the oldest and its files
    folder = be._session_folders[mine[0]]
    for _ in range(3):
        at.button(key="lab_w2v_add").click().run()
    mine_now = [s.key for s in be.registry if s.owner == at.session_state["session_id"]]
    assert len(mine_now) == 3 and mine[0] not in mine_now and not folder.exists()


def test_models_trained_in_another_session_are_not_listed_and_go_when_it_ends(tiny_env):
    """The registry is shared by every session; a session lists the shared models and its own only."""
    from dataclasses import replace

    from ui import state

    be = state.backend()
    reg = be.registry
    reg.add(replace(reg["tinya"], key="w2v-other-1", owner="other", default=False))
    reg.add(replace(reg["tinya"], key="w2v-mine-1", owner="mine", default=False))
    # a link copied from the other session names its model: it is dropped, the shared one kept
    at = app("evaluate", session={"session_id": "mine"}, models=["tinya", "w2v-other-1"])
    models = at.sidebar.multiselect(key="models")
    assert models.options == ["tinya", "tinyb", "w2v-mine-1"] and models.value == ["tinya"]
    retriever = next(s for s in at.selectbox if s.label == "Retriever")
    assert "w2v-other-1" not in retriever.options and "w2v-mine-1" in retriever.options
    # a third session sees neither
    assert app("evaluate").sidebar.multiselect(key="models").options == ["tinya", "tinyb"]
    # a session idle for longer than the TTL has ended: its models are removed by the next session's run
    state._sessions()["other"] = 0.0
    app("evaluate")
    assert "w2v-other-1" not in reg and "w2v-mine-1" in reg


@pytest.fixture()
def remote_env(tiny_env, monkeypatch):
    """tiny_env's registry on a backend server (the app ``python -m backend serve`` runs); the dashboard is its
    client."""
    from backend.server.app import ServerSettings, create_app
    from backend.serving import Backend
    from tests.server.live import live_server

    with live_server(create_app(Backend(device="cpu", cache_dir="memory"), ServerSettings())) as url:
        monkeypatch.setenv("SIMDASH_BACKEND_URL", url)
        yield url


def test_with_a_backend_server_the_lab_evaluates_trains_and_compares_the_trained_model(remote_env):
    """Remote mode does what local mode does: the server's models are evaluated there, a word2vec trained in the
    browser joins this session's list (it runs in the dashboard's process: the server takes no model files) and is
    evaluated beside them."""
    from backend.lab.evaluation import evaluate, load_labelled_pairs
    from backend.serving import Backend
    from backend.serving.client import RemoteBackend
    from ui import state

    at = lab()
    data = labelled_csv()
    at.file_uploader[0].set_value(("pairs.csv", data, "text/csv")).run()
    at.button(key="lab_metrics_run").click().run()
    assert wait_for(at, "metrics").status == "done"
    assert not at.exception
    shown = frame_with(at, "model", "spearman", "auc").set_index("model")
    want = evaluate(Backend(device="cpu", cache_dir="memory"), load_labelled_pairs(data), ["tinya", "tinyb"]).table()
    for k, rho in want.set_index("model")["spearman"].items():
        assert float(shown.at[k, "spearman"]) == pytest.approx(rho, abs=0.006)  # shown: 2 decimals
    assert any(f"models served by {remote_env}" in c.value for c in at.sidebar.caption)
    # The Train tab trains here and adds the model to this session's list, as locally.
    assert not any("Training in the browser" in i.value for i in at.info)
    st_ = train_small_w2v(at)
    assert st_.status == "done", st_.error
    at.button(key="lab_w2v_add").click().run()
    assert not at.exception
    be = state.backend()
    assert isinstance(be, RemoteBackend)
    mine = [s.key for s in be.registry if s.owner == at.session_state["session_id"]]
    assert len(mine) == 1 and any(mine[0] in s.value for s in at.success)
    models = at.sidebar.multiselect(key="models")
    assert models.options == ["tinya", "tinyb", mine[0]]
    with RemoteBackend(remote_env) as other:  # the server's registry is its own
        assert mine[0] not in other.registry
    # Evaluated beside a server model: the page's numbers are the trained model's own.
    models.set_value(["tinya", mine[0]]).run()
    at.button(key="lab_metrics_run").click().run()
    assert wait_for(at, "metrics").status == "done"
    assert not at.exception
    shown = frame_with(at, "model", "spearman", "auc").set_index("model")
    assert list(shown.index) == ["tinya", mine[0]]
    here = Backend(device="cpu", cache_dir="memory")
    here.registry.add(be.registry[mine[0]])
    rho = evaluate(here, load_labelled_pairs(data), [mine[0]]).table().set_index("model").at[mine[0], "spearman"]
    assert float(shown.at[mine[0], "spearman"]) == pytest.approx(rho, abs=0.006)
    # another session does not list it, and it goes when this session ends
    assert mine[0] not in app("evaluate").sidebar.multiselect(key="models").options
    state._sessions()[at.session_state["session_id"]] = 0.0
    app("evaluate")
    assert mine[0] not in be.registry


def test_with_a_backend_server_an_esim_trained_here_is_added_and_aligns(remote_env):
    """ESIM trained in the browser in remote mode: added (as often as asked, each time under a new key and with files
    of its own), scored and aligned in the dashboard's process beside the server's models."""
    from backend.serving import Backend
    from ui import state

    at = app("evaluate")
    up = next(u for u in at.file_uploader if "lab_esim_upload" in (u.proto.id or ""))
    up.set_value(("pairs.csv", labelled_csv(60), "text/csv")).run()
    at.selectbox(key="lab_esim_emb").set_value("random")  # no GloVe download: learnt from these pairs
    at.number_input(key="lab_esim_epochs").set_value(1).run()
    at.button(key="lab_esim_run").click().run()
    st_ = wait_for(at, "esim", 120)
    assert st_.status == "done", st_.error
    be = state.backend()
    sid = at.session_state["session_id"]
    seen: list[str] = []
    for _ in range(5):  # a session keeps its last three: the fourth and fifth drop the oldest
        at.button(key="lab_esim_add").click().run()
        assert not at.exception
        seen += [s.key for s in be.registry if s.owner == sid and s.key not in seen]
    mine = [s.key for s in be.registry if s.owner == sid]
    assert len(seen) == 5 and mine == seen[2:]  # five keys, never one twice (a reused key kept the old model)
    assert at.sidebar.multiselect(key="models").options == ["tinya", "tinyb", *mine]
    # every kept model still has its files (the dropped ones took only their own copies)
    got = be.similarity(["a cat sleeps"], ["the cat sleeps"], ["tinya", *mine])
    assert list(got) == ["tinya", *mine] and all(r.error is None for r in got.values())
    assert len({float(got[k].scores[0]) for k in mine}) == 1  # one training, three copies
    here = Backend(device="cpu", cache_dir="memory")
    here.registry.add(be.registry[mine[-1]])
    assert float(got[mine[-1]].scores[0]) == pytest.approx(
        float(here.score_pairs(mine[-1], ["a cat sleeps"], ["the cat sleeps"]).scores[0]), abs=1e-6)
    al = be.align(mine[-1], "a cat sleeps", "the cat sleeps")
    assert al["tokens_a"] == ["a", "cat", "sleeps"] and al["matrix"].shape == (3, 3)
    np.testing.assert_allclose(al["matrix"].sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_with_a_backend_server_the_layer_probe_runs_there(monkeypatch):
    """The default registry's BERT probed through /v1/probe: the tab draws the same matrix as the backend computes."""
    from backend.lab.evaluation import load_labelled_pairs
    from backend.server.app import ServerSettings, create_app
    from backend.serving import Backend
    from tests.server.live import live_server

    served = Backend(device="cpu")
    with live_server(create_app(served, ServerSettings())) as url:
        monkeypatch.setenv("SIMDASH_BACKEND_URL", url)
        at = lab()
        data = labelled_csv(12)
        at.file_uploader[0].set_value(("pairs.csv", data, "text/csv")).run()
        at.selectbox(key="lab_probe_model").set_value("bert").run()
        at.button(key="lab_probe_run").click().run()
        state = wait_for(at, "probe", 180)
        assert state.status == "done", state.error
        assert not at.exception and not at.error
        assert len([c for c in at.get("plotly_chart") if c.proto.id and "lab_probe_fig" in c.proto.id]) == 1
        want = served.probe("bert", load_labelled_pairs(data))
        np.testing.assert_allclose(state.result.spearman, want.spearman, atol=1e-9, equal_nan=True)


def test_a_running_job_shows_progress_and_cancel(tiny_env):
    from backend.jobs import BackgroundJob

    at = app("evaluate")

    def slow(job: BackgroundJob) -> None:
        while not job.should_stop():
            job.report(0.5, "halfway")
            time.sleep(0.01)
        raise RuntimeError("stopped")

    at.session_state["lab_job_w2v"] = BackgroundJob(slow, "w2v").start()
    at.run()
    assert not at.exception
    assert any("halfway" in (p.proto.text or "") for p in at.get("progress"))
    at.button(key="lab_cancel_w2v").click().run()
    job = at.session_state["lab_job_w2v"]
    job.join(10)
    at.run()
    assert job.state().status == "cancelled"
