"""RemoteBackend against a live local server (uvicorn on a free loopback port) over fake models: every method
returns what the local Backend returns, with the same types and exceptions."""

from __future__ import annotations

import numpy as np
import pytest

from backend.base import Encoding
from backend.options import OptionError
from backend.registry import ModelRequest
from backend.results import ModelLoadError, ModelResult, Neighbours, RoleError
from backend.server.app import ServerSettings, create_app
from backend.serving.client import RemoteBackend, RemoteRegistry
from tests.fakes import fake_backend
from tests.fakes import word_overlap as overlap
from tests.fakes import word_vec as vec
from tests.server.live import live_server


@pytest.fixture(scope="module")
def pair():
    """(local backend, remote client) over the same fake models; the server has a small max_texts so that
    chunking is exercised."""
    local = fake_backend({"enc": vec}, {"pair": overlap, "pair-zh": lambda a, b: 0.5}, broken=("broken",),
                         languages={"pair-zh": "zh"}, variants={"pair": {"zh": "pair-zh"}})
    served = fake_backend({"enc": vec}, {"pair": overlap, "pair-zh": lambda a, b: 0.5}, broken=("broken",),
                          languages={"pair-zh": "zh"}, variants={"pair": {"zh": "pair-zh"}})
    app = create_app(served, ServerSettings(max_texts=6, api_key="t0ken"))
    with live_server(app) as url, RemoteBackend(url, api_key="t0ken") as remote:
        yield local, remote


A = ["the cat sat", "a dog ran", "", "the cat", "一个女孩在跳舞。", "fish swim", "birds fly high", "the cat sat"]
B = ["the cat sat down", "dogs run", "x", "a cat", "女孩正在跳舞", "fish", "", "cat sat"]


def test_similarity_matches_the_local_backend_in_chunks(pair):
    local, remote = pair
    seen: list[tuple[int, int]] = []
    keys = ["enc", "pair", ModelRequest("enc x2", "enc", {"scale": 2.0}), "broken"]
    got = remote.similarity(A, B, keys, progress=lambda d, t: seen.append((d, t)))
    want = local.similarity(A, B, keys)
    assert set(got) == set(want) == {"enc", "pair", "enc x2", "broken"}
    for k in ("enc", "pair", "enc x2"):
        assert isinstance(got[k], ModelResult) and got[k].error is None
        np.testing.assert_allclose(got[k].scores, want[k].scores, rtol=0, atol=1e-7, equal_nan=True)
        assert got[k].warnings == want[k].warnings and got[k].used == want[k].used
    assert got["pair"].used[4] == "pair-zh"  # language routing happened on the server
    assert got["broken"].scores is None and "not found" in got["broken"].error
    assert [r.as_json(2) for r in got.values()] == [r.as_json(2) for r in want.values()]
    # max_texts=6 -> 3 pairs per request: progress after each of 3 chunks, in pair-model units.
    assert seen == [(12, 32), (24, 32), (32, 32)]


def test_should_stop_between_chunks(pair):
    from backend.jobs import StopRequested

    _, remote = pair
    calls = [0]

    def stop() -> bool:
        calls[0] += 1
        return calls[0] > 1

    with pytest.raises(StopRequested):
        remote.similarity(A, B, ["enc"], should_stop=stop)


def test_score_pairs_and_rerank(pair):
    local, remote = pair
    r = remote.score_pairs("pair", A, B)
    np.testing.assert_allclose(r.scores, local.score_pairs("pair", A, B).scores, equal_nan=True)
    rr = remote.rerank("pair", "the cat", ["a cat", "dogs", "the cat"])
    assert rr.key == "pair" and rr.scores.tolist() == pytest.approx([1 / 3, 0.0, 1.0])
    with pytest.raises(ValueError, match="route_language"):
        remote.score_pairs("pair", A, B, route_language=False)


