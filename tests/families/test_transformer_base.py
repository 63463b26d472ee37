"""The transformer families share one base, and a family file is cheap to import.

``bert``, ``sbert`` and ``cross`` subclass :class:`~backend.families._hf.TransformerModel` (load timing, dtype,
position limit, runtime, ONNX export, the card's common facts) and their card carries those facts. Importing any
family file imports none of torch, transformers, sentence-transformers, gensim or onnxruntime: asking a model's
roles and options (answered from the cache) must not cost their second and a half of imports.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from backend.families import family_class
from backend.families._hf import TransformerModel
from tests.conftest import REPO

TRANSFORMERS = {"bert": {"encoder"}, "sbert": {"encoder"}, "cross": {"pair_scorer"}}
COMMON_FACTS = ("parameters", "dtype", "architecture", "runtime", "max_tokens")
HEAVY = ("torch", "gensim", "transformers", "sentence_transformers", "onnxruntime")


@pytest.mark.parametrize(("family", "roles"), TRANSFORMERS.items())
def test_the_transformer_families_share_one_base(family, roles):
    cls = family_class(family)
    assert issubclass(cls, TransformerModel)
    assert cls.roles_of() == roles and TransformerModel.roles_of() == frozenset()  # roles come from the role class
    for hook in ("_load", "_export"):  # a family's own part
        assert hook in vars(cls), f"{family} does not define {hook}"


@pytest.mark.parametrize("key", ["bert", "sbert", pytest.param("cross", marks=pytest.mark.slow)])
def test_a_transformer_card_has_the_common_facts(backend, key):
    info = backend.info(key)
    for fact in COMMON_FACTS:
        assert info.get(fact) not in (None, ""), f"{key}: {fact} missing"
    assert info["parameters"] > 1_000_000 and info["dtype"] in ("fp32", "bf16", "fp16")
    assert info["runtime"] == "torch" and info["max_tokens"] == backend.model(key).max_tokens
    assert info["max_tokens"] <= 512  # capped at BERT's position table
    own = {"bert": ("dim", "layers", "layer", "pooling"), "sbert": ("dim", "pooling"),
           "cross": ("score", "base", "symmetric")}[key]
    assert all(f in info for f in own)
    if key == "sbert":
        assert " → " in info["architecture"]  # the pipeline's modules, not one class name


def test_importing_the_family_files_imports_no_heavy_library():
    """A subprocess, so modules other tests have imported do not count; the roles and options still answer."""
    code = (
        "import backend.families.bert, backend.families.sbert, backend.families.cross, backend.families.esim, "
        "backend.families.w2v, backend.families.hybrid, json, sys\n"
        "from backend.families import family_class\n"
        "out = {f: [sorted(family_class(f).roles_of()), [o.name for o in family_class(f).OPTIONS]]\n"
        "       for f in ('bert', 'sbert', 'cross', 'esim', 'w2v', 'hybrid')}\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
        "print(json.dumps(out))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         check=True)
    loaded, answers = run.stdout.strip().splitlines()
    assert loaded == "[]"
    answers = json.loads(answers)
    assert answers["bert"][0] == ["encoder"] and "layer" in answers["bert"][1]
    assert answers["sbert"][0] == ["encoder"] and "runtime" in answers["sbert"][1]
    assert answers["cross"][0] == ["pair_scorer"] and "symmetric" in answers["cross"][1]
    assert answers["esim"][0] == ["encoder", "pair_scorer"]
    assert answers["w2v"][0] == ["encoder"] and "weighting" in answers["w2v"][1]
    assert answers["hybrid"][0] == ["pair_scorer"] and "runtime" in answers["hybrid"][1]
