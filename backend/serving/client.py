"""A client for ``python -m backend serve`` that implements :class:`~backend.serving.protocol.BackendProtocol`.

``RemoteBackend("http://gpu-box:8000")`` answers every call of the protocol that a local
:class:`~backend.serving.Backend` answers, with the same signatures, return types
(:class:`~backend.results.ModelResult`, :class:`~backend.base.Encoding`, :class:`~backend.results.Neighbours`,
:class:`~backend.lab.projection.Projection`, :class:`~backend.lab.probe.ProbeResult`, numpy arrays) and exceptions
(``KeyError`` for an unknown model, :class:`~backend.options.OptionError`, :class:`~backend.results.RoleError`,
:class:`~backend.results.ModelLoadError`, :class:`~backend.files.embed.CorpusMismatch`), so the dashboard runs its
models on another machine by changing which object it holds.

What runs where:

* on the server, everything that needs the weights: vectors, pair scores, reranking, 2-D maps of texts, model
  cards, the configuration id of a model (``/v1/config``), ESIM's alignment (``/v1/align``) and the BERT layer
  probe (``/v1/probe``);
* here, what works on vectors this process already holds: an embedded corpus (``python -m backend embed``) lives
  on the dashboard's machine, so :meth:`~RemoteBackend.open_corpus` reads it here, checks its configuration
  against the server's :meth:`~RemoteBackend.model_config`, and its search index, 2-D map and clusters are made
  here by the same pure functions the server uses (:mod:`backend.files.index`, :mod:`backend.lab.projection`);
  only the queries' vectors come from the server. Exact neighbours and k-means of texts are ranked here too, on
  the server's vectors;
* here, too, every model trained in a dashboard session (the Evaluation lab's Train tab): the server loads no
  model files sent over the network (gensim's and torch's formats are pickles), so the first
  :meth:`~RemoteBackend.add_session_model` starts a small in-process :class:`~backend.serving.Backend` that holds
  only session models (persistent cache off), and every call that names a model goes to where that model lives.
  :meth:`~RemoteBackend.similarity` over a mix of the server's models and session models sends each request to its
  side and merges the results in the caller's order; the registry, loaded models, states and load errors are the
  two sides merged.

Long jobs are sent in chunks (at most the server's ``max_texts`` per request), so progress callbacks and
``should_stop`` work as they do locally. Vectors travel as base64 float32 bytes, never as pickles.

What cannot be done remotely: handing out the server's model objects (:meth:`RemoteBackend.model` raises and says
what to call instead), registering models on the server (its registry is its ``models/registry.toml``;
:class:`RemoteRegistry` is read-only: session models join through :meth:`RemoteBackend.add_session_model`, which
keeps them here), and clearing the server's caches.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx
import numpy as np

from backend.base import ENCODER, Encoding, ProgressFn, Role
from backend.jobs import StopRequested
from backend.lab.projection import FIT_LIMIT, FIT_SAMPLE, Projection, ProjectionInfo, cluster_labels, fit_2d
from backend.options import Option, OptionError
from backend.registry import ModelRequest, ModelSpec, Registry
from backend.results import ModelConfig, ModelLoadError, ModelResult, Neighbours, RoleError
from backend.routing import Route, route_pairs, route_texts
from backend.serving.backend import CHUNK, Backend, space_for, top_k_neighbours
from backend.serving.protocol import BackendProtocol
from backend.serving.speed import Speed
from backend.text import clean_text

if TYPE_CHECKING:  # loaded on first use: an embedded corpus and the probe pull in pyarrow, faiss, scipy
    from backend.files.embed import EmbeddedCorpus
    from backend.files.index import VectorIndex
    from backend.lab.evaluation import LabelledPairs
    from backend.lab.probe import ProbeResult

_TYPES: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}


class RemoteError(RuntimeError):
    """The server answered with an error this client has no closer exception for (a 500, a 401)."""


class RemoteRegistry(Registry):
    """The server's registry as seen by a client, with the session models held in the client's process: read-only
    (models are registered on the server; a session model joins through :meth:`RemoteBackend.add_session_model`)."""

    def add(self, spec: ModelSpec) -> None:
        raise TypeError("the registry of a remote backend is read-only: register models in the server's "
                        "models/registry.toml")

    def remove(self, key: str) -> None:
        raise TypeError("the registry of a remote backend is read-only")


def _option(d: dict[str, Any]) -> Option:
    return Option.from_json(d)


def _floats(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float32)


class _Kept:
    """The last few results by key (open corpora, search indexes, maps), shared by the dashboard's sessions,
    which are threads: one copy of a million-row corpus however many visitors explore it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class RemoteBackend:
    """:class:`~backend.serving.protocol.BackendProtocol` over HTTP (see the module docstring for what runs where).

    Parameters
    ----------
    url : str
        The server, e.g. ``http://127.0.0.1:8000``.
    api_key : str, optional
        Bearer token (default ``$SIMDASH_API_KEY``).
    timeout : float
        Seconds per HTTP request (a chunk of a long job, a probe, or a model's first load).
    """

    #: models trained in a browser session join it (:data:`backend.serving.protocol.SESSION_MODELS`); they run in
    #: this process, never on the server (:meth:`add_session_model`).
    capabilities: frozenset[str] = frozenset({"session_models"})

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 300.0) -> None:
        base = url.rstrip("/")
        self.url: str | None = base  # the protocol's url: never None here
        key = api_key if api_key is not None else os.environ.get("SIMDASH_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=base, headers=headers, timeout=timeout)
        self._models: list[dict[str, Any]] | None = None
        self._models_at = 0.0
        self._health: dict[str, Any] | None = None
        self._registry_errors: dict[str, str] = {}
        # Embedded corpora are opened here (the file is on this machine): the same bounds as Backend's.
        self._corpora = _Kept(4)
        self._indexes = _Kept(8)  # a million 384-d vectors is 1.5 GB, so only a few
        self._maps = _Kept(64)  # 2-D maps and k-means of embedded corpora
        # Models trained in the dashboard's sessions, in this process (created by the first add_session_model).
        self._session: Backend | None = None
        self._session_lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ transport
    def _call(self, method: str, path: str, json: Any = None) -> Any:
        try:
            r = self._http.request(method, path, json=json)
        except httpx.TransportError as exc:
            raise ConnectionError(f"cannot reach the model server at {self.url}: {exc}") from None
        if r.status_code < 400:
            return r.json()
        try:
            e = r.json()["error"]
            msg, kind = e["message"], e["type"]
        except (ValueError, KeyError, TypeError):
            msg, kind = r.text[:300] or r.reason_phrase, ""
        if r.status_code == 404 and kind == "unknown_model":
            raise KeyError(msg)
        if kind == "invalid_option":
            raise OptionError(msg)
        if kind == "wrong_role":
            raise RoleError(msg)
        if r.status_code == 503:
            raise ModelLoadError(msg)
        if r.status_code in (413, 422):
            raise ValueError(msg)
        raise RemoteError(f"{self.url}{path} answered {r.status_code}: {msg}")

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def __enter__(self) -> RemoteBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------- server state
    def health(self) -> dict[str, Any]:
        """``GET /health``: device, loaded / loading / failed models, batching, cache, limits."""
        self._health = self._call("GET", "/health")
        return self._health

    def status(self) -> dict[str, Any]:
        """What the Models page shows; never raises: ``{"url", "ok", "device", "loaded", "loading", "failed",
        "error", "text"}`` where ``text`` reads like "models run on http://host:8000, device cuda"."""
        try:
            h = self.health()
        except Exception as exc:  # shown to a person, so every failure becomes a sentence
            return {"url": self.url, "ok": False, "device": None, "loaded": [], "loading": [], "failed": {},
                    "error": str(exc), "text": f"the model server at {self.url} does not answer: {exc}"}
        return {"url": self.url, "ok": True, "device": h["device"], "loaded": h["loaded"], "loading": h["loading"],
                "failed": h["failed"], "error": None, "text": f"models run on {self.url}, device {h['device']}"}

    @property
    def device(self) -> str:
        """The server's device (``cpu``, ``cuda``, ...)."""
        return (self._health or self.health())["device"]

    @property
    def load_errors(self) -> dict[str, str]:
        """Model -> why its last load failed (the server's fresh from ``/health``, then the session models')."""
        lb = self._session
        return {**self.health()["failed"], **(lb.load_errors if lb is not None else {})}

    def loaded(self) -> list[str]:
        """Keys of the models in memory now: the server's, then the session models loaded here."""
        lb = self._session
        return [*self.health()["loaded"], *(lb.loaded() if lb is not None else [])]

    def model_states(self) -> dict[str, str]:
        """Every key -> ``loaded``, ``loading``, ``failed`` or ``not loaded`` (the server's models, then the session
        models')."""
        lb = self._session
        states = {m["id"]: m["state"] for m in self._model_list(fresh=True)}
        return {**states, **(lb.model_states() if lb is not None else {})}

    def _limit(self) -> int:
        return int((self._health or self.health())["limits"]["max_texts"])

    # ----------------------------------------------------------------------------------------- registry
    def _model_list(self, fresh: bool = False) -> list[dict[str, Any]]:
        # The registry changes only when the server restarts: keep it a few seconds, states included.
        if fresh or self._models is None or time.monotonic() - self._models_at > 10:
            body = self._call("GET", "/v1/models")
            self._models, self._models_at = body["data"], time.monotonic()
            self._registry_errors = body.get("errors", {})
        return self._models

    def _entry(self, key: str) -> dict[str, Any]:
        for m in self._model_list():
            if m["id"] == key:
                return m
        raise KeyError(f"unknown model {key!r}; registered: {', '.join(m['id'] for m in self._model_list())}")

    def _here(self, key: str) -> Backend | None:
        """The in-process backend when ``key`` is a model trained in a session here, else None (a server model)."""
        lb = self._session
        return lb if lb is not None and key in lb.registry else None

    @property
    def registry(self) -> RemoteRegistry:
        """A read-only :class:`~backend.registry.Registry` of the server's models, then the session models held here
        (each with its ``owner``, so :meth:`~backend.registry.Registry.visible` lists a session its own only)."""
        from types import MappingProxyType

        specs = [ModelSpec(m["id"], m["family"], m["label"], m["source"], m["language"],
                           MappingProxyType(dict(m["options"])), MappingProxyType(dict(m["variants"])), m["note"],
                           m["default"], "", m["licence"], research_only=bool(m.get("research_only", False)),
                           stands_in_for=m.get("stands_in_for", ""), facts=MappingProxyType(dict(m.get("facts") or {})))
                 for m in self._model_list()]
        lb = self._session
        if lb is not None:
            specs += list(lb.registry)
        return RemoteRegistry(specs, dict(self._registry_errors))

    def roles(self, key: str) -> frozenset[Role]:
        """``{"encoder"}``, ``{"pair_scorer"}`` or both; KeyError for an unknown key."""
        if (lb := self._here(key)) is not None:
            return lb.roles(key)
        return frozenset(self._entry(key)["roles"])

    def keys_with_role(self, role: Role, keys: Sequence[str] | None = None) -> list[str]:
        """Those of ``keys`` (default: every registered model, the session models included) that play ``role``."""
        listing = {m["id"]: m for m in self._model_list()}
        out = []
        for k in keys if keys is not None else self.registry.keys():
            if (lb := self._here(k)) is not None:
                out += lb.keys_with_role(role, [k])
            elif k in listing and role in listing[k]["roles"]:
                out.append(k)
        return out

    def option_specs(self, key: str) -> tuple[Option, ...]:
        """The options of ``key``, with ranges narrowed to the loaded weights once the server has loaded them."""
        if (lb := self._here(key)) is not None:
            return lb.option_specs(key)
        return tuple(_option(o) for o in self._call("GET", f"/v1/models/{key}")["option_specs"])

    def check_request(self, key: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validate run-time options on the server (no work done); returns them converted."""
        if (lb := self._here(key)) is not None:
            return lb.check_request(key, options)
        return self._call("POST", "/v1/check", {"model": key, "options": options or {}})["options"]

    def info(self, key: str, **options: Any) -> dict[str, Any]:
        """The model card facts of ``key`` (the server loads it; a session model loads here)."""
        if (lb := self._here(key)) is not None:
            return lb.info(key, **options)
        name = key + "".join(f":{k}={_arg(v)}" for k, v in options.items() if v is not None)
        return self._call("GET", f"/v1/info/{name}")

    def variant_for(self, key: str, lang: str) -> str:
        """The registered language variant of ``key`` for ``lang``, else ``key``."""
        if (lb := self._here(key)) is not None:
            return lb.variant_for(key, lang)
        v = self._entry(key)["variants"].get(lang)
        return v if v and any(m["id"] == v for m in self._model_list()) else key

    def load(self, key: str) -> None:
        """Have the server load model ``key`` now (its model card loads it; a session model loads here); raises
        ModelLoadError when it fails."""
        if (lb := self._here(key)) is not None:
            lb.load(key)
        else:
            self.info(key)

    def space_for(self, key: str, texts: Sequence[str]) -> tuple[str, str | None]:
        """The one model whose vector space holds all of ``texts`` (the rule of :func:`backend.serving.space_for`)."""
        if (lb := self._here(key)) is not None:
            return lb.space_for(key, texts)
        return space_for(self.registry, key, texts)

    def route_texts(self, key: str, texts: Sequence[str], options: dict[str, Any] | None = None) -> Route:
        """The one model and its options that embed all of ``texts`` for ``key``: the same rule as the server's
        (:mod:`backend.routing` runs here on the registry the server sent)."""
        return route_texts(self.registry, self.option_specs, key, options, texts)

    def route_pair(self, key: str, a: str, b: str, options: dict[str, Any] | None = None) -> Route:
        """The model and its options that score ``(a, b)`` for ``key`` (:mod:`backend.routing`)."""
        return next(iter(route_pairs(self.registry, self.option_specs, key, options, [a], [b]).values()))[0]

    def model_config(self, key: str, options: dict[str, Any] | None = None) -> ModelConfig:
        """The server's :class:`~backend.results.ModelConfig` of ``key`` with run-time ``options`` (``/v1/config``;
        loads no weights). Vectors stored with another ``config_id`` are not comparable with the server's. A
        session model's configuration is made here, as :meth:`Backend.model_config` makes it."""
        if (lb := self._here(key)) is not None:
            return lb.model_config(key, options)
        r = self._call("POST", "/v1/config", {"model": key, "options": options or {}})
        return ModelConfig(r["key"], r["family"], r["source"], r["config_id"], dict(r["options"]))

    def align(self, key: str, a: str, b: str) -> dict[str, Any] | None:
        """A pair scorer's word alignment of ``a`` and ``b`` (``/v1/align``), as :meth:`Backend.align` returns it:
        ``tokens_a``, ``tokens_b``, ``matrix`` (np.ndarray float32, len_a x len_b), ``score`` (NaN when undefined),
        ``warnings``; None when the model has no alignment."""
        if (lb := self._here(key)) is not None:
            return lb.align(key, a, b)
        al = self._call("POST", "/v1/align", {"model": key, "a": a, "b": b})["alignment"]
        if al is None:
            return None
        ta, tb = list(al["tokens_a"]), list(al["tokens_b"])
        matrix = _floats([v for row in al["matrix"] for v in row]).reshape(len(ta), len(tb))
        return {"tokens_a": ta, "tokens_b": tb, "matrix": matrix,
                "score": float("nan") if al["score"] is None else float(al["score"]), "warnings": list(al["warnings"])}

    def probe(self, key: str, data: LabelledPairs, whiten: bool = False, whiten_dim: int | None = None,
              progress: ProgressFn | None = None) -> ProbeResult:
        """The layer probe of ``key`` run on the server (``/v1/probe``): one request, so ``progress`` hears only the end.

        Raises
        ------
        ValueError
            Not a BERT-family model; fewer than 2 usable pairs; more pairs than one request may carry (the
            probe correlates every pair at once, so it cannot be sent in chunks: probe a sample).
        """
        from backend.lab.probe import ProbeResult

        if (lb := self._here(key)) is not None:
            return lb.probe(key, data, whiten, whiten_dim, progress)
        limit = self._limit()
        if 2 * len(data) > limit:
            raise ValueError(f"the probe reads every pair at once: {len(data):,} pairs are {2 * len(data):,} texts, "
                             f"above the server's limit of {limit:,} per request (SIMDASH_MAX_TEXTS); probe a sample "
                             f"of at most {limit // 2:,} pairs")
        labels = np.asarray(data.labels, dtype=np.float64)
        r = self._call("POST", "/v1/probe", {
            "model": key, "a": list(data.a), "b": list(data.b),
            "labels": [float(v) if np.isfinite(v) else None for v in labels.tolist()], "kind": data.kind,
            "label_range": [float(x) for x in data.label_range], "whiten": whiten, "whiten_dim": whiten_dim})
        if progress is not None:
            # layer_probe counts distinct sentences of the usable pairs; this is that count at the end.
            done = len({clean_text(t) for t in [*data.a, *data.b]} - {""})
            progress(done, done)
        spearman = np.array([[np.nan if v is None else v for v in row] for row in r["spearman"]], dtype=np.float64)
        mix = r.get("mix_weights")
        return ProbeResult(r["model"], spearman.reshape(len(r["layers"]), len(r["poolings"])), tuple(r["poolings"]),
                           r["first_last_avg"], r["whitened"], r["n"], r["skipped"], list(r["notes"]),
                           mix_weights=None if mix is None else np.asarray(mix, dtype=np.float64),
                           mix_spearman=r.get("mix_spearman"), mix_baseline=r.get("mix_baseline"),
                           mix_note=r.get("mix_note") or "", mix_pooling=r.get("mix_pooling") or "mean")

    def cache_info(self) -> dict[str, Any]:
        """The server's cache entries and hit counts (``/v1/cache``): vectors are cached where they are made."""
        return self._call("GET", "/v1/cache")

    def add_session_model(self, spec: ModelSpec, folder: str | Path | None = None) -> list[str]:
        """Register a model trained in one session (``spec.owner``), its files in ``folder`` (deleted with it), in
        this process: the server loads no model files sent over the network, so a session model runs here, in a
        :class:`~backend.serving.Backend` that holds only session models, and every call naming it is answered here.

        Returns
        -------
        list of str
            Keys removed to keep the owner within :attr:`Backend.SESSION_MODELS_PER_OWNER`.

        Raises
        ------
        ValueError
            No owner, or a key the server already has (the two sides share one list of keys).
        """
        if not spec.owner:
            raise ValueError("a session model needs an owner (the session id)")
        if any(m["id"] == spec.key for m in self._model_list()):
            raise ValueError(f"{spec.key!r} is a model of the server at {self.url}: a session model needs its own key")
        with self._session_lock:
            if self._session is None:
                # Seeded with the spec: Backend reads models/registry.toml when handed an empty (falsy) Registry.
                # Vectors are cached in memory only: session models are temporary, their keys never reused.
                self._session = Backend(Registry([spec]), cache_dir="memory")
        return self._session.add_session_model(spec, folder)

    def remove_owner(self, owner: str) -> list[str]:
        """Remove every model of a session that has ended (its files too); returns their keys."""
        lb = self._session
        return lb.remove_owner(owner) if lb is not None else []

    def measure_speed(self, key: str, options: dict[str, Any] | None = None, n: int | None = None) -> Speed:
        """Latency of one pair and throughput as the dashboard sees them: through the server, round trips included
        (a session model's on this machine)."""
        if (lb := self._here(key)) is not None:
            return lb.measure_speed(key, options, n)
        from backend.files.io import load_demo_corpus
        from backend.serving.speed import BENCH_SENTENCES

        n = n or BENCH_SENTENCES
        corpus = load_demo_corpus()["text"].tolist()
        rng = np.random.default_rng(time.time_ns() % 2**32)
        texts = [f"{corpus[i]} ({j} {time.time_ns()})" for j, i in enumerate(rng.integers(0, len(corpus), n))]
        reqs = [ModelRequest(key, key, dict(options or {}))]
        lat = []
        for j in range(5):
            t0 = time.perf_counter()
            self.similarity([texts[j]], [texts[-j - 1]], reqs)
            lat.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        self.similarity(texts[: n // 2], texts[n // 2 :], reqs)
        return Speed(float(np.median(lat) * 1000), (n // 2) / max(time.perf_counter() - t0, 1e-9), "pairs")

    def model(self, key: str, **options: Any):
        """Not available remotely: models live in the server's memory (a session model's object is here)."""
        if (lb := self._here(key)) is not None:
            return lb.model(key, **options)
        raise NotImplementedError(f"model objects stay on the server ({self.url}); use info({key!r}) for the model "
                                  "card, embed/similarity/rerank to use it")

    # ------------------------------------------------------------------------------------------ vectors
    def embed(
        self, key: str, texts: Sequence[str], options: dict[str, Any] | None = None, progress: ProgressFn | None = None,
        batch_size: int | None = None,
    ) -> Encoding:
        """Sentence vectors of ``texts`` from model ``key`` (``batch_size`` is the server's business)."""
        if (lb := self._here(key)) is not None:
            return lb.embed(key, texts, options, progress, batch_size)
        texts = list(texts)
        step = self._limit()
        parts: list[Encoding] = []
        for s in range(0, max(len(texts), 1), step):
            chunk = texts[s : s + step]
            if not chunk:
                break
            r = self._call("POST", "/v1/embed", {"model": key, "texts": chunk, "options": options or {}})
            v = np.frombuffer(base64.b64decode(r["vectors"]), dtype="<f4").astype(np.float32)
            parts.append(Encoding(v.reshape(len(chunk), r["dim"]), np.asarray(r["valid"], dtype=bool), r["warnings"]))
            if progress is not None:
                progress(s + len(chunk), len(texts))
        if not parts:
            dim = int(self.info(key, **(options or {})).get("dim", 0))
            return Encoding(np.zeros((0, dim), dtype=np.float32), np.zeros(0, dtype=bool), [])
        return Encoding(np.concatenate([p.vectors for p in parts]), np.concatenate([p.valid for p in parts]),
                        [w for p in parts for w in p.warnings])

    def neighbours(
        self, key: str, queries: Sequence[str], corpus: Sequence[str], k: int = 10,
        options: dict[str, Any] | None = None, progress: ProgressFn | None = None,
    ) -> Neighbours:
        """Exact top-``k`` cosine neighbours; the corpus is embedded in chunks (with progress), ranked here by
        the same function the server uses."""
        if (lb := self._here(key)) is not None:
            return lb.neighbours(key, queries, corpus, k, options, progress)
        if int(k) < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        self._require_encoder(key)
        c_enc = self.embed(key, corpus, options, progress)
        q_enc = self.embed(key, queries, options)
        return top_k_neighbours(q_enc, c_enc, int(k), key)

    def project(
        self, key: str, texts: Sequence[str], method: Literal["umap", "pca"] = "umap", seed: int = 42,
        n_neighbors: int = 15, min_dist: float = 0.1, options: dict[str, Any] | None = None,
        progress: ProgressFn | None = None,
    ) -> np.ndarray:
        """2-D coordinates (see :meth:`project_detailed`); NaN rows for texts without a vector."""
        if (lb := self._here(key)) is not None:
            return lb.project(key, texts, method, seed, n_neighbors, min_dist, options, progress)
        return self.project_detailed(key, texts, method, seed, n_neighbors, min_dist, options, progress).coords

    def project_detailed(
        self, key: str, corpus: Sequence[str] | EmbeddedCorpus, method: Literal["umap", "pca"] = "umap",
        seed: int = 42, n_neighbors: int = 15, min_dist: float = 0.1, options: dict[str, Any] | None = None,
        progress: ProgressFn | None = None, fit_limit: int | None = None, fit_sample: int | None = None,
    ) -> Projection:
        """A 2-D map and what was done, as :meth:`Backend.project_detailed` gives it.

        Texts are mapped by the server (``/v1/project``, which caches maps); more texts than one request may carry
        are embedded there in chunks and mapped here. An embedded corpus is mapped here from its stored vectors,
        after its configuration is checked against the server's (:class:`~backend.files.embed.CorpusMismatch`).
        """
        from backend.files.embed import EmbeddedCorpus

        if (lb := self._here(key)) is not None:
            return lb.project_detailed(key, corpus, method, seed, n_neighbors, min_dist, options, progress, fit_limit,
                                       fit_sample)
        limit = FIT_LIMIT if fit_limit is None else int(fit_limit)
        sample = FIT_SAMPLE if fit_sample is None else int(fit_sample)
        if isinstance(corpus, EmbeddedCorpus):
            ec = self._embedded(key, corpus, options)
            ck = (ec.config_id, method, seed, n_neighbors, min_dist, f"corpus:{ec.corpus_id}", limit, sample)
            return self._map(key, ec.vectors, ec.valid, ck, method, seed, n_neighbors, min_dist, limit, sample)
        texts = list(corpus)
        if len(texts) <= self._limit():
            r = self._call("POST", "/v1/project", {
                "model": key, "texts": texts, "method": method, "seed": seed, "n_neighbors": n_neighbors,
                "min_dist": min_dist, "options": options or {}, "fit_limit": fit_limit, "fit_sample": fit_sample})
            if progress is not None:
                progress(len(texts), len(texts))
            coords = _floats([x for row in r["coords"] for x in row]).reshape(len(texts), 2)
            return Projection(coords, ProjectionInfo(**r["info"]))
        self._require_encoder(key)
        enc = self.embed(key, texts, options, progress)
        digest = hashlib.sha1("\x1f".join(clean_text(t) for t in texts).encode()).hexdigest()
        ck = (self.model_config(key, options).config_id, method, seed, n_neighbors, min_dist, digest, limit, sample)
        return self._map(key, enc.vectors, enc.valid, ck, method, seed, n_neighbors, min_dist, limit, sample)

    def _map(self, key: str, vectors: np.ndarray, valid: np.ndarray, ck: tuple, method: str, seed: int,
             n_neighbors: int, min_dist: float, limit: int, sample: int) -> Projection:
        """Fit a 2-D map of vectors held here (cached by ``ck``), as Backend.project_detailed does."""
        t0 = time.perf_counter()
        hit = self._maps.get(ck)
        if hit is not None:
            return Projection(hit.coords.copy(), replace(hit.info, cached=True, seconds=time.perf_counter() - t0))
        n_all = len(valid)
        x = vectors[valid]
        if len(x) < 3:
            raise ValueError(f"a 2-D map needs at least 3 texts with a vector; {key} has {len(x)} of {n_all} "
                             "(empty texts and texts without known words have none)")
        coords = np.full((n_all, 2), np.nan, dtype=np.float32)
        xy, info = fit_2d(x, method, seed, n_neighbors, min_dist, fit_limit=limit, sample=sample)
        coords[valid] = xy
        info.seconds = time.perf_counter() - t0
        info.without_vector = int(n_all - len(x))
        self._maps.put(ck, Projection(coords, info))
        return Projection(coords.copy(), info)

    def clusters(self, key: str, texts: Sequence[str] | EmbeddedCorpus, n_clusters: int = 8, seed: int = 42,
                 options: dict[str, Any] | None = None) -> np.ndarray:
        """K-means ids in model ``key``'s vector space, made here: on the server's vectors of ``texts``, or on an
        embedded corpus's stored vectors (checked against the server's configuration; cached). -1: no vector."""
        from backend.files.embed import EmbeddedCorpus

        if (lb := self._here(key)) is not None:
            return lb.clusters(key, texts, n_clusters, seed, options)
        if not isinstance(texts, EmbeddedCorpus):
            enc = self.embed(key, texts, options)
            return cluster_labels(enc.vectors, enc.valid, n_clusters, seed)
        ec = self._embedded(key, texts, options)
        ck = (ec.config_id, "kmeans", int(n_clusters), int(seed), f"corpus:{ec.corpus_id}")
        hit = self._maps.get(ck)
        if hit is None:
            hit = cluster_labels(ec.vectors, ec.valid, n_clusters, seed)
            self._maps.put(ck, hit)
        return hit.copy()

    # ------------------------------------------------------------------------ embedded corpora, searched here
    def _require_encoder(self, key: str) -> None:
        if ENCODER not in self.roles(key):
            raise RoleError(f"{key} scores pairs only (it reads both texts together) and gives no sentence vectors; "
                            "use it on Compare, Batch, the Evaluation lab or as a reranker")

    def open_corpus(self, path: str | Path, key: str, options: dict[str, Any] | None = None) -> EmbeddedCorpus:
        """``key``'s vectors in an embedded-corpus file on this machine, checked against the server's configuration
        of ``key`` with ``options``; kept open (shared by every session, keyed by path, modification time and
        configuration).

        Raises
        ------
        CorpusMismatch
            The file's vectors were made under another configuration than the server's (the message says which).
        TableError
            Not an embedded corpus, or no vectors of ``key`` in it.
        """
        from backend.files.embed import load_embedded_corpus

        if (lb := self._here(key)) is not None:
            return lb.open_corpus(path, key, options)
        path = Path(path)
        cfg = self.model_config(key, options)
        ck = ("corpus", str(path.resolve()), path.stat().st_mtime_ns, cfg.config_id)
        hit = self._corpora.get(ck)
        if hit is None:
            hit = load_embedded_corpus(path, expect=cfg)
            self._corpora.put(ck, hit)
        return hit

    def _embedded(self, key: str, corpus: Sequence[str] | EmbeddedCorpus, options: dict[str, Any] | None,
                  progress: ProgressFn | None = None) -> EmbeddedCorpus:
        """``corpus`` as an embedded corpus of ``key``: checked against the server's configuration, or texts
        embedded by the server."""
        from backend.files.embed import CorpusMismatch, EmbeddedCorpus, embed_texts

        if isinstance(corpus, EmbeddedCorpus):
            why = self.model_config(key, options).differences({**corpus.config, "config_id": corpus.config_id})
            if why:
                raise CorpusMismatch(f"the corpus was {why}; vectors of two configurations are not comparable")
            return corpus
        self._require_encoder(key)
        return embed_texts(self, key, list(corpus), options, progress)

    def has_index(self, key: str, corpus: Sequence[str] | EmbeddedCorpus, options: dict[str, Any] | None = None,
                  kind: str = "auto") -> bool:
        """True when :meth:`build_index` would answer at once (built in this process, or saved beside the file)."""
        from backend.files.index import EXACT_LIMIT, saved_index_exists

        if (lb := self._here(key)) is not None:
            return lb.has_index(key, corpus, options, kind)
        ec = self._embedded(key, corpus, options)
        if len(ec) < EXACT_LIMIT and kind in ("auto", "exact"):
            return True
        if self._indexes.get(("index", ec.config_id, ec.corpus_id, kind)) is not None:
            return True
        return saved_index_exists(ec.config_id, ec.corpus_id, ec.path, kind)

    def build_index(
        self, key: str, corpus: Sequence[str] | EmbeddedCorpus, options: dict[str, Any] | None = None,
        kind: str = "auto", progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
    ) -> VectorIndex:
        """The search index of ``corpus``, built here (exact below :data:`backend.files.index.EXACT_LIMIT`,
        approximate above and saved beside the file): the vectors are on this machine, so only texts without
        stored vectors are sent to the server, to be embedded. See :meth:`Backend.build_index`."""
        from backend.files.index import get_index

        if (lb := self._here(key)) is not None:
            return lb.build_index(key, corpus, options, kind, progress, should_stop)
        ec = self._embedded(key, corpus, options, progress)
        ck = ("index", ec.config_id, ec.corpus_id, kind)
        hit = self._indexes.get(ck)
        if hit is None:
            hit = get_index(ec.vectors, ec.valid, ec.config_id, ec.corpus_id, ec.path, kind, progress, should_stop)
            self._indexes.put(ck, hit)
        return hit

    def search(
        self, key: str, queries: Sequence[str], corpus: Sequence[str] | EmbeddedCorpus, k: int = 10,
        options: dict[str, Any] | None = None, progress: ProgressFn | None = None,
        should_stop: Callable[[], bool] | None = None, kind: str = "auto",
    ) -> Neighbours:
        """Top-``k`` neighbours in a corpus of any size, saying how they were found (``search``), as
        :meth:`Backend.search` finds them: the queries' vectors come from the server, the ranking is done here.

        Raises
        ------
        RoleError, CorpusMismatch, ValueError
            A model without vectors; an embedded corpus of another configuration; ``k`` below 1.
        """
        from backend.files.embed import EmbeddedCorpus
        from backend.files.index import EXACT_LIMIT, IndexInfo

        if (lb := self._here(key)) is not None:
            return lb.search(key, queries, corpus, k, options, progress, should_stop, kind)
        if int(k) < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        if not isinstance(corpus, EmbeddedCorpus) and len(corpus) < EXACT_LIMIT and kind in ("auto", "exact"):
            self._require_encoder(key)
            c_enc = self.embed(key, corpus, options, progress)
            nb = top_k_neighbours(self.embed(key, queries, options), c_enc, int(k), key)
            nb.search = IndexInfo("exact", len(corpus), int(c_enc.vectors.shape[1]), engine="numpy")
            return nb
        ec = self._embedded(key, corpus, options, progress)
        idx = self.build_index(key, ec, options, kind, progress, should_stop)
        q = self.embed(key, queries, options)
        scores, rows = idx.search(q.vectors, int(k))
        rows[~q.valid] = -1
        scores[~q.valid] = np.nan
        cw = [] if isinstance(corpus, EmbeddedCorpus) else [w.split("; ") if w else [] for w in ec.warnings]
        return Neighbours(rows, scores, q.warnings, cw, key, idx.info)

    # ------------------------------------------------------------------------------------------ scoring
    def similarity(
        self, a: Sequence[str], b: Sequence[str], keys: Sequence[str | ModelRequest] | None = None,
        options: dict[str, dict[str, Any]] | None = None, progress: ProgressFn | None = None,
        should_stop: Callable[[], bool] | None = None, chunk: int = CHUNK,
    ) -> dict[str, ModelResult]:
        """Score columns of pairs with several models, chunk by chunk, as :meth:`Backend.similarity` does.

        Each chunk is one request for all the server's models; a model that fails is reported in its result and not
        sent again. Session models (:meth:`add_session_model`) are scored here, after the server's, by the
        in-process backend; the results come back in the order of ``keys``. Progress is in pair-model units over
        both.
        """
        a, b = list(a), list(b)
        if len(a) != len(b):
            raise ValueError(f"a and b must have the same length ({len(a)} != {len(b)})")
        requests = self.registry.requests(keys, options)
        lb = self._session
        mine = set(lb.registry.keys()) if lb is not None else set()
        here = [r for r in requests if r.key in mine]
        there = [r for r in requests if r.key not in mine]
        out = self._similarity_there(a, b, there, len(requests), progress, should_stop, chunk)
        if lb is not None and here:
            base = len(a) * len(there)
            total = len(a) * len(requests)
            sub = None if progress is None else lambda d, t: progress(base + d, total)
            out.update(lb.similarity(a, b, here, progress=sub, should_stop=should_stop, chunk=chunk))
        return {r.name: out[r.name] for r in requests}

    def _similarity_there(
        self, a: list[str], b: list[str], requests: list[ModelRequest], n_requests: int,
        progress: ProgressFn | None, should_stop: Callable[[], bool] | None, chunk: int,
    ) -> dict[str, ModelResult]:
        """The server's part of :meth:`similarity`: ``requests`` scored chunk by chunk, progress counted out of
        ``len(a) * n_requests`` (the session models' pairs come after)."""
        n = len(a)
        out = {r.name: ModelResult(r.key, np.full(n, np.nan, dtype=np.float32), [[] for _ in range(n)], [r.key] * n)
               for r in requests}
        if not requests:
            return out
        total = n * n_requests
        # Two texts per pair count against the server's limit.
        step = max(1, min(chunk, self._limit() // 2))
        for start in range(0, n, step):
            if should_stop is not None and should_stop():
                raise StopRequested("scoring stopped")
            size = min(step, n - start)
            live = [r for r in requests if out[r.name].error is None]
            if live:
                body = {"pairs": [[x, y] for x, y in zip(a[start : start + size], b[start : start + size], strict=True)],
                        "models": [{"name": r.name, "model": r.key, "options": r.options or {}} for r in live]}
                cols = self._call("POST", "/v1/similarity", body)["models"]
                for r in live:
                    c, res = cols[r.name], out[r.name]
                    res.seconds += c["seconds"]
                    if c["error"] is not None:
                        res.error, res.scores = c["error"], None
                    else:
                        res.scores[start : start + size] = _floats(c["scores"])
                        res.warnings[start : start + size] = c["warnings"]
                        res.used[start : start + size] = c["used"]
            if progress is not None:
                progress(min(total, (start + size) * len(requests)), total)
        return out

    def score_pairs(
        self, key: str, a: Sequence[str], b: Sequence[str], options: dict[str, Any] | None = None,
        progress: ProgressFn | None = None, route_language: bool = True,
    ) -> ModelResult:
        """Score aligned pairs with one model; model failures are in ``error``, as locally.

        Raises
        ------
        ValueError
            ``route_language=False``: the server always routes pairs to a model's language variant.
        """
        if (lb := self._here(key)) is not None:
            return lb.score_pairs(key, a, b, options, progress, route_language)
        if not route_language:
            raise ValueError("route_language=False is not available remotely: the server routes Chinese pairs to "
                             "a model's registered Chinese variant")
        name = "__model__"
        res = self.similarity(a, b, [ModelRequest(name, key, dict(options or {}))], progress=progress)[name]
        return res

    def rerank(self, key: str, query: str, candidates: Sequence[str], options: dict[str, Any] | None = None) -> ModelResult:
        """Score one query against many candidates with model ``key`` (input order, as locally)."""
        if (lb := self._here(key)) is not None:
            return lb.rerank(key, query, candidates, options)
        return self.score_pairs(key, [query] * len(candidates), list(candidates), options)


def backend_from_env(**kwargs: Any) -> BackendProtocol:
    """A :class:`RemoteBackend` on ``$SIMDASH_BACKEND_URL`` when it is set, else a local
    :class:`~backend.serving.Backend` (keyword arguments go to the one built)."""
    url = os.environ.get("SIMDASH_BACKEND_URL", "").strip()
    if url:
        return RemoteBackend(url, **kwargs)
    from backend.serving import Backend

    return Backend(**kwargs)


def _arg(v: Any) -> str:
    """An option value in ``key:option=value`` syntax (JSON for everything but plain strings)."""
    import json

    return v if isinstance(v, str) else json.dumps(v)


__all__ = ["RemoteBackend", "RemoteError", "RemoteRegistry", "backend_from_env"]
