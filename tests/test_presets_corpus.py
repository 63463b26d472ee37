"""The demo corpus and the blind-spot presets: shape, hygiene, and that they are our own writing."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from backend.presets import PRESETS, Preset, as_frame, default_pairs

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS_PATH = REPO_ROOT / "backend" / "data" / "demo_corpus.csv"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

REQUIRED_PRESETS = (
    "Negation",
    "Word order",
    "Paraphrase, no shared words",
    "Same topic, different meaning",
    "Chinese",
    "Mixed & edge cases",
)


@pytest.fixture(scope="module")
def corpus() -> pd.DataFrame:
    return pd.read_csv(CORPUS_PATH, encoding="utf-8", keep_default_na=False)


@pytest.fixture(scope="module")
def shared_sentences() -> set[str]:
    """Every sentence in the shared STS-B files; skips when the folder is absent."""
    tsvs = sorted(SHARED_DATA.glob("**/*.tsv")) if SHARED_DATA.is_dir() else []
    if not tsvs:
        pytest.skip(f"no shared data at {SHARED_DATA}")
    sentences: set[str] = set()
    for path in tsvs:
        frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE)
        for column in ("sentence1", "sentence2"):
            if column in frame.columns:
                sentences.update(frame[column].dropna().astype(str).str.strip())
    return sentences


def test_corpus_shape(corpus: pd.DataFrame) -> None:
    assert list(corpus.columns) == ["text", "topic", "lang"]
    assert len(corpus) >= 300
    assert corpus["topic"].nunique() >= 10
    assert set(corpus["lang"]) == {"en", "zh"}
    assert (corpus["lang"] == "zh").sum() >= 80


def test_corpus_texts_clean(corpus: pd.DataFrame) -> None:
    texts = corpus["text"].astype(str)
    assert (texts.str.strip() != "").all()
    assert (texts == texts.str.strip()).all()
    assert not texts.duplicated().any(), texts[texts.duplicated()].tolist()
    assert (corpus["topic"].str.strip() != "").all()


def test_every_topic_has_both_languages(corpus: pd.DataFrame) -> None:
    counts = corpus.groupby(["topic", "lang"]).size().unstack(fill_value=0)
    assert (counts["en"] > 0).all()
    assert (counts["zh"] > 0).all()


def test_corpus_not_from_shared_data(corpus: pd.DataFrame, shared_sentences: set[str]) -> None:
    overlap = set(corpus["text"].astype(str).str.strip()) & shared_sentences
    assert not overlap, sorted(overlap)


def test_presets_not_from_shared_data(shared_sentences: set[str]) -> None:
    preset_sentences = {s.strip() for p in PRESETS.values() for pair in p.pairs for s in pair}
    overlap = preset_sentences & shared_sentences
    assert not overlap, sorted(overlap)


def test_required_presets_exist() -> None:
    for name in REQUIRED_PRESETS:
        assert name in PRESETS


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_pairs(name: str) -> None:
    preset = PRESETS[name]
    assert isinstance(preset, Preset)
    assert preset.name == name
    assert preset.description.strip()
    assert len(preset.pairs) >= 3
    for pair in preset.pairs:
        assert len(pair) == 2
        for sentence in pair:
            assert isinstance(sentence, str)
            assert sentence.strip()


def test_preset_is_frozen() -> None:
    preset = next(iter(PRESETS.values()))
    with pytest.raises(AttributeError):
        preset.name = "changed"  # type: ignore[misc]


def test_default_pairs_is_first_preset() -> None:
    first = next(iter(PRESETS.values()))
    assert first.name == "Negation"
    assert default_pairs() == list(first.pairs)


def test_as_frame() -> None:
    frame = as_frame("Word order")
    assert list(frame.columns) == ["sentence_a", "sentence_b"]
    assert len(frame) == len(PRESETS["Word order"].pairs)
    assert frame.iloc[0].tolist() == list(PRESETS["Word order"].pairs[0])
    with pytest.raises(KeyError):
        as_frame("no such preset")
