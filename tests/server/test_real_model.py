"""The server around the real default models (slow: loads sbert and bert)."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from backend.server.app import ServerSettings, create_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(backend):
    with TestClient(create_app(backend, ServerSettings(load_wait_s=300)), raise_server_exceptions=False) as c:
        yield c


def test_sbert_embeddings_and_similarity(api, backend):
    texts = ["An old clockmaker is fixing a brass pendulum.", "Someone mends the pendulum of a clock.", "The stock market fell."]
    r = api.post("/v1/embeddings", json={"input": texts, "model": "sbert"})
    assert r.status_code == 200, r.text
    v = np.array([d["embedding"] for d in r.json()["data"]], dtype=np.float32)
    assert v.shape == (3, 384)
    np.testing.assert_allclose(v, backend.model("sbert").encode(texts), atol=1e-5)
    sims = api.post("/v1/similarity", json={"pairs": [[texts[0], texts[1]], [texts[0], texts[2]]],
                                            "models": ["sbert", "bert:pooling=cls"]}).json()["results"]
    assert sims[0]["sbert"]["score"] > 0.6 > sims[1]["sbert"]["score"]
    assert sims[0]["bert:pooling=cls"]["model"] == "bert"


def test_bert_layer_out_of_range_is_a_422(api):
    r = api.post("/v1/embeddings", json={"input": "x", "model": "bert:layer=99"})
    assert r.status_code == 422
    e = r.json()["error"]
    assert e["type"] == "invalid_option" and "layer" in e["message"] and "-7..6" in e["message"]


def test_rerank_with_esim(api):
    r = api.post("/v1/rerank", json={"model": "esim", "query": "A girl is dancing.",
                                     "documents": ["The stock market fell.", "A girl dances on stage."]}).json()
    assert r["scored_by"] == "pair_scorer" and r["results"][0]["index"] == 1
