"""Every registered pair scorer, on the presets a new user tries first: a text against itself scores at the top
of the scale, and a paraphrase scores above a negation (issue 15's bar for a ranker worth trusting)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.presets import PRESETS

pytestmark = pytest.mark.slow

#: (paraphrase preset, negation preset) per language.
PAIRS = {"en": ("Paraphrase, no shared words", "Negation"),
         "zh": ("中文: synonyms, no shared characters (同义不同字)", "中文: negation (否定)")}


def scorers(backend) -> list[str]:
    keys = [k for k in backend.keys_with_role("pair_scorer") if not backend.registry[k].owner]
    assert {"cross", "cross-zh", "esim", "esim-zh"} <= set(keys)
    return keys


def test_every_pair_scorer_scores_an_identical_pair_at_least_095(backend):
    texts = [a for name in ("Negation", "Paraphrase, no shared words", "中文: negation (否定)",
                            "中文: synonyms, no shared characters (同义不同字)") for a, _ in PRESETS[name].pairs]
    width = PRESETS["中文: full-width vs half-width (全角半角)"].pairs  # identical once NFKC-normalised
    a = texts + [x for x, _ in width] + ["我想退货"]
    b = texts + [y for _, y in width] + ["我想退货"]
    for key in scorers(backend):
        r = backend.similarity(a, b, [key])[key]
        assert r.error is None, (key, r.error)
        worst = int(np.nanargmin(r.scores))
        assert r.scores[worst] >= 0.95, (key, a[worst], float(r.scores[worst]))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_pair_scorer_puts_a_paraphrase_above_a_negation(backend, lang):
    para, neg = (PRESETS[name].pairs for name in PAIRS[lang])
    for key in scorers(backend):
        p = backend.similarity([x for x, _ in para], [y for _, y in para], [key])[key].scores
        n = backend.similarity([x for x, _ in neg], [y for _, y in neg], [key])[key].scores
        assert np.nanmean(p) > np.nanmean(n), (key, lang, float(np.nanmean(p)), float(np.nanmean(n)))
