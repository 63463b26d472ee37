"""The HTTP API's contract, on a real Backend over fake models (fast): every route, every error code, the
OpenAI response shape, rerank ordering, metrics names, auth."""

from __future__ import annotations

import base64
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient

from backend.families import register_family
from backend.registry import ModelSpec
from backend.server.app import ServerSettings, count_tokens, create_app
from tests.fakes import FakeEncoder, fake_backend, word_overlap
from tests.fakes import word_vec as vec


def overlap(a: str, b: str) -> float:
    return float("nan") if a == "?" else word_overlap(a, b)


class Exploding(FakeEncoder):
    """Raises something unexpected mid-request (a bug, not bad input)."""

    def _encode(self, texts, batch_size, show_progress_bar, progress):
        raise RuntimeError("boom in the model")


register_family("fake_exploding", Exploding)

LIMITS = ServerSettings(max_texts=20, max_chars=300, max_body_bytes=20_000, load_wait_s=5)


def make_app(settings: ServerSettings = LIMITS):
    be = fake_backend({"enc": vec, "enc2": vec}, {"pair": overlap}, broken=("broken",))
    be.registry.add(ModelSpec("exploding", "fake_exploding", "x", "path:x", default=False))
    return be, create_app(be, settings)


@pytest.fixture
def api():
    be, app = make_app()
    with TestClient(app, raise_server_exceptions=False) as c:
        c.backend = be
        yield c


def err(r, status: int, type_: str, *words: str) -> dict:
    assert r.status_code == status, r.text
    e = r.json()["error"]
    assert e["type"] == type_ and e["code"] == status
    for w in words:
        assert w in e["message"], e["message"]
    assert "Traceback" not in r.text
    return e


# ------------------------------------------------------------------------------------------- service
def test_health_reports_device_states_and_limits(api):
    h = api.get("/health").json()
    assert h["status"] == "ok" and h["device"] == "cpu" and h["loaded"] == []
    assert h["limits"]["max_texts"] == 20
    api.post("/v1/embeddings", json={"input": "hello", "model": "enc"})
    api.post("/v1/embeddings", json={"input": "hello", "model": "broken"})
    h = api.get("/health").json()
    assert h["loaded"] == ["enc"] and "broken" in h["failed"] and "not found" in h["failed"]["broken"]


def test_models_lists_roles_languages_and_option_declarations(api):
    data = {m["id"]: m for m in api.get("/v1/models").json()["data"]}
    assert set(data) == {"enc", "enc2", "pair", "broken", "exploding"}
    assert data["enc"]["roles"] == ["encoder"] and data["pair"]["roles"] == ["pair_scorer"]
    assert data["enc"]["object"] == "model" and data["enc"]["language"] == "en"
    scale, script = data["enc"]["option_specs"]
    assert script["name"] == "script" and script["choices"] == ["as-is", "simplified", "traditional"]
    assert scale == {"name": "scale", "type": "float", "default": 1.0, "why": scale["why"], "choices": None,
                     "low": 0.0, "high": 10.0, "runtime": True, "label": "", "label_zh": "", "why_zh": ""}
    assert data["enc"]["state"] == "not loaded"
    assert api.get("/v1/models/pair").json()["id"] == "pair"
    err(api.get("/v1/models/nope"), 404, "unknown_model", "nope", "enc")


def test_info_and_check(api):
    assert api.get("/v1/info/enc").json()["key"] == "enc"
    assert api.get("/v1/info/enc:scale=2").json()["options"]["scale"] == 2.0
    assert api.post("/v1/check", json={"model": "enc:scale=2"}).json() == {"model": "enc", "options": {"scale": 2.0}}
    err(api.post("/v1/check", json={"model": "enc", "options": {"scale": 99}}), 422, "invalid_option", "scale",
        "0..10")
    err(api.post("/v1/check", json={"model": "enc", "options": {"layer": 1}}), 422, "invalid_option",
        "unknown option 'layer'")
    err(api.post("/v1/check", json={"model": "zzz"}), 404, "unknown_model")


