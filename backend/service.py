"""The cached backend: one object that the dashboard, the command line and the benchmarks share.

:class:`Backend` loads each registered model lazily (once), keeps a bounded number loaded, caches sentence
vectors per (model configuration, text), and offers the operations the dashboard is built from:
:meth:`~Backend.similarity`, :meth:`~Backend.embed`, :meth:`~Backend.neighbours`, :meth:`~Backend.project`
and :meth:`~Backend.rerank`. A model that fails to load or raises produces an error *for that model only*:
operations over several models return a result per model, with ``error`` set where it failed.

Two layers sit under every vector and native pair score: a cache (an in-memory LRU, then the persistent SQLite
store of :mod:`backend.cache` shared by every process on the machine) and, for what neither has, dynamic batching
(:mod:`backend.batching`): concurrent calls for the same model configuration — dashboard sessions are threads,
and so are the HTTP server's requests — are merged into shared forward passes. ``SIMDASH_CACHE=0`` and
``SIMDASH_BATCH_WAIT_MS=0`` switch them off.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from backend.base import (
    ENCODER,
    Encoder,
    Encoding,
    PairScorer,
    PairScores,
    ProgressFn,
    Role,
    SentenceModel,
    cosine_pair_scores,
)
from backend.batching import Batcher, BatchSettings, batch_settings
from backend.cache import VectorStore, entry_key, open_store
from backend.devices import pick_device
from backend.families import build_model, family_class
from backend.jobs import StopRequested
from backend.options import Option, OptionError, validate_options
from backend.options import defaults as option_defaults
from backend.registry import ModelRequest, ModelSpec, Registry
from backend.speed import Speed
from backend.text import clean_text, detect_language


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says which and why (and the others are unaffected)."""


@dataclass
class ModelResult:
    """One model's answer to a multi-model request.

    Attributes
    ----------
    key : str
        The model asked for.
    scores : np.ndarray (n,) or None
        None when the model failed (see ``error``); NaN entries are undefined scores (see ``warnings``).
    warnings : list of list of str
        Per pair.
    used : list of str
        Per pair, the key of the model that actually scored (a language variant may stand in).
    error : str or None
    seconds : float
        Wall time of this model's part of the request.
    """

    key: str
    scores: np.ndarray | None
    warnings: list[list[str]] = field(default_factory=list)
    used: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    def as_json(self, i: int = 0) -> dict[str, Any]:
        """``{"score": float | None, "warnings": [...], "model": key}`` for pair ``i`` (the CLI contract)."""
        if self.error is not None or self.scores is None:
            return {"score": None, "warnings": [f"error: {self.error}"], "model": self.key}
        s = float(self.scores[i])
        return {"score": None if np.isnan(s) else round(s, 6), "warnings": self.warnings[i], "model": self.used[i]}


@dataclass
class Neighbours:
    """Top-k corpus items per query.

    Attributes
    ----------
    indices, scores : np.ndarray (n_queries, k)
        Corpus row indices and cosine similarities, best first. ``-1`` / NaN pad when the corpus has fewer
        than ``k`` usable rows.
    warnings : list of list of str
        Per query.
    corpus_warnings : list of list of str
        Empty for an embedded corpus (its file's ``warnings_<model>`` column has them).
    model : str
    search : IndexInfo, optional
        How the corpus was searched (exact, or approximate with its measured recall@10): see
        :meth:`Backend.search`.
    """

    indices: np.ndarray
    scores: np.ndarray
    warnings: list[list[str]]
    corpus_warnings: list[list[str]]
    model: str
    search: Any = None


@dataclass(frozen=True)
class ModelConfig:
    """Everything that makes a model's numbers what they are, known without loading its weights.

    Attributes
    ----------
    key, family, source : str
    config_id : str
        The id the embedding cache uses (:attr:`backend.base.SentenceModel.config_id`): equal ids, equal vectors.
    options : dict
        Every option's value, defaults included.
    """

    key: str
    family: str
    source: str
    config_id: str
    options: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "family": self.family, "source": self.source, "config_id": self.config_id,
                "options": dict(self.options)}

    def differences(self, other: dict[str, Any]) -> str | None:
        """Why vectors made under ``other`` (a stored :meth:`as_dict`) are not this model's (None: they are).

        The sentence names what was used and what is selected now, e.g. ``embedded with bert layer -2 pooling
        mean; the selected model has layer -1``.
        """
        if other.get("config_id") == self.config_id:
            return None
        if other.get("key") != self.key:
            return f"embedded with {other.get('key')}, not {self.key}"
        if other.get("source") != self.source:
            return f"embedded with {self.key} from {other.get('source')}; the selected {self.key} loads {self.source}"
        old, new = dict(other.get("options") or {}), self.options
        diff = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        if not diff:
            return f"embedded with another configuration of {self.key} ({other.get('config_id')} vs {self.config_id})"
        was = " ".join(f"{k} {old.get(k, '(unset)')}" for k in diff)
        now = " ".join(f"{k} {new.get(k, '(unset)')}" for k in diff)
        return f"embedded with {self.key} {was}; the selected model has {now}"


class RoleError(ValueError):
    """A model asked for something its role does not give (vectors from a cross-encoder); says what it does."""


#: pairs per scoring call in :meth:`Backend.similarity`: small enough for a smooth progress bar and prompt
#: cancellation, large enough that batching inside the models stays efficient.
CHUNK = 2048


class _LRU(OrderedDict):
    """A small thread-safe LRU mapping with a maximum number of entries."""

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize
        self.lock = threading.Lock()

    def get_many(self, keys: list) -> list:
        with self.lock:
            out = []
            for k in keys:
                v = OrderedDict.get(self, k)
                if v is not None:
                    self.move_to_end(k)
                out.append(v)
            return out

    def put_many(self, items: list[tuple]) -> None:
        with self.lock:
            for k, v in items:
                self[k] = v
                self.move_to_end(k)
            while len(self) > self.maxsize:
                self.popitem(last=False)


