"""Every string a person reads has a Chinese translation, and pages never pass bare text to Streamlit.

The strings are found in the code itself: every ``t("...")``/``tr("...")`` literal in ``app.py``, ``pages/`` and ``ui/``,
every verdict template, the glossary, the model card's fact names, and the English-only presets' descriptions. A new
string without a translation fails here, naming it.

Option titles and help texts are not in the catalogue: each option declares its Chinese (``Option.label_zh``,
``why_zh``). The shipped families (those ``models/registry.toml`` names) must declare it for every run-time option;
a family outside that set shows English where it declares none, and nothing here fails for it.
"""

from __future__ import annotations

import ast
import re

import pytest

from backend.options import Option
from backend.registry import DEFAULT_REGISTRY, Registry
from tests.conftest import REPO

UI_FILES = [REPO / "app.py", *sorted((REPO / "pages").glob("*.py")), *sorted((REPO / "ui").rglob("*.py"))]
#: Streamlit calls whose first argument or label/help/text/placeholder is shown to a person.
SHOWN = {"title", "header", "subheader", "caption", "markdown", "info", "warning", "error", "success", "button",
         "download_button", "selectbox", "radio", "multiselect", "slider", "select_slider", "toggle", "checkbox",
         "text_input", "text_area", "number_input", "file_uploader", "expander", "metric", "spinner",
         "segmented_control", "page_link", "status", "progress", "tabs", "write"}
TEXT_KWARGS = {"label", "help", "text", "placeholder"}
#: literal strings a page may show as they are: no words to translate, or already in both languages.
ALLOWED = re.compile(r"^[\s\W\d_]*$|^(k|ROC|P\(similar\)|first_last_avg|UMAP|PCA|en|zh|mean|sif|ms|s)$|"
                     r".*[\u4e00-\u9fff].*")
_WORD = re.compile(r"[A-Za-z]{2,}")


def _literals(call_name: str) -> set[str]:
    found = set()
    for path in UI_FILES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == call_name \
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return found


def interface_strings() -> set[str]:
    """Every English string the interface can show."""
    from backend.lab.presets import PRESETS
    from backend.lab.verdicts import TEMPLATES
    from ui.lab.common import GLOSSARY
    from ui.lab.probe import WHY_MINUS_TWO

    out = _literals("t") | _literals("tr") | set(TEMPLATES.values()) | set(GLOSSARY.values()) | {WHY_MINUS_TWO}
    out |= {p.description for p in PRESETS.values() if not p.description_zh}
    from ui.tables import model_facts

    out |= {name for name, _ in model_facts({"family": "x", "layer": 1, "weighting": "sif", "vocabulary": 1,
                                             "score": "x", "dev_spearman": 0.5})}
    # What the shipped registry says the card and sidebar show as words: a model's stand-in warning names it.
    out |= {s.stands_in_for for s in Registry.load(DEFAULT_REGISTRY) if s.stands_in_for}
    return out


def shipped_runtime_options() -> list[tuple[str, Option]]:
    """``(family, option)`` for every run-time option of the families the shipped registry uses (not
    ``$SIMDASH_REGISTRY``'s: a family of one's own is not held to the shipped set's translations)."""
    from backend.families import family_class

    families = sorted({s.family for s in Registry.load(DEFAULT_REGISTRY)})
    return [(f, o) for f in families for o in family_class(f).OPTIONS if o.runtime]


def test_every_interface_string_has_a_chinese_translation():
    from ui.locale_zh import ZH

    missing = sorted(s for s in interface_strings() if s not in ZH and not ALLOWED.match(s))
    assert not missing, f"{len(missing)} strings lack a translation in ui/locale_zh.py:\n" + "\n".join(missing)


_CJK = re.compile(r"[\u4e00-\u9fff]")


def test_shipped_families_declare_chinese_for_their_runtime_options():
    options = shipped_runtime_options()
    # not vacuous: the sidebar's widgets of the shipped set are among them
    assert {"bert.layer", "bert.pooling", "w2v.weighting", "w2v.sif_a", "w2v.remove_pc", "w2v.oov",
            "cross.symmetric", "hybrid.symmetric"} <= {f"{f}.{o.name}" for f, o in options}
    missing = [f"{f}.{o.name}" for f, o in options if not (_CJK.search(o.label_zh) and _CJK.search(o.why_zh))]
    assert not missing, f"run-time options without a Chinese label_zh and why_zh: {missing}"


def test_option_texts_live_in_their_declaration_not_in_the_catalogue():
    """One place per text: a help text kept in both would let the two drift apart."""
    from ui.locale_zh import ZH

    doubled = [f"{f}.{o.name}" for f, o in shipped_runtime_options() if o.why in ZH]
    assert not doubled, f"option help texts still in ui/locale_zh.py: {doubled}"


def test_option_texts_follow_the_interface_language(monkeypatch):
    from ui import i18n

    declared = Option("n", int, 3, "How many.", runtime=True, label="count", label_zh="数量", why_zh="多少个。")
    bare = Option("n", int, 3, "How many.", runtime=True)  # a family of one's own that declares no Chinese
    monkeypatch.setattr(i18n, "lang", lambda: "zh")
    assert i18n.option_texts(declared) == ("数量", "多少个。")
    assert i18n.option_texts(bare) == ("n", "How many.")
    monkeypatch.setattr(i18n, "lang", lambda: "en")
    assert i18n.option_texts(declared) == ("count", "How many.")


def test_translations_keep_their_placeholders():
    from ui.locale_zh import ZH

    field = re.compile(r"\{[^{}]*\}")
    bad = [k for k, v in ZH.items() if sorted(field.findall(k)) != sorted(field.findall(v))]
    assert not bad, f"placeholders differ in: {bad}"


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_pages_never_show_bare_text(path):
    """A string literal (or f-string) given to a Streamlit element would bypass the translation."""
    def words(a: ast.AST) -> bool:
        if isinstance(a, ast.Constant) and isinstance(a.value, str):
            return not ALLOWED.match(a.value) and any(not ALLOWED.match(w) for w in _WORD.findall(a.value))
        if isinstance(a, ast.JoinedStr):  # only the literal parts of an f-string count
            return any(words(v) for v in a.values if isinstance(v, ast.Constant))
        return False

    bad = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SHOWN):
            continue
        if isinstance(node.func.value, ast.Name) and node.func.value.id in ("_LOG", "logging", "log"):
            continue
        args = ([] if node.func.attr == "page_link" else node.args[:1]) + [k.value for k in node.keywords
                                                                           if k.arg in TEXT_KWARGS]
        bad += [f"line {node.lineno}: .{node.func.attr}({ast.unparse(a)[:60]})" for a in args if words(a)]
    assert not bad, "\n".join(bad)


def test_warning_phrases_translate_inside_a_message(monkeypatch):
    from ui import i18n

    monkeypatch.setattr(i18n, "lang", lambda: "zh")
    assert i18n.tw("A: empty text: no score") != "A: empty text: no score"
    assert "w2v" in i18n.tw("text looks Chinese; w2v was trained on English only")
