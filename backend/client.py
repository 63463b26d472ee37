"""A client for ``python -m backend serve`` with the interface of :class:`~backend.service.Backend`.

``RemoteBackend("http://gpu-box:8000")`` answers the same calls as a local ``Backend`` — ``similarity``,
``score_pairs``, ``embed``, ``neighbours``, ``rerank``, ``project``, ``roles``, ``keys_with_role``,
``option_specs``, ``check_request``, ``info``, ``loaded``, ``registry``, ``device`` — with the same return types
(:class:`~backend.service.ModelResult`, :class:`~backend.base.Encoding`, :class:`~backend.service.Neighbours`,
numpy arrays) and the same exceptions (``KeyError`` for an unknown model, :class:`~backend.options.OptionError`,
:class:`~backend.service.RoleError`, :class:`~backend.service.ModelLoadError`), so the dashboard can run its
models on another machine by changing which object it holds.

Long jobs are sent in chunks (at most the server's ``max_texts`` per request), so progress callbacks and
``should_stop`` work as they do locally. Vectors travel as base64 float32 bytes, never as pickles.

What cannot be done remotely: handing out model objects (:meth:`RemoteBackend.model` raises and says what to
call instead), registering or removing models (the registry is the server's; :class:`RemoteRegistry` is
read-only), and clearing the server's caches.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import httpx
import numpy as np

from backend.base import Encoding, ProgressFn, Role
from backend.jobs import StopRequested
from backend.options import Option, OptionError
from backend.registry import ModelRequest, ModelSpec, Registry
from backend.service import (
    CHUNK,
    ModelLoadError,
    ModelResult,
    Neighbours,
    RoleError,
    cluster_labels,
    space_for,
    top_k_neighbours,
)
from backend.speed import Speed

_TYPES: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}


class RemoteError(RuntimeError):
    """The server answered with an error this client has no closer exception for (a 500, a 401)."""


class RemoteRegistry(Registry):
    """The server's registry as seen by a client: read-only (models are registered on the server)."""

    def add(self, spec: ModelSpec) -> None:
        raise TypeError("the registry of a remote backend is read-only: register models in the server's "
                        "models/registry.toml")

    def remove(self, key: str) -> None:
        raise TypeError("the registry of a remote backend is read-only")


def _option(d: dict[str, Any]) -> Option:
    return Option(d["name"], _TYPES.get(d["type"], str), d["default"], d["why"],
                  tuple(d["choices"]) if d.get("choices") is not None else None, d.get("low"), d.get("high"),
                  bool(d.get("runtime")), d.get("label") or "")


def _floats(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float32)


