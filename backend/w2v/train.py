"""Training word2vec on a user's corpus, and running long work in the background.

:func:`train_word2vec` trains gensim's :class:`~gensim.models.Word2Vec` (Mikolov et al. 2013) on texts
tokenised exactly as the ``w2v`` family tokenises at inference (:func:`backend.text.tokenize`: the English
word regex, jieba words or characters for Chinese), reports progress per epoch through a gensim
``CallbackAny2Vec``, and can be stopped: the corpus iterator checks ``should_stop`` every few thousand
sentences and ends the epoch early, and the callback then ends training. The vectors trained so far are
kept (``stopped=True``), as the ESIM trainer keeps its best epoch.

:func:`register_session_model` writes the vectors in word2vec text format to a temporary folder and adds a
``family = "w2v"`` entry to the backend's registry, so they join every comparison like a bundled model;
:func:`word2vec_text_bytes` is the download.

Long work runs as a :class:`backend.jobs.BackgroundJob` (a daemon thread with progress and a cancel flag).
"""

from __future__ import annotations

import io
import itertools
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import pandas as pd
from gensim.models import KeyedVectors, Word2Vec
from gensim.models.callbacks import CallbackAny2Vec

from backend.files.io import TableError, read_table
from backend.jobs import BackgroundJob
from backend.registry import ModelSpec
from backend.text import detect_language, tokenize
from backend.w2v.config import Word2VecConfig

EpochProgress = Callable[[int, int, dict[str, float]], None]
"""``progress(epoch, total_epochs, metrics)`` after each epoch (the ESIM trainer's signature)."""


class TrainingCancelled(RuntimeError):
    """Raised inside gensim's training loop to end it when ``should_stop`` says so (caught by the trainer)."""


# --------------------------------------------------------------------------------------------- corpus
def read_corpus(source: str | Path | bytes | io.IOBase, column: str | None = None, name: str = "") -> list[str]:
    """Texts of a corpus file: one text per line (``.txt``), or one column of a CSV/TSV.

    Parameters
    ----------
    source : path, bytes or file object
    column : str, optional
        For a table: the text column (default: the wordiest column).
    name : str
        File name when ``source`` is bytes (``.txt`` means one text per line).

    Raises
    ------
    TableError
        Empty or unreadable file, or an unknown column (naming the file's columns).
    """
    if isinstance(source, bytes) and name.lower().endswith(".txt"):
        source = io.BytesIO(source)
        source.name = name
    table = read_table(source, txt_column="text")
    frame = table.frame
    if column is None:
        if frame.shape[1] == 1:
            column = frame.columns[0]
        else:
            lengths = {c: frame[c].astype(str).str.len().mean() for c in frame.columns
                       if pd.to_numeric(frame[c], errors="coerce").notna().mean() < 0.8}
            if not lengths:
                raise TableError(f"no text column found; the file has: {', '.join(map(repr, frame.columns))}")
            column = max(lengths, key=lengths.get)
    if column not in frame.columns:
        raise TableError(f"column {column!r} not found; the file has: {', '.join(map(repr, frame.columns))}")
    texts = [t for t in frame[column].astype(str).tolist() if t.strip()]
    if not texts:
        raise TableError("the corpus has no text")
    return texts


def corpus_language(texts: Sequence[str], sample: int = 2000) -> Literal["en", "zh", "multi"]:
    """``"zh"`` / ``"en"`` when at least 90% of a sample of texts is in that language, else ``"multi"``."""
    langs = [detect_language(t) for t in itertools.islice(texts, sample)]
    langs = [x for x in langs if x != "unknown"]
    if not langs:
        return "en"
    for lang in ("en", "zh"):
        if sum(x == lang for x in langs) >= 0.9 * len(langs):
            return lang
    return "multi"


def tokenize_corpus(texts: Sequence[str], chinese: Literal["word", "char"] = "word") -> list[list[str]]:
    """Token lists, exactly as the ``w2v`` family tokenises at inference; texts with no token are dropped."""
    out = [tokenize(t, "auto", chinese) for t in texts]
    return [t for t in out if t]


class _StoppableCorpus:
    """Re-iterable token lists that end an epoch early once ``should_stop`` returns True."""

    def __init__(self, sentences: list[list[str]], should_stop: Callable[[], bool] | None, every: int = 2000) -> None:
        self.sentences, self.should_stop, self.every = sentences, should_stop, every
        self.stopped = False

    def __iter__(self) -> Iterator[list[str]]:
        for i, s in enumerate(self.sentences):
            if self.should_stop and i % self.every == 0 and self.should_stop():
                self.stopped = True
                return
            yield s


