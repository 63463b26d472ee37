"""Every API route sends Chinese text to the model that reads it and names that model in a field clients read;
``POST /v1/match`` answers the FAQ-matching job with the same rows as the CLI."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from backend.server.app import ServerSettings, create_app
from tests.fakes import fake_backend, word_overlap, word_vec

ZH = ["花呗 怎么 换卡", "火车票 怎么 改签", "退款 多久 到账"]


@pytest.fixture
def api():
    be = fake_backend({"enc": word_vec, "enc-zh": word_vec}, {"pair": word_overlap, "pair-zh": word_overlap},
                      languages={"enc-zh": "zh", "pair-zh": "zh"},
                      variants={"enc": {"zh": "enc-zh"}, "pair": {"zh": "pair-zh"}})
    with TestClient(create_app(be, ServerSettings(load_wait_s=5)), raise_server_exceptions=False) as c:
        yield c


def test_embeddings_of_chinese_text_come_from_the_chinese_model_and_say_so(api):
    r = api.post("/v1/embeddings", json={"model": "enc", "input": ZH})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "enc-zh" and body["asked"] == "enc" and "enc-zh" in body["note"]
    english = api.post("/v1/embeddings", json={"model": "enc", "input": ["a cat", "a dog"]}).json()
    assert english["model"] == "enc" and english["note"] is None


def test_similarity_and_rerank_route_a_half_chinese_pair(api):
    r = api.post("/v1/similarity", json={"pairs": [["微信支付怎么绑定银行卡？", "WeChat Pay如何绑卡？"]],
                                         "models": ["pair", "enc"]}).json()
    assert r["models"]["pair"]["used"] == ["pair-zh"] and r["models"]["enc"]["used"] == ["enc-zh"]
    rr = api.post("/v1/rerank", json={"model": "pair", "query": "花呗 换卡", "documents": ZH}).json()
    assert rr["results"][0]["index"] == 0 and any("pair-zh" in w for w in rr["results"][0]["warnings"])


def test_neighbours_and_projection_name_the_routed_model(api):
    nb = api.post("/v1/neighbours", json={"model": "enc", "queries": ["花呗 换卡"], "corpus": ZH, "k": 1}).json()
    assert nb["model"] == "enc-zh" and nb["indices"] == [[0]]


def test_an_option_the_variant_refuses_is_a_422_naming_it(api):
    r = api.post("/v1/embeddings", json={"model": "enc:scale=20", "input": ZH})
    assert r.status_code == 422 and "scale" in r.text


def test_match_returns_k_rows_per_question_from_the_routed_model(api):
    r = api.post("/v1/match", json={"queries": ["花呗 换卡", ""], "corpus": [*ZH, ""], "models": ["enc"], "k": 2,
                                    "rerank": "pair"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["models"] == {"enc": "enc-zh"} and any("skipped" in n for n in body["notes"])
    first = [row for row in body["rows"] if row["query"] == "花呗 换卡"]
    assert [row["rank"] for row in first] == [1, 2] and first[0]["text"] == ZH[0]
    assert {row["reranked_by"] for row in first} == {"pair-zh"}
    empty = [row for row in body["rows"] if row["query"] == ""]
    assert len(empty) == 1 and empty[0]["rank"] is None and "empty question" in empty[0]["warnings"]


@pytest.mark.parametrize(("body", "status", "word"), [
    ({"queries": ["q"], "corpus": [""], "models": ["enc"]}, 422, "empty"),
    ({"queries": ["q"], "corpus": ["x"], "models": ["pair"]}, 422, "scores pairs only"),
    ({"queries": ["q"], "corpus": ["x"], "models": ["nope"]}, 404, "nope"),
    ({"queries": ["q"], "corpus": ["x"], "k": 0}, 422, "k"),
])
def test_bad_match_requests_get_a_message_not_a_500(api, body, status, word):
    r = api.post("/v1/match", json=body)
    assert r.status_code == status, r.text
    assert word in r.text and "Traceback" not in r.text
