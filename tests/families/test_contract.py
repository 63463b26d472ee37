"""The contract every registered model keeps, whatever its family: run over the whole registry.

Encoders give unit vectors of their declared dimension and score a text against itself 1; every model answers an
empty text with NaN and a reason; symmetric models score (a, b) as (b, a); unknown options are refused by name.
A model whose committed weights fail to load fails here (no "or error" escape).
"""

from __future__ import annotations

import numpy as np
import pytest

from backend.families import family_class
from backend.options import OptionError
from backend.registry import Registry

_REGISTRY = Registry.load()
KEYS = _REGISTRY.keys()
# Roles come from the family class, so listing the encoders loads no weights.
ENCODER_KEYS = [k for k in KEYS if "encoder" in family_class(_REGISTRY[k].family).roles_of()]
LANG = {"en": ("The train leaves at noon.", "A cat sleeps on the warm sofa."),
        "zh": ("火车中午出发。", "一只猫在温暖的沙发上睡觉。")}


def _texts(backend, key):
    return LANG.get(backend.registry[key].language, LANG["en"])


@pytest.mark.slow
@pytest.mark.parametrize("key", KEYS)
def test_committed_model_loads(backend, key):
    m = backend.model(key)
    assert m.roles and m.key == key
    info = backend.info(key)
    assert info["roles"] == sorted(m.roles) and info["family"] == backend.registry[key].family


@pytest.mark.slow
@pytest.mark.parametrize("key", ENCODER_KEYS)
def test_encoders_give_unit_vectors_and_self_similarity_one(backend, key):
    m = backend.model(key)
    texts = list(_texts(backend, key))
    v = m.encode(texts)
    assert v.shape == (2, m.dim) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert m.encode(texts[0]).shape == (m.dim,)
    if "pair_scorer" not in backend.roles(key):
        np.testing.assert_allclose(m.score(texts, texts), 1.0, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("key", KEYS)
def test_empty_text_is_nan_with_a_reason(backend, key):
    m = backend.model(key)
    a, b = _texts(backend, key)
    ps = m.score_detailed(["", a, "   "], [b, "", "\t"])
    assert np.isnan(ps.scores).all()
    assert "A: empty text" in " ".join(ps.warnings[0]) and "B: empty text" in " ".join(ps.warnings[1])


@pytest.mark.slow
@pytest.mark.parametrize("key", KEYS)
def test_symmetric_where_declared(backend, key):
    m = backend.model(key)
    a, b = _texts(backend, key)
    s = m.score([a, b], [b, a])
    assert np.isfinite(s).all()
    if m.symmetric:
        assert s[0] == pytest.approx(s[1], abs=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("key", KEYS)
def test_options_are_validated_by_name(backend, key):
    m = backend.model(key)
    with pytest.raises(OptionError, match="unknown option 'no_such_option'"):
        m.with_options(no_such_option=1)
    for opt in m.option_specs():
        if opt.runtime:
            assert m.with_options(**{opt.name: m.options[opt.name]}).options[opt.name] == m.options[opt.name]
