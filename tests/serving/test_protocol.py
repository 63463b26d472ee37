"""One conformance suite for both backends: the in-process :class:`~backend.serving.Backend` over fake models, and
:class:`~backend.serving.client.RemoteBackend` talking to a live ``serve`` of the same fake models.

Both must implement :class:`~backend.serving.protocol.BackendProtocol` with the same signatures, and the same
calls must give the same numbers: scores, vectors, neighbours, a search over an embedded corpus (written by
``backend.files.embed``), 2-D maps, clusters, model configurations, ESIM-style alignments and the layer probe.
Both take models trained in a dashboard session (a word2vec trained and registered as the Evaluation lab does): the
remote one keeps them in its own process, and a mix of them and the server's models gives the same numbers.
"""

from __future__ import annotations

import inspect
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from backend.families import register_family
from backend.files.embed import CorpusMismatch, EmbeddedCorpus, embed_file
from backend.lab.evaluation import LabelledPairs
from backend.options import OptionError
from backend.registry import ModelRequest, ModelSpec
from backend.results import ModelLoadError, RoleError
from backend.server.app import ServerSettings, create_app
from backend.serving import Backend
from backend.serving.client import RemoteBackend
from backend.serving.protocol import SESSION_MODELS, BackendProtocol
from backend.text import clean_text
from tests.conftest import REPO
from tests.fakes import FakeEncoder, FakePairScorer, fake_backend
from tests.fakes import word_overlap as overlap
from tests.fakes import word_vec as vec
from tests.server.live import live_server


class Layered(FakeEncoder):
    """A fake BERT for the layer probe: layer ``i`` of a text is its :func:`vec` plus ``i`` times a fixed
    pseudo-random direction of that text, so layer 0 is exactly the ``vec`` space and deeper layers are noisier."""

    def encode_layers(self, texts, poolings=("mean", "cls", "max"), batch_size=None, progress=None):
        base = np.stack([vec(t) for t in texts]).astype(np.float32)
        noise = np.stack([np.random.default_rng(sum(map(ord, t))).normal(size=8) for t in texts]).astype(np.float32)
        out = {}
        for j, p in enumerate(poolings):
            if p == "first_last_avg":
                out[p] = ((base + (base + 2 * noise)) / 2)[None]
            else:
                out[p] = np.stack([base + i * (1 + j) * noise for i in range(3)])
        if progress is not None:
            progress(len(texts), len(texts))
        return out


class Aligner(FakePairScorer):
    """A fake ESIM for the alignment heatmap: token i of ``a`` attends evenly to the tokens of ``b`` it equals
    (to all of them when it equals none), so each row sums to 1."""

    def align(self, a: str, b: str) -> dict:
        ta, tb = clean_text(a).lower().split(), clean_text(b).lower().split()
        m = np.array([[float(x == y) for y in tb] for x in ta], dtype=np.float32).reshape(len(ta), len(tb))
        m[m.sum(axis=1) == 0] = 1.0
        m /= np.maximum(m.sum(axis=1, keepdims=True), 1e-9)
        return {"tokens_a": ta, "tokens_b": tb, "matrix": m, "score": overlap(a, b),
                "warnings": [] if ta and tb else ["empty text: no score"]}


register_family("fake_layers", Layered)
register_family("fake_aligner", Aligner)


def make_backend() -> Backend:
    be = fake_backend({"enc": vec, "layers": vec}, {"pair": overlap, "aligner": overlap}, broken=("broken",))
    be.registry.add(ModelSpec("layers", "fake_layers", "LAYERS", "path:layers", default=False))
    be.registry.add(ModelSpec("aligner", "fake_aligner", "ALIGNER", "path:aligner", default=False))
    return be


#: texts per request on the test server: small, so that chunking and the client's large-input paths run.
MAX_TEXTS = 24


@pytest.fixture(scope="module")
def pair():
    """(in-process Backend, RemoteBackend) over the same fake models (separate Backend objects)."""
    local = make_backend()
    served = make_backend()
    with live_server(create_app(served, ServerSettings(max_texts=MAX_TEXTS, api_key="k3y"))) as url, \
            RemoteBackend(url, api_key="k3y") as remote:
        yield local, remote