# ---------------------------------------------------------------------------------------- embeddings
def test_embeddings_openai_shape_float_and_base64(api):
    texts = ["the cat sat", "a dog ran", "the cat"]
    r = api.post("/v1/embeddings", json={"input": texts, "model": "enc", "encoding_format": "float", "user": "u1"})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list" and body["model"] == "enc"
    assert body["usage"] == {"prompt_tokens": 8, "total_tokens": 8}
    assert [d["index"] for d in body["data"]] == [0, 1, 2] and all(d["object"] == "embedding" for d in body["data"])
    want = api.backend.embed("enc", texts).vectors
    got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-6)
    b64 = api.post("/v1/embeddings", json={"input": texts, "model": "enc", "encoding_format": "base64"}).json()
    dec = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in b64["data"]])
    np.testing.assert_array_equal(dec, want)
    one = api.post("/v1/embeddings", json={"input": "the cat sat", "model": "enc"}).json()
    assert len(one["data"]) == 1 and one["data"][0]["embedding"] == body["data"][0]["embedding"]


def test_embeddings_dimensions_options_and_extension_fields(api):
    ok = api.post("/v1/embeddings", json={"input": ["x"], "model": "enc", "dimensions": 8})
    assert ok.status_code == 200
    err(api.post("/v1/embeddings", json={"input": ["x"], "model": "enc", "dimensions": 4}), 422, "invalid_request",
        "dimensions=4", "8-dimensional")
    r = api.post("/v1/embeddings", json={"input": ["x y"], "model": "enc:scale=3"}).json()
    assert r["model"] == "enc:scale=3" and r["data"][0]["valid"] is True and r["data"][0]["warnings"] == []


@pytest.mark.parametrize(("body", "status", "type_", "words"), [
    ({"input": [], "model": "enc"}, 422, "invalid_request", ["empty list"]),
    ({"input": [1, 2, 3], "model": "enc"}, 422, "invalid_request", ["token ids"]),
    ({"input": [[1, 2]], "model": "enc"}, 422, "invalid_request", ["token ids"]),
    ({"input": ["ok", "   "], "model": "enc"}, 422, "invalid_request", ["input[1] is empty"]),
    ({"input": 5, "model": "enc"}, 422, "invalid_request", ["input"]),
    ({"input": "x"}, 422, "invalid_request", ["model: required field is missing"]),
    ({"input": "x", "model": "enc", "colour": "red"}, 422, "invalid_request", ["colour", "unknown field"]),
    ({"input": "x", "model": "enc", "encoding_format": "int8"}, 422, "invalid_request", ["encoding_format"]),
    ({"input": "x", "model": "nope"}, 404, "unknown_model", ["nope", "registered: enc"]),
    ({"input": "x", "model": "enc:scale=99"}, 422, "invalid_option", ["scale", "0..10"]),
    ({"input": "x", "model": "enc:scale"}, 422, "invalid_option", ["key:option=value"]),
    ({"input": "x", "model": "enc", "options": {"scale": "big"}}, 422, "invalid_option", ["must be float"]),
    ({"input": "x", "model": "pair"}, 422, "wrong_role", ["scores pairs only"]),
    ({"input": ["x"] * 21, "model": "enc"}, 413, "too_large", ["21 texts", "limit is 20"]),
    ({"input": ["x" * 301], "model": "enc"}, 413, "too_large", ["input[0] has 301 characters"]),
    ({"input": "x", "model": "broken"}, 503, "model_unavailable", ["broken could not be loaded", "not found"]),
])
def test_embeddings_errors_are_json_a_person_understands(api, body, status, type_, words):
    err(api.post("/v1/embeddings", json=body), status, type_, *words)


def test_malformed_json_huge_body_and_unknown_route(api):
    r = api.post("/v1/embeddings", content=b'{"input": ["a", }', headers={"content-type": "application/json"})
    err(r, 422, "invalid_request", "not valid JSON")
    big = b'{"input": ["' + b"a" * 30_000 + b'"], "model": "enc"}'
    err(api.post("/v1/embeddings", content=big, headers={"content-type": "application/json"}), 413, "too_large",
        "limit is 20,000")
    err(api.get("/v1/nothing"), 404, "not_found", "/v1/nothing")


