"""Every registered pair scorer, on the presets a new user tries first: a text against itself scores at the top
of the scale, and a paraphrase scores above a negation (issue 15's bar for a ranker worth trusting)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.lab.presets import PRESETS

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


#: pair scorers that do not yet put the paraphrase preset above the negation preset (measured 2026-12-05, means):
#: ESIM 0.42 vs 0.76 and 0.26 vs 0.78, the hybrids 0.36 vs 0.54 and 0.41 vs 0.67 (the cosine's blind spot), cross-zh
#: 0.37 vs 0.51. Strict: when one of them starts to pass, this list must shrink. Their model cards say so.
KNOWN_MISSES = {"esim", "esim-zh", "hybrid", "hybrid-zh", "cross-zh"}


@pytest.mark.parametrize("key", [
    pytest.param(k, marks=pytest.mark.xfail(strict=True, reason="known miss, see KNOWN_MISSES and the model card"))
    if k in KNOWN_MISSES else k
    for k in ("cross", "esim", "hybrid", "cross-zh", "esim-zh", "hybrid-zh")])
def test_a_pair_scorer_puts_a_paraphrase_above_a_negation(backend, key):
    lang = "zh" if key.endswith("-zh") else "en"
    para, neg = (PRESETS[name].pairs for name in PAIRS[lang])
    p = backend.similarity([x for x, _ in para], [y for _, y in para], [key])[key]
    n = backend.similarity([x for x, _ in neg], [y for _, y in neg], [key])[key]
    assert p.error is None and n.error is None and set(p.used) == set(n.used) == {key}
    assert np.nanmean(p.scores) > np.nanmean(n.scores), (key, float(np.nanmean(p.scores)), float(np.nanmean(n.scores)))
