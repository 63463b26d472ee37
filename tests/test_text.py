from __future__ import annotations

import pytest

from backend.text import clean_text, detect_language, majority_language, tokenize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, ""), (float("nan"), ""), ("  a \t b\n", "a b"), ("a\x00b\u200bc", "a bc"), ("ＡＢＣ", "ABC")],
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


@pytest.mark.parametrize(("raw", "expected"), [
    ("hel\u200blo wor\u00adld", "hello world"),       # zero-width space and soft hyphen are inside words
    ("\ufeffstart", "start"),                          # a BOM at the start of a cell
    ("a\x1bb", "a b"),                                 # a control character separates
    ("bad \ud800 surrogate", "bad surrogate"),         # a lone surrogate is dropped, not passed to a tokenizer
    ("\u202eevil\u202c text", "evil text"),            # bidi overrides
])
def test_clean_text_removes_invisible_characters_inside_words(raw, expected):
    assert clean_text(raw) == expected


@pytest.mark.parametrize(("text", "lang"), [
    ("こんにちは、世界", "ja"), ("東京に行きます", "ja"), ("안녕하세요", "ko"), ("مرحبا بالعالم", "other"),
    ("Привет мир", "other"), ("繁體中文的句子", "zh"),
])
def test_detect_language_names_other_scripts(text, lang):
    assert detect_language(text) == lang


def test_has_words_and_script_name():
    from backend.text import has_words, script_name

    assert not has_words("😀 🎉 !!! ---") and has_words("x") and has_words("猫") and has_words("٣")
    assert script_name("مرحبا") == "ARABIC" and script_name("Привет") == "CYRILLIC" and script_name("hello") == ""


def test_majority_language_of_small_and_mixed_sets():
    zh = ["今天天气很好", "我喜欢读书"]
    assert majority_language(zh * 40) == "zh"  # 80 pairs: fewer than the 200 sampled, still Chinese
    assert majority_language(["The cat sleeps."] * 3 + zh) == "en"
    assert majority_language([]) == "en"
