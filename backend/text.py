"""Text hygiene shared by every model: cleaning, language detection and word tokenisation.

Every family sees text through these functions, so "what counts as empty", "what is Chinese" and
"what is a word" mean the same thing in the word-vector model, in ESIM and in the warnings the UI shows.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

Language = Literal["en", "zh", "mixed", "ja", "ko", "other", "unknown"]

# CJK Unified Ideographs (+ extension A and compatibility ideographs): enough to tell Chinese text apart.
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
# English words: lower-cased letters/digits with inner apostrophes or hyphens ("don't", "e-mail").
EN_WORD = re.compile(r"[a-z0-9]+(?:['’\-][a-z0-9]+)*")
# Penn-Treebank-style contractions, as GloVe's (Stanford) tokenizer produced its vocabulary: "don't" ->
# "do" "n't", "it's" -> "it" "'s". GloVe has vectors for "n't" and "'s", not for "don't".
EN_WORD_PTB = r"[a-z0-9]+(?=n't\b)|n't\b|'(?:s|re|ve|ll|d|m)\b|[a-z0-9]+(?:-[a-z0-9]+)*"
_EN_WORD_PTB = re.compile(EN_WORD_PTB)
# Control characters (Cc: NUL, ESC, DEL, C1) become a space: they can separate words in text pasted from a
# terminal or a broken export. Invisible format characters (Cf: zero-width space and joiners, soft hyphen, bidi
# marks, BOM) are removed: they sit *inside* words ("hel\u200blo" is "hello" to a reader).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_FORMAT = re.compile("[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]")
# Lone UTF-16 surrogates (from a mis-decoded file or a JSON "\ud800") are not text: tokenizers reject them.
_SURROGATE = re.compile("[\ud800-\udfff]")
_KANA = re.compile("[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")


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
    s = str(text)
    # Fast path for plain ASCII (most English input): NFKC cannot change it, only C0 controls need dropping.
    if not s.isascii():
        s = _SURROGATE.sub("", s)
        s = _CONTROL.sub(" ", _FORMAT.sub("", unicodedata.normalize("NFKC", s)))
    elif not s.isprintable():
        s = _CONTROL.sub(" ", s)
    return " ".join(s.split())


def has_words(text: str) -> bool:
    """True when a text has at least one letter or digit (in any script): emoji, punctuation and symbols alone
    give no vector and no score, the same way in every model."""
    return any(ch.isalnum() for ch in text)


def script_name(text: str) -> str:
    """The Unicode script of the first letter that is neither Latin nor a CJK ideograph (``"ARABIC"``,
    ``"CYRILLIC"``, ``"HANGUL"``), or ``""``."""
    for ch in text:
        if ch.isalpha() and not ch.isascii() and not _CJK.match(ch):
            try:
                return unicodedata.name(ch).split()[0]
            except ValueError:
                return ""
    return ""


def detect_language(text: str) -> Language:
    """Guess whether a text is English, Chinese or a mixture, by counting scripts.

    A text is ``"zh"`` when at least 30% of its letters are CJK ideographs and it has few Latin letters,
    ``"mixed"`` when both scripts are substantial, ``"en"`` when it has Latin letters only, ``"ja"`` when it
    has kana, ``"ko"`` when it has Hangul, ``"other"`` when its letters are in another script (Arabic,
    Cyrillic, ...) and ``"unknown"`` when it has no letters (digits, emoji, punctuation).
    """
    if text.isascii():  # fast path: most English input; no CJK possible
        return "en" if _LATIN.search(text) else "unknown"
    if _KANA.search(text):
        return "ja"
    if _HANGUL.search(text):
        return "ko"
    n_cjk = len(_CJK.findall(text))
    n_lat = len(_LATIN.findall(text))
    if n_cjk == 0 and n_lat == 0:
        return "other" if any(ch.isalpha() for ch in text) else "unknown"
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


def tokenize(
    text: str,
    lang: Language | Literal["auto"] = "auto",
    chinese: Literal["word", "char"] = "word",
    contractions: bool = False,
) -> list[str]:
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
    contractions : bool
        Split English contractions the Penn Treebank way (``don't`` -> ``do n't``), as GloVe's vocabulary expects.

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
        low = text.lower().replace("’", "'")
        return (_EN_WORD_PTB if contractions else EN_WORD).findall(low)
    if chinese == "char":
        out: list[str] = []
        for piece in re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[A-Za-z0-9]+", text):
            out.append(piece.lower())
        return out
    toks = [t.strip().lower() for t in _jieba().lcut(text)]
    return [t for t in toks if t and any(ch.isalnum() for ch in t)]


def majority_language(texts: Sequence[str], sample: int = 200) -> str:
    """``"zh"`` when most of the first ``sample`` texts are Chinese, else ``"en"``.

    The calibration tab draws its random background pairs from the demo corpus in this language: random
    English pairs say nothing about what a score means for Chinese pairs.
    """
    head = list(texts[:sample])
    return "zh" if head and sum(detect_language(t) == "zh" for t in head) > len(head) / 2 else "en"


#: the ``script`` option's values -> OpenCC configurations (traditional -> simplified, simplified -> traditional).
SCRIPT_CONVERSIONS = {"simplified": "t2s", "traditional": "s2t"}
_CONVERTERS: dict[str, object] = {}
_CONVERTERS_LOCK = __import__("threading").Lock()


def convert_script(text: str, to: str) -> str:
    """``text`` with its Chinese characters converted to ``"simplified"`` or ``"traditional"`` by OpenCC (the
    ``opencc`` package, pinned in requirements.txt); ``"as-is"`` returns it unchanged.

    Raises
    ------
    ValueError
        An unknown target, or OpenCC not installed (the message says what to install).
    """
    if to in ("", "as-is") or not has_cjk(text):
        return text
    if to not in SCRIPT_CONVERSIONS:
        raise ValueError(f"script must be as-is, simplified or traditional, not {to!r}")
    with _CONVERTERS_LOCK:
        conv = _CONVERTERS.get(to)
        if conv is None:
            try:
                import opencc
            except ImportError:
                raise ValueError("converting traditional/simplified Chinese needs OpenCC: pip install opencc==1.4.2 "
                                 "(it is in requirements.txt)") from None
            conv = _CONVERTERS[to] = opencc.OpenCC(SCRIPT_CONVERSIONS[to])
    return conv.convert(text)  # type: ignore[attr-defined]
