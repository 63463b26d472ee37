"""A corpus embedded by the CLI (``python -m backend embed``), explored in Neighbours and Projection."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from backend.files.embed import embed_file
from backend.files.io import load_demo_corpus
from tests.ui.conftest import app, tables_with, texts


@pytest.fixture
def corpora(tmp_path, monkeypatch):
    """A folder of embedded corpora the dashboard lists: 1,200 texts (the demo corpus five times, each copy
    numbered so the vectors differ; below 1,000 vectors every index is exact) with w2v vectors."""
    from ui import state

    folder = tmp_path / "corpora"
    folder.mkdir()
    monkeypatch.setenv("SIMDASH_CORPORA", str(folder))
    src = tmp_path / "demo.csv"
    demo = pd.concat([load_demo_corpus("en")[["text", "topic"]]] * 5, ignore_index=True)
    demo["text"] = [f"{x} {i}" for i, x in enumerate(demo["text"])]
    demo.to_csv(src, index=False)
    embed_file(state.backend(), src, folder / "demo.parquet", ["w2v"]).run(state.backend())
    return folder


def _embedded(page: str, **query):
    at = app(page, models=["w2v"], **query)
    at.radio(key="corpus_source").set_value("embedded").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_neighbours_of_an_embedded_corpus_come_from_its_stored_vectors(corpora):
    at = _embedded("neighbours", nb_queries="I cannot log in to my account", nb_k="3")
    n = 5 * len(load_demo_corpus("en"))
    assert any(f"{n:,} texts, vectors of w2v" in c for c in texts(at.caption))
    top = tables_with(at, "text")
    assert len(top) == 1 and len(top[0]) == 3
    scores = top[0]["score"].astype(float)  # shown as text, to three decimals
    assert scores.is_monotonic_decreasing and scores.iloc[0] > 0.5
    assert any(f"exact search over {n:,} vectors" in c for c in texts(at.caption))


def test_an_approximate_index_is_built_in_the_background_then_searched(corpora, monkeypatch):
    import backend.files.index

    monkeypatch.setattr(backend.files.index, "EXACT_LIMIT", 1_000)  # the demo corpus counts as large
    at = _embedded("neighbours", nb_queries="I cannot log in to my account", nb_k="3")
    assert not tables_with_text(at) and at.button(key="nb_build_index")
    at.button(key="nb_build_index").click().run()
    job = at.session_state["lab_job_nb_index_demo.parquet"]
    job.join(120)
    assert job.state().status == "done", job.state().error
    at.run()
    assert not at.exception
    shown = [c for c in texts(at.caption) if "approximate search (IVF" in c]
    assert shown and "recall@10" in shown[0]
    assert len(tables_with(at, "text")[0]) == 3
    index_files = list(corpora.glob("demo.parquet.index/*.faiss"))
    assert index_files  # saved beside the corpus, reused next time
    t0 = time.perf_counter()
    at.run()
    assert time.perf_counter() - t0 < 30 and tables_with_text(at)


def tables_with_text(at) -> list:
    return [t for t in tables_with(at, "text") if len(t)]


def test_projection_of_an_embedded_corpus_says_what_it_maps(corpora):
    at = _embedded("projection", proj_method="PCA", proj_colour="label")
    assert len(at.get("plotly_chart")) == 1
    assert any("not marked on an embedded corpus" in c for c in texts(at.caption))
    assert any(c.startswith("ℹ️") and "PCA" in c for c in texts(at.caption))


def test_an_embedded_corpus_of_other_options_is_refused_with_the_reason(corpora):
    at = app("neighbours", models=["w2v"], nb_queries="a cat", **{"w2v.weighting": "mean"})
    at.radio(key="corpus_source").set_value("embedded").run()
    errors = texts(at.error)
    assert any("not comparable" in e for e in errors), errors


@pytest.fixture
def remote(monkeypatch):
    """A backend server (the app ``python -m backend serve`` runs) on a free port; the dashboard is its client."""
    from backend.server.app import ServerSettings, create_app
    from backend.serving import Backend
    from tests.server.live import live_server

    with live_server(create_app(Backend(device="cpu"), ServerSettings())) as url:
        monkeypatch.setenv("SIMDASH_BACKEND_URL", url)
        yield url


def test_an_embedded_corpus_is_explored_through_a_backend_server(remote, corpora):
    """With SIMDASH_BACKEND_URL set, the file is read where the dashboard runs and checked against the server's
    configuration of w2v; the server embeds the queries; search and maps are made here from the stored vectors."""
    from ui import state

    assert state.backend().url == remote
    at = _embedded("neighbours", nb_queries="I cannot log in to my account", nb_k="3")
    assert not at.error, [e.value for e in at.error]
    n = 5 * len(load_demo_corpus("en"))
    top = tables_with(at, "text")
    assert len(top) == 1 and len(top[0]) == 3
    scores = top[0]["score"].astype(float)
    assert scores.is_monotonic_decreasing and scores.iloc[0] > 0.5
    assert any(f"exact search over {n:,} vectors" in c for c in texts(at.caption))
    assert any(f"models served by {remote}" in c for c in texts(at.sidebar.caption))
    at = _embedded("projection", proj_method="PCA", proj_colour="label")
    assert not at.error, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) == 1
    assert any(c.startswith("ℹ️") and "PCA" in c for c in texts(at.caption))