@pytest.fixture(params=["local", "remote"])
def be(request, pair):
    """Each backend in turn, for behaviour both must share."""
    return pair[0] if request.param == "local" else pair[1]


CORPUS = ["the cat sat on the mat", "dogs bark at night", "", "a cat and a dog", "fish swim in the sea",
          "the mat is red", "birds fly south", "cats sleep all day", "the sea is deep", "a dog runs home",
          "red birds sing", "night falls fast"] * 3  # 36 rows: over MAX_TEXTS, with duplicates and empty texts


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory, pair):
    """Embedded corpora written by ``backend.files.embed`` with the local backend: under enc's default options
    and under ``scale=2`` (another configuration of the same model)."""
    local, _ = pair
    folder = tmp_path_factory.mktemp("corpora")
    src = folder / "corpus.csv"
    pd.DataFrame({"text": CORPUS, "topic": [f"t{i % 4}" for i in range(len(CORPUS))]}).to_csv(src, index=False)
    plain, scaled = folder / "plain.parquet", folder / "scaled.parquet"
    embed_file(local, src, plain, ["enc"]).run(local)
    embed_file(local, src, scaled, [ModelRequest("enc", "enc", {"scale": 2.0})]).run(local)
    return plain, scaled


# ------------------------------------------------------------------------------------------ the interface
def test_both_backends_implement_the_protocol(pair):
    local, remote = pair
    assert isinstance(local, BackendProtocol) and isinstance(remote, BackendProtocol)
    assert not isinstance(object(), BackendProtocol)


def _members() -> tuple[list[str], list[str]]:
    methods = [n for n, v in vars(BackendProtocol).items() if inspect.isfunction(v) and not n.startswith("_")]
    return methods, list(BackendProtocol.__annotations__)


def _norm(annotation) -> str | None:
    """An annotation as text, spacing and quote style aside (they are strings: ``from __future__ import
    annotations``); None where the parameter has none."""
    if annotation is inspect.Parameter.empty:
        return None
    return re.sub(r"\s+", "", str(annotation)).replace('"', "'")


#: parameters Backend annotates more narrowly than it accepts: ``clusters`` takes an embedded corpus too (its
#: docstring says so), but its hint, older than embedded corpora, names texts only.
NARROWER_ON_BACKEND = {("clusters", "texts")}


@pytest.mark.parametrize("name", _members()[0])
def test_every_protocol_method_has_one_signature(name):
    """Same parameter names, kinds and defaults on the protocol and both classes; the same annotations wherever
    two of them declare one (Backend leaves ``corpus`` unannotated)."""
    sigs = {cls.__name__: inspect.signature(getattr(cls, name)) for cls in (BackendProtocol, Backend, RemoteBackend)}
    shapes = {c: [(p.name, p.kind, p.default) for p in s.parameters.values()] for c, s in sigs.items()}
    assert shapes["Backend"] == shapes["RemoteBackend"] == shapes["BackendProtocol"], shapes
    for c1, c2 in (("BackendProtocol", "Backend"), ("BackendProtocol", "RemoteBackend"), ("Backend", "RemoteBackend")):
        for p1, p2 in zip(sigs[c1].parameters.values(), sigs[c2].parameters.values(), strict=True):
            a1, a2 = _norm(p1.annotation), _norm(p2.annotation)
            if (name, p1.name) in NARROWER_ON_BACKEND and "Backend" in (c1, c2):
                continue
            assert a1 is None or a2 is None or a1 == a2, (name, c1, c2, p1.name, a1, a2)
        r1, r2 = _norm(sigs[c1].return_annotation), _norm(sigs[c2].return_annotation)
        assert r1 is None or r2 is None or r1 == r2, (name, c1, c2, r1, r2)