class _EpochCallback(CallbackAny2Vec):
    """Per-epoch progress and cancellation (gensim calls it from the training thread)."""

    def __init__(self, total: int, progress: EpochProgress | None, corpus: _StoppableCorpus) -> None:
        self.total, self.progress, self.corpus = total, progress, corpus
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self._t = time.perf_counter()
        self._last_loss = 0.0

    def on_epoch_begin(self, model: Word2Vec) -> None:
        self._t = time.perf_counter()
        if self.corpus.stopped:
            raise TrainingCancelled

    def on_epoch_end(self, model: Word2Vec) -> None:
        if self.corpus.stopped:  # the epoch was cut short: do not report it as complete
            raise TrainingCancelled
        self.epoch += 1
        # gensim's loss is cumulative over the train() call: the epoch's own loss is the difference.
        loss = float(model.get_latest_training_loss())
        m = {"epoch": float(self.epoch), "loss": loss - self._last_loss, "seconds": time.perf_counter() - self._t}
        self._last_loss = loss
        self.history.append(m)
        if self.progress:
            self.progress(self.epoch, self.total, m)


@dataclass
class TrainedWord2Vec:
    """Word vectors trained by :func:`train_word2vec`.

    Attributes
    ----------
    kv : KeyedVectors
    config : Word2VecConfig
    language : {"en", "zh", "multi"}
    sentences, tokens : int
        Corpus size used.
    epochs_done : int
    stopped : bool
        True when cancelled before the last epoch (the vectors so far are kept).
    seconds : float
    history : list of dict
        ``epoch, loss, seconds`` per epoch.
    """

    kv: KeyedVectors
    config: Word2VecConfig
    language: str
    sentences: int
    tokens: int
    epochs_done: int
    stopped: bool
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def vocabulary(self) -> int:
        """Words with a vector."""
        return len(self.kv.index_to_key)


def _stable_hash(s: str) -> int:
    # gensim seeds each word's initial vector with hashfxn(word + seed); Python's hash() of a str changes
    # from process to process (PYTHONHASHSEED), which would make the same seed give different vectors.
    return zlib.crc32(s.encode("utf-8"))


def train_word2vec(
    texts: Sequence[str] | Sequence[list[str]], config: Word2VecConfig | None = None,
    progress: EpochProgress | None = None, should_stop: Callable[[], bool] | None = None,
) -> TrainedWord2Vec:
    """Train word2vec on raw texts (tokenised here) or on token lists.

    Parameters
    ----------
    texts : sequence of str, or sequence of list of str
    config : Word2VecConfig, optional
    progress : callable, optional
        ``progress(epoch, total_epochs, {"epoch", "loss", "seconds"})`` after each epoch.
    should_stop : callable, optional
        Polled every 2,000 sentences; training ends early and keeps the vectors so far.

    Raises
    ------
    ValueError
        No word occurs ``min_count`` times (the message suggests lowering it).
    """
    cfg = config or Word2VecConfig()
    t0 = time.perf_counter()
    texts = list(texts)
    if texts and isinstance(texts[0], str):
        language = corpus_language(texts)
        sentences = tokenize_corpus(texts, cfg.chinese)
    else:
        sentences = [list(t) for t in texts if t]
        language = corpus_language([" ".join(s) for s in sentences])
    if not sentences:
        raise ValueError("the corpus has no words")
    corpus = _StoppableCorpus(sentences, should_stop)
    model = Word2Vec(
        vector_size=cfg.vector_size, window=cfg.window, min_count=cfg.min_count, sg=cfg.sg, negative=cfg.negative,
        seed=cfg.seed, workers=cfg.workers, epochs=cfg.epochs, hashfxn=_stable_hash, compute_loss=True,
    )
    model.build_vocab(sentences)
    if not model.wv.index_to_key:
        raise ValueError(f"no word occurs {cfg.min_count} times or more: lower min_count or upload more text")
    cb = _EpochCallback(cfg.epochs, progress, corpus)
    stopped = False
    try:
        if should_stop and should_stop():
            raise TrainingCancelled
        model.train(corpus, total_examples=model.corpus_count, epochs=cfg.epochs, callbacks=[cb], compute_loss=True)
    except TrainingCancelled:
        stopped = True
    return TrainedWord2Vec(
        model.wv, cfg, language, len(sentences), int(sum(len(s) for s in sentences)), cb.epoch, stopped,
        time.perf_counter() - t0, cb.history,
    )


