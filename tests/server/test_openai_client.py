"""OpenAI compatibility of /v1/embeddings: the request the ``openai`` Python client sends, mirrored with httpx
(always), and the real client against a live server (when ``openai`` is installed; it is not a dependency)."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from backend.server.app import ServerSettings, create_app
from tests.fakes import fake_backend
from tests.server.live import live_server


def vec(text: str) -> np.ndarray:
    return np.array([len(text), text.count("e"), 1, 2, 3, 4, 5, 6], dtype=np.float32)


@pytest.fixture(scope="module")
def server():
    be = fake_backend({"enc": vec})
    with live_server(create_app(be, ServerSettings(api_key="sk-test"))) as url:
        yield be, url


def test_the_request_the_openai_client_sends(server):
    """openai>=1 sends {"model", "input", "encoding_format": "base64"} (it decodes base64 itself) with a bearer key."""
    be, url = server
    body = {"input": ["hello there", "second text"], "model": "enc", "encoding_format": "base64"}
    r = httpx.post(f"{url}/v1/embeddings", json=body, headers={"Authorization": "Bearer sk-test",
                                                               "User-Agent": "OpenAI/Python 3.57.0"})
    assert r.status_code == 200
    out = r.json()
    got = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in out["data"]])
    np.testing.assert_array_equal(got, be.embed("enc", body["input"]).vectors)
    assert out["usage"]["prompt_tokens"] == 4 and out["object"] == "list"


def test_the_openai_client_itself(server):
    import openai  # in requirements-dev.txt: the compatibility claim is checked with the real client
    be, url = server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0)
    res = client.embeddings.create(model="enc", input=["hello there", "second text"])
    got = np.array([d.embedding for d in res.data], dtype=np.float32)
    np.testing.assert_allclose(got, be.embed("enc", ["hello there", "second text"]).vectors, rtol=1e-6)
    res = client.embeddings.create(model="enc", input="one", encoding_format="float", user="someone")
    assert len(res.data) == 1 and res.model == "enc"
    assert [m.id for m in client.models.list().data] == ["enc"]
    with pytest.raises(openai.NotFoundError, match="unknown model 'gpt'"):
        client.embeddings.create(model="gpt", input="x")
    with pytest.raises(openai.UnprocessableEntityError, match="dimensions=3"):
        client.embeddings.create(model="enc", input="x", dimensions=3)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).embeddings.create(model="enc", input="x")
