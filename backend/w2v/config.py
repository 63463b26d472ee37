"""The hyper-parameters of word2vec training, with why each default is what it is (nanoGPT's manner).

Its own module so the command line can show the defaults without importing gensim (half a second).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class Word2VecConfig:
    """Hyper-parameters of :func:`train_word2vec` (shown in the UI and stored with the session model)."""

    # 100 dimensions is word2vec's default and plenty for a corpus of a few MB; larger needs more text.
    vector_size: int = 100
    # Words on each side that count as context; 5 is the word2vec default (topical + some syntactic).
    window: int = 5
    # Words seen fewer times get no vector: a vector learnt from one occurrence is noise.
    min_count: int = 2
    # Small uploaded corpora need several passes; 10 converges on a few thousand sentences.
    epochs: int = 10
    # Skip-gram (1) beats CBOW (0) on small corpora and rare words (Mikolov et al. 2013), at some speed cost.
    sg: int = 1
    # Negative samples per positive; 5 is the default for mid-sized corpora.
    negative: int = 5
    # Seeds initialisation and sampling; with workers=1 the same seed gives the same vectors.
    seed: int = 42
    # One thread: reproducible (gensim's threads race on shared weights), and polite on a shared server.
    workers: int = 1
    # Chinese segmentation, as the w2v family's ``chinese`` option: jieba "word"s or single "char"s.
    chinese: Literal["word", "char"] = "word"


__all__ = ["Word2VecConfig"]