# ------------------------------------------------------------------------------------- session model
def word2vec_text_bytes(kv: KeyedVectors) -> bytes:
    """The vectors in word2vec text format (``count dim`` header, then ``word v1 v2 ...``), UTF-8."""
    with tempfile.TemporaryDirectory(prefix="simdash-w2v-") as d:
        path = Path(d) / "vectors.txt"
        kv.save_word2vec_format(str(path), binary=False)
        return path.read_bytes()


_SESSION_COUNTER = itertools.count(1)


def register_session_model(
    be, trained: TrainedWord2Vec, label: str | None = None, weighting: Literal["mean", "sif"] = "mean",
    session: str = "", folder: str | Path | None = None,
) -> ModelSpec:
    """Write the vectors to a folder and register them with the backend as a ``w2v`` model.

    Parameters
    ----------
    be : Backend
    trained : TrainedWord2Vec
    label : str, optional
        Display name (default describes the vectors).
    weighting : {"mean", "sif"}
        Sentence vector = plain mean, or SIF weights from ``wordfreq`` (no principal component removal:
        none has been fitted for these vectors).
    session : str
        Prefix of the key, so a page can list only its own session's models (the registry is shared).
    folder : path, optional
        Where to write ``vectors.txt`` (default: a new temporary folder, removed at interpreter exit only
        if the OS cleans its temp space).

    Returns
    -------
    ModelSpec
        Its ``key`` is new for each call, so a retrained model never hits a stale cache entry.
    """
    folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="simdash-w2v-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vectors.txt"
    trained.kv.save_word2vec_format(str(path), binary=False)
    key = f"w2v-{session + '-' if session else ''}{next(_SESSION_COUNTER)}"
    cfg = trained.config
    spec = ModelSpec(
        key=key,
        family="w2v",
        label=label or f"word2vec {cfg.vector_size}-d (trained here, {trained.vocabulary} words)",
        source=f"path:{path.resolve()}",
        language=trained.language,
        owner=session,
        options=MappingProxyType({"format": "word2vec", "weighting": weighting, "remove_pc": False,
                                  "chinese": cfg.chinese}),
        note=(f"word2vec trained in this session on {trained.sentences} texts ({trained.tokens} tokens), "
              f"{trained.epochs_done} epoch(s){' (stopped early)' if trained.stopped else ''}; "
              + ", ".join(f"{k}={v}" for k, v in asdict(cfg).items())),
        default=False,
    )
    # A session's model is removed with its folder when the session trains more than its share or ends.
    be.add_session_model(spec, folder) if session else be.registry.add(spec)
    return spec


def word2vec_task(texts: Sequence[str], config: Word2VecConfig) -> Callable[[BackgroundJob], TrainedWord2Vec]:
    """The job function that trains word2vec, reporting each epoch (for :class:`BackgroundJob`)."""
    def fn(job: BackgroundJob) -> TrainedWord2Vec:
        def progress(epoch: int, total: int, m: dict[str, float]) -> None:
            job.report(epoch / total, f"epoch {epoch}/{total}, loss {m['loss']:.0f}", m)

        job.report(0.0, "tokenising the corpus")
        return train_word2vec(texts, config, progress, job.should_stop)

    return fn


def word2vec_job(texts: Sequence[str], config: Word2VecConfig) -> BackgroundJob:
    """A :class:`~backend.jobs.BackgroundJob` (not started) that trains word2vec and returns :class:`TrainedWord2Vec`."""
    return BackgroundJob(word2vec_task(texts, config), "word2vec")


def nearest_words(kv: KeyedVectors, word: str, topn: int = 10) -> list[tuple[str, float]]:
    """The ``topn`` most similar words (cosine), or [] when ``word`` has no vector."""
    w = word.strip().lower()
    if w not in kv.key_to_index:
        return []
    return [(k, float(s)) for k, s in kv.most_similar(w, topn=topn)]


__all__ = [
    "TrainedWord2Vec", "TrainingCancelled", "Word2VecConfig", "corpus_language",
    "nearest_words", "read_corpus", "register_session_model", "tokenize_corpus", "train_word2vec",
    "word2vec_job", "word2vec_task", "word2vec_text_bytes",
]
