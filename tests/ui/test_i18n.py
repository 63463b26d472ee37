"""Every string a person reads has a Chinese translation, and pages never pass bare text to Streamlit.

The strings are found in the code itself: every ``t("...")``/``tr("...")`` literal in ``app.py``, ``pages/`` and ``ui/``,
every verdict template, every family option's title and help text, the glossary, and the English-only presets'
descriptions. A new string without a translation fails here, naming it.
"""

from __future__ import annotations

import ast
import re

import pytest

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
    from backend.families import family_class
    from backend.presets import PRESETS
    from backend.registry import Registry
    from backend.verdicts import TEMPLATES
    from ui.lab.common import GLOSSARY
    from ui.lab.probe import WHY_MINUS_TWO

    out = _literals("t") | _literals("tr") | set(TEMPLATES.values()) | set(GLOSSARY.values()) | {WHY_MINUS_TWO}
    for family in sorted({s.family for s in Registry.load()}):
        for opt in family_class(family).OPTIONS:
            if opt.runtime:
                out |= {opt.title, opt.why}
    out |= {p.description for p in PRESETS.values() if not p.description_zh}
    from ui.tables import model_facts

    out |= {name for name, _ in model_facts({"family": "x", "layer": 1, "weighting": "sif", "vocabulary": 1,
                                             "score": "x", "dev_spearman": 0.5})}
    return out


def test_every_interface_string_has_a_chinese_translation():
    from ui.locale_zh import ZH

    missing = sorted(s for s in interface_strings() if s not in ZH and not ALLOWED.match(s))
    assert not missing, f"{len(missing)} strings lack a translation in ui/locale_zh.py:\n" + "\n".join(missing)


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