def test_the_protocol_covers_every_call_the_dashboard_makes():
    """Pages and UI helpers call only what the protocol declares, so either backend serves every page."""
    methods, attributes = _members()
    used = set()
    for path in [*(REPO / "ui").rglob("*.py"), *(REPO / "pages").glob("*.py"), REPO / "app.py"]:
        used |= set(re.findall(r"\b(?:be|state\.backend\(\)|backend\(\))\.([a-zA-Z_]+)", path.read_text()))
    assert used and used <= set(methods) | set(attributes), used - set(methods) - set(attributes)
    assert {"open_corpus", "search", "probe", "align", "add_session_model", "url"} <= used
    for path in [*(REPO / "ui").rglob("*.py"), *(REPO / "pages").glob("*.py")]:
        assert "hasattr(" not in path.read_text(), path


def test_both_backends_take_session_models(pair, tmp_path):
    """A session model joins either backend: listed for its session only, never on the server, gone with its owner."""
    local, remote = pair
    assert SESSION_MODELS in local.capabilities and SESSION_MODELS in remote.capabilities
    assert local.url is None and remote.url.startswith("http://127.0.0.1:")
    spec = ModelSpec("mine", "fake_encoder", "MINE", "path:enc", default=False, owner="s1")
    for be in (local, remote):
        assert be.remove_owner("s1") == []  # nothing registered for s1 yet
        folder = tmp_path / type(be).__name__
        folder.mkdir()
        assert be.add_session_model(spec, folder) == [] and "mine" in be.registry
        reg = be.registry
        assert "mine" in reg.visible("s1") and "mine" not in reg.visible("s2") and "mine" not in reg.defaults()
        assert reg.visible("s2") == [s.key for s in reg if s.key != "mine"]
        assert be.roles("mine") == frozenset({"encoder"}) and "mine" in be.keys_with_role("encoder")
        assert be.model_states()["mine"] == "not loaded"
        with pytest.raises(ValueError, match="needs an owner"):
            be.add_session_model(ModelSpec("ownerless", "fake_encoder", "X", "path:enc", default=False))
        assert be.remove_owner("s1") == ["mine"] and "mine" not in be.registry and not folder.exists()
    with pytest.raises(ValueError, match="a model of the server"):  # one list of keys: a server key stays the server's
        remote.add_session_model(ModelSpec("enc", "fake_encoder", "ENC", "path:enc", default=False, owner="s1"))
    assert remote.roles("enc") == frozenset({"encoder"})
    with RemoteBackend(remote.url, api_key="k3y") as other:  # the server never heard of it
        remote.add_session_model(spec)
        assert "mine" in remote.registry and "mine" not in other.registry
        with pytest.raises(KeyError):
            other.roles("mine")
        remote.remove_owner("s1")


# ---------------------------------------------------------------------------------- the same numbers
A = ["the cat sat", "a dog ran", "", "the cat", "fish swim", "birds fly high", "the cat sat"] * 2
B = ["the cat sat down", "dogs run", "x", "a cat", "fish", "", "cat sat"] * 2


def test_scores_vectors_and_neighbours_are_the_same(pair):
    local, remote = pair
    keys = ["enc", "pair", ModelRequest("enc x3", "enc", {"scale": 3.0})]
    want, got = local.similarity(A, B, keys), remote.similarity(A, B, keys)
    for k in ("enc", "pair", "enc x3"):
        np.testing.assert_array_equal(got[k].scores, want[k].scores)
        assert got[k].warnings == want[k].warnings
    assert want["enc"].scores[0] == pytest.approx(np.dot(vec(A[0]), vec(B[0])) / np.linalg.norm(vec(A[0]))
                                                  / np.linalg.norm(vec(B[0])), abs=1e-6)
    np.testing.assert_array_equal(remote.embed("enc", CORPUS).vectors, local.embed("enc", CORPUS).vectors)
    nb_l, nb_r = local.neighbours("enc", ["cat", "sea"], CORPUS, k=5), remote.neighbours("enc", ["cat", "sea"], CORPUS, k=5)
    np.testing.assert_array_equal(nb_r.indices, nb_l.indices)
    np.testing.assert_array_equal(nb_r.scores, nb_l.scores)
    assert 2 not in nb_l.indices  # the empty text has no vector and is never a neighbour
    rr = remote.rerank("pair", "the cat", ["a cat", "dogs", "the cat"])
    assert rr.scores.tolist() == pytest.approx([1 / 3, 0.0, 1.0])
    np.testing.assert_array_equal(rr.scores, local.rerank("pair", "the cat", ["a cat", "dogs", "the cat"]).scores)


