"""``python -m backend train-w2v``: seeded single-thread training reproduces every file byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backend.cli import main
from backend.families.w2v import load_keyed_vectors
from backend.w2v.cli import corpus_texts, split_sentences

# Our own sentences.
SENTENCES = [
    "小猫在沙发上睡觉。", "小狗在院子里跑来跑去！", "我们明天去公园散步。", "他每天早上喝一杯咖啡。",
    "妈妈在厨房里做饭。", "孩子们在操场上踢足球。", "老师在教室里讲课。", "爸爸开车去上班。",
]


def _corpus(tmp_path: Path) -> tuple[Path, Path]:
    txt = tmp_path / "corpus.txt"
    txt.write_text("\n".join(SENTENCES * 30) + "\n", encoding="utf-8")
    pairs = tmp_path / "pairs.tsv"
    rows = [f"{a}\t{b}\t3" for a, b in zip(SENTENCES, SENTENCES[1:] + SENTENCES[:1], strict=True)]
    pairs.write_text("sentence1\tsentence2\tscore\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return txt, pairs


def _train(corpus: Path, pairs: Path, out: Path) -> int:
    return main(["train-w2v", "--corpus", str(corpus), "--extra-corpus", str(pairs), "--out", str(out),
                 "--vector-size", "8", "--epochs", "2", "--min-count", "2", "--seed", "3",
                 "--pc-corpus", str(pairs), "--sif-a", "1e-4", "--frequencies", "jieba", "--oov", "chars"])


def test_train_w2v_writes_a_loadable_folder_and_reproduces_it(tmp_path):
    corpus, pairs = _corpus(tmp_path)
    assert _train(corpus, pairs, tmp_path / "one") == 0
    assert _train(corpus, pairs, tmp_path / "two") == 0
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == ["pc.npy", "training.json", "vectors.npy", "vocab.txt"]
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    assert np.load(tmp_path / "one" / "vectors.npy").dtype == np.float16
    kv = load_keyed_vectors(str(tmp_path / "one"), "npy")
    assert kv.vector_size == 8 and "小猫" in kv.key_to_index and kv.vectors.dtype == np.float32
    meta = json.loads((tmp_path / "one" / "training.json").read_text(encoding="utf-8"))
    assert meta["vocabulary"] == len(kv.index_to_key) and meta["language"] == "zh"
    assert meta["config"]["seed"] == 3 and meta["pc"]["oov"] == "chars"
    assert np.load(tmp_path / "one" / "pc.npy").shape == (1, 8)


def test_pairs_table_gives_its_distinct_sentences(tmp_path):
    _, pairs = _corpus(tmp_path)
    assert sorted(corpus_texts(str(pairs))) == sorted(SENTENCES)


def test_split_sentences():
    assert split_sentences("今天下雨了。我们不去了！\n好吧  明天见") == ["今天下雨了。", "我们不去了！", "好吧", "明天见"]


def test_unknown_corpus_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="inews"):
        corpus_texts(str(tmp_path / "missing.txt"))