def test_embed_round_trips_in_chunks_with_progress(pair):
    local, remote = pair
    texts = [f"text number {i}" for i in range(14)] + [""]
    seen: list[tuple[int, int]] = []
    got = remote.embed("enc", texts, progress=lambda d, t: seen.append((d, t)))
    want = local.embed("enc", texts)
    assert isinstance(got, Encoding) and got.vectors.dtype == np.float32
    np.testing.assert_array_equal(got.vectors, want.vectors)
    assert got.valid.tolist() == want.valid.tolist() and got.warnings == want.warnings
    assert seen == [(6, 15), (12, 15), (15, 15)]
    scaled = remote.embed("enc", ["a b"], options={"scale": 3})
    np.testing.assert_array_equal(scaled.vectors, local.embed("enc", ["a b"], options={"scale": 3}).vectors)


def test_neighbours_and_project(pair):
    local, remote = pair
    corpus = ["the cat sat", "dogs bark", "", "the cat ran", "fish swim", "cats sit", "a dog"]
    got = remote.neighbours("enc", ["cat sat", "dog"], corpus, k=4)
    want = local.neighbours("enc", ["cat sat", "dog"], corpus, k=4)
    assert isinstance(got, Neighbours)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_allclose(got.scores, want.scores, equal_nan=True)
    assert got.corpus_warnings == want.corpus_warnings
    xy = remote.project("enc", ["a b", "c d", "e f", "", "g h"], method="pca")
    assert xy.shape == (5, 2) and xy.dtype == np.float32 and np.isnan(xy[3]).all()
    np.testing.assert_allclose(xy, local.project("enc", ["a b", "c d", "e f", "", "g h"], method="pca"), atol=1e-5)


def test_roles_registry_options_info_and_state(pair):
    local, remote = pair
    assert remote.roles("enc") == local.roles("enc") and remote.roles("pair") == frozenset({"pair_scorer"})
    assert remote.keys_with_role("pair_scorer") == local.keys_with_role("pair_scorer")
    assert remote.keys_with_role("encoder", ["pair", "enc", "nope"]) == ["enc"]
    reg = remote.registry
    assert isinstance(reg, RemoteRegistry) and reg.keys() == local.registry.keys()
    assert reg["pair"].variants == {"zh": "pair-zh"} and reg.defaults() == local.registry.defaults()
    with pytest.raises(TypeError, match="read-only"):
        reg.add(reg["enc"])
    scale, script = remote.option_specs("enc")
    assert (scale, script) == tuple(local.option_specs("enc")) and script.name == "script"
    assert remote.check_request("enc", {"scale": "2"}) == {"scale": 2.0}
    assert remote.info("enc", scale=2.0)["options"] == {"scale": 2.0}
    assert remote.variant_for("pair", "zh") == "pair-zh" and remote.variant_for("enc", "zh") == "enc"
    assert remote.device == "cpu" and "enc" in remote.loaded()
    assert remote.model_states()["broken"] == "failed" and "broken" in remote.load_errors
    st = remote.status()
    assert st["ok"] and st["text"] == f"models run on {remote.url}, device cpu"


def test_errors_are_the_backends_exceptions(pair):
    _, remote = pair
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        remote.embed("nope", ["x"])
    with pytest.raises(KeyError):
        remote.roles("nope")
    with pytest.raises(OptionError, match="scale"):
        remote.check_request("enc", {"scale": 99})
    with pytest.raises(RoleError, match="scores pairs only"):
        remote.embed("pair", ["x"])
    with pytest.raises(RoleError):
        remote.neighbours("pair", ["x"], ["y"])
    with pytest.raises(ModelLoadError, match="not found"):
        remote.embed("broken", ["x"])
    with pytest.raises(ValueError, match="at least 3"):
        remote.project("enc", ["a", "", ""], method="pca")
    with pytest.raises(NotImplementedError, match="stay on the server"):
        remote.model("enc")


def test_unreachable_server_and_wrong_key(pair):
    from tests.server.live import free_port

    down = RemoteBackend(f"http://127.0.0.1:{free_port()}", timeout=2)
    st = down.status()
    assert not st["ok"] and "does not answer" in st["text"]
    with pytest.raises(ConnectionError, match="cannot reach"):
        down.loaded()
    from backend.serving.client import RemoteError

    with pytest.raises(RemoteError, match="401"):
        RemoteBackend(pair[1].url, api_key="wrong").roles("enc")