def test_model_config_is_the_servers(pair):
    local, remote = pair
    assert remote.model_config("enc") == local.model_config("enc")
    scaled = remote.model_config("enc", {"scale": "2"})
    assert scaled == local.model_config("enc", {"scale": 2.0}) and scaled.options == {"scale": 2.0}
    assert scaled.config_id != remote.model_config("enc").config_id
    assert remote.model_config("layers").family == "fake_layers"


def test_search_over_an_embedded_corpus(pair, corpus_files):
    local, remote = pair
    plain, _ = corpus_files
    got = {}
    for name, be in (("local", local), ("remote", remote)):
        ec = be.open_corpus(plain, "enc")
        assert isinstance(ec, EmbeddedCorpus) and len(ec) == len(CORPUS) and ec.valid.sum() == len(CORPUS) - 3
        assert be.open_corpus(plain, "enc") is ec  # kept open: every session shares one copy
        assert be.has_index("enc", ec)  # 36 vectors: exact search, nothing to build
        idx = be.build_index("enc", ec)
        assert idx.info.kind == "exact" and idx.info.n == len(CORPUS) - 3 and idx.info.dim == 8
        got[name] = be.search("enc", ["the cat sat on the mat", "", "deep sea"], ec, k=4)
    nl, nr = got["local"], got["remote"]
    np.testing.assert_array_equal(nr.indices, nl.indices)
    np.testing.assert_allclose(nr.scores, nl.scores, rtol=0, atol=1e-7, equal_nan=True)
    assert nr.warnings == nl.warnings and nr.search.describe() == nl.search.describe()
    assert nl.scores[0, 0] == pytest.approx(1.0, abs=1e-6) and CORPUS[nl.indices[0, 0]] == "the cat sat on the mat"
    assert (nl.indices[1] == -1).all() and np.isnan(nl.scores[1]).all()  # an empty query has no neighbours
    assert not np.isin(nl.indices, [2, 14, 26]).any()  # nor are empty corpus rows ever returned
    # Plain texts take the exact path and say so, on both.
    tl, tr = (b.search("enc", ["cat"], CORPUS, k=3) for b in (local, remote))
    np.testing.assert_array_equal(tr.indices, tl.indices)
    assert tr.search.kind == tl.search.kind == "exact" and tr.search.dim == tl.search.dim == 8
    assert tr.search.engine == tl.search.engine == "numpy"


def test_a_corpus_of_another_configuration_is_refused_alike(pair, corpus_files):
    local, remote = pair
    plain, scaled = corpus_files
    messages = []
    for be in (local, remote):
        with pytest.raises(CorpusMismatch, match=r"scale 2\.0; the selected model has scale 1\.0") as e:
            be.open_corpus(scaled, "enc")
        messages.append(str(e.value))
        ec = be.open_corpus(plain, "enc")
        with pytest.raises(CorpusMismatch, match=r"the selected model has scale 3\.0"):
            be.search("enc", ["cat"], ec, options={"scale": 3.0})
        with pytest.raises(CorpusMismatch, match="embedded with enc, not layers"):
            be.project_detailed("layers", ec, method="pca")
    assert messages[0] == messages[1]
    assert remote.open_corpus(scaled, "enc", {"scale": 2.0}).config_id == local.model_config("enc", {"scale": 2}).config_id


def _empty_rows(texts) -> np.ndarray:
    return np.array([not clean_text(t) for t in texts])