class Backend:
    """Lazily loaded, cached models behind one set of operations.

    Parameters
    ----------
    registry : Registry, optional
        Defaults to ``models/registry.toml``.
    device : str, optional
        ``"auto"`` (cuda, then mps, then cpu), or explicit.
    max_loaded : int
        Models kept in memory at once; the least recently used is dropped beyond this.
    cache_size : int
        Sentence vectors (and ESIM pair scores) kept in the in-memory cache (the first level).
    cache_dir : str or Path, optional
        The persistent second level (:mod:`backend.cache`), shared by every process that names the same folder:
        a folder, or ``"memory"`` for none. Default: ``SIMDASH_CACHE`` / ``SIMDASH_CACHE_DIR``, else
        ``~/.cache/simdash``.
    batching : BatchSettings, optional
        How concurrent requests for one model are merged into one forward pass (:mod:`backend.batching`).
        Default: ``SIMDASH_BATCH_WAIT_MS`` (0 = off) and friends, else a 5 ms window.
    """

    def __init__(
        self, registry: Registry | None = None, device: str | None = None, max_loaded: int = 6,
        cache_size: int = 200_000, cache_dir: str | Any | None = None, batching: BatchSettings | None = None,
    ) -> None:
        self.registry = registry or Registry.load()
        self.device = pick_device(device)
        self.max_loaded = max_loaded
        self._models: OrderedDict[str, SentenceModel] = OrderedDict()
        self._load_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._vectors = _LRU(cache_size)
        self._pairs = _LRU(cache_size)
        self._projections = _LRU(64)
        self.store: VectorStore | None = open_store(cache_dir)
        self.batcher = Batcher(batching or batch_settings())
        self._corpora = _LRU(4)  # embedded corpora opened by the dashboard (memory-mapped vectors)
        self._indexes = _LRU(8)  # search indexes: a million 384-d vectors is 1.5 GB, so only a few
        self.load_errors: dict[str, str] = {}
        self._session_folders: dict[str, Path] = {}
        #: keys being loaded now -> when the load started (time.time()).
        self.loading: dict[str, float] = {}
        # vector_hits: found in memory; vector_disk_hits: in the persistent cache; vector_misses: computed.
        self.stats = {"vector_hits": 0, "vector_disk_hits": 0, "vector_misses": 0,
                      "pair_hits": 0, "pair_disk_hits": 0, "pair_misses": 0}

    # ------------------------------------------------------------------------------------------- models
    def model(self, key: str, **options: Any) -> SentenceModel:
        """The loaded model for ``key`` (loading it on first use), optionally with other runtime options.

        Raises
        ------
        KeyError
            Unknown key.
        ModelLoadError
            The model's files are missing or broken (the message says which).
        """
        spec = self.registry[key]
        with self._lock:
            lock = self._load_locks.setdefault(key, threading.Lock())
        with lock:
            m = self._models.get(key)
            if m is None:
                self.loading[key] = time.time()
                try:
                    m = build_model(spec, self.device)
                except Exception as exc:  # any failure is this model's alone
                    msg = f"{type(exc).__name__}: {exc}"
                    self.load_errors[key] = msg
                    raise ModelLoadError(f"{key} could not be loaded: {msg}") from exc
                finally:
                    self.loading.pop(key, None)
                self.load_errors.pop(key, None)
                with self._lock:
                    self._models[key] = m
                    while len(self._models) > self.max_loaded:
                        self._models.popitem(last=False)
            with self._lock:
                if key in self._models:
                    self._models.move_to_end(key)
        options = {k: v for k, v in options.items() if v is not None and m.options.get(k) != v}
        return m.with_options(**options) if options else m

    def loaded(self) -> list[str]:
        """Keys of the models in memory now."""
        return list(self._models)

    def model_states(self) -> dict[str, str]:
        """Every registered key -> ``"loaded"``, ``"loading"``, ``"failed"`` or ``"not loaded"`` (loads nothing)."""
        loaded, loading, failed = set(self._models), set(self.loading), set(self.load_errors)
        keys = self.registry.keys()  # iterating a Registry gives specs, not keys
        return {k: "loaded" if k in loaded else "loading" if k in loading else "failed" if k in failed
                else "not loaded" for k in keys}

    def roles(self, key: str) -> frozenset[Role]:
        """What model ``key`` can do: ``{"encoder"}``, ``{"pair_scorer"}`` or both (loads no weights).

        Raises
        ------
        KeyError
            Unknown key.
        ValueError
            Its family file is missing.
        """
        return family_class(self.registry[key].family).roles_of()

    def keys_with_role(self, role: Role, keys: Sequence[str] | None = None) -> list[str]:
        """Those of ``keys`` (default: every registered model) that play ``role``; broken families are left out."""
        out = []
        for k in keys if keys is not None else self.registry.keys():
            try:
                if role in self.roles(k):
                    out.append(k)
            except (KeyError, ValueError):
                continue
        return out

    def option_specs(self, key: str) -> tuple[Option, ...]:
        """The options of model ``key``: the loaded model's (ranges fitted to its weights), else its family's."""
        m = self._models.get(key)
        if m is not None:
            return m.option_specs()
        spec = self.registry[key]
        return family_class(spec.family).declared_options(spec)

    def check_request(self, key: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validate run-time options for ``key`` before any work (loads no weights); returns them converted.

        Raises
        ------
        KeyError
            Unknown model.
        OptionError
            Unknown option, load-time option, or a value the model does not accept (the message says which).
        """
        self.registry[key]
        return validate_options(self.option_specs(key), options or {}, key, runtime_only=True)

    def model_config(self, key: str, options: dict[str, Any] | None = None) -> ModelConfig:
        """The :class:`ModelConfig` of ``key`` with run-time ``options`` (loads no weights).

        Its ``config_id`` equals ``self.model(key, **options).config_id``; files of vectors store it so that
        vectors of different configurations are never mixed.

        Raises
        ------
        KeyError, OptionError
            As :meth:`check_request`.
        """
        spec = self.registry[key]
        specs = family_class(spec.family).OPTIONS
        base = {**option_defaults(specs), **validate_options(specs, dict(spec.options), key)}
        full = spec.with_options(**{**base, **self.check_request(key, options)})
        return ModelConfig(key, spec.family, spec.source, full.config_id, dict(full.options))

    def remove(self, key: str) -> None:
        """Forget a run-time model: unload it, drop it from the registry and the load errors, and delete the
        folder its files were written to (models trained in a dashboard session)."""
        with self._lock:
            self._models.pop(key, None)
            folder = self._session_folders.pop(key, None)
        self.registry.remove(key)
        self.load_errors.pop(key, None)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    #: models one dashboard session may keep; training another removes its oldest (and its files).
    SESSION_MODELS_PER_OWNER = 3

    def add_session_model(self, spec: ModelSpec, folder: str | Path | None = None) -> list[str]:
        """Register a model trained in one session (``spec.owner``), its files in ``folder`` (deleted with it).

        Returns
        -------
        list of str
            Keys removed to keep the owner within :attr:`SESSION_MODELS_PER_OWNER`.
        """
        if not spec.owner:
            raise ValueError("a session model needs an owner (the session id)")
        self.registry.add(spec)
        with self._lock:
            if folder is not None:
                self._session_folders[spec.key] = Path(folder)
        mine = [s.key for s in self.registry if s.owner == spec.owner]
        dropped = mine[: max(0, len(mine) - self.SESSION_MODELS_PER_OWNER)]
        for k in dropped:
            self.remove(k)
        return dropped

    def remove_owner(self, owner: str) -> list[str]:
        """Remove every model of a session that has ended (its files too); returns their keys."""
        keys = [s.key for s in self.registry if owner and s.owner == owner]
        for k in keys:
            self.remove(k)
        return keys

    def info(self, key: str, **options: Any) -> dict[str, Any]:
        """The model card facts of ``key`` (loads it)."""
        return self.model(key, **options).info()

    def space_for(self, key: str, texts: Sequence[str]) -> tuple[str, str | None]:
        """The one model whose vector space holds all of ``texts`` for ``key``; see :func:`space_for`."""
        return space_for(self.registry, key, texts)

    def variant_for(self, key: str, lang: str) -> str:
        """The registered language variant of ``key`` for ``lang`` (``esim`` -> ``esim-zh``), else ``key``."""
        v = self.registry[key].variants.get(lang)
        return v if v and v in self.registry else key

    # ---------------------------------------------------------------------------------------- embedding
    def embed(
        self, key: str, texts: Sequence[str], options: dict[str, Any] | None = None, progress: ProgressFn | None = None,
        batch_size: int | None = None,
    ) -> Encoding:
        """Sentence vectors for ``texts`` from model ``key``, served from the cache where possible.

        Returns
        -------
        Encoding
            ``vectors`` (n, d) float32 unit rows, ``valid`` mask, per-text ``warnings``.
        """
        m = self._encoder(key, options)
        return self._embed_with(m, texts, progress, batch_size)

    def _encoder(self, key: str, options: dict[str, Any] | None) -> Encoder:
        """The loaded model ``key`` if it gives vectors; a :class:`RoleError` saying what it does otherwise."""
        if ENCODER not in self.roles(key):
            raise RoleError(f"{key} scores pairs only (it reads both texts together) and gives no sentence vectors; "
                            "use it on Compare, Batch, the Evaluation lab or as a reranker")
        return self.model(key, **(options or {}))  # type: ignore[return-value]

    def _embed_with(self, m: SentenceModel, texts: Sequence[str], progress: ProgressFn | None = None,
                    batch_size: int | None = None) -> Encoding:
        cleaned = [clean_text(t) for t in texts]
        cid = m.config_id
        cached = self._vectors.get_many([(cid, t) for t in cleaned])
        missing = list(dict.fromkeys(t for t, c in zip(cleaned, cached, strict=True) if c is None))
        self.stats["vector_hits"] += len(cleaned) - sum(c is None for c in cached)
        fresh: dict[str, tuple[np.ndarray, bool, list[str]]] = {}
        if missing and self.store is not None:
            found = self.store.get_many([entry_key(cid, t) for t in missing])
            for t, e in zip(missing, found, strict=True):
                if e is not None:
                    fresh[t] = e
            if fresh:
                self.stats["vector_disk_hits"] += len(fresh)
                self._vectors.put_many([((cid, t), v) for t, v in fresh.items()])
                missing = [t for t in missing if t not in fresh]
        self.stats["vector_misses"] += len(missing)
        if missing:
            computed = self._compute_vectors(m, missing, progress, batch_size)  # type: ignore[arg-type]
            fresh.update(computed)
            self._vectors.put_many([((cid, t), v) for t, v in computed.items()])
            if self.store is not None:
                self.store.put_many([(entry_key(cid, t), cid, *v) for t, v in computed.items()])
        elif progress:
            progress(len(cleaned), len(cleaned))
        dim = m.dim
        vectors = np.zeros((len(cleaned), dim), dtype=np.float32)
        valid = np.zeros(len(cleaned), dtype=bool)
        warnings: list[list[str]] = []
        for i, (t, c) in enumerate(zip(cleaned, cached, strict=True)):
            v = c if c is not None else fresh[t]
            vectors[i], valid[i] = v[0], v[1]
            warnings.append(list(v[2]))
        return Encoding(vectors, valid, warnings)

    def _compute_vectors(self, m: Encoder, texts: list[str], progress: ProgressFn | None,
                         batch_size: int | None) -> dict[str, tuple[np.ndarray, bool, list[str]]]:
        """Encode distinct cleaned texts: through the batcher (merged with other threads' requests for the
        same model configuration) when batching is on and the family gains from it, else directly."""
        if not (self.batcher.settings.enabled and m.batchable):
            enc = m.encode_detailed(texts, batch_size, progress=progress)
            return {t: (enc.vectors[j], bool(enc.valid[j]), enc.warnings[j]) for j, t in enumerate(texts)}
        # Longest first, so the pieces a big request is cut into are each of similar lengths (few pad tokens,
        # as sentence-transformers' own length sort gives an unbatched call).
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))

        def encode_batch(batch: list[str]) -> list[tuple[np.ndarray, bool, list[str]]]:
            enc = m.encode_detailed(batch, batch_size=len(batch))
            return [(enc.vectors[j].copy(), bool(enc.valid[j]), enc.warnings[j]) for j in range(len(batch))]

        res = self.batcher.run(f"encode:{m.config_id}", encode_batch, [texts[i] for i in order], progress=progress)
        return {texts[i]: r for i, r in zip(order, res, strict=True)}

    # ------------------------------------------------------------------------------------------ scoring
    def score_pairs(
        self, key: str, a: Sequence[str], b: Sequence[str], options: dict[str, Any] | None = None,
        progress: ProgressFn | None = None, route_language: bool = True,
    ) -> ModelResult:
        """Score aligned pairs with one model; never raises for model failures (see ``error``)."""
        t0 = time.perf_counter()
        a, b = [clean_text(t) for t in a], [clean_text(t) for t in b]
        if len(a) != len(b):
            raise ValueError(f"a and b must have the same length ({len(a)} != {len(b)})")
        try:
            # Route pairs whose texts are in a variant's language (Chinese -> esim-zh) to that variant.
            groups: dict[str, list[int]] = {}
            # Only models that declare variants pay for language detection (it runs per pair).
            route = route_language and bool(self.registry[key].variants)
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                k = key
                if route:
                    langs = {detect_language(x), detect_language(y)} - {"unknown"}
                    if langs == {"zh"}:
                        k = self.variant_for(key, "zh")
                    elif langs == {"en"}:
                        k = self.variant_for(key, "en")
                groups.setdefault(k, []).append(i)
            scores = np.full(len(a), np.nan, dtype=np.float32)
            warnings: list[list[str]] = [[] for _ in a]
            used = [key] * len(a)
            for k, idx in groups.items():
                fallback_note = None
                if k == key:
                    m = self.model(k, **(options or {}))
                else:
                    try:
                        m = self.model(k)
                    except ModelLoadError as exc:
                        # A broken variant must not cost the other pairs their scores: the requested model
                        # scores these pairs too, and says why.
                        m = self.model(key, **(options or {}))
                        fallback_note = f"{k} unavailable ({exc}); scored by {key} instead"
                        k = key
                ps = self._score_with(m, [a[i] for i in idx], [b[i] for i in idx], progress)
                for j, i in enumerate(idx):
                    scores[i] = ps.scores[j]
                    warnings[i] = list(ps.warnings[j])
                    used[i] = k
                    if k != key:
                        warnings[i].append(f"scored by {k} (the {self.registry[k].language} variant of {key})")
                    if fallback_note:
                        warnings[i].append(fallback_note)
            return ModelResult(key, scores, warnings, used, None, time.perf_counter() - t0)
        except Exception as exc:
            return ModelResult(key, None, [[] for _ in a], [key] * len(a), _describe(exc), time.perf_counter() - t0)

    def _score_with(self, m: SentenceModel, a: list[str], b: list[str], progress: ProgressFn | None) -> PairScores:
        if isinstance(m, PairScorer):
            cid = m.config_id
            cached = self._pairs.get_many([(cid, x, y) for x, y in zip(a, b, strict=True)])
            todo = [i for i, c in enumerate(cached) if c is None]
            self.stats["pair_hits"] += len(a) - len(todo)
            if todo and self.store is not None:
                found = self.store.get_many([entry_key(cid, a[i], b[i]) for i in todo])
                hits = [(i, e) for i, e in zip(todo, found, strict=True) if e is not None and len(e[0]) == 1]
                for i, e in hits:
                    cached[i] = (float(e[0][0]), e[2])
                self._pairs.put_many([((cid, a[i], b[i]), cached[i]) for i, _ in hits])
                self.stats["pair_disk_hits"] += len(hits)
                todo = [i for i in todo if cached[i] is None]
            self.stats["pair_misses"] += len(todo)
            if todo:
                got = self._compute_pairs(m, [(a[i], b[i]) for i in todo], progress)
                self._pairs.put_many([((cid, a[i], b[i]), g) for i, g in zip(todo, got, strict=True)])
                if self.store is not None:
                    self.store.put_many([(entry_key(cid, a[i], b[i]), cid, np.array([g[0]], dtype=np.float32),
                                          bool(np.isfinite(g[0])), g[1]) for i, g in zip(todo, got, strict=True)])
                for i, g in zip(todo, got, strict=True):
                    cached[i] = g
            return PairScores(
                np.array([c[0] for c in cached], dtype=np.float32), [list(c[1]) for c in cached], m.key
            )
        if not isinstance(m, Encoder):
            raise RoleError(f"{m.key} neither encodes texts nor scores pairs")
        uniq = list(dict.fromkeys([*a, *b]))
        pos = {t: i for i, t in enumerate(uniq)}
        enc = self._embed_with(m, uniq, progress)
        ia = np.fromiter((pos[t] for t in a), dtype=np.int64, count=len(a))
        ib = np.fromiter((pos[t] for t in b), dtype=np.int64, count=len(b))
        return cosine_pair_scores(enc, ia, ib, m.key)

    def _compute_pairs(self, m: PairScorer, pairs: list[tuple[str, str]],
                       progress: ProgressFn | None) -> list[tuple[float, list[str]]]:
        """Score cleaned pairs natively, through the batcher when batching is on (see :meth:`_compute_vectors`)."""
        def score_batch(batch: list[tuple[str, str]], progress: ProgressFn | None = None,
                        batch_size: int | None = None) -> list[tuple[float, list[str]]]:
            ps = m.score_detailed([x for x, _ in batch], [y for _, y in batch], batch_size, progress=progress)
            return [(float(s), w) for s, w in zip(ps.scores.tolist(), ps.warnings, strict=True)]

        if not (self.batcher.settings.enabled and m.batchable):
            return score_batch(pairs, progress)
        order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i][0]) - len(pairs[i][1]))
        res = self.batcher.run(f"pairs:{m.config_id}", lambda batch: score_batch(batch, batch_size=len(batch)),
                               [pairs[i] for i in order], progress=progress)
        out: list[tuple[float, list[str]]] = [(float("nan"), [])] * len(pairs)
        for i, r in zip(order, res, strict=True):
            out[i] = r
        return out

    def similarity(
        self, a: Sequence[str], b: Sequence[str], keys: Sequence[str | ModelRequest] | None = None,
        options: dict[str, dict[str, Any]] | None = None, progress: ProgressFn | None = None,
        should_stop: Callable[[], bool] | None = None, chunk: int = CHUNK,
    ) -> dict[str, ModelResult]:
        """Score columns of pairs with several models, chunk by chunk: the one loop behind Compare, Batch,
        the Evaluation lab and the CLI.

        Every chunk goes through every model before the next chunk starts, so the time the first chunk took is
        an honest estimate of the whole job. One model's failure is reported in its result (and it is not
        retried on later chunks); the others carry on.

        Parameters
        ----------
        a, b : sequence of str
            Aligned texts.
        keys : sequence of str or ModelRequest, optional
            Models (default: the registry's defaults). A :class:`~backend.registry.ModelRequest`
            (``bert:layer=-1``) carries its own options and names its result.
        options : dict, optional
            Per-key run-time options for plain-key entries, e.g. ``{"bert": {"layer": -1, "pooling": "cls"}}``.
        progress : callable, optional
            ``progress(done, total)`` in pair-model units (``total = len(a) * len(keys)``).
        should_stop : callable, optional
            Checked between chunks and models; when it returns True, :class:`~backend.jobs.StopRequested` is raised.
        chunk : int
            Pairs per scoring call.

        Returns
        -------
        dict
            Request name (the key for plain keys) -> :class:`ModelResult`.
        """
        a, b = list(a), list(b)
        if len(a) != len(b):
            raise ValueError(f"a and b must have the same length ({len(a)} != {len(b)})")
        requests = [r if isinstance(r, ModelRequest) else ModelRequest(r, r, dict((options or {}).get(r) or {}))
                    for r in (keys if keys is not None else self.registry.defaults())]
        n = len(a)
        out: dict[str, ModelResult] = {
            r.name: ModelResult(r.key, np.full(n, np.nan, dtype=np.float32), [[] for _ in range(n)], [r.key] * n)
            for r in requests
        }
        total = n * len(requests)
        done = 0
        for start in range(0, max(n, 1), max(1, chunk)):
            size = min(chunk, n - start)
            for r in requests:
                if should_stop is not None and should_stop():
                    raise StopRequested("scoring stopped")
                res = out[r.name]
                # A failed model is not retried on later chunks; its pairs count as done for the progress bar.
                if res.error is None:
                    sub = None
                    if progress is not None:
                        def sub(d: int, t: int, base: int = done, size: int = size) -> None:
                            progress(base + int(size * min(d, t) / max(t, 1)), total)
                    part = self.score_pairs(r.key, a[start : start + size], b[start : start + size], r.options or None,
                                            sub)
                    res.seconds += part.seconds
                    if part.error is not None:
                        res.error, res.scores = part.error, None
                    else:
                        res.scores[start : start + size] = part.scores
                        res.warnings[start : start + size] = part.warnings
                        res.used[start : start + size] = part.used
                done += size
                if progress is not None:
                    progress(done, total)
        return out

    def rerank(self, key: str, query: str, candidates: Sequence[str], options: dict[str, Any] | None = None) -> ModelResult:
        """Score one query against many candidates with model ``key`` (a pair scorer reads each pair together)."""
        return self.score_pairs(key, [query] * len(candidates), list(candidates), options)

    # ------------------------------------------------------------------------------------------- search
    def neighbours(
        self, key: str, queries: Sequence[str], corpus: Sequence[str], k: int = 10,
        options: dict[str, Any] | None = None, progress: ProgressFn | None = None,
    ) -> Neighbours:
        """Exact top-``k`` cosine neighbours of each query in ``corpus`` (matrix product, chunked).

        For ESIM this uses the ESIM encoder vector (its input-encoding layer pooled); rerank with
        :meth:`rerank` for ESIM's real pair score.

        Raises
        ------
        RoleError
            ``key`` gives no vectors (a cross-encoder).
        ValueError
            ``k`` below 1.
        """
        if int(k) < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        m = self._encoder(key, options)
        c_enc = self._embed_with(m, corpus, progress)
        q_enc = self._embed_with(m, queries)
        return top_k_neighbours(q_enc, c_enc, k, m.key)

    def build_index(
        self, key: str, corpus, options: dict[str, Any] | None = None, kind: str = "auto",
        progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
    ):
        """The search index of ``corpus`` under model ``key``: built once (with progress, cancellable), kept in
        memory and, when approximate, saved beside the corpus file and reused.

        Parameters
        ----------
        corpus : EmbeddedCorpus or sequence of str
            An embedded corpus (:func:`backend.embed.load_embedded_corpus`) or texts (embedded here).
        kind : {"auto", "exact", "ivf", "hnsw"}
            ``auto``: exact below :data:`backend.index.EXACT_LIMIT` vectors, IVF above.
        progress, should_stop : callable, optional
            ``progress(done, total)`` over embedding then adding vectors; ``should_stop`` is checked between
            steps (:class:`~backend.jobs.StopRequested`), so a dashboard job can cancel a long build.

        Returns
        -------
        VectorIndex
            ``.info`` (:class:`~backend.index.IndexInfo`) says what kind it is and its recall@10 vs exact.

        Raises
        ------
        CorpusMismatch
            An embedded corpus made under another configuration than ``key`` with ``options`` (says why).
        """
        from backend.index import get_index

        ec = self._embedded(key, corpus, options, progress)
        ck = ("index", ec.config_id, ec.corpus_id, kind)
        hit = self._indexes.get_many([ck])[0]
        if hit is not None:
            return hit
        idx = get_index(ec.vectors, ec.valid, ec.config_id, ec.corpus_id, ec.path, kind, progress, should_stop)
        self._indexes.put_many([(ck, idx)])
        return idx

    def open_corpus(self, path: str | Path, key: str, options: dict[str, Any] | None = None):
        """``key``'s vectors in an embedded-corpus file, checked against ``key`` with ``options``; kept open.

        Every visitor exploring the same file shares one copy (keyed by the file's path, its modification time
        and the configuration).

        Raises
        ------
        CorpusMismatch
            The file's vectors of ``key`` were made under other options (the message says which and how to redo).
        TableError
            Not an embedded corpus, or no vectors of ``key`` in it (the message lists what it holds).
        """
        from backend.embed import load_embedded_corpus

        path = Path(path)
        cfg = self.model_config(key, options)
        ck = ("corpus", str(path.resolve()), path.stat().st_mtime_ns, cfg.config_id)
        hit = self._corpora.get_many([ck])[0]
        if hit is None:
            hit = load_embedded_corpus(path, expect=cfg)
            self._corpora.put_many([(ck, hit)])
        return hit

    def has_index(self, key: str, corpus, options: dict[str, Any] | None = None, kind: str = "auto") -> bool:
        """True when :meth:`build_index` would answer at once (built in this process, or saved beside the file)."""
        from backend.index import EXACT_LIMIT, saved_index_exists

        ec = self._embedded(key, corpus, options)
        if len(ec) < EXACT_LIMIT and kind in ("auto", "exact"):
            return True
        if self._indexes.get_many([("index", ec.config_id, ec.corpus_id, kind)])[0] is not None:
            return True
        return saved_index_exists(ec.config_id, ec.corpus_id, ec.path, kind)

    def _embedded(self, key: str, corpus, options: dict[str, Any] | None, progress: ProgressFn | None = None):
        """``corpus`` as an :class:`~backend.embed.EmbeddedCorpus` of ``key`` (checked, or embedded here)."""
        from backend.embed import CorpusMismatch, EmbeddedCorpus, embed_texts

        if isinstance(corpus, EmbeddedCorpus):
            why = self.model_config(key, options).differences({**corpus.config, "config_id": corpus.config_id})
            if why:
                raise CorpusMismatch(f"the corpus was {why}; vectors of two configurations are not comparable")
            return corpus
        self._encoder(key, options)
        return embed_texts(self, key, list(corpus), options, progress)

    def search(
        self, key: str, queries: Sequence[str], corpus, k: int = 10, options: dict[str, Any] | None = None,
        progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None, kind: str = "auto",
    ) -> Neighbours:
        """Top-``k`` neighbours of each query in a corpus of any size, saying how they were found.

        Texts below :data:`backend.index.EXACT_LIMIT` take :meth:`neighbours` (exact, as always); an embedded
        corpus (:func:`backend.embed.load_embedded_corpus`) or a larger one is searched through
        :meth:`build_index` (exact below the limit, approximate above, with recall@10 measured at build time).

        Returns
        -------
        Neighbours
            With ``search`` (:class:`~backend.index.IndexInfo`): ``search.describe()`` is the line to show.

        Raises
        ------
        RoleError, CorpusMismatch, ValueError
            A model without vectors; an embedded corpus of another configuration; ``k`` below 1.
        """
        from backend.embed import EmbeddedCorpus
        from backend.index import EXACT_LIMIT, IndexInfo

        if int(k) < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        if not isinstance(corpus, EmbeddedCorpus) and len(corpus) < EXACT_LIMIT and kind in ("auto", "exact"):
            nb = self.neighbours(key, queries, corpus, k, options, progress)
            nb.search = IndexInfo("exact", len(corpus), self.model(key, **(options or {})).dim, engine="numpy")
            return nb
        ec = self._embedded(key, corpus, options, progress)
        idx = self.build_index(key, ec, options, kind, progress, should_stop)
        m = self._encoder(key, options)
        q = self._embed_with(m, queries)
        scores, rows = idx.search(q.vectors, int(k))
        rows[~q.valid] = -1
        scores[~q.valid] = np.nan
        cw = [] if isinstance(corpus, EmbeddedCorpus) else [w.split("; ") if w else [] for w in ec.warnings]
        return Neighbours(rows, scores, q.warnings, cw, m.key, idx.info)

    # ---------------------------------------------------------------------------------------- projection
    def project(
        self, key: str, texts: Sequence[str], method: Literal["umap", "pca"] = "umap", seed: int = 42,
        n_neighbors: int = 15, min_dist: float = 0.1, options: dict[str, Any] | None = None,
        progress: ProgressFn | None = None,
    ) -> np.ndarray:
        """2-D coordinates of ``texts`` under model ``key``: UMAP (cosine metric) or PCA; cached.

        Rows without a vector (empty, all unknown) are NaN. UMAP with a fixed ``seed`` is reproducible
        (and single-threaded: umap-learn disables parallelism when ``random_state`` is set). Above
        :data:`FIT_LIMIT` points UMAP is fitted on a seeded sample; :meth:`project_detailed` says so.

        Raises
        ------
        RoleError
            ``key`` gives no vectors (a cross-encoder).
        ValueError
            Fewer than 3 texts with a vector: no 2-D map can be fitted (the message says how many there are).
        """
        return self.project_detailed(key, texts, method, seed, n_neighbors, min_dist, options, progress).coords

    def project_detailed(
        self, key: str, corpus, method: Literal["umap", "pca"] = "umap", seed: int = 42,
        n_neighbors: int = 15, min_dist: float = 0.1, options: dict[str, Any] | None = None,
        progress: ProgressFn | None = None, fit_limit: int | None = None, fit_sample: int | None = None,
    ) -> Projection:
        """Like :meth:`project`, for texts or an embedded corpus of any size, and saying what was done.

        Parameters
        ----------
        corpus : sequence of str or EmbeddedCorpus
            Texts (embedded here), or vectors from ``python -m backend embed`` (checked against ``key`` and
            ``options``: another configuration raises :class:`~backend.embed.CorpusMismatch`).
        fit_limit : int, optional
            Above this many points UMAP is fitted on a seeded sample of :data:`FIT_SAMPLE` and the rest are
            placed with ``transform`` (default :data:`FIT_LIMIT`).
        fit_sample : int, optional
            The size of that sample (default :data:`FIT_SAMPLE`).

        Returns
        -------
        Projection
            ``coords`` (n, 2) float32 (NaN rows: no vector) and ``info``
            (:class:`ProjectionInfo`; ``info.describe()`` is the sentence to show).
        """
        from backend.embed import EmbeddedCorpus

        t0 = time.perf_counter()
        if isinstance(corpus, EmbeddedCorpus):
            ec = self._embedded(key, corpus, options)
            cid, digest, n_all = ec.config_id, f"corpus:{ec.corpus_id}", len(ec)
        else:
            m = self._encoder(key, options)
            texts = list(corpus)
            cid, n_all = m.config_id, len(texts)
            digest = hashlib.sha1("\x1f".join(clean_text(t) for t in texts).encode()).hexdigest()
        limit = FIT_LIMIT if fit_limit is None else int(fit_limit)
        sample = FIT_SAMPLE if fit_sample is None else int(fit_sample)
        ck = (cid, method, seed, n_neighbors, min_dist, digest, limit, sample)
        hit = self._projections.get_many([ck])[0]
        if hit is not None:
            return Projection(hit.coords.copy(), replace(hit.info, cached=True, seconds=time.perf_counter() - t0))
        if not isinstance(corpus, EmbeddedCorpus):
            enc = self._embed_with(m, texts, progress)
            vectors, valid = enc.vectors, enc.valid
        else:
            vectors, valid = ec.vectors, ec.valid
        coords = np.full((n_all, 2), np.nan, dtype=np.float32)
        x = vectors[valid]
        if len(x) < 3:
            raise ValueError(f"a 2-D map needs at least 3 texts with a vector; {key} has {len(x)} of {n_all} "
                             "(empty texts and texts without known words have none)")
        xy, info = fit_2d(x, method, seed, n_neighbors, min_dist, fit_limit=limit, sample=sample)
        coords[valid] = xy
        info.seconds = time.perf_counter() - t0
        info.without_vector = int(n_all - len(x))
        self._projections.put_many([(ck, Projection(coords, info))])
        return Projection(coords.copy(), info)

    def clusters(self, key: str, texts: Sequence[str], n_clusters: int = 8, seed: int = 42,
                 options: dict[str, Any] | None = None) -> np.ndarray:
        """K-means cluster of each text in model ``key``'s own vector space (not in a 2-D map); cached.

        ``texts`` may be an :class:`~backend.embed.EmbeddedCorpus` (its vectors are used, checked against ``key``).

        Returns
        -------
        np.ndarray, shape (n,), int
            Cluster ids 0..k-1; -1 for texts without a vector.
        """
        from backend.embed import EmbeddedCorpus

        if isinstance(texts, EmbeddedCorpus):  # vectors made elsewhere (python -m backend embed), checked here
            ec = self._embedded(key, texts, options)
            cid, digest = ec.config_id, f"corpus:{ec.corpus_id}"
        else:
            m = self._encoder(key, options)
            cid = m.config_id
            digest = hashlib.sha1("\x1f".join(clean_text(t) for t in texts).encode()).hexdigest()
        ck = (cid, "kmeans", int(n_clusters), int(seed), digest)
        hit = self._projections.get_many([ck])[0]
        if hit is not None:
            return hit.copy()
        if isinstance(texts, EmbeddedCorpus):
            vectors, valid = ec.vectors, ec.valid
        else:
            enc = self._embed_with(m, texts)
            vectors, valid = enc.vectors, enc.valid
        out = cluster_labels(vectors, valid, n_clusters, seed)
        self._projections.put_many([(ck, out)])
        return out.copy()

    def align(self, key: str, a: str, b: str) -> dict[str, Any] | None:
        """A pair scorer's word alignment of ``a`` and ``b`` for a heatmap (ESIM's soft attention), or None when
        the model has none. See :meth:`backend.families.esim.ESIMModel.align` for the fields."""
        m = self.model(key)
        fn = getattr(m, "align", None)
        return fn(a, b) if callable(fn) else None

    def measure_speed(self, key: str, options: dict[str, Any] | None = None, n: int | None = None) -> Speed:
        """Latency of one pair and throughput of model ``key`` on this machine (on fresh demo-corpus texts)."""
        from backend.io import load_demo_corpus
        from backend.speed import BENCH_SENTENCES, measure_speed

        corpus = load_demo_corpus()["text"].tolist()
        return measure_speed(self.model(key, **(options or {})), corpus, n or BENCH_SENTENCES)

    def load(self, key: str) -> None:
        """Load model ``key`` now (a page's progress bar calls this per model); raises :class:`ModelLoadError`."""
        self.model(key)

    def clear_cache(self, persistent: bool = True) -> None:
        """Drop cached vectors, pair scores and projections (models stay loaded).

        With ``persistent`` the on-disk cache is emptied too, for every process that shares its folder.
        """
        for c in (self._vectors, self._pairs, self._projections, self._indexes):
            with c.lock:
                c.clear()
        if persistent and self.store is not None:
            self.store.clear()

    def cache_info(self) -> dict[str, Any]:
        """Hit counts of both cache levels and where the persistent one lives (None when it is off)."""
        return {"memory_vectors": len(self._vectors), "memory_pairs": len(self._pairs), **self.stats,
                "persistent": self.store.info() if self.store is not None else None}


def top_k_neighbours(q_enc: Encoding, c_enc: Encoding, k: int, model: str) -> Neighbours:
    """Exact top-``k`` cosine neighbours of each query row in the corpus rows (matrix product, chunked).

    Rows without a vector are never returned; ``-1`` / NaN pad when fewer than ``k`` are usable. Shared by
    :meth:`Backend.neighbours` and the HTTP client, so both rank alike.
    """
    n_q = len(q_enc)
    k_eff = max(0, min(k, len(c_enc)))
    idx_out = np.full((n_q, k), -1, dtype=np.int64)
    sc_out = np.full((n_q, k), np.nan, dtype=np.float32)
    cvecs = c_enc.vectors
    for s in range(0, n_q, 256):
        q = q_enc.vectors[s : s + 256]
        sims = q @ cvecs.T
        sims[:, ~c_enc.valid] = -np.inf
        if k_eff == 0:
            continue
        part = np.argpartition(-sims, kth=min(k_eff, sims.shape[1]) - 1, axis=1)[:, :k_eff]
        order = np.take_along_axis(sims, part, 1).argsort(axis=1)[:, ::-1]
        top = np.take_along_axis(part, order, 1)
        top_s = np.take_along_axis(sims, top, 1)
        for r in range(top.shape[0]):
            ok = np.isfinite(top_s[r]) & q_enc.valid[s + r]
            n_ok = int(ok.sum())
            idx_out[s + r, :n_ok] = top[r][ok]
            sc_out[s + r, :n_ok] = top_s[r][ok]
    return Neighbours(idx_out, sc_out, q_enc.warnings, c_enc.warnings, model)


#: above this many points UMAP is fitted on a sample and the rest are placed with ``transform``: a fit grows
#: faster than linearly with the points (its k-NN graph), placing a point with transform costs a fixed share.
FIT_LIMIT = 20_000
#: the seeded sample UMAP is fitted on above FIT_LIMIT: enough points for every cluster of a corpus to shape
#: the map, few enough to fit in well under a minute.
FIT_SAMPLE = 10_000
#: above this many fitted points, UMAP works on the first PCA_DIMS principal components (see fit_2d).
PCA_FIRST_ABOVE = 5_000
PCA_DIMS = 50


@dataclass
class ProjectionInfo:
    """What :meth:`Backend.project_detailed` did, for the page to say.

    Attributes
    ----------
    method : {"umap", "pca"}
    n : int
        Points placed (texts with a vector).
    fitted_on : int
        Points the map was fitted on (``n`` unless sampled).
    seed : int
    seconds : float
    cached : bool
        Served from the cache.
    without_vector : int
        Texts left out (NaN rows).
    note : str
        Why the method differs from the one asked for, if it does.
    """

    method: str
    n: int
    fitted_on: int
    seed: int
    seconds: float = 0.0
    cached: bool = False
    without_vector: int = 0
    note: str = ""

    def describe(self) -> str:
        """``UMAP fitted on 10,000 of 100,000 points (seed 42); the rest placed with transform``."""
        name = self.method.upper()
        if self.fitted_on < self.n:
            out = (f"{name} fitted on {self.fitted_on:,} of {self.n:,} points (a sample drawn with seed {self.seed}); "
                   "the rest placed with transform")
        else:
            out = f"{name} of {self.n:,} points (seed {self.seed})"
        if self.note:
            out += f"; {self.note}"
        return out + (" (cached)" if self.cached else "")


@dataclass
class Projection:
    """2-D coordinates and how they were made.

    Attributes
    ----------
    coords : np.ndarray, shape (n, 2), float32
        NaN rows: no vector.
    info : ProjectionInfo
    """

    coords: np.ndarray
    info: ProjectionInfo


def fit_2d(x: np.ndarray, method: str = "umap", seed: int = 42, n_neighbors: int = 15, min_dist: float = 0.1,
           fit_limit: int = FIT_LIMIT, sample: int = FIT_SAMPLE) -> tuple[np.ndarray, ProjectionInfo]:
    """Project unit vectors to 2-D with UMAP (cosine) or PCA, sampling the fit above ``fit_limit`` points.

    Tiny inputs fall back to PCA. Above ``fit_limit`` points, UMAP is fitted on ``sample`` points drawn with
    ``seed`` and the others are placed with ``transform`` (which embeds new points next to their neighbours
    among the fitted ones: the map's layout comes from the sample); PCA, cheap at any size, fits them all.
    Above :data:`PCA_FIRST_ABOVE` fitted points UMAP runs on :data:`PCA_DIMS` principal components with 200
    epochs (the info's note says so).

    Returns
    -------
    coords : np.ndarray, shape (n, 2), float32
    info : ProjectionInfo
    """
    if method not in ("umap", "pca"):
        raise ValueError(f"method must be 'umap' or 'pca', not {method!r}")
    n = len(x)
    if method == "umap" and n > 5:
        import umap

        nn = max(2, min(n_neighbors, n - 1))
        if n > fit_limit:
            fit_idx = np.sort(np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False))
            rest = np.setdiff1d(np.arange(n), fit_idx, assume_unique=True)
        else:
            fit_idx, rest = np.arange(n), np.zeros(0, dtype=np.int64)
        note, kw = "", {}
        z = x
        if len(fit_idx) > PCA_FIRST_ABOVE and x.shape[1] > PCA_DIMS:
            # UMAP's neighbour search and layout cost grow with the dimension; 50 principal components keep the
            # neighbourhoods (trustworthiness 0.86 either way in bench/bench_umap.py) at a quarter of the time,
            # and 200 epochs (UMAP's own choice above 10,000 points) halve it again.
            from sklearn.decomposition import PCA

            pca = PCA(n_components=PCA_DIMS, random_state=seed).fit(x[fit_idx])
            z = pca.transform(x).astype(np.float32)
            note, kw = f"reduced to {PCA_DIMS} dimensions with PCA first", {"n_epochs": 200}
        reducer = umap.UMAP(n_components=2, n_neighbors=nn, min_dist=min_dist, metric="cosine", random_state=seed,
                            init="spectral" if len(fit_idx) > nn + 1 else "random", n_jobs=1, **kw)
        coords = np.empty((n, 2), dtype=np.float32)
        coords[fit_idx] = reducer.fit_transform(z[fit_idx])
        if len(rest):
            for s in range(0, len(rest), 50_000):  # transform in blocks: its neighbour search holds a block in memory
                part = rest[s : s + 50_000]
                coords[part] = reducer.transform(z[part])
        return coords, ProjectionInfo("umap", n, len(fit_idx), seed, note=note)
    from sklearn.decomposition import PCA

    note = "PCA: too few points for UMAP" if method == "umap" else ""
    return PCA(n_components=2, random_state=seed).fit_transform(x).astype(np.float32), ProjectionInfo("pca", n, n, seed,
                                                                                                        note=note)


