"""The one routing rule (backend/routing.py): pairs with Chinese on either side go to the zh variant, corpora to one
model by their dominant language, the user's options follow the routed model or are refused, by name."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest

from backend.options import Option, OptionError
from backend.registry import ModelSpec, Registry
from backend.routing import (
    carry_options,
    corpus_language,
    corpus_routes,
    pair_language,
    route_pairs,
    route_texts,
    user_options,
)
from tests.fakes import fake_backend, word_vec

LAYER = Option("layer", int, -2, "hidden state", low=-7, high=6, runtime=True)
POOL = Option("pooling", str, "mean", "pooling", choices=("mean", "cls"), runtime=True)
SIF = Option("sif_a", float, 1e-3, "SIF a", low=0.0, high=1.0, runtime=True)


def _registry() -> Registry:
    def spec(key, lang, variants=None, **options):
        return ModelSpec(key, "fake", key, f"path:{key}", language=lang, variants=MappingProxyType(variants or {}),
                         options=MappingProxyType(options))

    return Registry([spec("bert", "en", {"zh": "bert-zh"}, layer=-2), spec("bert-zh", "zh", {"en": "bert"}, layer=-2),
                     spec("w2v", "en", {"zh": "w2v-zh"}, sif_a=1e-3), spec("w2v-zh", "zh", sif_a=1e-4),
                     spec("plain", "en")])


SPECS = {"bert": (LAYER, POOL), "bert-zh": (LAYER.with_range(-5, 4), POOL), "w2v": (SIF,), "w2v-zh": (SIF,),
         "plain": ()}


def specs(key):
    return SPECS[key]


@pytest.mark.parametrize(("a", "b", "want"), [
    ("微信支付怎么绑定银行卡？", "WeChat Pay如何绑卡？", "zh"),   # Chinese on one side is enough
    ("How do I bind a card?", "如何绑卡", "zh"),
    ("How do I bind a card?", "Binding a bank card", "en"),
    ("123", "!!!", None),
])
def test_a_pair_is_chinese_when_either_side_has_a_chinese_character(a, b, want):
    assert pair_language(a, b) == want


def test_mixed_pairs_go_to_the_chinese_variant_and_english_ones_stay():
    groups = route_pairs(_registry(), specs, "bert", None, ["微信支付怎么绑定银行卡？", "a cat"],
                         ["WeChat Pay如何绑卡？", "a dog"])
    assert {k: idx for k, (_, idx) in groups.items()} == {"bert-zh": [0], "bert": [1]}
    assert "bert-zh" in groups["bert-zh"][0].note


def test_options_follow_the_routed_model_when_it_accepts_them():
    assert carry_options(_registry(), specs, "bert", "bert-zh", {"layer": -1, "pooling": "cls"}) == \
        {"layer": -1, "pooling": "cls"}


def test_an_option_the_variant_cannot_take_is_refused_naming_it_and_its_range():
    with pytest.raises(OptionError, match=r"bert:layer=-7 cannot apply to bert-zh.*-5\.\.4"):
        carry_options(_registry(), specs, "bert", "bert-zh", {"layer": -7})


def test_options_at_the_asked_models_defaults_are_not_carried_so_the_variant_keeps_its_own():
    # The sidebar sends every value; w2v's sif_a default must not overwrite w2v-zh's tuned one.
    assert user_options(_registry(), specs, "w2v", {"sif_a": 1e-3}) == {}
    assert carry_options(_registry(), specs, "w2v", "w2v-zh", {"sif_a": 1e-3}) == {}
    assert carry_options(_registry(), specs, "w2v", "w2v-zh", {"sif_a": 0.01}) == {"sif_a": 0.01}


def test_a_corpus_goes_to_one_model_by_its_dominant_language_and_says_so():
    texts = ["花呗怎么换卡", "怎么还款", "退款多久到账", "订单取消", "How do I pay?"]
    assert corpus_language(texts) == ("zh", pytest.approx(0.2))
    r = route_texts(_registry(), specs, "bert", {"layer": -1}, texts)
    assert (r.key, r.options) == ("bert-zh", {"layer": -1})
    assert "bert-zh" in r.note and "20% English" in r.note
    plain = route_texts(_registry(), specs, "plain", None, texts)
    assert (plain.key, plain.note) == ("plain", None)


def test_an_embedded_corpus_answers_with_its_own_models():
    routes, missing = corpus_routes(_registry(), specs, ["bert-zh", "w2v-zh"], ["bert", "plain"])
    assert routes["bert"].key == "bert-zh" and missing == ["plain"]
    own, missing = corpus_routes(_registry(), specs, ["w2v-zh"], ["plain"])
    assert list(own) == ["w2v-zh"] and missing == ["plain"]


def test_the_backend_scores_a_half_chinese_pair_with_the_chinese_model():
    be = fake_backend({"e": word_vec, "e-zh": word_vec}, languages={"e-zh": "zh"}, variants={"e": {"zh": "e-zh"}})
    res = be.score_pairs("e", ["微信支付怎么绑定银行卡？", "a cat"], ["WeChat Pay如何绑卡？", "a cat"])
    assert res.used == ["e-zh", "e"]
    assert np.isfinite(res.scores).all()
    assert any("e-zh" in w for w in res.warnings[0])