@pytest.mark.parametrize("n", [10, len(CORPUS)], ids=["on-the-server", "over-max-texts"])
def test_project_detailed_of_texts(pair, n):
    local, remote = pair
    texts = CORPUS[:n]
    pl, pr = (b.project_detailed("enc", texts, method="pca", seed=3) for b in (local, remote))
    np.testing.assert_allclose(pr.coords, pl.coords, rtol=0, atol=1e-5, equal_nan=True)
    empty = int(_empty_rows(texts).sum())
    assert empty == (1 if n == 10 else 3)
    assert (pr.info.method, pr.info.n, pr.info.fitted_on, pr.info.without_vector) == \
        (pl.info.method, pl.info.n, pl.info.fitted_on, pl.info.without_vector) == ("pca", n - empty, n - empty, empty)
    assert np.isnan(pr.coords[_empty_rows(texts)]).all() and np.isfinite(pr.coords[~_empty_rows(texts)]).all()
    assert remote.project_detailed("enc", texts, method="pca", seed=3).info.cached
    np.testing.assert_allclose(remote.project("enc", texts, method="pca", seed=3), pl.coords, atol=1e-5, equal_nan=True)


def test_project_detailed_and_clusters_of_an_embedded_corpus(pair, corpus_files):
    local, remote = pair
    plain, _ = corpus_files
    el, er = local.open_corpus(plain, "enc"), remote.open_corpus(plain, "enc")
    pl, pr = local.project_detailed("enc", el, method="pca", seed=1), remote.project_detailed("enc", er, method="pca", seed=1)
    np.testing.assert_allclose(pr.coords, pl.coords, rtol=0, atol=1e-6, equal_nan=True)
    assert pr.info.n == pl.info.n == len(CORPUS) - 3 and pr.info.without_vector == 3
    assert pr.info.describe() == pl.info.describe() == f"PCA of {len(CORPUS) - 3} points (seed 1)"
    again = remote.project_detailed("enc", er, method="pca", seed=1)
    assert again.info.cached and "(cached)" in again.info.describe()
    sample = er.sample(20, seed=5)
    np.testing.assert_allclose(remote.project_detailed("enc", sample, method="pca").coords,
                               local.project_detailed("enc", el.sample(20, seed=5), method="pca").coords, atol=1e-6,
                               equal_nan=True)
    cl, cr = local.clusters("enc", el, 4, seed=2), remote.clusters("enc", er, 4, seed=2)
    np.testing.assert_array_equal(cr, cl)
    assert set(cl[~el.valid]) == {-1} and set(cl[el.valid]) == {0, 1, 2, 3}
    # Identical texts share a vector, so they share a cluster.
    assert cl[0] == cl[12] == cl[24]
    np.testing.assert_array_equal(remote.clusters("enc", CORPUS, 4, seed=2), local.clusters("enc", CORPUS, 4, seed=2))


def test_the_alignment_is_served(pair):
    local, remote = pair
    al, ar = local.align("aligner", "the cat sat", "a cat sat down"), remote.align("aligner", "the cat sat", "a cat sat down")
    assert ar.keys() == al.keys() == {"tokens_a", "tokens_b", "matrix", "score", "warnings"}
    assert ar["tokens_a"] == al["tokens_a"] == ["the", "cat", "sat"]
    assert ar["tokens_b"] == al["tokens_b"] == ["a", "cat", "sat", "down"]
    assert ar["matrix"].dtype == np.float32 and ar["matrix"].shape == (3, 4)
    np.testing.assert_array_equal(ar["matrix"], al["matrix"])
    np.testing.assert_allclose(ar["matrix"].sum(axis=1), 1.0, atol=1e-6)
    assert ar["matrix"][1, 1] == 1.0 and ar["matrix"][0].tolist() == [0.25] * 4
    assert ar["score"] == pytest.approx(al["score"]) == pytest.approx(2 / 5)
    empty = remote.align("aligner", "", "a cat")
    assert empty["matrix"].shape == (0, 2) and empty["warnings"] == local.align("aligner", "", "a cat")["warnings"]
    assert local.align("enc", "a", "b") is None and remote.align("enc", "a", "b") is None  # an encoder has none
    assert local.align("pair", "a", "b") is None and remote.align("pair", "a", "b") is None