def reduce_2d(x: np.ndarray, method: str = "umap", seed: int = 42, n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """Project unit vectors to 2-D with UMAP (cosine) or PCA; tiny inputs fall back to PCA (:func:`fit_2d`)."""
    return fit_2d(x, method, seed, n_neighbors, min_dist)[0]


def space_for(registry: Registry, key: str, texts: Sequence[str]) -> tuple[str, str | None]:
    """The one model whose vector space holds all of ``texts`` for ``key``, and a note when that needed a rule.

    Vectors from two models cannot be compared, so a corpus is never split between a model and its language
    variant. The rule: the language most of the texts are in chooses (``sbert`` -> ``sbert-zh`` for a mostly
    Chinese corpus); a corpus with more than a tenth in the other language gets a note saying which model read
    everything (m3e-small reads English at 70.6 STS-B dev Spearman, all-MiniLM reads Chinese as unknown tokens).

    Returns
    -------
    tuple
        ``(key to embed with, note or None)``.
    """
    variants = registry[key].variants
    if not variants:
        return key, None
    step = max(1, len(texts) // 2000)  # a sample is enough to count languages
    langs = [detect_language(clean_text(t)) for t in list(texts)[::step]]
    zh, en = sum(x == "zh" for x in langs), sum(x == "en" for x in langs)
    if zh + en == 0:
        return key, None
    major = "zh" if zh > en else "en"
    use = variants.get(major) if variants.get(major) in registry else key
    minority = min(zh, en) / (zh + en)
    note = None
    if minority > 0.1:
        other = "English" if major == "zh" else "Chinese"
        # "this model" unless routed: then every model of a page shares the same note, and the page shows it once
        model = "this model" if use == key else use
        note = (f"mixed corpus ({minority:.0%} {other}): every text is embedded with {model}, so all of them share "
                f"one vector space; the {other} ones are read by a model made for the other language")
    return use, note


def cluster_labels(vectors: np.ndarray, valid: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """K-means ids (0..k-1) for the valid rows of ``vectors``, -1 elsewhere; ``k`` is capped by the row count."""
    from sklearn.cluster import KMeans

    out = np.full(len(vectors), -1, dtype=np.int64)
    x = vectors[valid]
    if len(x) == 0:
        return out
    k = max(1, min(int(n_clusters), len(x)))
    out[np.flatnonzero(valid)] = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    return out


def _describe(exc: BaseException) -> str:
    """One line for a user: the exception type and message (the last frame for unexpected ones)."""
    if isinstance(exc, (ModelLoadError, FileNotFoundError, ValueError, KeyError, OptionError)):
        return str(exc).strip("'\"")
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


_DEFAULT: Backend | None = None
_DEFAULT_LOCK = threading.Lock()


def get_backend() -> Backend:
    """The process-wide default :class:`Backend` (the CLI's; the dashboard wraps its own in st.cache_resource)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = Backend()
        return _DEFAULT


__all__ = ["FIT_LIMIT", "FIT_SAMPLE", "Backend", "ModelConfig", "ModelLoadError", "ModelResult", "ModelSpec",
           "Neighbours", "Projection", "ProjectionInfo", "RoleError", "cluster_labels", "fit_2d", "get_backend",
           "reduce_2d", "space_for", "top_k_neighbours"]