def test_backend_from_env(monkeypatch, pair):
    from backend.serving import Backend
    from backend.serving.client import backend_from_env

    monkeypatch.setenv("SIMDASH_BACKEND_URL", pair[1].url)
    monkeypatch.setenv("SIMDASH_API_KEY", "t0ken")
    remote = backend_from_env()
    assert isinstance(remote, RemoteBackend) and remote.roles("enc") == frozenset({"encoder"})
    monkeypatch.delenv("SIMDASH_BACKEND_URL")
    assert isinstance(backend_from_env(device="cpu", cache_dir="memory"), Backend)


def test_the_pages_extras_work_remotely(pair):
    """What the dashboard's pages call beyond the core: load, space_for, clusters, align, measure_speed."""
    local, remote = pair
    remote.load("enc")
    with pytest.raises(ModelLoadError):
        remote.load("broken")
    texts = ["the cat sat", "dogs bark", "the cat ran", "fish swim", "cats sit", "a dog"]
    assert remote.space_for("pair", ["一个女孩", "两个男孩"]) == local.space_for("pair", ["一个女孩", "两个男孩"])
    np.testing.assert_array_equal(remote.clusters("enc", texts, 2, seed=3), local.clusters("enc", texts, 2, seed=3))
    assert remote.align("pair", "a", "b") is None  # this fake scorer has no alignment (test_protocol: one that has)
    speed = remote.measure_speed("pair", n=8)
    assert speed.unit == "pairs" and speed.per_second > 0 and speed.latency_ms > 0


def test_session_models_run_here_beside_the_servers(pair, tmp_path):
    """A model trained in a dashboard session stays in the client's process: calls naming it are answered here, a
    mix with the server's models is split by where each lives and merged in the caller's order."""
    from backend.registry import ModelSpec
    from backend.serving.protocol import SESSION_MODELS
    from tests.fakes import TEXT_VECTORS

    local, remote = pair
    TEXT_VECTORS["mine"] = vec  # the same vectors as the server's enc
    assert SESSION_MODELS in remote.capabilities
    spec = ModelSpec("mine", "fake_encoder", "MINE", "path:mine", default=False, owner="s")
    assert remote.add_session_model(spec, tmp_path) == []
    try:
        seen: list[tuple[int, int]] = []
        got = remote.similarity(A, B, ["enc", "mine", "pair"], progress=lambda d, t: seen.append((d, t)))
        assert list(got) == ["enc", "mine", "pair"]
        np.testing.assert_array_equal(got["mine"].scores, got["enc"].scores)
        np.testing.assert_allclose(got["pair"].scores, local.similarity(A, B, ["pair"])["pair"].scores, equal_nan=True)
        assert got["mine"].used == ["mine"] * len(A) and "mine was trained on English only" in got["mine"].warnings[4][0]
        # the server's two models in 3 chunks of 3 pairs (max_texts=6), then the session model's 8 pairs here
        assert seen[:3] == [(6, 24), (12, 24), (16, 24)] and seen[-1] == (24, 24)
        reg = remote.registry
        assert isinstance(reg, RemoteRegistry) and reg["mine"].owner == "s" and reg.keys()[-1] == "mine"
        with pytest.raises(TypeError, match="read-only"):
            reg.add(spec)
        assert "mine" in remote.loaded() and "mine" not in remote.health()["loaded"]  # loaded here, not there
        assert remote.model("mine").key == "mine"  # a session model's object is in this process
        with pytest.raises(NotImplementedError, match="stay on the server"):
            remote.model("enc")
        np.testing.assert_array_equal(remote.embed("mine", ["a b"]).vectors, local.embed("enc", ["a b"]).vectors)
    finally:
        assert remote.remove_owner("s") == ["mine"]
    assert "mine" not in remote.registry and not tmp_path.exists()
    with pytest.raises(KeyError, match="unknown model 'mine'"):
        remote.embed("mine", ["x"])