def _pairs(n: int = 10) -> LabelledPairs:
    a = [CORPUS[i] or "the void" for i in range(n)]
    b = [CORPUS[(i * 5 + 1) % 12] or "x" for i in range(n)]
    labels = np.array([round(5 * overlap(x, y) + 0.3 * (i % 3), 2) for i, (x, y) in enumerate(zip(a, b, strict=True))])
    labels[3] = np.nan  # no label: left out
    return LabelledPairs(a, b, labels, "graded", (0.0, 5.0))


def test_the_layer_probe_runs_on_the_server(pair):
    local, remote = pair
    data = _pairs()
    seen = []
    rl = local.probe("layers", data)
    rr = remote.probe("layers", data, progress=lambda d, n: seen.append((d, n)))
    assert rr.model == rl.model == "layers" and rr.poolings == rl.poolings == ("mean", "cls", "max")
    assert rr.spearman.shape == rl.spearman.shape == (3, 3)
    np.testing.assert_allclose(rr.spearman, rl.spearman, rtol=0, atol=1e-9, equal_nan=True)
    assert rr.first_last_avg == pytest.approx(rl.first_last_avg)
    assert (rr.n, rr.skipped, rr.whitened, rr.notes) == (rl.n, rl.skipped, rl.whitened, rl.notes) == (9, 1, False, [])
    # Layer 0 is the plain vector space: its Spearman is that of enc's cosines against the labels.
    ok = np.isfinite(data.labels)
    cos = local.score_pairs("enc", np.array(data.a)[ok].tolist(), np.array(data.b)[ok].tolist()).scores
    assert rr.spearman[0, 0] == pytest.approx(stats.spearmanr(cos, data.labels[ok]).statistic * 100, abs=1e-6)
    assert seen and seen[-1][0] == seen[-1][1] > 0
    wl, wr = local.probe("layers", data, whiten=True, whiten_dim=4), remote.probe("layers", data, whiten=True, whiten_dim=4)
    np.testing.assert_allclose(wr.spearman, wl.spearman, atol=1e-9, equal_nan=True)
    assert wr.whitened and wr.notes == wl.notes and "fitted on the" in wr.notes[0]


def test_probe_refusals_are_the_same(pair):
    local, remote = pair
    for be in (local, remote):
        with pytest.raises(ValueError, match="needs a BERT-family model"):
            be.probe("enc", _pairs())
        with pytest.raises(ValueError, match="at least 2 pairs"):
            be.probe("layers", LabelledPairs(["a", ""], ["b", "c"], np.array([1.0, 2.0]), "graded", (0.0, 5.0)))
    big = LabelledPairs(["a b"] * 13, ["b c"] * 13, np.arange(13.0), "graded", (0.0, 13.0))
    with pytest.raises(ValueError, match="probe a sample of at most 12 pairs"):
        remote.probe("layers", big)


def test_speed_and_cache_info(pair):
    local, remote = pair
    for be in (local, remote):
        speed = be.measure_speed("enc", n=8)
        assert speed.latency_ms > 0 and speed.per_second > 0
    info_l, info_r = local.cache_info(), remote.cache_info()
    assert info_r.keys() == info_l.keys() and info_r["vector_misses"] > 0 and info_r["persistent"] is None


# --------------------------------------------------------------------------------- the same refusals
def test_the_same_exceptions(be):
    with pytest.raises(KeyError):
        be.model_config("nope")
    with pytest.raises(OptionError, match="scale"):
        be.model_config("enc", {"scale": 99})
    with pytest.raises(KeyError):
        be.align("nope", "a", "b")
    with pytest.raises(ModelLoadError, match="not found"):
        be.align("broken", "a", "b")
    with pytest.raises(RoleError, match="scores pairs only"):
        be.search("pair", ["q"], ["a", "b"])
    with pytest.raises(ValueError, match="k must be at least 1"):
        be.search("enc", ["q"], ["a", "b"], k=0)
    cfg = be.model_config("enc")
    tiny = EmbeddedCorpus(["a", "", "", ""], np.eye(4, 8, dtype=np.float32), np.array([True, False, False, False]),
                          "enc", cfg.config_id, cfg.as_dict(), corpus_id="tiny")
    with pytest.raises(ValueError, match="at least 3 texts with a vector; enc has 1 of 4"):
        be.project_detailed("enc", tiny, method="pca")