class RemoteBackend:
    """The :class:`~backend.service.Backend` interface over HTTP.

    Parameters
    ----------
    url : str
        The server, e.g. ``http://127.0.0.1:8000``.
    api_key : str, optional
        Bearer token (default ``$SIMDASH_API_KEY``).
    timeout : float
        Seconds per HTTP request (a chunk of a long job, or a model's first load).
    """

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 300.0) -> None:
        self.url = url.rstrip("/")
        key = api_key if api_key is not None else os.environ.get("SIMDASH_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._models: list[dict[str, Any]] | None = None
        self._models_at = 0.0
        self._health: dict[str, Any] | None = None
        self._registry_errors: dict[str, str] = {}

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
        """Model -> why its last load failed (fresh from ``/health``)."""
        return dict(self.health()["failed"])

    def loaded(self) -> list[str]:
        """Keys of the models in the server's memory now."""
        return list(self.health()["loaded"])

    def model_states(self) -> dict[str, str]:
        """Every key -> ``loaded``, ``loading``, ``failed`` or ``not loaded``."""
        return {m["id"]: m["state"] for m in self._model_list(fresh=True)}

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

    @property
    def registry(self) -> RemoteRegistry:
        """A read-only :class:`~backend.registry.Registry` of the server's models."""
        from types import MappingProxyType

        specs = [ModelSpec(m["id"], m["family"], m["label"], m["source"], m["language"],
                           MappingProxyType(dict(m["options"])), MappingProxyType(dict(m["variants"])), m["note"],
                           m["default"], "", m["licence"]) for m in self._model_list()]
        return RemoteRegistry(specs, dict(self._registry_errors))

    def roles(self, key: str) -> frozenset[Role]:
        """``{"encoder"}``, ``{"pair_scorer"}`` or both; KeyError for an unknown key."""
        return frozenset(self._entry(key)["roles"])

    def keys_with_role(self, role: Role, keys: Sequence[str] | None = None) -> list[str]:
        """Those of ``keys`` (default: every registered model) that play ``role``."""
        listing = {m["id"]: m for m in self._model_list()}
        return [k for k in (keys if keys is not None else listing) if k in listing and role in listing[k]["roles"]]

    def option_specs(self, key: str) -> tuple[Option, ...]:
        """The options of ``key``, with ranges narrowed to the loaded weights once the server has loaded them."""
        return tuple(_option(o) for o in self._call("GET", f"/v1/models/{key}")["option_specs"])

    def check_request(self, key: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validate run-time options on the server (no work done); returns them converted."""
        return self._call("POST", "/v1/check", {"model": key, "options": options or {}})["options"]

    def info(self, key: str, **options: Any) -> dict[str, Any]:
        """The model card facts of ``key`` (the server loads it)."""
        name = key + "".join(f":{k}={_arg(v)}" for k, v in options.items() if v is not None)
        return self._call("GET", f"/v1/info/{name}")

    def variant_for(self, key: str, lang: str) -> str:
        """The registered language variant of ``key`` for ``lang``, else ``key``."""
        v = self._entry(key)["variants"].get(lang)
        return v if v and any(m["id"] == v for m in self._model_list()) else key

    def load(self, key: str) -> None:
        """Have the server load model ``key`` now (its model card loads it); raises ModelLoadError when it fails."""
        self.info(key)

    def space_for(self, key: str, texts: Sequence[str]) -> tuple[str, str | None]:
        """The one model whose vector space holds all of ``texts`` (the rule of :func:`backend.service.space_for`)."""
        return space_for(self.registry, key, texts)

    def clusters(self, key: str, texts: Sequence[str], n_clusters: int = 8, seed: int = 42,
                 options: dict[str, Any] | None = None) -> np.ndarray:
        """K-means ids of ``texts`` in model ``key``'s vector space (vectors from the server, clustered here)."""
        enc = self.embed(key, texts, options)
        return cluster_labels(enc.vectors, enc.valid, n_clusters, seed)

    def align(self, key: str, a: str, b: str) -> None:
        """A word alignment needs the model object: none over HTTP (the Compare page then shows no heatmap)."""
        return None

    def measure_speed(self, key: str, options: dict[str, Any] | None = None, n: int | None = None) -> Speed:
        """Latency of one pair and throughput as the dashboard sees them: through the server, round trips included."""
        from backend.io import load_demo_corpus
        from backend.speed import BENCH_SENTENCES

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
        """Not available remotely: models live in the server's memory."""
        raise NotImplementedError(f"model objects stay on the server ({self.url}); use info({key!r}) for the model "
                                  "card, embed/similarity/rerank to use it")

    # ------------------------------------------------------------------------------------------ vectors
    def embed(
        self, key: str, texts: Sequence[str], options: dict[str, Any] | None = None, progress: ProgressFn | None = None,
        batch_size: int | None = None,
    ) -> Encoding:
        """Sentence vectors of ``texts`` from model ``key`` (``batch_size`` is the server's business)."""
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
        if int(k) < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        if "encoder" not in self.roles(key):
            raise RoleError(f"{key} scores pairs only (it reads both texts together) and gives no sentence vectors")
        c_enc = self.embed(key, corpus, options, progress)
        q_enc = self.embed(key, queries, options)
        return top_k_neighbours(q_enc, c_enc, int(k), key)

    def project(
        self, key: str, texts: Sequence[str], method: Literal["umap", "pca"] = "umap", seed: int = 42,
        n_neighbors: int = 15, min_dist: float = 0.1, options: dict[str, Any] | None = None,
        progress: ProgressFn | None = None,
    ) -> np.ndarray:
        """2-D coordinates from the server (which caches them); NaN rows for texts without a vector."""
        r = self._call("POST", "/v1/project", {"model": key, "texts": list(texts), "method": method, "seed": seed,
                                               "n_neighbors": n_neighbors, "min_dist": min_dist,
                                               "options": options or {}})
        if progress is not None:
            progress(len(texts), len(texts))
        return np.array([[np.nan if x is None else x for x in row] for row in r["coords"]],
                        dtype=np.float32).reshape(len(texts), 2)

    # ------------------------------------------------------------------------------------------ scoring
    def similarity(
        self, a: Sequence[str], b: Sequence[str], keys: Sequence[str | ModelRequest] | None = None,
        options: dict[str, dict[str, Any]] | None = None, progress: ProgressFn | None = None,
        should_stop: Callable[[], bool] | None = None, chunk: int = CHUNK,
    ) -> dict[str, ModelResult]:
        """Score columns of pairs with several models, chunk by chunk, as :meth:`Backend.similarity` does.

        Each chunk is one request for all models; a model that fails is reported in its result and not sent
        again. Progress is in pair-model units.
        """
        a, b = list(a), list(b)
        if len(a) != len(b):
            raise ValueError(f"a and b must have the same length ({len(a)} != {len(b)})")
        requests = [r if isinstance(r, ModelRequest) else ModelRequest(r, r, dict((options or {}).get(r) or {}))
                    for r in (keys if keys is not None else self.registry.defaults())]
        n = len(a)
        out = {r.name: ModelResult(r.key, np.full(n, np.nan, dtype=np.float32), [[] for _ in range(n)], [r.key] * n)
               for r in requests}
        total = n * len(requests)
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
        if not route_language:
            raise ValueError("route_language=False is not available remotely: the server routes Chinese pairs to "
                             "a model's registered Chinese variant")
        name = "__model__"
        res = self.similarity(a, b, [ModelRequest(name, key, dict(options or {}))], progress=progress)[name]
        return res

    def rerank(self, key: str, query: str, candidates: Sequence[str], options: dict[str, Any] | None = None) -> ModelResult:
        """Score one query against many candidates with model ``key`` (input order, as locally)."""
        return self.score_pairs(key, [query] * len(candidates), list(candidates), options)


def backend_from_env(**kwargs: Any):
    """A :class:`RemoteBackend` on ``$SIMDASH_BACKEND_URL`` when it is set, else a local
    :class:`~backend.service.Backend` (keyword arguments go to the one built)."""
    url = os.environ.get("SIMDASH_BACKEND_URL", "").strip()
    if url:
        return RemoteBackend(url, **kwargs)
    from backend.service import Backend

    return Backend(**kwargs)


def _arg(v: Any) -> str:
    """An option value in ``key:option=value`` syntax (JSON for everything but plain strings)."""
    import json

    return v if isinstance(v, str) else json.dumps(v)


__all__ = ["RemoteBackend", "RemoteError", "RemoteRegistry", "backend_from_env"]