def test_an_unexpected_failure_is_a_500_without_a_stack_trace(api):
    r = api.post("/v1/embeddings", json={"input": "x", "model": "exploding"})
    e = err(r, 500, "server_error", "RuntimeError", "boom in the model")
    assert "File " not in e["message"]


# ---------------------------------------------------------------------------------------- similarity
def test_similarity_follows_the_cli_json_contract(api):
    r = api.post("/v1/similarity", json={"pairs": [["the cat sat", "the cat sat"], ["a b", ""], ["?", "x"]],
                                         "models": ["enc", "pair", "broken"]})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert len(res) == 3 and set(res[0]) == {"enc", "pair", "broken"}
    assert res[0]["enc"] == {"score": 1.0, "warnings": [], "model": "enc"}
    assert res[0]["pair"]["score"] == 1.0 and res[0]["pair"]["model"] == "pair"
    assert res[1]["enc"]["score"] is None and "B: empty text: no score" in res[1]["enc"]["warnings"]
    assert res[2]["pair"]["score"] is None and res[2]["pair"]["warnings"] == [
        "A: no words found (only punctuation, emoji or symbols): no score"]
    # A model that cannot load answers with its error, and the others still answer (as in the CLI).
    assert res[0]["broken"]["score"] is None and res[0]["broken"]["warnings"][0].startswith("error: ")
    cols = r.json()["models"]
    assert cols["broken"]["error"] and cols["enc"]["error"] is None and cols["enc"]["scores"][1] is None


def test_similarity_default_models_options_and_errors(api):
    r = api.post("/v1/similarity", json={"pairs": [["a b", "a c"]]}).json()
    assert set(r["results"][0]) == {"enc", "enc2", "pair", "broken"}  # the registry's defaults
    r = api.post("/v1/similarity", json={"pairs": [["a b", "a c"]], "models": ["enc:scale=2", "enc"],
                                         "options": {"enc": {"scale": 3}}}).json()
    assert set(r["results"][0]) == {"enc:scale=2", "enc"}
    err(api.post("/v1/similarity", json={"pairs": [["a"]]}), 422, "invalid_request", "pairs.0")
    err(api.post("/v1/similarity", json={"pairs": []}), 422, "invalid_request", "pairs")
    err(api.post("/v1/similarity", json={"pairs": [["a", "b"]], "models": ["nope"]}), 404, "unknown_model")
    err(api.post("/v1/similarity", json={"pairs": [["a", "b"]], "models": []}), 422, "invalid_request", "models")
    err(api.post("/v1/similarity", json={"pairs": [["a", "b"]], "models": ["enc:scale=-1"]}), 422, "invalid_option")
    err(api.post("/v1/similarity", json={"pairs": [["a", "b"]] * 11}), 413, "too_large", "22 texts")