# ------------------------------------------------------------------------------------------ session models
@pytest.fixture(scope="module")
def trained_w2v():
    """A tiny word2vec, trained once as the Evaluation lab trains one (seeded, one thread: reproducible)."""
    from backend.w2v.config import Word2VecConfig
    from backend.w2v.train import train_word2vec

    return train_word2vec([t for t in CORPUS if t] * 3, Word2VecConfig(vector_size=16, min_count=1, epochs=3, seed=7))


@pytest.fixture()
def session_keys(pair, trained_w2v, tmp_path):
    """The same trained vectors registered with each backend as the lab's "Add to the comparison" does; their keys
    (each registration gets a new one)."""
    from backend.w2v.train import register_session_model

    keys = {}
    for name, be in zip(("local", "remote"), pair, strict=True):
        keys[name] = register_session_model(be, trained_w2v, weighting="mean", session="s1",
                                            folder=tmp_path / name).key
    yield keys
    for be in pair:
        be.remove_owner("s1")


def test_a_session_model_beside_the_servers_gives_the_same_numbers(pair, session_keys):
    local, remote = pair
    seen = []
    got = {}
    for name, be in zip(("local", "remote"), pair, strict=True):
        keys = ["enc", ModelRequest("mine", session_keys[name]), "pair", ModelRequest("enc x3", "enc", {"scale": 3.0})]
        prog = (lambda d, t: seen.append((d, t))) if name == "remote" else None
        got[name] = be.similarity(A, B, keys, progress=prog)
        assert list(got[name]) == ["enc", "mine", "pair", "enc x3"]  # the caller's order, not the sides'
    for k in ("enc", "mine", "pair", "enc x3"):
        wl, wr = got["local"][k], got["remote"][k]
        assert wl.error is None and wr.error is None, (k, wl.error, wr.error)
        np.testing.assert_array_equal(wr.scores, wl.scores)
        assert wr.warnings == wl.warnings
    mine = got["remote"]["mine"]
    assert mine.key == session_keys["remote"] and mine.used == [session_keys["remote"]] * len(A)
    assert mine.scores[A.index("the cat sat")] == pytest.approx(1.0, abs=1e-6)  # "the cat sat" against itself
    assert np.isnan(mine.scores[2]) and np.isfinite(mine.scores[[0, 1, 3, 4, 6]]).all()
    # Progress over both sides, in pair-model units: the server's three models first, then the session model.
    total = 4 * len(A)
    assert seen[-1] == (total, total) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert all(t == total for _, t in seen)
    # score_pairs and rerank go where the model is
    sp = remote.score_pairs(session_keys["remote"], A, B)
    np.testing.assert_array_equal(sp.scores, local.score_pairs(session_keys["local"], A, B).scores)


