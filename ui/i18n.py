"""The interface language: English or Chinese, chosen in the sidebar and kept in the URL (``?lang=zh``).

Every string a person reads goes through :func:`t`, written in English at the call site (so the code reads
naturally) and looked up in the Chinese catalogue (:mod:`ui.locale_zh`) when the interface is in Chinese.
A family's option titles and help texts are the exception: the option declares its own Chinese
(:func:`option_texts`), so a family outside the shipped set needs no catalogue entry and shows English where it
declares none. ``tests/ui/test_i18n.py`` fails when a string shown by a page or a verdict template has no Chinese
translation, when a shipped family's run-time option declares no Chinese, and when a page passes a bare string
literal to a Streamlit element instead of ``t(...)``.

Model outputs (texts, scores) and model keys are data and are never translated; backend warnings are translated
phrase by phrase where the catalogue knows the phrase (:func:`tw`).
"""

from __future__ import annotations

import re
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
    """A backend warning in the interface language: known phrases are replaced, the rest (words, model keys,
    numbers) is kept."""
    if lang() != "zh" or not message:
        return message
    for pattern, repl in _PHRASES:
        message = pattern.sub(repl, message)
    return message


_PHRASES = [(re.compile(re.escape(en)), zh) for en, zh in sorted(PHRASES_ZH.items(), key=lambda kv: -len(kv[0]))]


def language_ui() -> str:
    """The language switch (top of the sidebar, bound to ``?lang=``); returns the chosen language."""
    with st.sidebar:
        # Plain option values (no format_func) on a URL-bound widget: the URL keeps ?lang=zh, not the label.
        st.radio("Interface language / 界面语言", list(LANGUAGES), key=LANG_KEY, bind="query-params", horizontal=True,
                 captions=list(LANGUAGES.values()))
    return lang()


__all__ = ["LANGUAGES", "lang", "language_ui", "option_texts", "t", "tw"]
