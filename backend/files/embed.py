"""Corpus embedding: a corpus of any size as vectors on disk, with its texts and the configuration that made them.

``python -m backend embed CORPUS OUT.parquet --models sbert,bert`` streams the corpus through the models chunk by
chunk (the :class:`~backend.files.batch.FileJob` runner: resumable, local or on Ray) and writes one Parquet file:

``<text column>`` and the corpus's other columns
    as read (a ``topic``/``label`` column becomes the points' colour on the Projection page);
``vec_<model>``
    ``fixed_size_list<float32>[dim]``: unit-length vectors, all zeros where there is none;
``valid_<model>``
    False where the text gave no vector (empty, every word unknown);
``warnings_<model>``
    why (empty text, unknown words, truncation, another language).

The schema metadata (key ``simdash.embedding``) records, per model, its key, ``config_id``, dimension, family,
source and every option, plus an id of this corpus file. :func:`load_embedded_corpus` reads one model's vectors
back into a contiguous float32 array and refuses vectors whose configuration is not the selected model's,
saying why ("embedded with bert layer -2 pooling mean; the selected model has layer -1"): vectors of two
configurations live in different spaces and must never be compared.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backend.base import ENCODER, ProgressFn
from backend.files.batch import FileJob, Stage
from backend.files.io import TableError, require_columns
from backend.files.stream import check_output, output_format
from backend.registry import ModelRequest

#: schema-metadata key of an embedded corpus.
META_KEY = b"simdash.embedding"
#: rows per chunk: 10,000 texts are about half a minute of a transformer on a 2-core CPU (a kill loses no more)
#: and 15 MB of 384-d vectors per model.
EMBED_CHUNK_ROWS = 10_000
#: texts per encoding call inside a chunk: the job checks ``should_stop`` between them.
SUB_BATCH = 1024
#: column names that hold a label or group for each text, in order of preference.
LABEL_COLUMNS = ("topic", "label", "labels", "group", "category", "cluster")


class CorpusMismatch(ValueError):
    """Vectors made under another model configuration than the selected one; the message says what differs."""


@dataclass
class EmbedStage(Stage):
    """Adds ``vec_``, ``valid_`` and ``warnings_`` columns of one encoder (vectors as float32 bytes per row)."""

    text_col: str = ""
    dim: int | None = None

    def apply(self, be, frame, progress=None, should_stop=None):
        from backend.jobs import StopRequested

        texts = frame[self.text_col].astype(str).tolist() if len(frame) else []
        vecs, valid, warns = [], [], []
        for s in range(0, len(texts), SUB_BATCH):
            if should_stop is not None and should_stop():
                raise StopRequested("stopped")
            enc = be.embed(self.request.key, texts[s : s + SUB_BATCH], self.request.options or None)
            vecs.append(enc.vectors.astype(np.float32, copy=False))
            valid.append(enc.valid)
            warns.extend("; ".join(w) for w in enc.warnings)
            if progress is not None:
                progress(min(s + SUB_BATCH, len(texts)), len(texts))
        if vecs:
            v = np.concatenate(vecs)
            self.dim = v.shape[1]
            frame[f"vec_{self.name}"] = [row.tobytes() for row in v]
        else:
            frame[f"vec_{self.name}"] = pd.Series([], dtype=object)
        frame[f"valid_{self.name}"] = np.concatenate(valid) if valid else np.zeros(0, dtype=bool)
        frame[f"warnings_{self.name}"] = warns
        return frame

    def missing(self, frame):
        return int((~frame[f"valid_{self.name}"].astype(bool)).sum())

    def observe(self, frame):
        if self.dim is None and len(frame):
            self.dim = len(frame[f"vec_{self.name}"].iloc[0]) // 4


def vectors_to_arrow(frame: pd.DataFrame):
    """A chunk as an Arrow table: ``vec_*`` byte cells become ``fixed_size_list<float32>[dim]``."""
    import pyarrow as pa

    cols, names = [], []
    for c in frame.columns:
        if c.startswith("vec_"):
            raw = b"".join(frame[c].tolist())
            flat = np.frombuffer(raw, dtype=np.float32)
            dim = len(frame[c].iloc[0]) // 4 if len(frame) else 0
            cols.append(pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.float32()), dim))
        elif c.startswith("valid_"):
            cols.append(pa.array(frame[c].astype(bool).to_numpy(), type=pa.bool_()))
        else:
            cols.append(pa.array(frame[c].tolist(), from_pandas=True))
        names.append(c)
    return pa.table(cols, names=names)


def pick_text_column(columns: Sequence[str], text_col: str | None) -> str:
    """``text_col`` (checked), else ``text``, else the only column; TableError naming the columns otherwise."""
    cols = list(columns)
    if text_col:
        require_columns(pd.DataFrame(columns=cols), text_col)
        return text_col
    for c in cols:
        if c.lower() in ("text", "sentence", "texts", "sentences", "query", "document"):
            return c
    if len(cols) == 1:
        return cols[0]
    raise TableError(f"which column holds the texts? The file has: {', '.join(map(repr, cols))}; name it with --text-col")


def embed_file(
    be, input: str | Path, output: str | Path, models: Sequence[str | ModelRequest], text_col: str | None = None,
    *, resume: bool = False, chunk_rows: int = EMBED_CHUNK_ROWS,
) -> FileJob:
    """A resumable job that writes every text of ``input`` with its vectors under each model to ``output`` (.parquet).

    Run it with ``.run(be, progress, should_stop)`` or :func:`backend.files.ray_engine.run_on_ray`.

    Raises
    ------
    TableError
        The output is not .parquet, the text column is missing (the message names the file's columns).
    RoleError
        A model that gives no vectors (a cross-encoder).
    ResumeError, KeyError, OptionError
    """
    from backend.results import RoleError

    if output_format(check_output(output, (input,))) != "parquet":
        raise TableError(f"embeddings are written as Parquet: name the output .parquet, not {Path(output).name}")
    requests = be.registry.requests(models)
    for r in requests:
        if ENCODER not in be.roles(r.key):
            raise RoleError(f"{r.key} scores pairs only and gives no sentence vectors; embed with an encoder "
                            f"({', '.join(be.keys_with_role(ENCODER))})")
    corpus_id = uuid.uuid4().hex
    chosen: dict[str, Any] = {"notes": []}

    def make(head: pd.DataFrame):
        col = pick_text_column(head.columns, text_col)
        chosen["text_col"] = col
        # One model per request for the whole corpus, chosen by the language of its first rows (the rule of
        # backend.routing, shared by every surface): `--models sbert` on a Chinese corpus stores sbert-zh vectors,
        # under sbert-zh's name, and says so.
        texts = head[col].dropna().astype(str).tolist()
        routed = []
        for r in requests:
            route = be.route_texts(r.key, texts, r.options) if hasattr(be, "route_texts") else None
            if route is not None and route.key != r.key:
                name = route.key if r.name == r.key else r.name
                routed.append(ModelRequest(name, route.key, route.options))
                chosen["notes"].append(f"{r.name}: {route.note}")
            else:
                routed.append(r)
                if route is not None and route.note:
                    chosen["notes"].append(f"{r.name}: {route.note}")
        names = [r.name for r in routed]
        if len(set(names)) != len(names):
            raise TableError(f"two of the models embed this corpus with the same model after routing ({', '.join(names)}); "
                             "name each once")
        configs = {r.name: be.model_config(r.key, r.options) for r in routed}
        stages = [EmbedStage(r, text_col=col) for r in routed]
        chosen["stages"] = stages
        opts = {"text_col": col, "format": "parquet",
                "models": [{"name": r.name, "config": configs[r.name].config_id} for r in routed]}

        def metadata() -> dict[bytes, bytes]:
            meta = {"version": 1, "corpus_id": corpus_id, "text_col": col, "models": [
                {"name": st.name, **configs[st.name].as_dict(), "dim": st.dim, "vector_col": f"vec_{st.name}",
                 "valid_col": f"valid_{st.name}"} for st in stages]}
            return {META_KEY: json.dumps(meta, ensure_ascii=False).encode()}

        return stages, None, opts, metadata

    job = FileJob.open(input, output, "embed", make, resume=resume, chunk_rows=chunk_rows, to_table=vectors_to_arrow)
    job.text_col = chosen["text_col"]
    job.notes[:0] = chosen["notes"]  # the same list as job.result.notes
    job.models = [st.request for st in chosen["stages"]]
    return job


# ------------------------------------------------------------------------------------------------ loading
class TextColumn(Sequence):
    """The corpus texts, read from Arrow on demand (a million Python strings cost ~100 MB and seconds to make)."""

    def __init__(self, array) -> None:
        self._a = array

    def __len__(self) -> int:
        return len(self._a)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self._a[i].to_pylist()
        if isinstance(i, (list, np.ndarray)):
            return self._a.take(np.asarray(i, dtype=np.int64)).to_pylist()
        if i < 0:
            i += len(self._a)
        return self._a[i].as_py()

    def __iter__(self) -> Iterator[str]:
        for chunk in self._a.chunks if hasattr(self._a, "chunks") else [self._a]:
            yield from chunk.to_pylist()


@dataclass
class EmbeddedCorpus:
    """One model's vectors of a corpus, with the texts and what made them.

    Attributes
    ----------
    texts : sequence of str
        Row ``i`` is the text of ``vectors[i]``.
    vectors : np.ndarray, shape (n, d), float32
        Unit rows (zeros where ``valid`` is False), one contiguous array.
    valid : np.ndarray, shape (n,), bool
    key : str
        The model's result name (``bert`` or ``bert:layer=-1``).
    config_id : str
        :attr:`backend.results.ModelConfig.config_id` of the model that made them.
    config : dict
        Its stored :meth:`~backend.results.ModelConfig.as_dict` (options included).
    labels : np.ndarray of str, optional
        A topic/label column of the corpus, if it has one.
    corpus_id : str
        Identifies this corpus file's contents (indexes built on it are keyed by it).
    path : Path, optional
    warnings : list of str, optional
        Per text, where loaded.
    """

    texts: Sequence[str]
    vectors: np.ndarray
    valid: np.ndarray
    key: str
    config_id: str
    config: dict[str, Any] = field(default_factory=dict)
    labels: np.ndarray | None = None
    corpus_id: str = ""
    path: Path | None = None
    warnings: Sequence[str] | None = None

    def __len__(self) -> int:
        return len(self.valid)

    def sample(self, n: int, seed: int = 42) -> EmbeddedCorpus:
        """A seeded random subset of ``n`` rows (in corpus order), itself an embedded corpus; all when smaller.

        Its ``corpus_id`` names the sample, so projections and indexes of it never pass for the whole corpus.
        """
        if n >= len(self):
            return self
        pick = np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))
        return EmbeddedCorpus(
            self.texts[pick], self.vectors[pick], self.valid[pick], self.key, self.config_id, self.config,
            None if self.labels is None else self.labels[pick], f"{self.corpus_id}:sample{n}:{seed}", self.path,
            None if self.warnings is None else self.warnings[pick])


def corpora_dir() -> Path:
    """Where the dashboard looks for embedded corpora: ``$SIMDASH_CORPORA``, else ``~/.cache/simdash/corpora``.

    The dashboard lists the Parquet files there (it never opens a path a visitor types)."""
    import os

    return Path(os.environ.get("SIMDASH_CORPORA") or Path.home() / ".cache" / "simdash" / "corpora").expanduser()


def list_embedded_corpora(folder: str | Path | None = None) -> list[Path]:
    """Embedded-corpus files (``*.parquet``) in :func:`corpora_dir`, newest first."""
    folder = Path(folder) if folder is not None else corpora_dir()
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.parquet"), key=lambda p: p.stat().st_mtime, reverse=True)


def read_embedding_metadata(path: str | Path) -> dict[str, Any]:
    """The ``simdash.embedding`` metadata of an embedded-corpus file (models, their configurations, text column).

    Raises
    ------
    TableError
        Not Parquet, or a Parquet file this tool did not write.
    """
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # ArrowInvalid, OSError
        raise TableError(f"could not read {Path(path).name} as Parquet: {exc}") from None
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise TableError(f"{Path(path).name} holds no embedded corpus (make one with python -m backend embed)")
    return json.loads(raw)


def corpus_keys(path: str | Path) -> list[str]:
    """The registry keys whose vectors an embedded-corpus file holds (from its metadata), in file order."""
    meta = read_embedding_metadata(path)
    return [str(m.get("key") or m.get("name")) for m in meta.get("models", [])]


def read_corpus_texts(path: str | Path) -> tuple[TextColumn, np.ndarray | None, str]:
    """The texts of an embedded-corpus file (read from Arrow on demand) and its label column, if any.

    Returns
    -------
    texts : TextColumn
    labels : np.ndarray of str, optional
    label_name : str
        The label column's name ("" without one).
    """
    import pyarrow.parquet as pq

    meta = read_embedding_metadata(path)
    names = pq.read_schema(path).names
    label = next((c for c in names if c.lower() in LABEL_COLUMNS and c != meta["text_col"]), None)
    table = pq.read_table(path, columns=[meta["text_col"], *([label] if label else [])], memory_map=True)
    labels = table.column(label).to_numpy(zero_copy_only=False).astype(str) if label else None
    return TextColumn(table.column(meta["text_col"])), labels, label or ""


def load_embedded_corpus(path: str | Path, key: str | None = None, *, expect=None) -> EmbeddedCorpus:
    """One model's vectors of an embedded corpus, checked against the model selected now.

    Parameters
    ----------
    path : str or Path
        A file written by ``python -m backend embed``.
    key : str, optional
        Which model's vectors (its result name, e.g. ``bert`` or ``bert:layer=-1``, or its registry key);
        needed when the file holds several.
    expect : ModelConfig, optional
        The selected model's configuration (:meth:`backend.serving.Backend.model_config`); vectors made under
        another one are refused.

    Raises
    ------
    CorpusMismatch
        The file's vectors were made under another configuration; the message says which option differs.
    TableError
        Not an embedded corpus; ``key`` not in it (the message lists what is).
    """
    import pyarrow.parquet as pq

    path = Path(path)
    meta = read_embedding_metadata(path)
    models = meta["models"]
    want = key if key is not None else (expect.key if expect is not None else None)
    if want is None:
        if len(models) != 1:
            raise TableError(f"{path.name} holds vectors of {', '.join(m['name'] for m in models)}; say which")
        entry = models[0]
    else:
        hits = [m for m in models if m["name"] == want] or [m for m in models if m["key"] == want]
        if not hits:
            raise TableError(f"{path.name} holds no vectors of {want}; it has {', '.join(m['name'] for m in models)}")
        if expect is not None:
            hits = [m for m in hits if m["config_id"] == expect.config_id] or hits
        entry = hits[0]
    if expect is not None:
        why = expect.differences(entry)
        if why:
            raise CorpusMismatch(f"{path.name} was {why}: vectors of two configurations are not comparable; embed the "
                                 f"corpus again with the selected settings (python -m backend embed ... --models "
                                 f"{_request_text(expect, entry)})")
    text_col = meta["text_col"]
    schema_names = pq.read_schema(path).names
    label_col = next((c for c in schema_names if c.lower() in LABEL_COLUMNS and c != text_col), None)
    cols = [text_col, entry["vector_col"], entry["valid_col"]] + ([label_col] if label_col else [])
    warn_col = f"warnings_{entry['name']}"
    if warn_col in schema_names:
        cols.append(warn_col)
    table = pq.read_table(path, columns=cols, memory_map=True)
    vec = table.column(entry["vector_col"]).combine_chunks()
    dim = int(entry.get("dim") or vec.type.list_size)
    vectors = vec.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(len(vec), dim)
    valid = table.column(entry["valid_col"]).to_numpy().astype(bool)
    labels = table.column(label_col).to_numpy(zero_copy_only=False).astype(str) if label_col else None
    warnings = TextColumn(table.column(warn_col)) if warn_col in cols else None
    return EmbeddedCorpus(TextColumn(table.column(text_col)), vectors, valid, entry["name"], entry["config_id"],
                          {k: entry.get(k) for k in ("key", "family", "source", "config_id", "options", "dim")},
                          labels, meta.get("corpus_id", ""), path, warnings)


def _request_text(cfg, stored: dict[str, Any]) -> str:
    """``--models`` text for the selected configuration: the key with the options that differ from the file's."""
    old = stored.get("options") or {}
    diff = [k for k in sorted(cfg.options) if old.get(k) != cfg.options[k]]
    return ":".join([cfg.key] + [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k in diff
                                 for v in [cfg.options[k]]])


def embed_texts(be, key: str, texts: Sequence[str], options: dict[str, Any] | None = None,
                progress: ProgressFn | None = None, labels: Sequence[str] | None = None) -> EmbeddedCorpus:
    """An in-memory :class:`EmbeddedCorpus` of ``texts`` (an uploaded corpus), for :meth:`Backend.search`."""
    import hashlib

    cfg = be.model_config(key, options)
    enc = be.embed(key, list(texts), options, progress)
    digest = hashlib.sha1("\x1f".join(texts).encode()).hexdigest()
    return EmbeddedCorpus(list(texts), enc.vectors, enc.valid, key, cfg.config_id, cfg.as_dict(),
                          None if labels is None else np.asarray(labels, dtype=str), digest, None,
                          ["; ".join(w) for w in enc.warnings])


__all__ = [
    "CorpusMismatch",
    "EmbedStage",
    "EmbeddedCorpus",
    "corpora_dir",
    "corpus_keys",
    "embed_file",
    "embed_texts",
    "list_embedded_corpora",
    "load_embedded_corpus",
    "read_corpus_texts",
    "read_embedding_metadata",
]

