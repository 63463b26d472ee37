"""The interface language: English or Chinese, chosen in the sidebar and kept in the URL (``?lang=zh``).

Every string a person reads goes through :func:`t`, written in English at the call site (so the code reads
naturally) and looked up in the Chinese catalogue (:mod:`ui.locale_zh`) when the interface is in Chinese.
A family's option titles and help texts are the exception: the option declares its own Chinese
(:func:`option_texts`), so a family outside the shipped set needs no catalogue entry and shows English where it
declares none. ``tests/ui/test_i18n.py`` fails when a string shown by a page or a verdict template has no Chinese
translation, when a shipped family's run-time option declares no Chinese, and when a page passes a bare string
literal to a Streamlit element instead of ``t(...)``.

Model outputs (texts, scores), model keys and registry labels are data and are never translated; backend messages
(warnings, routing notes, errors) are translated by :func:`tw` where the catalogue knows them, and the test makes
the backend's real messages and checks that no English sentence is left in them.

An option list whose shown names are translated keeps its own values in the URL (:func:`url_choice`):
Streamlit's ``bind="query-params"`` would write the shown name, and a Chinese link would not open in English.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from backend.options import Option
from ui.locale_zh import PHRASES_ZH, ZH

LANGUAGES: dict[str, str] = {"en": "English", "zh": "中文"}
#: the session-state key (and URL parameter) of the language switch.
LANG_KEY = "lang"


def lang() -> str:
    """The interface language of this session: ``"en"`` or ``"zh"``."""
    value = st.session_state.get(LANG_KEY) or st.query_params.get(LANG_KEY) or "en"
    return value if value in LANGUAGES else "en"


def t(text: str, **values: Any) -> str:
    """``text`` in the interface language, with ``{name}`` fields filled from ``values``.

    A string missing from the catalogue is shown in English (the i18n test keeps that from shipping).
    """
    out = ZH.get(text, text) if lang() == "zh" else text
    return out.format(**values) if values else out


def option_texts(opt: Option) -> tuple[str, str]:
    """An option's widget label and help text in the interface language: what the option declares for it
    (``label_zh``/``why_zh``), else its English."""
    language = lang()
    return opt.title_in(language), opt.why_in(language)


def tw(message: str) -> str:
    """A backend message (warning, routing note, error) in the interface language.

    :data:`ui.locale_zh.PHRASES_ZH` holds two kinds of entries. A *template* names its variable parts
    (``"scored by {key} (the {lang} variant of {asked})"``): a message that contains it is rewritten in Chinese word
    order, the parts kept (model keys, numbers, words) and the named language/unit parts translated. A *phrase*
    without fields is replaced where it stands. Templates go first (longest first), so a phrase never rewrites what
    a template kept; what the catalogue does not know stays English.
    """
    if lang() != "zh" or not message:
        return message
    # Messages are joined with "; ": in Chinese text, a full-width semicolon.
    return _translate(message).replace("; ", "；")


#: a ``{field}`` in a PHRASES_ZH key.
_FIELD = re.compile(r"\{(\w+)\}")
#: fields whose text may hold spaces (lists, errors, units); the others are one token (a key, a number).
_SPACED = frozenset({"error", "known", "lines", "params", "reason", "shown", "unit", "lang", "other", "trained",
                     "allowed", "path", "cut", "why"})
#: fields that are themselves backend messages, translated in turn.
_NESTED = frozenset({"error", "reason", "why", "lines"})
#: whole field values that are interface words (a language, a unit), not data.
VALUES_ZH = {"zh": "中文", "en": "英文", "multi": "多语言", "English": "英文", "Chinese": "中文", "Japanese": "日文",
             "Korean": "韩文", "English/Chinese": "英文/中文", "Chinese/English": "中文/英文",
             "another script": "其他文字", "this": "这种文字", "word pieces": "子词", "tokens": "词", "none": "无",
             "Arabic": "阿拉伯文", "Cyrillic": "西里尔文", "Greek": "希腊文", "Hebrew": "希伯来文", "Thai": "泰文",
             "Devanagari": "天城文", "Hangul": "韩文"}


def _template(en: str) -> re.Pattern:
    """A PHRASES_ZH key with fields as a regex: a repeated field must repeat its text."""
    parts = _FIELD.split(en)  # literal, field, literal, field, ..., literal
    out, seen = [], set()
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(re.escape(part))
        elif part in seen:
            out.append(f"(?P={part})")
        else:
            seen.add(part)
            last = i == len(parts) - 2 and parts[-1] == ""
            body = "[^;]+" if part in _SPACED and last else ".+?" if part in _SPACED else r"[^\s;]+"
            out.append(f"(?P<{part}>{body})")
    return re.compile("".join(out))


def _fill(zh: str, match: re.Match) -> str:
    values = {}
    for name, value in match.groupdict().items():
        value = VALUES_ZH.get(value, value)
        values[name] = _translate(value) if name in _NESTED else value
    return zh.format(**values)


def _translate(text: str) -> str:
    for pattern, zh in _TEMPLATES:
        m = pattern.search(text)
        if m:
            return _translate(text[: m.start()]) + _fill(zh, m) + _translate(text[m.end():])
    for pattern, zh in _PHRASES:
        text = pattern.sub(zh, text)
    return text


_BY_LENGTH = sorted(PHRASES_ZH.items(), key=lambda kv: -len(kv[0]))
_TEMPLATES = [(_template(en), zh) for en, zh in _BY_LENGTH if _FIELD.search(en)]
_PHRASES = [(re.compile(re.escape(en)), zh.replace("\\", "\\\\")) for en, zh in _BY_LENGTH if not _FIELD.search(en)]


def url_choice(widget: Callable, label: str, options: Sequence, key: str, format_func: Callable[[object], str],
               default: object = None, **kwargs) -> object:
    """A radio or select box that shows translated option names while the URL keeps the option itself
    (``?key=demo-zh``), so one link opens the same choice in either interface language.

    Streamlit's ``bind="query-params"`` writes the *shown* name into the URL: a Chinese name would make a link the
    English interface cannot read. So the URL is kept here: read once per session (an unknown value is ignored),
    written on every run, and left out while ``default`` (else the first option) is chosen. The value outlives page
    switches (``persist_state="session"``), as a bound widget's would.
    """
    options = list(options)
    default = options[0] if default is None else default
    if st.session_state.get(key) not in options:
        asked = st.query_params.get(key)
        st.session_state[key] = next((o for o in options if str(o) == asked), default)
    # The names are computed now, in this run's language: a format_func that translates when called would read the
    # language wherever Streamlit (or AppTest) calls it later, outside this run.
    shown = {o: format_func(o) for o in options}
    value = widget(label, options, key=key, format_func=shown.__getitem__, persist_state="session", **kwargs)
    if value == default:
        st.query_params.pop(key, None)
    else:
        st.query_params[key] = str(value)
    return value


def language_ui() -> str:
    """The language switch (top of the sidebar, bound to ``?lang=``); returns the chosen language."""
    with st.sidebar:
        # Plain option values (no format_func) on a URL-bound widget: the URL keeps ?lang=zh, not the label.
        st.radio("Interface language / 界面语言", list(LANGUAGES), key=LANG_KEY, bind="query-params", horizontal=True,
                 captions=list(LANGUAGES.values()))
    return lang()


__all__ = ["LANGUAGES", "lang", "language_ui", "option_texts", "t", "tw", "url_choice"]