# -------------------------------------------------------------------------------------------- rerank
def test_rerank_orders_by_score_with_top_n_and_documents(api):
    docs = ["dogs bark loudly", "reset your password now", "", "password reset help", {"text": "my password"}]
    r = api.post("/v1/rerank", json={"model": "pair", "query": "password reset", "documents": docs, "top_n": 4,
                                     "return_documents": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scored_by"] == "pair_scorer"
    idx = [x["index"] for x in body["results"]]
    assert idx == [3, 1, 4, 0]  # overlap 1.0, 0.5, 0.33, 0.0; the empty document would come last
    scores = [x["relevance_score"] for x in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert body["results"][0]["document"] == {"text": "password reset help"}
    full = api.post("/v1/rerank", json={"model": "pair", "query": "password reset", "documents": docs}).json()
    assert full["results"][-1]["index"] == 2 and full["results"][-1]["relevance_score"] is None
    assert full["results"][-1]["document"] is None


def test_rerank_with_an_encoder_uses_cosine(api):
    r = api.post("/v1/rerank", json={"model": "enc", "query": "the cat", "documents": ["a dog", "the cat"]}).json()
    assert r["scored_by"] == "encoder_cosine" and r["results"][0]["index"] == 1
    assert r["results"][0]["relevance_score"] == pytest.approx(1.0)
    err(api.post("/v1/rerank", json={"model": "enc", "query": "q", "documents": []}), 422, "invalid_request")
    err(api.post("/v1/rerank", json={"model": "enc", "query": "q", "documents": ["a"], "top_n": 0}), 422,
        "invalid_request", "top_n")


# -------------------------------------------------------------------------------- neighbours, project
def test_neighbours_match_the_backend(api):
    corpus = ["the cat sat", "dogs bark", "", "the cat ran", "fish swim"]
    r = api.post("/v1/neighbours", json={"model": "enc", "queries": ["cat sat", ""], "corpus": corpus, "k": 6})
    assert r.status_code == 200, r.text
    body = r.json()
    want = api.backend.neighbours("enc", ["cat sat", ""], corpus, k=6)
    assert body["indices"] == want.indices.tolist()
    assert body["indices"][0][0] == 0 and 2 not in body["indices"][0] and body["indices"][0][-1] == -1
    assert body["scores"][0][-1] is None and body["indices"][1] == [-1] * 6
    assert body["corpus_warnings"][2] == ["empty text: no vector"]
    err(api.post("/v1/neighbours", json={"model": "pair", "queries": ["a"], "corpus": ["b"]}), 422, "wrong_role")
    err(api.post("/v1/neighbours", json={"model": "enc", "queries": ["a"], "corpus": ["b"], "k": 0}), 422,
        "invalid_request", "k")


def test_project_pca_and_too_few_texts(api):
    texts = ["a b", "c d", "e f g", "", "h"]
    r = api.post("/v1/project", json={"model": "enc", "texts": texts, "method": "pca"})
    assert r.status_code == 200, r.text
    coords = r.json()["coords"]
    assert len(coords) == 5 and coords[3] == [None, None] and all(c is not None for c in coords[0])
    err(api.post("/v1/project", json={"model": "enc", "texts": ["a", "", " "], "method": "pca"}), 422,
        "invalid_request", "at least 3 texts")
    err(api.post("/v1/project", json={"model": "enc", "texts": ["a", "b", "c"], "method": "tsne"}), 422,
        "invalid_request", "method")


def test_embed_native_route_round_trips_vectors_validity_and_warnings(api):
    r = api.post("/v1/embed", json={"model": "enc", "texts": ["the cat", "", "dogs"]}).json()
    v = np.frombuffer(base64.b64decode(r["vectors"]), dtype="<f4").reshape(3, r["dim"])
    want = api.backend.embed("enc", ["the cat", "", "dogs"])
    np.testing.assert_array_equal(v, want.vectors)
    assert r["valid"] == [True, False, True] and r["warnings"][1] == ["empty text: no vector"]


def test_project_says_what_it_did(api):
    texts = ["a b", "c d", "e f g", "", "h", "i j"]
    r = api.post("/v1/project", json={"model": "enc", "texts": texts, "method": "pca", "seed": 7})
    assert r.status_code == 200, r.text
    assert r.json()["info"] | {"seconds": 0} == {"method": "pca", "n": 5, "fitted_on": 5, "seed": 7, "seconds": 0,
                                                  "cached": False, "without_vector": 1, "note": ""}
    again = api.post("/v1/project", json={"model": "enc", "texts": texts, "method": "pca", "seed": 7}).json()
    assert again["info"]["cached"] and again["coords"] == r.json()["coords"]
    err(api.post("/v1/project", json={"model": "enc", "texts": texts, "fit_limit": 1}), 422, "invalid_request",
        "fit_limit")


# ------------------------------------------------------------------------ config, align, probe, cache
@pytest.fixture
def lab_api():
    """The app over the conformance suite's fakes: an aligning pair scorer and a layered encoder too."""
    from tests.serving.test_protocol import make_backend

    be = make_backend()
    with TestClient(create_app(be, LIMITS), raise_server_exceptions=False) as c:
        c.backend = be
        yield c


def test_config_is_the_backends_and_loads_nothing(lab_api):
    r = lab_api.post("/v1/config", json={"model": "enc"})
    assert r.status_code == 200, r.text
    assert r.json() == lab_api.backend.model_config("enc").as_dict() and r.json()["options"] == {"scale": 1.0}
    scaled = lab_api.post("/v1/config", json={"model": "enc:scale=2"}).json()
    assert scaled["options"] == {"scale": 2.0} and scaled["config_id"] != r.json()["config_id"]
    assert lab_api.post("/v1/config", json={"model": "enc", "options": {"scale": 2}}).json() == scaled
    assert lab_api.get("/health").json()["loaded"] == []  # an id without weights: nothing was loaded
    err(lab_api.post("/v1/config", json={"model": "nope"}), 404, "unknown_model", "nope")
    err(lab_api.post("/v1/config", json={"model": "enc:scale=99"}), 422, "invalid_option", "0..10")
    err(lab_api.post("/v1/config", json={"model": "enc:scale"}), 422, "invalid_option", "key:option=value")
    err(lab_api.post("/v1/config", json={"model": "enc", "colour": 1}), 422, "invalid_request", "unknown field")


def test_align_returns_the_heatmap_or_null(lab_api):
    r = lab_api.post("/v1/align", json={"model": "aligner", "a": "the cat sat", "b": "a cat"})
    assert r.status_code == 200, r.text
    al = r.json()["alignment"]
    assert al["tokens_a"] == ["the", "cat", "sat"] and al["tokens_b"] == ["a", "cat"]
    assert al["matrix"] == [[0.5, 0.5], [0.0, 1.0], [0.5, 0.5]] and al["score"] == pytest.approx(0.25)
    assert lab_api.post("/v1/align", json={"model": "enc", "a": "x", "b": "y"}).json() == {"model": "enc",
                                                                                          "alignment": None}
    empty = lab_api.post("/v1/align", json={"model": "aligner", "a": "", "b": "y"}).json()["alignment"]
    assert empty["matrix"] == [] and empty["warnings"] == ["empty text: no score"]
    err(lab_api.post("/v1/align", json={"model": "nope", "a": "x", "b": "y"}), 404, "unknown_model")
    err(lab_api.post("/v1/align", json={"model": "broken", "a": "x", "b": "y"}), 503, "model_unavailable",
        "not found")
    err(lab_api.post("/v1/align", json={"model": "enc:scale=2", "a": "x", "b": "y"}), 422, "invalid_option",
        "takes no options")
    err(lab_api.post("/v1/align", json={"model": "aligner", "a": "x" * 301, "b": "y"}), 413, "too_large", "301")
    err(lab_api.post("/v1/align", json={"model": "aligner", "a": "x"}), 422, "invalid_request", "b: required")


PROBE = {"model": "layers", "a": ["the cat sat", "dogs bark", "fish swim", "a cat", "red birds"],
         "b": ["a cat sat", "the dog barks", "birds fly", "the cat", "birds sing"], "labels": [4.5, 3.0, 0.5, 4.0, None]}


def test_probe_runs_the_backends_probe_in_full_precision(lab_api):
    r = lab_api.post("/v1/probe", json=PROBE)
    assert r.status_code == 200, r.text
    body = r.json()
    from backend.lab.evaluation import LabelledPairs

    want = lab_api.backend.probe("layers", LabelledPairs(PROBE["a"], PROBE["b"], np.array([4.5, 3.0, 0.5, 4.0, np.nan]),
                                                         "graded", (0.0, 5.0)))
    assert body["layers"] == [0, 1, 2] and body["poolings"] == ["mean", "cls", "max"]
    np.testing.assert_array_equal(np.array(body["spearman"], dtype=float), want.spearman)
    assert (body["n"], body["skipped"], body["whitened"]) == (4, 1, False)
    assert body["first_last_avg"] == pytest.approx(want.first_last_avg, abs=0)
    w = lab_api.post("/v1/probe", json=PROBE | {"whiten": True, "whiten_dim": 3}).json()
    assert w["whitened"] and "fitted on the" in w["notes"][0]


@pytest.mark.parametrize(("change", "status", "type_", "words"), [
    ({"model": "enc"}, 422, "invalid_request", ["BERT-family", "fake_encoder"]),
    ({"model": "pair"}, 422, "invalid_request", ["BERT-family"]),
    ({"model": "nope"}, 404, "unknown_model", ["nope"]),
    ({"model": "broken"}, 503, "model_unavailable", ["not found"]),
    ({"model": "layers:scale=2"}, 422, "invalid_option", ["takes no options"]),
    ({"labels": [1.0, 2.0]}, 422, "invalid_request", ["same length", "(5, 5, 2)"]),
    ({"labels": [None] * 5}, 422, "invalid_request", ["at least 2 pairs"]),
    ({"a": ["x"] * 11, "b": ["y"] * 11, "labels": [1.0] * 11}, 413, "too_large", ["22 texts"]),
    ({"whiten_dim": 0}, 422, "invalid_request", ["whiten_dim"]),
    ({"kind": "ordinal"}, 422, "invalid_request", ["kind"]),
])
def test_probe_errors_are_json(lab_api, change, status, type_, words):
    err(lab_api.post("/v1/probe", json=PROBE | change), status, type_, *words)


def test_cache_reports_the_backends_counts(lab_api):
    lab_api.post("/v1/embed", json={"model": "enc", "texts": ["a", "b", "a"]})
    info = lab_api.get("/v1/cache").json()
    assert info == lab_api.backend.cache_info()
    assert info["vector_misses"] == 2 and info["persistent"] is None


@pytest.mark.parametrize(("method", "path", "body"), [
    ("post", "/v1/config", {"model": "enc"}),
    ("post", "/v1/align", {"model": "aligner", "a": "x", "b": "y"}),
    ("post", "/v1/probe", PROBE),
    ("post", "/v1/project", {"model": "enc", "texts": ["a", "b", "c"]}),
])
def test_new_model_routes_are_admitted(method, path, body):
    """Every route that works with a model holds a place in its bounded queue: none is left, so each gets a 429."""
    from tests.serving.test_protocol import make_backend

    with TestClient(create_app(make_backend(), ServerSettings(max_queue=0))) as c:
        r = getattr(c, method)(path, json=body)
        err(r, 429, "overloaded", "SIMDASH_MAX_QUEUE")
        assert r.headers["retry-after"] == "1"
        assert c.get("/v1/cache").status_code == 200  # no model, no queue


# ------------------------------------------------------------------------------------- loading: 503
class SlowToLoad(FakeEncoder):
    gate = threading.Event()

    def __init__(self, spec, device="cpu"):
        super().__init__(spec, device)
        self.gate.wait(30)


register_family("fake_slow", SlowToLoad)


def test_503_while_a_model_loads_then_200():
    from tests.fakes import TEXT_VECTORS

    TEXT_VECTORS["slow"] = vec
    be = fake_backend({"enc": vec})
    be.registry.add(ModelSpec("slow", "fake_slow", "slow", "path:slow"))
    SlowToLoad.gate.clear()
    app = create_app(be, ServerSettings(load_wait_s=0.2))
    with TestClient(app) as c:
        e = err(c.post("/v1/embeddings", json={"input": "x", "model": "slow"}), 503, "model_unavailable",
                "still loading")
        assert e["param"] == "model"
        assert c.get("/health").json()["loading"] == ["slow"]
        SlowToLoad.gate.set()
        c.app.state.loader.start("slow").result(10)
        assert c.post("/v1/embeddings", json={"input": "x", "model": "slow"}).status_code == 200
        assert c.get("/health").json()["loaded"] == ["slow"]


def test_preload_starts_in_the_background():
    be = fake_backend({"enc": vec})
    with TestClient(create_app(be, ServerSettings(preload=("enc", "unknown")))) as c:
        c.app.state.loader.start("enc").result(10)
        assert c.get("/health").json()["loaded"] == ["enc"]


# ------------------------------------------------------------------------------------------- metrics
def test_metrics_exposition_has_our_names_and_counts(api):
    for _ in range(3):
        api.post("/v1/embeddings", json={"input": ["some text", "more text"], "model": "enc"})
    api.post("/v1/embeddings", json={"input": ["some text"], "model": "enc"})
    text = api.get("/metrics").text
    for name in ("simdash_requests_total", "simdash_request_seconds_bucket", "simdash_texts_total",
                 "simdash_batch_size_bucket", "simdash_batch_requests_bucket", "simdash_queue_wait_seconds_bucket",
                 "simdash_forward_seconds_bucket", "simdash_cache_lookups_total", "simdash_cache_hit_ratio",
                 "simdash_cache_entries", "simdash_models_loaded", "simdash_model_state"):
        assert name in text, name
    assert 'simdash_requests_total{method="POST",route="/v1/embeddings",status="200"} 4.0' in text
    assert 'simdash_texts_total{route="/v1/embeddings"} 7.0' in text
    assert 'simdash_batch_size_count{model="enc",op="encode"} 1.0' in text  # one miss batch; the rest were hits
    assert 'simdash_cache_lookups_total{level="memory",result="hit"} 5.0' in text
    assert 'simdash_model_state{model="enc",state="loaded"} 1.0' in text
    assert "simdash_gpu_memory_bytes" not in text  # no GPU here


# ---------------------------------------------------------------------------------------------- auth
def test_api_key_guards_every_route_but_health():
    _, app = make_app(ServerSettings(api_key="s3cret"))
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200
        for method, path in (("get", "/v1/models"), ("get", "/metrics"), ("get", "/docs"), ("get", "/openapi.json"),
                             ("post", "/v1/embeddings"), ("get", "/v1/nothing")):
            e = err(getattr(c, method)(path), 401, "unauthorized", "Authorization: Bearer")
            assert e["code"] == 401
        err(c.get("/v1/models", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
        err(c.get("/v1/models", headers={"Authorization": "Basic s3cret"}), 401, "unauthorized")
        ok = c.post("/v1/embeddings", json={"input": "x", "model": "enc"}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("SIMDASH_API_KEY", "k")
    monkeypatch.setenv("SIMDASH_MAX_TEXTS", "7")
    monkeypatch.setenv("SIMDASH_MAX_BODY_MB", "0.5")
    s = ServerSettings.from_env(max_chars=99)
    assert (s.api_key, s.max_texts, s.max_chars, s.max_body_bytes) == ("k", 7, 99, 2**19)


# ------------------------------------------------------------------------------------------- openapi
def test_openapi_documents_every_request_field(api):
    spec = api.get("/openapi.json").json()
    for path in ("/v1/embeddings", "/v1/embed", "/v1/similarity", "/v1/rerank", "/v1/neighbours", "/v1/project",
                 "/v1/check", "/v1/config", "/v1/align", "/v1/probe", "/v1/cache", "/v1/models", "/v1/models/{key}",
                 "/v1/info/{model}", "/health", "/metrics"):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    for name in ("EmbeddingsRequest", "EmbedRequest", "SimilarityRequest", "RerankRequest", "RerankDocument",
                 "NeighboursRequest", "ProjectRequest", "CheckRequest", "ConfigRequest", "AlignRequest",
                 "ProbeRequest"):
        for field, prop in schemas[name]["properties"].items():
            assert prop.get("description"), f"{name}.{field} has no description"
    assert "examples" in schemas["EmbeddingsRequest"]["properties"]["input"]
    assert "422" in spec["paths"]["/v1/embeddings"]["post"]["responses"]
    assert api.get("/docs").status_code == 200


def test_count_tokens_counts_words_and_cjk_characters():
    assert count_tokens(["the cat sat", "今天天气", "GPU很快"]) == 3 + 4 + 3
