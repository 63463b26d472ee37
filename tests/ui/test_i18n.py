"""Every string a person reads has a Chinese translation, and pages never pass bare text to Streamlit.

The strings are found in the code itself: every ``t("...")``/``tr("...")`` literal in ``app.py``, ``pages/`` and ``ui/``,
every verdict template, the glossary, the model card's fact names and words, the shipped registry's notes and
licences, and the English-only presets' descriptions. A new string without a translation fails here, naming it.

Backend messages (warnings, routing notes, errors) are translated by ``ui.i18n.tw`` from ``PHRASES_ZH``: the real
messages, made here by the backend's own functions, must come out with no English sentence left in them, and every
entry must still match something the backend says (a reworded message would otherwise leave a dead entry behind).

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
    from ui.tables import LANGUAGE_NAMES, ROLE_NAMES, model_facts

    out |= set(LANGUAGE_NAMES.values()) | set(ROLE_NAMES.values())

    out |= {name for name, _ in model_facts({"family": "x", "layer": 1, "weighting": "sif", "vocabulary": 1,
                                             "score": "x", "dev_spearman": 0.5})}
    # What the shipped registry says the card and sidebar show as words: a model's stand-in warning names it.
    out |= {s.stands_in_for for s in Registry.load(DEFAULT_REGISTRY) if s.stands_in_for}
    # The Models page's cards: each shipped model's note and licence.
    out |= {x for s in Registry.load(DEFAULT_REGISTRY) for x in (s.note, s.licence) if x}
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


#: option choices that are a method's name, shown as they are in either language.
METHOD_NAMES = {"sif", "mean", "cls", "max", "first_last_avg"}


def test_shipped_option_choices_that_are_words_have_a_chinese_translation():
    """The sidebar shows a choice through the catalogue (``ui.sidebar.choice_text``); the URL keeps the value."""
    from ui.locale_zh import ZH

    choices = {str(c) for _, o in shipped_runtime_options() for c in (o.choices or ())}
    assert {"skip", "chars", "simplified"} <= choices  # not vacuous
    missing = sorted(c for c in choices - METHOD_NAMES if c not in ZH)
    assert not missing, f"option choices without a Chinese word in ui/locale_zh.py: {missing}"


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
    assert i18n.tw("A: empty text: no score") == "A: 文本为空，无分数"
    assert i18n.tw("text looks Chinese; w2v was trained on English only") == "文本看起来是中文；w2v 仅用英文训练"
    # a template keeps its fields (keys, numbers) and puts them in Chinese word order; a phrase never rewrites them
    assert i18n.tw("scored by sbert-zh (the zh variant of sbert)") == "由 sbert-zh 打分（sbert 的中文版本）"
    assert i18n.tw("unknown words ignored: English, failed") == "已忽略未登录词： English, failed"


def test_every_preset_has_a_chinese_name():
    from backend.lab.presets import PRESETS

    names = [p.name_zh for p in PRESETS.values()]
    assert all(_CJK.search(n) for n in names), [p.name for p in PRESETS.values() if not _CJK.search(p.name_zh)]
    assert len(set(names)) == len(PRESETS)  # two presets with one Chinese name could not be told apart


# ------------------------------------------------------------------------------------- backend messages
#: an English phrase: three words of three letters or more in a row (what the browser test looks for too).
ENGLISH_RUN = re.compile(r"[A-Za-z]{3,}(?:[ ,]+[A-Za-z]{3,}){2,}")
_FIELD = re.compile(r"\{(\w+)\}")


def backend_messages() -> list[str]:
    """Messages the backend shows a person, made by its own functions (no model loaded)."""
    from types import SimpleNamespace

    from backend.base import SentenceModel, truncation_message
    from backend.families import family_class
    from backend.files.index import IndexInfo
    from backend.files.io import decode_bytes, read_table
    from backend.lab.projection import ProjectionInfo
    from backend.options import OptionError
    from backend.routing import carry_options, corpus_routes, route_pairs, route_texts

    reg = Registry.load(DEFAULT_REGISTRY)

    def specs(key: str):
        return family_class(reg[key].family).OPTIONS

    out = [truncation_message(300, 128, "word", kept=128), truncation_message(300, 256, "##ing", "word pieces", 254),
           truncation_message(300, 254, "the", "word pieces", kept=200, side="A") + " (the pair's limit is 256)"]
    zh, en = "我的包裹什么时候到？", "Will it rain this weekend?"
    out += [r.note for r, _ in route_pairs(reg, specs, "sbert", {}, [zh], [zh]).values() if r.note]
    out += [route_texts(reg, specs, "sbert", {}, [zh, zh, zh, en]).note, route_texts(reg, specs, "sbert", {}, [en] * 3 + [zh]).note]
    out += [r.note for r in corpus_routes(reg, specs, ["sbert-zh"], ["sbert"])[0].values()]
    out += [r.note for r in corpus_routes(reg, specs, ["sbert-zh"], ["w2v"])[0].values()]
    for asked, target, options in (("bert", "bert-zh", {"pooling": "nonsense"}), ("bert", "sbert-zh", {"pooling": "cls"}),
                                   ("w2v", "w2v-zh", {"weighting": "nonsense"})):
        with pytest.raises(OptionError) as refused:
            carry_options(reg, specs, asked, target, options)
        out.append(str(refused.value))
    for languages, text in ((("en",), zh), (("en",), "我想 return 这个 order please"), (("zh",), "Привет мир"),
                            (("en",), "こんにちは")):
        model = SimpleNamespace(languages=languages, key="w2v")
        out += SentenceModel._language_warnings(model, text)
    out += [ProjectionInfo("umap", 100_000, 10_000, 42, cached=True).describe(), ProjectionInfo("pca", 80, 80, 7).describe(),
            IndexInfo("exact", 900, 384, note="not saved (disk full)").describe(),
            IndexInfo("ivf", 1_000_000, 384, recall_at_10=0.97, recall_queries=200, params={"nprobe": 16}).describe()]
    out += decode_bytes("naïve café".encode("cp1252"))[2] + decode_bytes("a,b".encode("utf-16"))[2]
    out += decode_bytes(b"a,b", "latin-1")[2]
    out += read_table(b"a,b\n1,2,3\n4,5\n").notes
    return [m for m in out if m]


def test_backend_messages_read_as_chinese(monkeypatch):
    from ui import i18n

    messages = backend_messages()
    assert len(messages) >= 20, messages  # not vacuous: every kind above made its message
    monkeypatch.setattr(i18n, "lang", lambda: "zh")
    left = {m: i18n.tw(m) for m in messages if ENGLISH_RUN.search(i18n.tw(m))}
    assert not left, "English left after translation:\n" + "\n".join(f"{m}\n  -> {z}" for m, z in left.items())
    assert all(_CJK.search(i18n.tw(m)) for m in messages)
    monkeypatch.setattr(i18n, "lang", lambda: "en")
    assert [i18n.tw(m) for m in messages] == messages  # the English interface shows them as they are


def test_warning_templates_keep_their_fields():
    from ui.locale_zh import PHRASES_ZH

    bad = [k for k, v in PHRASES_ZH.items() if set(_FIELD.findall(k)) != set(_FIELD.findall(v))]
    assert not bad, f"fields differ in: {bad}"


def _backend_strings() -> list[str]:
    """Every string literal of backend/, an f-string's fields as NUL (an entry's text must lie between them)."""
    out = []
    for path in sorted((REPO / "backend").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                out.append(node.value)
            elif isinstance(node, ast.JoinedStr):
                out.append("".join(v.value if isinstance(v, ast.Constant) else "\0" for v in node.values))
    return out


def test_every_warning_phrase_is_something_the_backend_says():
    from ui.locale_zh import PHRASES_ZH

    said = _backend_strings()
    assert len(said) > 1000
    # Each literal part of an entry (between its fields) must occur in one backend string; a part that is only a
    # language name or a unit is a field's value, which the backend writes from a dict or an argument.
    dead = [k for k in PHRASES_ZH
            if not all(any(part in s for s in said) for part in _FIELD.split(k)[::2] if len(part.strip(" ()")) > 3)]
    assert not dead, f"PHRASES_ZH entries no backend message contains: {dead}"
