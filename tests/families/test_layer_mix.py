"""The bert family's ``layer_mix`` option: a weighted sum of hidden states, checked before any weights load."""

from __future__ import annotations

import numpy as np
import pytest

from backend.families.bert import BertPoolingModel, LayerMixOption, format_layer_mix, parse_layer_mix
from backend.options import OptionError, parse_model_arg, validate_options
from backend.registry import DEFAULT_REGISTRY, Registry

# Our own sentences.
TEXTS = ["The ferry to the island leaves every hour.", "Two children are building a sandcastle.",
         "The price of bread has gone up again.", "A short one."]


def _declared(key: str = "bert") -> tuple:
    """The options of registry model ``key`` as known before its weights load (depth from the registry)."""
    return BertPoolingModel.declared_options(Registry.load(DEFAULT_REGISTRY)[key])


def test_option_is_declared_once_runtime_and_in_both_languages():
    (opt,) = [o for o in BertPoolingModel.OPTIONS if o.name == "layer_mix"]
    assert isinstance(opt, LayerMixOption) and opt.runtime and opt.default == "" and opt.states is None
    assert opt.label_zh and opt.why_zh and "ELMo" in opt.why


def test_weights_are_normalised_and_empty_is_off():
    np.testing.assert_allclose(parse_layer_mix("1;1;2"), [0.25, 0.25, 0.5])
    np.testing.assert_allclose(parse_layer_mix("1, 1 ,2", states=3), [0.25, 0.25, 0.5])  # commas work too
    assert parse_layer_mix("") is None and parse_layer_mix("  ") is None
    # --models splits at commas, so the probe writes semicolons, and they survive parse_model_arg
    key, opts = parse_model_arg("bert:pooling=mean:layer_mix=0.1;0.2;0.7")
    assert (key, opts) == ("bert", {"pooling": "mean", "layer_mix": "0.1;0.2;0.7"})
    assert format_layer_mix([0.0123456, 0.5, 0.4876544]) == "0.0123;0.5;0.488"


def test_wrong_count_is_refused_before_loading_naming_the_expected_count():
    specs = _declared("bert")  # MiniLM backbone, 6 layers: 7 hidden states
    with pytest.raises(OptionError, match=r"needs 7 weights, one per hidden state .*layers 1\.\.6\); got 3"):
        validate_options(specs, {"layer_mix": "1;1;1"}, "bert", runtime_only=True)
    ok = validate_options(specs, {"layer_mix": "1,1,1,1,1,1,1"}, "bert", runtime_only=True)
    assert ok == {"layer_mix": "1;1;1;1;1;1;1"}  # one canonical form, one cache key
    # bert-zh's m3e-small backbone has 4 layers: 5 weights
    with pytest.raises(OptionError, match="needs 5 weights"):
        validate_options(_declared("bert-zh"), {"layer_mix": "1;1;1;1;1;1;1"}, "bert-zh")


@pytest.mark.parametrize("bad", ["a;b;c;d;e;f;g", "1;1;1;x;1;1;1", "-1;1;1;1;1;1;1", "0;0;0;0;0;0;0",
                                 "nan;1;1;1;1;1;1", "inf;1;1;1;1;1;1"])
def test_non_numbers_negative_and_all_zero_are_refused(bad):
    with pytest.raises(OptionError, match="layer_mix"):
        validate_options(_declared(), {"layer_mix": bad}, "bert")


# ``backend`` is the session-wide real Backend of tests/conftest.py (models load once per test run).


@pytest.mark.slow
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_equal_weights_equal_the_mean_of_the_per_layer_poolings(backend, pooling):
    model = backend.model("bert")
    n_states = model.n_layers + 1
    layers = model.encode_layers(TEXTS, (pooling,))[pooling]  # (n_states, n, d), not normalised
    want = layers.astype(np.float64).mean(axis=0)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    mixed = model.with_options(layer_mix=";".join(["1"] * n_states), pooling=pooling)
    np.testing.assert_allclose(mixed.encode(TEXTS), want, atol=1e-5)


@pytest.mark.slow
def test_one_hot_mix_is_that_layer_and_the_loaded_model_checks_its_own_depth(backend):
    model = backend.model("bert")
    one_hot = ";".join("1" if i == model.n_layers - 1 else "0" for i in range(model.n_layers + 1))
    np.testing.assert_allclose(model.with_options(layer_mix=one_hot).encode(TEXTS),
                               model.with_options(layer=-2).encode(TEXTS), atol=1e-5)
    with pytest.raises(OptionError, match=f"needs {model.n_layers + 1} weights"):
        model.with_options(layer_mix="1;1")
    with pytest.raises(OptionError, match="needs 7 weights"):
        backend.check_request("bert", {"layer_mix": "1;1"})
    # off again: the layer decides
    np.testing.assert_allclose(model.with_options(layer_mix="").encode(TEXTS), model.encode(TEXTS), atol=1e-6)
