"""The ``runtime`` option of the transformer families: onnx gives torch's vectors, onnx-int8 close ones; the
export is made once and reused; declared, validated and explained like every option."""

from __future__ import annotations

import dataclasses
import sys
from types import MappingProxyType

import numpy as np
import pytest

from backend.families._onnx import RUNTIMES, onnx_root, use_onnx
from backend.options import OptionError
from backend.registry import Registry
from backend.serving import Backend

TEXTS = ["An old clockmaker is fixing a brass pendulum.", "The cat sleeps on the mat.", "Rain.", "",
         "Stock markets fell sharply on Monday after the central bank raised interest rates again."]


def with_runtime(reg: Registry, key: str, runtime: str) -> str:
    spec = reg[key]
    new = f"{key}-{runtime}"
    reg.add(dataclasses.replace(spec, key=new, options=MappingProxyType({**spec.options, "runtime": runtime})))
    return new


@pytest.fixture(scope="module")
def be():
    pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements-onnx.txt (part of requirements-dev.txt)")
    reg = Registry.load()
    for key in ("sbert", "bert"):
        for rt in ("onnx", "onnx-int8"):
            with_runtime(reg, key, rt)
    return Backend(reg, device="cpu", cache_dir="memory")


@pytest.mark.slow
@pytest.mark.parametrize("key", ["sbert", "bert"])
def test_onnx_gives_torchs_vectors_and_int8_close_ones(be, key):
    ref = be.embed(key, TEXTS)
    onnx = be.embed(f"{key}-onnx", TEXTS)
    assert np.abs(onnx.vectors - ref.vectors).max() < 1e-5
    assert onnx.valid.tolist() == ref.valid.tolist() == [True, True, True, False, True]
    assert onnx.warnings == ref.warnings
    q = be.embed(f"{key}-onnx-int8", TEXTS)
    cos = (q.vectors * ref.vectors).sum(1)[ref.valid]
    assert cos.min() > 0.97 and np.abs(q.vectors - ref.vectors).max() > 1e-5  # quantised: close, not equal
    info = be.info(f"{key}-onnx-int8")
    assert info["runtime"].startswith("onnx-int8 (model-int8.onnx")


@pytest.mark.slow
def test_bert_run_time_options_work_on_the_onnx_path(be):
    for opts in ({"layer": -1, "pooling": "cls"}, {"layer": 2, "pooling": "max"}, {"pooling": "first_last_avg"}):
        a = be.embed("bert", TEXTS, options=opts).vectors
        b = be.embed("bert-onnx", TEXTS, options=opts).vectors
        assert np.abs(a - b).max() < 1e-5, opts


@pytest.mark.slow
def test_the_export_is_made_once_and_reused(be):
    be.model("sbert-onnx")
    files = sorted(onnx_root().glob("sbert-*/model.onnx"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    again = Backend(be.registry, device="cpu", cache_dir="memory")
    again.model("sbert-onnx")
    assert files[0].stat().st_mtime_ns == stamp
    assert not list(onnx_root().glob("*/*.tmp-*"))  # no half-written export left behind


def test_runtime_is_declared_and_validated():
    from backend.families.bert import BertPoolingModel
    from backend.families.sbert import SentenceTransformerModel

    for cls in (SentenceTransformerModel, BertPoolingModel):
        (opt,) = [o for o in cls.OPTIONS if o.name == "runtime"]
        assert opt.choices == RUNTIMES and opt.default == "torch" and not opt.runtime
        with pytest.raises(OptionError, match="one of 'torch', 'onnx', 'onnx-int8'"):
            opt.check("tensorrt")
    be = Backend(Registry.load(), device="cpu", cache_dir="memory")
    with pytest.raises(OptionError, match="set when the model loads"):
        be.check_request("sbert", {"runtime": "onnx"})


def test_gpu_devices_keep_torch_and_a_missing_onnxruntime_is_explained(monkeypatch):
    assert use_onnx("torch", "cpu") is False
    assert use_onnx("onnx", "cuda") is False
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"requirements-onnx\.txt"):
        use_onnx("onnx-int8", "cpu")


@pytest.mark.slow
@pytest.mark.parametrize("key", ["cross", "cross-zh"])
def test_cross_encoder_onnx_gives_torchs_scores(be, key):
    """The pair scorers' runtime option: the same scores (1e-5) through onnxruntime, close ones in int8."""
    if key == "cross":
        a = ["The chef chops onions for the soup.", "Rain.", "The cat sleeps on the mat."]
        b = ["A cook is cutting onions for a soup.", "The stock market fell sharply today.", "The cat sleeps on the mat."]
    else:
        a, b = ["我想退货", "会员卡怎么办理", "今天天气很好"], ["怎么申请退款", "会员卡怎么办理", "股市今天大跌"]
    for rt in ("onnx", "onnx-int8"):
        if f"{key}-{rt}" not in be.registry:
            with_runtime(be.registry, key, rt)
    ref = be.similarity(a, b, [key])[key]
    onnx = be.similarity(a, b, [f"{key}-onnx"])[f"{key}-onnx"]
    assert onnx.error is None and np.abs(onnx.scores - ref.scores).max() < 1e-5
    q = be.similarity(a, b, [f"{key}-onnx-int8"])[f"{key}-onnx-int8"]
    assert onnx.used == [f"{key}-onnx"] * len(a)
    # 8-bit weights move a cross-encoder's logit more than a bi-encoder's vector: close, not equal.
    assert 0 < np.abs(q.scores - ref.scores).max() < 0.1
    assert be.info(f"{key}-onnx")["runtime"].startswith("onnx (model.onnx")
