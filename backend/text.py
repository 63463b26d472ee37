"""Text hygiene shared by every model: cleaning, language detection and word tokenisation.

Every family sees text through these functions, so "what counts as empty", "what is Chinese" and
"what is a word" mean the same thing in the word-vector model, in ESIM and in the warnings the UI shows.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache
from typing import Literal

Language = Literal["en", "zh", "mixed", "unknown"]

# CJK Unified Ideographs (+ extension A and compatibility ideographs): enough to tell Chinese text apart.
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
# English words: lower-cased letters/digits with inner apostrophes or hyphens ("don't", "e-mail").
_EN_WORD = re.compile(r"[a-z0-9]+(?:['’\-][a-z0-9]+)*")
# Control and format characters (except ordinary whitespace) are dropped: they are invisible to a reader
# and only confuse tokenizers.
_WS = re.compile(r"\s+")


def clean_text(text: object) -> str:
    """Normalise a text for every model: NFKC, drop control characters, collapse whitespace.

    Parameters
    ----------
    text : object
        Anything; ``None`` and NaN (empty spreadsheet cells) become ``""``.

    Returns
    -------
    str
        The cleaned text (possibly empty).
    """
    if text is None:
        return ""
    if isinstance(text, float) and text != text:  # NaN from an empty CSV cell
        return ""
    s = unicodedata.normalize("NFKC", str(text))
    s = "".join(ch if (ch.isspace() or unicodedata.category(ch)[0] != "C") else " " for ch in s)
    return _WS.sub(" ", s).strip()


def detect_language(text: str) -> Language:
    """Guess whether a text is English, Chinese or a mixture, by counting scripts.

    A text is ``"zh"`` when at least 30% of its letters are CJK ideographs and it has few Latin letters,
    ``"mixed"`` when both scripts are substantial, ``"en"`` when it has Latin letters only and
    ``"unknown"`` when it has neither (digits, emoji, punctuation).
    """
    n_cjk = len(_CJK.findall(text))
    n_lat = len(_LATIN.findall(text))
    if n_cjk == 0 and n_lat == 0:
        return "unknown"
    if n_cjk == 0:
        return "en"
    # Chinese characters carry about a word each, Latin letters about a fifth of one: weigh accordingly.
    if n_lat == 0 or n_cjk >= n_lat / 5 * 3:
        return "zh" if n_lat <= 3 * n_cjk else "mixed"
    return "mixed" if n_cjk >= 2 else "en"


def has_cjk(text: str) -> bool:
    """True when the text contains at least one CJK ideograph."""
    return _CJK.search(text) is not None


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    # jieba logs its dictionary loading at INFO on every process start; it is noise in a dashboard.
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def tokenize(text: str, lang: Language | Literal["auto"] = "auto", chinese: Literal["word", "char"] = "word") -> list[str]:
    """Split a text into lower-cased word tokens.

    English: the ``[a-z0-9]+`` word regex on lower-cased text (punctuation is dropped, as GloVe's own
    tokenisation keeps little of it that matters for similarity). Chinese: ``jieba`` words (or single
    characters with ``chinese="char"``), keeping only tokens that contain a letter, digit or ideograph.
    Mixed text goes through jieba, which passes Latin words through intact.

    Parameters
    ----------
    text : str
        Text to split (cleaned or not).
    lang : {"auto", "en", "zh", "mixed", "unknown"}
        Language; ``"auto"`` detects it per text.
    chinese : {"word", "char"}
        Chinese segmentation granularity.

    Returns
    -------
    list of str
    """
    text = clean_text(text)
    if not text:
        return []
    if lang == "auto":
        lang = detect_language(text)
    if lang in ("en", "unknown") and not has_cjk(text):
        return _EN_WORD.findall(text.lower())
    if chinese == "char":
        out: list[str] = []
        for piece in re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[A-Za-z0-9]+", text):
            out.append(piece.lower())
        return out
    toks = [t.strip().lower() for t in _jieba().lcut(text)]
    return [t for t in toks if t and any(ch.isalnum() for ch in t)]
