"""A model's facts are data: what ``info()`` reports is what the card shows, with the registry's flags and facts."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from backend.base import Encoder, Encoding, fact_rows, fact_text
from backend.registry import ModelSpec


class _Constant(Encoder):
    """A stand-in family: one fixed vector, and a fact of its own."""

    dim = 2

    def _encode(self, texts, batch_size, show_progress_bar, progress):
        return Encoding(np.tile(np.array([[1.0, 0.0]], np.float32), (len(texts), 1)), np.ones(len(texts), bool),
                        [[] for _ in texts])

    def info(self):
        out = super().info()
        out.update(buckets=64, words=None)
        return out


def _spec(**kw) -> ModelSpec:
    return ModelSpec(key="c", family="constant", label="C", source="path:x", **kw)


def test_fact_text_reads_like_a_card():
    assert [fact_text(v) for v in (True, False, 0.76941, 3, "fp32", None, "", {}, [])] == \
        ["yes", "no", "0.7694", "3", "fp32", "", "", "", ""]
    assert fact_text({"w_cross": 0.5, "bias": -1.25}) == "w_cross=0.5, bias=-1.25"
    assert fact_text(["encoder", "pair_scorer"]) == "encoder, pair_scorer"


def test_fact_rows_keep_every_fact_in_order_and_leave_out_the_empty_and_the_skipped():
    info = {"family": "toy", "buckets": 64, "load_seconds": 0.5, "note": "", "words": None, "cased": False}
    assert fact_rows(info) == [("family", "toy"), ("buckets", "64"), ("load seconds", "0.5"), ("cased", "no")]
    assert fact_rows(info, skip={"family", "load_seconds"}) == [("buckets", "64"), ("cased", "no")]


def test_info_carries_the_registry_flags_and_facts_and_the_family_wins_a_clash():
    spec = _spec(research_only=True, stands_in_for="raw BERT",
                 facts=MappingProxyType({"corpus": "news", "buckets": 8}))
    info = _Constant(spec).info()
    assert (info["research_only"], info["stands_in_for"], info["corpus"]) == (True, "raw BERT", "news")
    assert info["buckets"] == 64  # measured by the family, over the registry's 8
    rows = dict(fact_rows(info))
    assert rows["buckets"] == "64" and rows["corpus"] == "news" and "words" not in rows
    plain = _Constant(_spec()).info()
    assert (plain["research_only"], plain["stands_in_for"]) == (False, "")
