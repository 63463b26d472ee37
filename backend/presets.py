"""Preset sentence pairs that expose each model family's blind spots.

Every pair here is the project's own writing (no sentence is taken from STS-B or any other public data
set). Each preset targets one weakness:

* averaged word vectors ignore word order and barely register a single "not";
* raw BERT pooling (mean or [CLS]) mostly measures topic and surface overlap, so almost everything scores high;
* ESIM reads both sentences together but is only as good as the language and domain it was trained on;
* Sentence-BERT handles paraphrase well but still tends to rate same-topic opposites as similar.

The dashboard shows the presets in the order of :data:`PRESETS`; the first one is the default.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Preset:
    """A named group of sentence pairs designed to trip up one model family.

    Attributes:
        name: the label shown in the dashboard (also the key in :data:`PRESETS`).
        description: one sentence naming the family the preset is designed to trip up, and why.
        pairs: ``(sentence_a, sentence_b)`` tuples, in display order.
    """

    name: str
    description: str
    pairs: tuple[tuple[str, str], ...]


_PRESET_LIST: tuple[Preset, ...] = (
    Preset(
        name="Negation",
        description=(
            "Trips up averaged word vectors and raw BERT pooling: a single 'not' or 'nobody' barely moves "
            "an average over many shared words, so opposite statements score as near-duplicates."
        ),
        pairs=(
            ("The film was good.", "The film was not good."),
            ("I love this restaurant.", "I don't love this restaurant at all."),
            ("The package has arrived.", "The package has not arrived yet."),
            ("She is a doctor.", "She is not a doctor."),
            ("Everyone passed the exam.", "Nobody passed the exam."),
        ),
    ),
    Preset(
        name="Word order",
        description=(
            "Trips up averaged word vectors, which treat a sentence as a bag of words, so swapping who did "
            "what to whom gives an identical vector and a cosine of exactly 1."
        ),
        pairs=(
            ("The dog bit the man.", "The man bit the dog."),
            ("Alice sent Bob a letter.", "Bob sent Alice a letter."),
            ("The teacher praised the student.", "The student praised the teacher."),
            ("She moved from Paris to Berlin.", "She moved from Berlin to Paris."),
            ("Only I drink tea in the morning.", "I drink only tea in the morning."),
        ),
    ),
    Preset(
        name="Paraphrase, no shared words",
        description=(
            "Trips up scores driven by lexical overlap, above all raw BERT pooling and, to a lesser degree, "
            "averaged word vectors: the meaning is the same but no word is shared, which Sentence-BERT is "
            "trained to see through."
        ),
        pairs=(
            ("A man is playing the acoustic guitar on his porch.", "Someone strums an instrument."),
            ("The meeting was postponed.", "They pushed back the gathering."),
            ("He is extremely tired.", "That guy looks exhausted."),
            ("Buy groceries after work.", "Pick up some food at a shop once your shift ends."),
            ("It's pouring outside.", "Heavy rain is falling."),
        ),
    ),
    Preset(
        name="Same topic, different meaning",
        description=(
            "Trips up every embedding model, raw BERT pooling most and Sentence-BERT too: the vectors are "
            "dominated by the shared topic, so requests with opposite intents still land close together."
        ),
        pairs=(
            ("How do I open a bank account?", "How do I close my bank account?"),
            ("How do I turn on notifications?", "How do I turn off notifications?"),
            ("My flight was delayed.", "My flight was cancelled."),
            ("Add more salt to the soup.", "Add less salt to the soup."),
            ("I want to buy a used car.", "I want to sell my used car."),
        ),
    ),
    Preset(
        name="Chinese",
        description=(
            "Trips up English-only models (GloVe, English BERT, an English-trained ESIM), which see Chinese "
            "as unknown tokens, and averaging over segmented words, which misses the one-character "
            "negation 不 and swapped subject and object."
        ),
        pairs=(
            ("一个男人坐在台阶上弹吉他。", "台阶上有人正在弹吉他。"),
            ("这部电影很好看。", "这部电影不好看。"),
            ("狗咬了那个人。", "那个人咬了狗。"),
            ("我明天去北京。", "我明天不去北京。"),
            ("我想开一个银行账户。", "怎样才能办一张银行卡？"),
        ),
    ),
    Preset(
        name="Mixed & edge cases",
        description=(
            "Trips up monolingual models on a cross-language pair, length-sensitive pooling on a very long "
            "sentence against a short one, and word-vector lookups on emoji and typos that have no vector."
        ),
        pairs=(
            ("The weather is lovely today.", "今天天气很好。"),
            (
                "After months of planning, saving every spare coin and booking the cheapest tickets we could "
                "find, we finally reached the coast, only to learn that every ferry to the island had been "
                "cancelled for the rest of the week because of a storm that nobody had predicted.",
                "Our trip went badly.",
            ),
            ("I love this song 🎵😍", "I love this song."),
            ("🙂", "I am happy."),
            ("Can you recomend a good restarant?", "Can you recommend a good restaurant?"),
        ),
    ),
)

PRESETS: dict[str, Preset] = {preset.name: preset for preset in _PRESET_LIST}
"""All presets by name, in display order (the first is the default)."""


def default_pairs() -> list[tuple[str, str]]:
    """The pairs of the first preset, as a new list (safe to modify)."""
    return list(next(iter(PRESETS.values())).pairs)


def as_frame(name: str) -> pd.DataFrame:
    """The pairs of preset ``name`` as a frame with columns ``sentence_a`` and ``sentence_b``.

    Raises:
        KeyError: if there is no preset called ``name`` (the message lists the known names).
    """
    try:
        preset = PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
    return pd.DataFrame(list(preset.pairs), columns=["sentence_a", "sentence_b"])
