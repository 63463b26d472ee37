from __future__ import annotations

import pytest

from backend.text import clean_text, detect_language, tokenize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, ""), (float("nan"), ""), ("  a \t b\n", "a b"), ("a\x00b\u200bc", "a b c"), ("ＡＢＣ", "ABC")],
)
def test_clean_text(raw, expected):
    assert clean_text(raw) == expected


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("The dog bit the man.", "en"),
        ("门廊上有位老人在弹吉他。", "zh"),
        ("我爱 machine learning 和 deep learning 以及 natural language processing", "mixed"),
        ("12345 !!! 😀", "unknown"),
        ("我用 iPhone 拍照", "zh"),
    ],
)
def test_detect_language(text, lang):
    assert detect_language(text) == lang


def test_tokenize_english_lowercases_and_drops_punctuation():
    assert tokenize("Don't PANIC, it's e-mail!") == ["don't", "panic", "it's", "e-mail"]


def test_tokenize_chinese_words_and_chars():
    words = tokenize("我喜欢吃苹果", "zh")
    assert "苹果" in words and "".join(words) == "我喜欢吃苹果"
    assert tokenize("我喜欢吃苹果", "zh", chinese="char") == list("我喜欢吃苹果")


def test_tokenize_empty_and_symbols():
    assert tokenize("") == []
    assert tokenize("😀 !!!") == []
