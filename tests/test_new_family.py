"""A new family is one file plus one table: the worked example of docs/new-family.md, run as the page says.

The page's two titled code blocks (the family file and its registry table) are copied into a copy of the project's
``backend/`` and ``models/registry.toml``; the command line there lists the toy, scores a pair with it, accepts its
run-time option and refuses bad values. In this process the same file is imported to check what the interface
draws from it: the option's Chinese title, the card's facts and a colour no other model has.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.registry import Registry
from tests.conftest import REPO
from ui import theme

DOC = REPO / "docs" / "new-family.md"
_BLOCK = re.compile(r'^```(\w+) title="([^"]+)"\n(.*?)^```$', re.S | re.M)
A, B = "The cat sat on the mat.", "A cat sat on a mat."
FAR = "Interest rates rose again in March."


def doc_blocks() -> dict[str, str]:
    """The page's titled code blocks: path -> text."""
    return {path: body for _, path, body in _BLOCK.findall(DOC.read_text(encoding="utf-8"))}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project's backend and registry with the page's family file and table added."""
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(REPO / "backend", root / "backend", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "models").mkdir()
    blocks = doc_blocks()
    (root / "backend" / "families" / "toy.py").write_text(blocks["backend/families/toy.py"], encoding="utf-8")
    shipped = (REPO / "models" / "registry.toml").read_text(encoding="utf-8")
    (root / "models" / "registry.toml").write_text(shipped + "\n" + blocks["models/registry.toml"], encoding="utf-8")
    return root


def cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m backend ARGS`` in the copy (its own registry, not $SIMDASH_REGISTRY)."""
    env = {k: v for k, v in os.environ.items() if k not in ("SIMDASH_REGISTRY", "PYTHONPATH", "SIMDASH_BACKEND_URL")}
    return subprocess.run([sys.executable, "-m", "backend", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def toy_module(project):
    """The page's family file, imported from the copy (it imports this checkout's backend, which is the same)."""
    spec = importlib.util.spec_from_file_location("doc_toy_family", project / "backend" / "families" / "toy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def toy_spec(project):
    return Registry.load(project / "models" / "registry.toml")["toy"]


def _expected(text_a: str, text_b: str, n: int, buckets: int) -> float:
    """The cosine of two texts' hashed n-gram counts, written out independently of the family's code."""
    import zlib

    def vec(t):
        v = np.zeros(buckets)
        p = f" {t.lower()} "
        for j in range(max(len(p) - n + 1, 1)):
            v[zlib.crc32(p[j : j + n].encode()) % buckets] += 1
        return v / np.linalg.norm(v)

    return float(vec(text_a) @ vec(text_b))


# ------------------------------------------------------------------------------------------- the page
def test_the_page_has_the_two_blocks():
    blocks = doc_blocks()
    assert set(blocks) == {"backend/families/toy.py", "models/registry.toml"}
    assert "label_zh=" in blocks["backend/families/toy.py"] and "[models.toy]" in blocks["models/registry.toml"]


# ------------------------------------------------------------------------------------ the command line
def test_models_lists_the_toy_beside_the_shipped_models_without_loading_it(project):
    done = cli(project, "models", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["key"]: r for r in json.loads(done.stdout)}
    assert set(Registry.load(REPO / "models" / "registry.toml").keys()) | {"toy"} == set(rows)
    toy = rows["toy"]
    assert (toy["family"], toy["roles"], toy["default"]) == ("toy", ["encoder"], False)
    assert toy["registry_options"] == {"ngram": 3, "buckets": 1024}
    declared = {o["name"]: o for o in toy["options"]}  # the family's declaration, as the sidebar draws it
    assert declared["ngram"]["runtime"] and declared["ngram"]["label_zh"] and declared["ngram"]["type"] == "int"


def test_the_toy_scores_a_pair_and_its_option_changes_the_score(project):
    done = cli(project, "pair", A, B, "--models", "toy,toy:ngram=1", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["toy"]["score"] == pytest.approx(_expected(A, B, 3, 1024), abs=1e-5)
    assert out["toy:ngram=1"]["score"] == pytest.approx(_expected(A, B, 1, 1024), abs=1e-5)
    # letters are shared more than trigrams: the option really reached the model
    assert out["toy:ngram=1"]["score"] > out["toy"]["score"] + 0.05
    far = json.loads(cli(project, "pair", A, FAR, "--models", "toy", "--json").stdout)["toy"]["score"]
    assert far < out["toy"]["score"] - 0.3  # shared spelling scores high, none scores low


@pytest.mark.parametrize(("model", "message"), [
    ("toy:ngram=9", "toy: option 'ngram' must be within 1..5, not 9"),
    ("toy:ngram=two", "toy: option 'ngram' must be int, not 'two'"),
    ("toy:buckets=64", "option 'buckets' is set when the model loads (in models/registry.toml), not per request; "
                       "run-time options: ngram"),
    ("toy:colour=red", "unknown option 'colour' (known: buckets, ngram"),
])
def test_bad_option_values_are_refused_with_what_is_allowed(project, model, message):
    done = cli(project, "pair", A, B, "--models", model)
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert not done.stdout.strip()


# -------------------------------------------------------------------------------------- the interface
def test_the_option_carries_its_chinese_title_and_the_sidebar_uses_it(toy_module, monkeypatch):
    from ui import i18n

    ngram = next(o for o in toy_module.Model.OPTIONS if o.name == "ngram")
    monkeypatch.setattr(i18n, "lang", lambda: "zh")
    label, help_ = i18n.option_texts(ngram)
    assert label == "n 元长度" and help_.startswith("每个 n 元组的字符数")
    monkeypatch.setattr(i18n, "lang", lambda: "en")
    assert i18n.option_texts(ngram) == ("n-gram length", ngram.why)


def test_the_card_shows_the_familys_own_facts_and_the_registrys(toy_module, toy_spec):
    from backend.base import fact_rows

    model = toy_module.Model(toy_spec)
    rows = dict(fact_rows(model.info()))
    assert rows["ngram"] == "3" and rows["hashing"] == "crc32" and rows["learned"] == "nothing: no weights, no training"
    assert rows["dim"] == "1024" and "max tokens" not in rows  # None is "not known": left off
    view = model.with_options(ngram=1)
    assert dict(fact_rows(view.info()))["ngram"] == "1" and model.ngram == 3  # a view; the loaded model is unchanged
    assert view.score([A], [B])[0] == pytest.approx(_expected(A, B, 1, 1024), abs=1e-5)


def test_the_toy_gets_a_colour_of_its_own(project, monkeypatch):
    monkeypatch.setenv("SIMDASH_REGISTRY", str(project / "models" / "registry.toml"))
    keys = Registry.load().keys()
    assert keys[-1] == "toy"
    colours = {k: theme.model_color(k) for k in keys}
    assert len(set(colours.values())) == len(keys)
    # every shipped key is in MODEL_COLORS, so the toy is the first key to take a spare
    assert colours["toy"] == theme.SPARE_COLORS[0]


# ------------------------------------------------------------------------------------------- colours
def test_no_two_registry_keys_share_a_colour_with_ten_more_models(tmp_path, monkeypatch):
    extra = [f"extra-{i}" for i in range(10)]
    registry = tmp_path / "registry.toml"
    registry.write_text((REPO / "models" / "registry.toml").read_text(encoding="utf-8") + "".join(
        f'\n[models.{k}]\nfamily = "w2v"\nsource = "path:x"\n' for k in extra), encoding="utf-8")
    monkeypatch.setenv("SIMDASH_REGISTRY", str(registry))
    keys = Registry.load().keys()
    assert keys[-10:] == extra
    colours = [theme.model_color(k) for k in keys]
    assert len(set(colours)) == len(keys) == 22
    # shipped keys keep their colours; the new ones take the spares in registry order, then generated hues
    assert all(theme.model_color(k) == c for k, c in theme.MODEL_COLORS.items())
    assert colours[-10:-3] == list(theme.SPARE_COLORS)
    assert not set(colours[-3:]) & (set(theme.SPARE_COLORS) | set(theme.MODEL_COLORS.values()))


def test_assign_colors_is_distinct_and_deterministic_for_many_keys():
    keys = ["w2v", *(f"m{i}" for i in range(200)), "bert", "m3"]  # a repeated key keeps its first colour
    got = theme.assign_colors(keys)
    assert len(got) == 202 and len(set(got.values())) == 202
    assert got == theme.assign_colors(keys)
    assert (got["w2v"], got["bert"], got["m0"]) == (theme.MODEL_COLORS["w2v"], theme.MODEL_COLORS["bert"],
                                                    theme.SPARE_COLORS[0])
    assert all(re.fullmatch(r"#[0-9A-F]{6}", c) for c in got.values())


def test_keys_outside_the_registry_get_unused_colours_too():
    """A model trained in the browser, or a request name, is not in the registry file: it still gets a colour that
    no registry model and no earlier such key has."""
    registry = set(theme.assign_colors(theme.registry_order()).values())
    seen = [theme.model_color(f"session-model-{i}") for i in range(3)]
    assert len(set(seen)) == 3 and not set(seen) & registry
    assert theme.model_color("session-model-1") == seen[1]


# ------------------------------------------------------------------------------------------ dashboard
@pytest.fixture
def dashboard(project, toy_module, tmp_path, monkeypatch):
    """The dashboard over a registry of the page's toy table and a flagged second model of the same family (the
    family registered in this process, as a plugin would be)."""
    import streamlit as st

    from backend import families

    table = doc_blocks()["models/registry.toml"].replace("default = false", "default = true")
    flagged = ('\n[models.toy-flagged]\nfamily = "toy"\nlabel = "Flagged toy"\nsource = "path:x"\nlanguage = "multi"\n'
               'licence = "research use only"\nresearch_only = true\nstands_in_for = "raw BERT"\n'
               'note = "A stand-in."\n')
    registry = tmp_path / "registry.toml"
    registry.write_text(table + flagged, encoding="utf-8")
    monkeypatch.setenv("SIMDASH_REGISTRY", str(registry))
    monkeypatch.setenv("SIMDASH_WARM", "0")
    monkeypatch.setitem(families._REGISTERED, "toy", toy_module.Model)
    st.cache_resource.clear()  # the process-wide Backend must read this registry
    yield
    st.cache_resource.clear()  # and no later test may get it


def _app(lang: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.query_params.update({"models": ["toy", "toy-flagged"]})
    at.run()
    at.switch_page("pages/models.py").run()
    at.sidebar.radio(key="lang").set_value(lang).run()  # as a person switches it
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_dashboard_draws_the_toy_from_its_declaration_and_its_table(dashboard):
    at = _app("zh")
    slider = at.sidebar.select_slider(key="toy.ngram")
    assert slider.label == "n 元长度" and slider.options == ["1", "2", "3", "4", "5"] and slider.value == 3
    assert slider.help.startswith("每个 n 元组的字符数")
    # the flags are fields: one stand-in warning in the sidebar, one licence warning on the flagged card only
    assert sum("这不是原始 BERT" in str(c.value) for c in at.sidebar.caption) == 1
    assert [w.value for w in at.warning if "许可证" in str(w.value)] == [
        "许可证：research use only。请勿商用；在 models/registry.toml 中改一行注册项即可换用其他模型。"]
    card = "\n".join(str(m.value) for m in at.main.markdown)
    # the family's own facts and the registry's, names translated where the catalogue knows them
    for line in ("- **ngram**: 3", "- **hashing**: crc32", "- **learned**: nothing: no weights, no training",
                 "- **选项**: ngram=3, buckets=1024"):
        assert line in card, card
    en = _app("en")
    assert en.sidebar.select_slider(key="toy.ngram").label == "n-gram length"


def test_hatching_marks_the_registrys_language_variants_not_a_key_spelling(tmp_path, monkeypatch):
    registry = tmp_path / "registry.toml"
    registry.write_text('[models.foo]\nfamily = "w2v"\nsource = "path:x"\nvariants = { zh = "foo-cn" }\n'
                        '[models.foo-cn]\nfamily = "w2v"\nsource = "path:x"\nlanguage = "zh"\n'
                        '[models.bar-zh]\nfamily = "w2v"\nsource = "path:x"\nlanguage = "zh"\n', encoding="utf-8")
    monkeypatch.setenv("SIMDASH_REGISTRY", str(registry))
    assert [theme.model_pattern(k) for k in ("foo", "foo-cn", "bar-zh")] == ["", "/", ""]