def test_a_session_model_embeds_and_searches_alike(pair, session_keys):
    local, remote = pair
    kl, kr = session_keys["local"], session_keys["remote"]
    el, er = local.embed(kl, CORPUS), remote.embed(kr, CORPUS)
    assert er.vectors.shape == (len(CORPUS), 16)
    np.testing.assert_array_equal(er.vectors, el.vectors)
    assert er.valid.tolist() == el.valid.tolist() and not er.valid[2]
    assert remote.roles(kr) == local.roles(kl) == frozenset({"encoder"})
    assert kr in remote.keys_with_role("encoder") and kr not in remote.keys_with_role("pair_scorer")
    assert kr in remote.keys_with_role("encoder", ["pair", kr, "enc"])
    assert remote.option_specs(kr) == local.option_specs(kl)
    assert remote.check_request(kr, {"weighting": "sif"}) == {"weighting": "sif"}
    assert remote.model_config(kr).family == "w2v" and remote.variant_for(kr, "zh") == kr
    assert remote.info(kr)["dim"] == 16 and kr in remote.loaded() and remote.model_states()[kr] == "loaded"
    nl, nr = local.neighbours(kl, ["cat", "sea"], CORPUS, k=5), remote.neighbours(kr, ["cat", "sea"], CORPUS, k=5)
    np.testing.assert_array_equal(nr.indices, nl.indices)
    np.testing.assert_array_equal(nr.scores, nl.scores)
    sl, sr = (be.search(k, ["the cat sat on the mat", "deep sea"], CORPUS, k=3) for be, k in ((local, kl), (remote, kr)))
    np.testing.assert_array_equal(sr.indices, sl.indices)
    assert sr.search.kind == "exact" and CORPUS[sr.indices[0, 0]] == "the cat sat on the mat"
    pl, pr = (be.project_detailed(k, CORPUS, method="pca", seed=3) for be, k in ((local, kl), (remote, kr)))
    np.testing.assert_allclose(pr.coords, pl.coords, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(remote.clusters(kr, CORPUS, 3, seed=1), local.clusters(kl, CORPUS, 3, seed=1))
    assert remote.space_for(kr, CORPUS) == (kr, None) and remote.align(kr, "a", "b") is None


def test_a_session_model_goes_with_its_session(pair, session_keys, tmp_path):
    remote = pair[1]
    for name, be in zip(("local", "remote"), pair, strict=True):
        key = session_keys[name]
        assert (tmp_path / name / "vectors.txt").exists()
        assert be.remove_owner("s2") == [] and key in be.registry  # another session's end leaves it
        assert be.remove_owner("s1") == [key]
        assert key not in be.registry and key not in be.model_states() and not (tmp_path / name).exists()
        with pytest.raises(KeyError):
            be.embed(key, ["the cat"])
    # the server's models are untouched
    assert remote.similarity(["the cat"], ["a cat"], ["enc"])["enc"].error is None


# ------------------------------------------------------------------------------------------ real models
@pytest.mark.slow
def test_real_esim_alignment_and_bert_probe_through_the_server(backend):
    """The real tiny defaults through HTTP: ESIM's heatmap and the BERT probe equal the in-process ones."""
    with live_server(create_app(backend, ServerSettings())) as url, RemoteBackend(url) as remote:
        a, b = "An old fisherman is mending his net.", "Someone repairs a fishing net."
        al, ar = backend.align("esim", a, b), remote.align("esim", a, b)
        assert ar["tokens_a"] == al["tokens_a"] and ar["matrix"].shape == al["matrix"].shape
        np.testing.assert_allclose(ar["matrix"], al["matrix"], atol=1e-6)
        np.testing.assert_allclose(ar["matrix"].sum(axis=1), 1.0, atol=1e-4)
        assert ar["score"] == pytest.approx(al["score"], abs=1e-6) and 0 <= ar["score"] <= 1
        data = LabelledPairs(
            ["An old fisherman mends a net.", "A cat sleeps on the sofa.", "Two dogs run in a field.",
             "A woman cooks pasta.", "The train is late.", "Kids play football."],
            ["Someone repairs a fishing net.", "A dog barks at the door.", "Dogs are running on grass.",
             "A person is cooking noodles.", "Stocks fell today.", "Children are playing soccer."],
            np.array([4.8, 0.6, 4.2, 3.9, 0.1, 4.5]), "graded", (0.0, 5.0))
        pl, pr = backend.probe("bert", data), remote.probe("bert", data)
        assert pr.spearman.shape == pl.spearman.shape == (7, 3)  # MiniLM: embeddings + 6 layers
        np.testing.assert_allclose(pr.spearman, pl.spearman, atol=1e-9, equal_nan=True)
        assert np.nanmax(pr.spearman) > 50  # a sentence-similarity backbone ranks these pairs well
        assert remote.model_config("sbert") == backend.model_config("sbert")
