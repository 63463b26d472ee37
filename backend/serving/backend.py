"""The cached backend: one object that the dashboard, the command line and the benchmarks share.

:class:`Backend` loads each registered model lazily (once), keeps models loaded within a memory bound (least
recently used unloaded beyond it), caches sentence vectors per (model configuration, text), and offers the operations the dashboard is built from:
:meth:`~Backend.similarity`, :meth:`~Backend.embed`, :meth:`~Backend.neighbours`, :meth:`~Backend.project`
and :meth:`~Backend.rerank`. A model that fails to load or raises produces an error *for that model only*:
operations over several models return a result per model, with ``error`` set where it failed.

Two layers sit under every vector and native pair score: a cache (an in-memory LRU, then the persistent SQLite
store of :mod:`backend.serving.cache` shared by every process on the machine), asked by configuration id before any
weights load (:class:`_Handle`), and, for what neither has, the model, loaded then, behind dynamic batching
(:mod:`backend.serving.batching`): concurrent calls for the same model configuration — dashboard sessions are threads,
and so are the HTTP server's requests — are merged into shared forward passes. ``SIMDASH_CACHE=0`` and
``SIMDASH_BATCH_WAIT_MS=0`` switch them off.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from backend.base import (
    ENCODER,
    PAIR_SCORER,
    Encoder,
    Encoding,
    PairScorer,
    PairScores,
    ProgressFn,
    Role,
    SentenceModel,
    cosine_pair_scores,
)
from backend.devices import pick_device
from backend.families import build_model, family_class
from backend.jobs import StopRequested
from backend.lab.projection import FIT_LIMIT, FIT_SAMPLE, Projection, cluster_labels, fit_2d
from backend.options import Option, OptionError, validate_options
from backend.options import defaults as option_defaults
from backend.registry import NEUTRAL_OPTIONS, ModelRequest, ModelSpec, Registry, weights_digest
from backend.results import ModelConfig, ModelLoadError, ModelResult, Neighbours, RoleError
from backend.routing import Route, route_pairs, route_texts, variant
from backend.serving.batching import Batcher, BatchSettings, batch_settings
from backend.serving.cache import VectorStore, entry_key, open_store
from backend.serving.speed import Speed
from backend.text import clean_text

if TYPE_CHECKING:  # the layer probe's types: its module (scipy, pandas) loads only when a probe runs
    from backend.lab.evaluation import LabelledPairs
    from backend.lab.probe import ProbeResult

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


class _Handle:
    """A model named by key and options whose weights load only when they are needed.

    Its :attr:`config_id` is known without weights (:meth:`Backend.model_config`), so the memory and persistent
    caches are asked first and a model is loaded only for what neither holds: a request whose vectors or scores
    are all cached loads nothing (Infinity and text-embeddings-inference look caches up by request, too).
    """

    def __init__(self, be: Backend, key: str, options: dict[str, Any] | None) -> None:
        self.be, self.key, self.options = be, key, dict(options or {})
        self.roles = be.roles(key)
        loaded = be._models.get(key)
        # A loaded model knows its id exactly; otherwise the registry and the family declare it.
        self.config_id = (loaded.with_options(**self._changed(loaded)).config_id if loaded is not None
                          else be.model_config(key, self.options).config_id)
        self._model: SentenceModel | None = None

    def _changed(self, m: SentenceModel) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if v is not None and m.options.get(k) != v}

    def get(self) -> SentenceModel:
        """The loaded model (loading it now if needed)."""
        if self._model is None:
            self._model = self.be.model(self.key, **self.options)
        return self._model


class Backend:
    """Lazily loaded, cached models behind one set of operations.

    Parameters
    ----------
    registry : Registry, optional
        Defaults to ``models/registry.toml``.
    device : str, optional
        ``"auto"`` (cuda, then mps, then cpu), or explicit.
    max_loaded : int, optional
        At most this many models in memory (default: no count, only the memory bound).
    max_memory : int, optional
        Bytes of weights kept in memory (``SIMDASH_MODEL_MEMORY_MB``; default half the machine's memory): the
        least recently used model is dropped beyond it, never the one just loaded. On a 24 GB machine every
        default model and its Chinese variant (about 1 GB of weights together) stay resident, so no rerun
        reloads one.
    cache_size : int
        Sentence vectors (and ESIM pair scores) kept in the in-memory cache (the first level).
    cache_dir : str or Path, optional
        The persistent second level (:mod:`backend.serving.cache`), shared by every process that names the same folder:
        a folder, or ``"memory"`` for none. Default: ``SIMDASH_CACHE`` / ``SIMDASH_CACHE_DIR``, else
        ``~/.cache/simdash``.
    batching : BatchSettings, optional
        How concurrent requests for one model are merged into one forward pass (:mod:`backend.serving.batching`).
        Default: ``SIMDASH_BATCH_WAIT_MS`` (0 = off) and friends, else a 5 ms window.
    """

    def __init__(
        self, registry: Registry | None = None, device: str | None = None, max_loaded: int | None = None,
        cache_size: int = 200_000, cache_dir: str | Any | None = None, batching: BatchSettings | None = None,
        max_memory: int | None = None,
    ) -> None:
        self.registry = registry if registry is not None else Registry.load()  # an empty one is a registry too
        self._device_request = device
        self._device: str | None = None
        self.max_loaded = max_loaded
        self.max_memory = int(max_memory) if max_memory is not None else default_model_memory()
        self._models: OrderedDict[str, SentenceModel] = OrderedDict()
        #: bytes of weights per loaded model (:func:`model_bytes`), for the memory bound.
        self._sizes: dict[str, int] = {}
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

    @property
    def device(self) -> str:
        """Where models run (chosen on first use: choosing ``auto`` imports torch, which a request served from the
        caches does not need)."""
        if self._device is None:
            self._device = pick_device(self._device_request)
        return self._device

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
                size = model_bytes(m)
                with self._lock:
                    self._models[key] = m
                    self._sizes[key] = size
                    self._evict(keep=key)
            with self._lock:
                if key in self._models:
                    self._models.move_to_end(key)
        options = {k: v for k, v in options.items() if v is not None and m.options.get(k) != v}
        return m.with_options(**options) if options else m

    def _evict(self, keep: str) -> None:
        """Drop least recently used models (never ``keep``) while over the memory or count bound; call locked."""
        def over() -> bool:
            count = self.max_loaded is not None and len(self._models) > self.max_loaded
            return count or sum(self._sizes.get(k, 0) for k in self._models) > self.max_memory

        while len(self._models) > 1 and over():
            victim = next(k for k in self._models if k != keep)
            del self._models[victim]
            self._sizes.pop(victim, None)

    def loaded(self) -> list[str]:
        """Keys of the models in memory now."""
        return list(self._models)

    def memory(self) -> dict[str, int]:
        """Bytes of weights per loaded model (what the pool's memory bound counts)."""
        return {k: self._sizes.get(k, 0) for k in list(self._models)}

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
        try:
            digest = family_class(spec.family).weights_digest(full)
        except Exception:  # a family that cannot fingerprint its parts reports that when it loads
            digest = weights_digest(spec.source)
        cid = full.config_id_with(digest)
        # Options at their neutral value (added later: script, layer_mix) are left out, as from config_id: the
        # configuration written into files of vectors reads as before they existed.
        shown = {k: v for k, v in full.options.items() if NEUTRAL_OPTIONS.get(k, object()) != v}
        return ModelConfig(key, spec.family, spec.source, cid, shown)

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
        return variant(self.registry, key, lang)

    def route_texts(self, key: str, texts: Sequence[str], options: dict[str, Any] | None = None) -> Route:
        """The one model (and its options) that embeds all of ``texts`` for ``key``: :func:`backend.routing.route_texts`."""
        return route_texts(self.registry, self.option_specs, key, options, texts)

    def route_pair(self, key: str, a: str, b: str, options: dict[str, Any] | None = None) -> Route:
        """The model (and its options) that scores the pair ``(a, b)`` for ``key``: :func:`backend.routing.route_pairs`."""
        return next(iter(route_pairs(self.registry, self.option_specs, key, options, [a], [b]).values()))[0]

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

    def _encoder(self, key: str, options: dict[str, Any] | None) -> _Handle:
        """Model ``key`` with ``options`` if it gives vectors (weights not loaded yet); a :class:`RoleError`
        saying what it does otherwise, and an OptionError for options it does not take."""
        if ENCODER not in self.roles(key):
            raise RoleError(f"{key} scores pairs only (it reads both texts together) and gives no sentence vectors; "
                            "use it on Compare, Batch, the Evaluation lab or as a reranker")
        return _Handle(self, key, options)

    def _embed_with(self, h: _Handle, texts: Sequence[str], progress: ProgressFn | None = None,
                    batch_size: int | None = None) -> Encoding:
        cleaned = [clean_text(t) for t in texts]
        cid = h.config_id
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
            computed = self._compute_vectors(h.get(), missing, progress, batch_size)  # type: ignore[arg-type]
            fresh.update(computed)
            self._vectors.put_many([((cid, t), v) for t, v in computed.items()])
            if self.store is not None:
                self.store.put_many([(entry_key(cid, t), cid, *v) for t, v in computed.items()])
        elif progress:
            progress(len(cleaned), len(cleaned))
        # The dimension from a vector at hand: a request served from the caches loads no weights for it.
        first = next((c for c in cached if c is not None), None) or next(iter(fresh.values()), None)
        dim = len(first[0]) if first is not None else h.get().dim
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
            # One rule for every surface (backend.routing): Chinese on either side -> the zh variant, with the
            # user's options carried over (or refused, naming them).
            groups = route_pairs(self.registry, self.option_specs, key, options, a, b) if route_language else \
                {key: (Route(key, dict(options or {}), key), list(range(len(a))))}
            scores = np.full(len(a), np.nan, dtype=np.float32)
            warnings: list[list[str]] = [[] for _ in a]
            used = [key] * len(a)
            for k, (route, idx) in groups.items():
                fallback_note = None
                ga, gb = [a[i] for i in idx], [b[i] for i in idx]
                if k == key:
                    ps = self._score_with(_Handle(self, k, route.options), ga, gb, progress)
                else:
                    try:
                        ps = self._score_with(_Handle(self, k, route.options), ga, gb, progress)
                    except ModelLoadError as exc:
                        # A broken variant must not cost the other pairs their scores: the requested model
                        # scores these pairs too, and says why.
                        ps = self._score_with(_Handle(self, key, options), ga, gb, progress)
                        fallback_note = f"{k} unavailable ({exc}); scored by {key} instead"
                        k = key
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

    def _score_with(self, h: _Handle, a: list[str], b: list[str], progress: ProgressFn | None) -> PairScores:
        """Scores of cleaned pairs by ``h``: cached ones first, the model (loaded only now) for the rest."""
        if PAIR_SCORER in h.roles:
            cid = h.config_id
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
                got = self._compute_pairs(h.get(), [(a[i], b[i]) for i in todo], progress)  # type: ignore[arg-type]
                self._pairs.put_many([((cid, a[i], b[i]), g) for i, g in zip(todo, got, strict=True)])
                if self.store is not None:
                    self.store.put_many([(entry_key(cid, a[i], b[i]), cid, np.array([g[0]], dtype=np.float32),
                                          bool(np.isfinite(g[0])), g[1]) for i, g in zip(todo, got, strict=True)])
                for i, g in zip(todo, got, strict=True):
                    cached[i] = g
            elif progress:
                progress(len(a), len(a))
            return PairScores(
                np.array([c[0] for c in cached], dtype=np.float32), [list(c[1]) for c in cached], h.key
            )
        if ENCODER not in h.roles:
            raise RoleError(f"{h.key} neither encodes texts nor scores pairs")
        uniq = list(dict.fromkeys([*a, *b]))
        pos = {t: i for i, t in enumerate(uniq)}
        enc = self._embed_with(h, uniq, progress)
        ia = np.fromiter((pos[t] for t in a), dtype=np.int64, count=len(a))
        ib = np.fromiter((pos[t] for t in b), dtype=np.int64, count=len(b))
        return cosine_pair_scores(enc, ia, ib, h.key)

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
        requests = self.registry.requests(keys, options)
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
        return self._exact_neighbours(self._encoder(key, options), queries, corpus, int(k), progress)[0]

    def _exact_neighbours(self, h: _Handle, queries: Sequence[str], corpus: Sequence[str], k: int,
                          progress: ProgressFn | None) -> tuple[Neighbours, int]:
        """Exact neighbours and the vectors' dimension (from the vectors: a cached corpus loads no weights)."""
        c_enc = self._embed_with(h, corpus, progress)
        return top_k_neighbours(self._embed_with(h, queries), c_enc, k, h.key), int(c_enc.vectors.shape[1])

    def build_index(
        self, key: str, corpus, options: dict[str, Any] | None = None, kind: str = "auto",
        progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
    ):
        """The search index of ``corpus`` under model ``key``: built once (with progress, cancellable), kept in
        memory and, when approximate, saved beside the corpus file and reused.

        Parameters
        ----------
        corpus : EmbeddedCorpus or sequence of str
            An embedded corpus (:func:`backend.files.embed.load_embedded_corpus`) or texts (embedded here).
        kind : {"auto", "exact", "ivf", "hnsw"}
            ``auto``: exact below :data:`backend.files.index.EXACT_LIMIT` vectors, IVF above.
        progress, should_stop : callable, optional
            ``progress(done, total)`` over embedding then adding vectors; ``should_stop`` is checked between
            steps (:class:`~backend.jobs.StopRequested`), so a dashboard job can cancel a long build.

        Returns
        -------
        VectorIndex
            ``.info`` (:class:`~backend.files.index.IndexInfo`) says what kind it is and its recall@10 vs exact.

        Raises
        ------
        CorpusMismatch
            An embedded corpus made under another configuration than ``key`` with ``options`` (says why).
        """
        from backend.files.index import get_index

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
        from backend.files.embed import load_embedded_corpus

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
        from backend.files.index import EXACT_LIMIT, saved_index_exists

        ec = self._embedded(key, corpus, options)
        if len(ec) < EXACT_LIMIT and kind in ("auto", "exact"):
            return True
        if self._indexes.get_many([("index", ec.config_id, ec.corpus_id, kind)])[0] is not None:
            return True
        return saved_index_exists(ec.config_id, ec.corpus_id, ec.path, kind)

    def _embedded(self, key: str, corpus, options: dict[str, Any] | None, progress: ProgressFn | None = None):
        """``corpus`` as an :class:`~backend.files.embed.EmbeddedCorpus` of ``key`` (checked, or embedded here)."""
        from backend.files.embed import CorpusMismatch, EmbeddedCorpus, embed_texts

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

        Texts below :data:`backend.files.index.EXACT_LIMIT` take :meth:`neighbours` (exact, as always); an embedded
        corpus (:func:`backend.files.embed.load_embedded_corpus`) or a larger one is searched through
        :meth:`build_index` (exact below the limit, approximate above, with recall@10 measured at build time).

        Returns
        -------
        Neighbours
            With ``search`` (:class:`~backend.files.index.IndexInfo`): ``search.describe()`` is the line to show.

        Raises
        ------
        RoleError, CorpusMismatch, ValueError
            A model without vectors; an embedded corpus of another configuration; ``k`` below 1.
        """
        from backend.files.embed import EmbeddedCorpus
        from backend.files.index import EXACT_LIMIT, IndexInfo

        if int(k) < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        if not isinstance(corpus, EmbeddedCorpus) and len(corpus) < EXACT_LIMIT and kind in ("auto", "exact"):
            nb, dim = self._exact_neighbours(self._encoder(key, options), queries, corpus, int(k), progress)
            nb.search = IndexInfo("exact", len(corpus), dim, engine="numpy")
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
            ``options``: another configuration raises :class:`~backend.files.embed.CorpusMismatch`).
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
        from backend.files.embed import EmbeddedCorpus

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

        ``texts`` may be an :class:`~backend.files.embed.EmbeddedCorpus` (its vectors are used, checked against ``key``).

        Returns
        -------
        np.ndarray, shape (n,), int
            Cluster ids 0..k-1; -1 for texts without a vector.
        """
        from backend.files.embed import EmbeddedCorpus

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
        from backend.files.io import load_demo_corpus
        from backend.serving.speed import BENCH_SENTENCES, measure_speed

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

    # The rest of backend.serving.protocol.BackendProtocol, which RemoteBackend implements too.
    #: the model server's address: None, the models run in this process.
    url: str | None = None
    #: what only this backend offers: models trained in a dashboard session (protocol.SESSION_MODELS).
    capabilities: frozenset[str] = frozenset({"session_models"})

    def probe(self, key: str, data: LabelledPairs, whiten: bool = False, whiten_dim: int | None = None,
              progress: ProgressFn | None = None) -> ProbeResult:
        """The layer probe (:func:`backend.lab.probe.layer_probe`) of model ``key`` on ``data``; ValueError for a
        family without per-layer vectors (checked before loading: only BERT-family models have them)."""
        from backend.lab.probe import layer_probe

        family = self.registry[key].family
        if not hasattr(family_class(family), "encode_layers"):
            raise ValueError(f"the layer probe needs a BERT-family model (family 'bert'); {key!r} is family {family!r}")
        # The one routing rule: Chinese pairs are probed on the Chinese variant (bert -> bert-zh), and it says so.
        route = self.route_texts(key, [*data.a, *data.b])
        result = layer_probe(self.model(route.key), data, whiten=whiten, whiten_dim=whiten_dim, progress=progress)
        if route.note and hasattr(result, "notes"):
            result.notes.insert(0, route.note)
        return result


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


def space_for(registry: Registry, key: str, texts: Sequence[str]) -> tuple[str, str | None]:
    """The one model whose vector space holds all of ``texts`` for ``key``, and a note when that needed a rule.

    Vectors from two models cannot be compared, so a corpus is never split between a model and its language
    variant: the language most of the texts are in chooses (:func:`backend.routing.route_texts`, the rule every
    surface shares).

    Returns
    -------
    tuple
        ``(key to embed with, note or None)``.
    """
    r = route_texts(registry, lambda k: family_class(registry[k].family).declared_options(registry[k]), key, None,
                    texts)
    return r.key, r.note


def default_model_memory() -> int:
    """``SIMDASH_MODEL_MEMORY_MB`` in bytes, else half of this machine's memory (4 GiB where it cannot be read)."""
    env = os.environ.get("SIMDASH_MODEL_MEMORY_MB", "").strip()
    if env:
        return int(float(env) * 2**20)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def model_bytes(m: Any, depth: int = 3) -> int:
    """Bytes of a model's weights: its torch modules' parameters and buffers, numpy arrays and word-vector
    tables, found among its attributes (a hybrid's parts included); shared tensors are counted once."""
    seen: set[int] = set()

    # A model holding torch modules has imported torch; one that has not (word vectors) is not made to.
    torch = sys.modules.get("torch")

    def walk(obj: Any, d: int) -> int:
        if id(obj) in seen or d < 0:
            return 0
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            return int(obj.nbytes)
        if torch is not None and isinstance(obj, torch.nn.Module):
            total = 0
            for t in [*obj.parameters(), *obj.buffers()]:
                if id(t) not in seen:
                    seen.add(id(t))
                    total += t.numel() * t.element_size()
            return total
        if isinstance(obj, (list, tuple)):
            return sum(walk(x, d - 1) for x in obj)
        if isinstance(obj, dict):
            return sum(walk(x, d - 1) for x in obj.values())
        if hasattr(obj, "__dict__") and not isinstance(obj, type):  # gensim's KeyedVectors.vectors included
            return sum(walk(x, d - 1) for x in vars(obj).values())
        return 0

    return walk(m, depth)


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


__all__ = ["Backend", "get_backend", "space_for", "top_k_neighbours"]
