"""The HTTP API around one :class:`~backend.serving.Backend` (FastAPI).

:func:`create_app` builds the app; ``python -m backend serve`` runs it with uvicorn. Handlers are plain
functions that FastAPI runs in a thread pool, so concurrent requests reach the backend as threads, where
dynamic batching (backend/serving/batching.py) merges them into shared forward passes.

What a client can rely on:

* every error is JSON in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with a message a
  person understands and never a stack trace: 401 (API key), 404 (unknown model or route), 408 (a body that
  stopped arriving), 413 (too many texts, a text too long, a body too big), 422 (malformed JSON, wrong types,
  empty input, bad options, a model asked for something its role does not give), 429 (too many requests in
  flight for a model), 503 (a model still loading after ``load_wait_s`` or failing to load);
* one client cannot exhaust the server: a body is counted as it arrives and refused the moment it passes
  ``max_body_bytes`` (:class:`BodyGuard`), and timed out when it stops arriving; each model admits at most
  ``max_queue`` requests at once and answers the next with a 429 at once (:class:`Admission`);
* models load on first use (or in the background with ``--models``); ``/health`` says which are loaded,
  loading or failed;
* with ``SIMDASH_API_KEY`` set, every route but ``/health`` wants ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import base64
import functools
import hmac
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.base import ENCODER, PAIR_SCORER
from backend.options import Option, OptionError, parse_model_arg
from backend.registry import ModelRequest
from backend.results import ModelLoadError, RoleError
from backend.server import schemas as S
from backend.server.metrics import Metrics
from backend.serving import Backend
from backend.text import clean_text

log = logging.getLogger("backend.server")

VERSION = "0.1.0"


@dataclass(frozen=True)
class ServerSettings:
    """Limits and access of the server; :meth:`from_env` reads the ``SIMDASH_*`` variables.

    Attributes
    ----------
    api_key : str or None
        Bearer token every route but ``/health`` requires (``SIMDASH_API_KEY``); None = open (bind to
        127.0.0.1 then, the default).
    max_texts : int
        Texts (or pairs, documents, queries + corpus) per request (``SIMDASH_MAX_TEXTS``): 10,000 keeps one
        request under a minute of CPU for the transformer models; bigger jobs send several requests.
    max_chars : int
        Characters per text (``SIMDASH_MAX_CHARS``): every model truncates far below 20,000 (256 word pieces).
    max_body_bytes : int
        Request body (``SIMDASH_MAX_BODY_MB``, in MiB): refused from its Content-Length before it is read, and
        counted as it arrives when there is none (chunked upload), refused the moment it passes the limit.
    body_timeout_s : float
        Longest pause while a body arrives (``SIMDASH_BODY_TIMEOUT_S``) before a 408 and a closed connection:
        30 s is far more than any network pause between two packets of a live client, and frees what a client
        that stopped halfway holds (a connection, a task, the body so far).
    header_timeout_s : float
        Time for the request line and headers, from the connection's start or the previous response's end
        (``SIMDASH_HEADER_TIMEOUT_S``; applied by :mod:`backend.server.protocol` under uvicorn): a real client
        sends them in one packet; 10 s closes connections that trickle them (slowloris) or send nothing.
    max_queue : int
        Requests in flight per model (``SIMDASH_MAX_QUEUE``), running or waiting for a thread, a batch or the
        model's load; the next one gets a 429 with ``Retry-After`` at once. 256 is four full merged batches of
        64: on a CPU the last of them already waits several seconds, and a client told to retry does better
        than one left waiting behind thousands.
    load_wait_s : float
        How long a request waits for its model to load before a 503 (``SIMDASH_LOAD_WAIT_S``): a CPU loads
        each default model in a few seconds, so a first request usually just waits.
    threads : int
        Requests handled at once (FastAPI's thread pool); more than the clients a batch can merge.
    preload : tuple of str
        Models to load in the background at start (``--models``).
    """

    api_key: str | None = None
    max_texts: int = 10_000
    max_chars: int = 20_000
    max_body_bytes: int = 32 * 2**20
    body_timeout_s: float = 30.0
    header_timeout_s: float = 10.0
    max_queue: int = 256
    load_wait_s: float = 30.0
    threads: int = 64
    preload: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_env(cls, **overrides: Any) -> ServerSettings:
        """Settings from the environment; keyword arguments that are not None win."""
        env = os.environ
        values: dict[str, Any] = {
            "api_key": env.get("SIMDASH_API_KEY") or None,
            "max_texts": int(env.get("SIMDASH_MAX_TEXTS") or cls.max_texts),
            "max_chars": int(env.get("SIMDASH_MAX_CHARS") or cls.max_chars),
            "max_body_bytes": int(float(env.get("SIMDASH_MAX_BODY_MB") or cls.max_body_bytes / 2**20) * 2**20),
            "body_timeout_s": float(env.get("SIMDASH_BODY_TIMEOUT_S") or cls.body_timeout_s),
            "header_timeout_s": float(env.get("SIMDASH_HEADER_TIMEOUT_S") or cls.header_timeout_s),
            "max_queue": int(env.get("SIMDASH_MAX_QUEUE") or cls.max_queue),
            "load_wait_s": float(env.get("SIMDASH_LOAD_WAIT_S") or cls.load_wait_s),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class ApiError(Exception):
    """An error answered as JSON: status, a type name, a message for a person, the field at fault."""

    def __init__(self, status: int, type_: str, message: str, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.param, self.headers = status, type_, message, param, headers


def error_response(status: int, type_: str, message: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = S.ErrorResponse(error=S.ErrorBody(message=message, type=type_, param=param, code=status))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


class BodyGuard:
    """ASGI middleware that bounds a request body in size and in time while it arrives.

    It wraps ``receive``, so it sees each piece of the body as the server hands it over (uvicorn buffers at
    most 64 KiB before it stops reading the socket):

    * a ``Content-Length`` over ``max_bytes`` is refused before a byte of the body is read;
    * otherwise (a chunked upload has no length) the bytes are counted piece by piece, and the piece that
      passes ``max_bytes`` ends it: the app never holds more than the limit plus one piece;
    * a body that stops arriving for ``timeout_s`` ends it too (408), as nginx's ``client_body_timeout`` does:
      the time between two pieces, so a slow but live upload is not cut.

    Ending means answering at once with the JSON error (``Connection: close``, so the server drops the rest of
    the body instead of reading it to find the next request) and telling the app the client left
    (``http.disconnect``); whatever the app then answers is dropped, the client has its answer. An answer the
    app gives before reading the body (a 404) closes the connection too, for the same reason.

    FastAPI's own ``max_body_size`` was not used: it raises inside the app, which turns its 413 into a body
    the app's handlers format, and it neither closes the connection nor times a stalled body out.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        has_body = False
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._answer(scope, send, 413, "too_large", f"the request body has {int(value):,} bytes; "
                                   f"the limit is {limit:,} (SIMDASH_MAX_BODY_MB); send fewer texts per request")
                return
            has_body = has_body or name == b"transfer-encoding" or (name == b"content-length" and value != b"0")
        received = 0
        body_done = False  # after the last piece, receive waits for a disconnect: that wait is not timed
        started = False  # the app began its response: too late to answer in its place
        refused = False  # the body was cut off: the app hears that the client left
        answered = False  # we answered: the app's own response goes nowhere

        async def refuse(status: int, type_: str, message: str) -> Message:
            nonlocal refused, answered
            refused = True
            if not started:
                answered = True
                await self._answer(scope, send, status, type_, message)
            return {"type": "http.disconnect"}

        async def guarded_receive() -> Message:
            nonlocal received, body_done
            if refused:
                return {"type": "http.disconnect"}
            if body_done:
                return await receive()
            try:
                with anyio.fail_after(self.timeout_s):
                    message = await receive()
            except TimeoutError:
                return await refuse(408, "timeout", f"the request body stopped arriving: nothing for "
                                    f"{self.timeout_s:g} s after {received:,} bytes (SIMDASH_BODY_TIMEOUT_S); the "
                                    "connection is closed")
            if message["type"] != "http.request":
                body_done = True
                return message
            received += len(message.get("body", b""))
            if received > limit:
                return await refuse(413, "too_large", f"the request body passed the limit of {limit:,} bytes "
                                    "(SIMDASH_MAX_BODY_MB) and the rest was not read; send fewer texts per request")
            body_done = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return
            if message["type"] == "http.response.start":
                started = True
                if has_body and not body_done:
                    # Answered before the body was read (a 404): close, or the server would read the rest to
                    # find the next request on this connection, however big it is.
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, guarded_receive, guarded_send)

    @staticmethod
    async def _answer(scope: Scope, send: Send, status: int, type_: str, message: str) -> None:
        """Send the JSON error and ask the server to close the connection after it."""
        log.info("%s %s: %d %s", scope.get("method"), scope.get("path"), status, message)
        resp = error_response(status, type_, message, headers={"Connection": "close"})
        await send({"type": "http.response.start", "status": resp.status_code, "headers": resp.raw_headers})
        await send({"type": "http.response.body", "body": resp.body})


class Admission:
    """At most ``limit`` requests in flight per model; the next is refused at once with a 429.

    Infinity's ``is_overloaded`` and TEI's ``max_concurrent_requests`` do the same: under a burst an
    unbounded queue only makes every answer late (and holds every body in memory), while a 429 with
    ``Retry-After`` lets a client back off or go to another replica. A request counts from before it takes a
    worker thread until its answer is ready, so the count covers requests waiting for a thread, a merged batch
    or the model's load as well as running ones.
    """

    #: seconds a refused client is told to wait: a merged batch takes well under a second to a few seconds,
    #: so by then the burst has usually drained a batch's worth of room.
    RETRY_AFTER_S = 1

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def admit(self, keys: Iterable[str]) -> Iterator[None]:
        """Hold one place for each model in ``keys`` (all or none) for the block; ApiError 429 when one is full."""
        wanted = sorted(set(keys))  # a model named twice (two option sets) is one place: one request
        with self._lock:
            full = [k for k in wanted if self._counts.get(k, 0) >= self.limit]
            if full:
                raise ApiError(429, "overloaded", f"model {full[0]!r} has {self.limit} requests in flight, its limit "
                               f"(SIMDASH_MAX_QUEUE); retry in {self.RETRY_AFTER_S} s", "model",
                               {"Retry-After": str(self.RETRY_AFTER_S)})
            for k in wanted:
                self._counts[k] = self._counts.get(k, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                for k in wanted:
                    left = self._counts[k] - 1
                    if left:
                        self._counts[k] = left
                    else:
                        del self._counts[k]  # absent when idle: the dict holds only models in use

    def in_flight(self) -> dict[str, int]:
        """Requests in flight per model (models with none are absent)."""
        with self._lock:
            return dict(self._counts)


class Loader:
    """Loads models in background threads so a request can wait a bounded time and a preload starts at once."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="model-load")
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()

    def start(self, key: str) -> Future:
        """The load of ``key`` (started now unless one is running or done and still in memory)."""
        with self._lock:
            f = self._futures.get(key)
            if f is None or (f.done() and (f.exception() is not None or key not in self.backend.loaded())):
                f = self._futures[key] = self._pool.submit(self.backend.model, key)
            return f

    def ensure(self, key: str, wait: float, fail: bool = True) -> None:
        """Return once ``key`` is loaded; 503 when it takes longer than ``wait`` or (with ``fail``) fails."""
        if key in self.backend.loaded():
            return
        f = self.start(key)
        t0 = time.monotonic()
        try:
            f.result(timeout=wait)
        except FutureTimeout:
            since = self.backend.loading.get(key)
            took = f" ({time.time() - since:.0f} s so far)" if since else ""
            raise ApiError(503, "model_unavailable", f"model {key!r} is still loading{took}; retry in a few seconds",
                           "model", {"Retry-After": "5"}) from None
        except ModelLoadError as exc:
            if fail:
                raise ApiError(503, "model_unavailable", str(exc), "model") from None
        except Exception as exc:  # an unexpected error while loading is this model's, not the server's
            if fail:
                raise ApiError(503, "model_unavailable", f"model {key!r} could not be loaded: {exc}", "model") from None
        finally:
            log.debug("waited %.2f s for %s", time.monotonic() - t0, key)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def option_info(o: Option) -> dict[str, Any]:
    """An :class:`~backend.options.Option` as JSON (``GET /v1/models``): its own :meth:`~backend.options.Option.as_json`,
    Chinese title and help included."""
    return o.as_json()


def _float_or_none(values) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, dtype=np.float64).tolist()]


_WORDS = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\s\u3400-\u9fff\uf900-\ufaff]+")


def model_key(model: str) -> str:
    """The registry key of a model string (``"bert:layer=-1"`` -> ``"bert"``), without checking its options."""
    return model.split(":", 1)[0].strip()


def count_tokens(texts: list[str]) -> int:
    """Words plus CJK characters: the ``usage`` estimate (documented as one)."""
    return sum(len(_WORDS.findall(t)) for t in texts)


def create_app(backend: Backend | None = None, settings: ServerSettings | None = None) -> FastAPI:
    """The FastAPI app serving ``backend`` (default: a new :class:`Backend` on the default registry).

    Parameters
    ----------
    backend : Backend, optional
        Shared with whatever else runs in the process (tests pass one over fake models).
    settings : ServerSettings, optional
        Default: :meth:`ServerSettings.from_env`.
    """
    be = backend or Backend()
    cfg = settings or ServerSettings.from_env()
    loader = Loader(be)
    admission = Admission(cfg.max_queue)
    metrics = Metrics(be, in_flight=admission.in_flight)
    be.batcher.observers.append(metrics.observe_batch)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        import anyio.to_thread

        # FastAPI runs the handlers in anyio's thread pool; its default of 40 would cap how many concurrent
        # requests can meet in one batch.
        anyio.to_thread.current_default_thread_limiter().total_tokens = cfg.threads
        for key in cfg.preload:
            if key in be.registry:
                loader.start(key)
            else:
                log.warning("--models: unknown model %r is not preloaded", key)
        yield
        loader.shutdown()
        if metrics.observe_batch in be.batcher.observers:
            be.batcher.observers.remove(metrics.observe_batch)

    app = FastAPI(
        title="Sentence similarity API",
        version=VERSION,
        description="Sentence vectors, pair scores, reranking and neighbours from the models of the "
        "sentence-similarity dashboard. `/v1/embeddings` is OpenAI-compatible; `/v1/rerank` takes the Cohere/Jina "
        "shape. Errors are JSON `{\"error\": {\"message\", \"type\", \"param\", \"code\"}}`.",
        lifespan=lifespan,
        responses={
            401: {"model": S.ErrorResponse, "description": "Missing or wrong API key."},
            404: {"model": S.ErrorResponse, "description": "Unknown model."},
            408: {"model": S.ErrorResponse, "description": "The request body stopped arriving."},
            413: {"model": S.ErrorResponse, "description": "Too many texts, a text too long, or a body too big."},
            422: {"model": S.ErrorResponse, "description": "Malformed JSON, wrong types, bad options."},
            429: {"model": S.ErrorResponse, "description": "Too many requests in flight for the model; retry after "
                  "`Retry-After` seconds."},
            503: {"model": S.ErrorResponse, "description": "The model is loading or failed to load."},
        },
    )
    app.state.backend, app.state.settings, app.state.metrics, app.state.loader = be, cfg, metrics, loader
    app.state.admission = admission

    # ------------------------------------------------------------------------------ middleware: auth, size
    # Added first, so it runs inside ``guard`` (Starlette puts later middleware outside): a client without the
    # key is refused before its body is looked at, and the metrics count the 413 or 408 the client got.
    app.add_middleware(BodyGuard, max_bytes=cfg.max_body_bytes, timeout_s=cfg.body_timeout_s)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        path = request.url.path
        t0 = time.perf_counter()
        if cfg.api_key and path != "/health":
            given = request.headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), cfg.api_key.encode()):
                resp = error_response(401, "unauthorized", "missing or wrong API key: send the header "
                                      "'Authorization: Bearer <key>' with the key the server was started with "
                                      "(SIMDASH_API_KEY)", headers={"WWW-Authenticate": "Bearer"})
                metrics.requests.labels("unauthorized", request.method, "401").inc()
                return resp
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        metrics.requests.labels(name, request.method, str(response.status_code)).inc()
        metrics.latency.labels(name).observe(time.perf_counter() - t0)
        return response

    # ---------------------------------------------------------------------------------------- errors
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.type, exc.message, exc.param, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        parts, param = [], None
        for e in errors[:5]:
            loc = [str(x) for x in e.get("loc", ()) if x != "body"]
            if e.get("type") == "json_invalid":
                ctx = e.get("ctx", {}).get("error", "")
                return error_response(422, "invalid_request", f"the request body is not valid JSON ({ctx})")
            where = ".".join(loc)
            param = param or where or None
            msg = e.get("msg", "invalid")
            if e.get("type") == "extra_forbidden":
                msg = "unknown field (see /docs for the fields this route takes)"
            elif e.get("type") == "missing":
                msg = "required field is missing"
            parts.append(f"{where}: {msg}" if where else msg)
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        return error_response(422, "invalid_request", "; ".join(parts) + more, param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            return error_response(404, "not_found", f"no route {request.url.path}; see /docs for the API")
        return error_response(exc.status_code, "invalid_request", str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return error_response(500, "server_error", f"internal error ({type(exc).__name__}: {exc}); the server log "
                              "has the details")

    # -------------------------------------------------------------------------------------- helpers
    def known(key: str, param: str) -> None:
        """The one unknown-model check: 404 naming the registered keys (or why the entry was left out)."""
        if key not in be.registry:
            why = be.registry.errors.get(key)
            msg = (f"model {key!r} is not available: {why}" if why else
                   f"unknown model {key!r}; registered: {', '.join(be.registry.keys())}")
            raise ApiError(404, "unknown_model", msg, param)

    def parse_known(model: str, param: str) -> tuple[str, dict[str, Any]]:
        """A model string (``key:option=value``) as a registered key and its options: 422 malformed, 404 unknown."""
        try:
            key, opts = parse_model_arg(model)
        except OptionError as exc:
            raise ApiError(422, "invalid_option", str(exc), param) from None
        known(key, param)
        return key, opts

    def resolve(model: str, options: dict[str, Any] | None, param: str = "model") -> tuple[str, dict[str, Any]]:
        """Key and checked options of a model string; 404 unknown, 503 loading/failed, 422 bad options."""
        key, opts = parse_known(model, param)
        loader.ensure(key, cfg.load_wait_s)
        try:
            return key, be.check_request(key, {**opts, **(options or {})})
        except OptionError as exc:
            raise ApiError(422, "invalid_option", str(exc), "options") from None

    def routed(key: str, opts: dict[str, Any], texts: list[str]):
        """The one model (and options) that embeds all of ``texts`` for ``key``: the rule every surface shares
        (backend.routing); the variant is loaded (or waited for) like the asked model."""
        r = run(be.route_texts, key, texts, opts)
        if r.key != key:
            loader.ensure(r.key, cfg.load_wait_s)
        return r

    def require_role(key: str, role: str) -> None:
        if role not in be.roles(key):
            raise ApiError(422, "wrong_role", f"{key} scores pairs only (it reads both texts together) and gives no "
                           "sentence vectors; use /v1/similarity or /v1/rerank with it", "model")

    def check_texts(texts: list[str], param: str, route: str) -> None:
        if len(texts) > cfg.max_texts:
            raise ApiError(413, "too_large", f"{len(texts):,} texts in {param}; the limit is {cfg.max_texts:,} per "
                           "request (SIMDASH_MAX_TEXTS): split the job into several requests", param)
        for i, t in enumerate(texts):
            if len(t) > cfg.max_chars:
                raise ApiError(413, "too_large", f"{param}[{i}] has {len(t):,} characters; the limit is "
                               f"{cfg.max_chars:,} per text (SIMDASH_MAX_CHARS); the models read at most a few "
                               "hundred word pieces anyway", f"{param}[{i}]")
        metrics.texts.labels(route).inc(len(texts))

    def run(fn, *args, **kw):
        """Call the backend, mapping its exceptions to API errors."""
        try:
            return fn(*args, **kw)
        except OptionError as exc:
            raise ApiError(422, "invalid_option", str(exc), "options") from None
        except RoleError as exc:
            raise ApiError(422, "wrong_role", str(exc), "model") from None
        except ModelLoadError as exc:
            raise ApiError(503, "model_unavailable", str(exc), "model") from None
        except KeyError as exc:
            raise ApiError(404, "unknown_model", str(exc).strip("'\""), "model") from None
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None

    def admitted(keys_of: Callable[..., Iterable[str]]):
        """Route decorator: hold the request's places in :class:`Admission` (keyed by model) while the handler
        runs in the thread pool. The place is taken here, in the event loop, before the request waits for a
        thread: a burst beyond the bound gets its 429 at once instead of queueing for a thread first."""

        def wrap(handler):
            @functools.wraps(handler)  # FastAPI reads the handler's parameters through __wrapped__
            async def route(**kwargs):
                keys = [k for k in (model_key(m) for m in keys_of(**kwargs)) if k in be.registry]
                with admission.admit(keys):
                    return await run_in_threadpool(handler, **kwargs)
            return route
        return wrap

    def similarity_models(req: S.SimilarityRequest) -> list[str]:
        items = req.models if req.models is not None else be.registry.defaults()
        return [item.model if isinstance(item, S.NamedModel) else item for item in items]

    def model_info(key: str) -> dict[str, Any]:
        spec = be.registry[key]
        try:
            roles = sorted(be.roles(key))
            specs = [option_info(o) for o in be.option_specs(key)]
        except ValueError:
            roles, specs = [], []
        state = be.model_states().get(key, "not loaded")
        return {"id": key, "family": spec.family, "label": spec.label, "roles": roles, "language": spec.language,
                "licence": spec.licence, "default": spec.default, "note": spec.note, "source": spec.source,
                "variants": dict(spec.variants), "options": dict(spec.options), "option_specs": specs,
                "research_only": spec.research_only, "stands_in_for": spec.stands_in_for, "facts": dict(spec.facts),
                "state": state, "error": be.load_errors.get(key)}

    # ----------------------------------------------------------------------------------------- routes
    @app.get("/health", response_model=S.Health, tags=["service"], summary="Liveness, device and model states "
             "(no API key needed)")
    def health() -> dict[str, Any]:
        states = be.model_states()
        store = be.store
        return {
            "version": VERSION, "device": be.device,
            "loaded": [k for k, s in states.items() if s == "loaded"],
            "loading": [k for k, s in states.items() if s == "loading"],
            "failed": {k: be.load_errors[k] for k, s in states.items() if s == "failed"},
            "batching": asdict(be.batcher.settings),
            "cache": {"persistent": store is not None and store.disabled is None},
            "limits": {"max_texts": cfg.max_texts, "max_chars": cfg.max_chars, "max_body_bytes": cfg.max_body_bytes,
                       "body_timeout_s": cfg.body_timeout_s, "header_timeout_s": cfg.header_timeout_s,
                       "max_queue": cfg.max_queue},
            "in_flight": admission.in_flight(),
        }

    @app.get("/metrics", tags=["service"], summary="Prometheus metrics", response_class=Response)
    def prometheus() -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models", response_model=S.ModelList, tags=["models"],
             summary="The registry: roles, languages, licences, options (loads nothing)")
    def models() -> dict[str, Any]:
        return {"data": [model_info(s.key) for s in be.registry], "errors": dict(be.registry.errors)}

    @app.get("/v1/models/{key}", response_model=S.ModelInfo, tags=["models"], summary="One registry entry")
    def one_model(key: str) -> dict[str, Any]:
        known(key, "key")
        return model_info(key)

    @app.get("/v1/info/{model}", tags=["models"], summary="Model card facts (loads the model)",
             response_model=dict[str, Any])
    @admitted(lambda model: [model])
    def info(model: str) -> dict[str, Any]:
        key, opts = resolve(model, None)
        return run(be.info, key, **opts)

    @app.post("/v1/check", response_model=S.CheckResponse, tags=["models"],
              summary="Validate a model and its run-time options (no work done)")
    def check(req: S.CheckRequest) -> dict[str, Any]:
        key, opts = parse_known(req.model, "model")
        try:
            return {"model": key, "options": be.check_request(key, {**opts, **(req.options or {})})}
        except OptionError as exc:
            raise ApiError(422, "invalid_option", str(exc), "options") from None

    @app.post("/v1/embeddings", response_model=S.EmbeddingsResponse, tags=["vectors"],
              summary="OpenAI-compatible sentence embeddings")
    @admitted(lambda req: [req.model])
    def embeddings(req: S.EmbeddingsRequest) -> dict[str, Any]:
        texts = [req.input] if isinstance(req.input, str) else list(req.input)
        if not texts:
            raise ApiError(422, "invalid_request", "input is an empty list: send at least one text", "input")
        if not all(isinstance(t, str) for t in texts):
            raise ApiError(422, "invalid_request", "input holds token ids: this server takes text only (each model "
                           "has its own tokenizer)", "input")
        check_texts(texts, "input", "/v1/embeddings")
        for i, t in enumerate(texts):
            if not clean_text(t):
                raise ApiError(422, "invalid_request", f"input[{i}] is empty (or only whitespace/control "
                               "characters): no vector can be made for it", f"input[{i}]")
        asked, opts = resolve(req.model, req.options)
        require_role(asked, ENCODER)
        r = routed(asked, opts, texts)
        key, opts = r.key, r.options
        m = run(be.model, key, **opts)
        if req.dimensions is not None and req.dimensions != m.dim:
            raise ApiError(422, "invalid_request", f"dimensions={req.dimensions} is not supported: {key} gives "
                           f"{m.dim}-dimensional vectors and was not trained to be truncated; omit dimensions",
                           "dimensions")
        enc = run(be.embed, key, texts, opts)
        b64 = req.encoding_format == "base64"
        data = [{"index": i, "valid": bool(enc.valid[i]), "warnings": enc.warnings[i],
                 "embedding": base64.b64encode(enc.vectors[i].astype("<f4").tobytes()).decode("ascii") if b64
                 else enc.vectors[i].tolist()} for i in range(len(texts))]
        n = count_tokens(texts)
        # "model" names what made the vectors: the request's own string unless routing chose a variant.
        return {"data": data, "model": key if r.routed else req.model, "asked": req.model, "note": r.note,
                "usage": {"prompt_tokens": n, "total_tokens": n}}

    @app.post("/v1/embed", response_model=S.EmbedResponse, tags=["vectors"],
              summary="Vectors with validity and warnings per text (the Python client's embed)")
    @admitted(lambda req: [req.model])
    def embed(req: S.EmbedRequest) -> dict[str, Any]:
        check_texts(req.texts, "texts", "/v1/embed")
        key, opts = resolve(req.model, req.options)
        require_role(key, ENCODER)
        enc = run(be.embed, key, req.texts, opts)
        return {"model": key, "dim": int(enc.vectors.shape[1]),
                "vectors": base64.b64encode(np.ascontiguousarray(enc.vectors, dtype="<f4").tobytes()).decode("ascii"),
                "valid": enc.valid.tolist(), "warnings": enc.warnings}

    @app.post("/v1/similarity", response_model=S.SimilarityResponse, tags=["scores"],
              summary="Score pairs with several models (the CLI's JSON contract per pair)")
    @admitted(similarity_models)
    def similarity(req: S.SimilarityRequest) -> dict[str, Any]:
        a = [p[0] for p in req.pairs]
        b = [p[1] for p in req.pairs]
        check_texts(a + b, "pairs", "/v1/similarity")
        requests = []
        for i, item in enumerate(req.models if req.models is not None else be.registry.defaults()):
            if isinstance(item, S.NamedModel):
                spec, extra = item.model, dict(item.options or {})
                name = item.name or item.model
            else:
                spec, extra, name = item, {}, item
            key, opts = parse_known(spec, f"models[{i}]")
            opts.update(extra)
            # A model that fails to load is reported in its result, as the CLI does; still loading -> 503.
            loader.ensure(key, cfg.load_wait_s, fail=False)
            if name == key:
                opts = {**((req.options or {}).get(key) or {}), **opts}
            try:
                opts = be.check_request(key, opts)
            except OptionError as exc:
                raise ApiError(422, "invalid_option", str(exc), f"models[{i}]") from None
            except ValueError:
                pass  # a missing family file: the model's result says so
            if any(r.name == name for r in requests):
                raise ApiError(422, "invalid_request", f"models names {name!r} twice; give each a distinct name",
                               f"models[{i}]")
            requests.append(ModelRequest(name, key, opts))
        if not requests:
            raise ApiError(422, "invalid_request", "models is an empty list: name at least one model", "models")
        results = run(be.similarity, a, b, requests)
        return {
            "results": [{name: r.as_json(i) for name, r in results.items()} for i in range(len(a))],
            "models": {name: {"key": r.key, "scores": [None] * len(a) if r.scores is None else _float_or_none(r.scores),
                              "warnings": r.warnings, "used": r.used, "error": r.error, "seconds": r.seconds}
                       for name, r in results.items()},
        }

    @app.post("/v1/rerank", response_model=S.RerankResponse, tags=["scores"],
              summary="Order documents by relevance to a query (Cohere/Jina/TEI shape)")
    @admitted(lambda req: [req.model])
    def rerank(req: S.RerankRequest) -> dict[str, Any]:
        docs = [d if isinstance(d, str) else d.text for d in req.documents]
        check_texts([req.query, *docs], "documents", "/v1/rerank")
        key, opts = resolve(req.model, req.options)
        res = run(be.rerank, key, req.query, docs, opts)
        if res.error is not None:
            raise ApiError(503, "model_unavailable", f"{key} failed: {res.error}", "model")
        s = np.asarray(res.scores, dtype=np.float64)
        order = np.argsort(np.where(np.isfinite(s), -s, np.inf), kind="stable")
        top = order[: req.top_n] if req.top_n is not None else order
        return {
            "model": req.model,
            "scored_by": "pair_scorer" if PAIR_SCORER in be.roles(key) else "encoder_cosine",
            "results": [{"index": int(i), "relevance_score": None if not np.isfinite(s[i]) else float(s[i]),
                         "warnings": res.warnings[i],
                         "document": {"text": docs[i]} if req.return_documents else None} for i in top],
        }

    @app.post("/v1/match", response_model=S.MatchResponse, tags=["scores"],
              summary="Match questions against an FAQ or corpus: top k per question and model")
    @admitted(lambda req: [*(req.models if req.models is not None else []), *([req.rerank] if req.rerank else [])])
    def match(req: S.MatchRequest) -> dict[str, Any]:
        from backend.files.match import MatchCorpus, Matcher

        check_texts([*req.queries, *req.corpus], "corpus", "/v1/match")
        corpus = MatchCorpus.from_texts(req.corpus)
        if not corpus.texts:
            raise ApiError(422, "invalid_request", "every corpus text is empty: nothing to match against", "corpus")
        names = req.models if req.models is not None else [k for k in be.registry.defaults()
                                                           if ENCODER in be.roles(k)]
        requests = []
        for i, item in enumerate(names):
            key, opts = resolve(item, None, f"models[{i}]")
            requests.append(ModelRequest(key if not opts else item, key, opts))
        rr = None
        if req.rerank:
            rkey, ropts = resolve(req.rerank, None, "rerank")
            rr = ModelRequest(req.rerank, rkey, ropts)
        m = run(Matcher, be, corpus, requests, req.k, rr)
        for r in m.routes.values():
            if r.key != r.asked:
                loader.ensure(r.key, cfg.load_wait_s)
        frame = run(m.match, req.queries)
        if corpus.skipped:
            m.notes.append(f"{corpus.skipped:,} empty corpus text(s) skipped")
        rows = []
        for rec in frame.to_dict("records"):
            rows.append({k: (None if isinstance(v, float) and not np.isfinite(v) else
                             (int(v) if k in ("rank", "corpus_row", "rerank_rank") and v is not None else v))
                         for k, v in rec.items()})
        return {"models": {name: r.key for name, r in m.routes.items()}, "notes": m.notes, "rows": rows}

    @app.post("/v1/neighbours", response_model=S.NeighboursResponse, tags=["vectors"],
              summary="Top-k cosine neighbours of each query in a corpus")
    @admitted(lambda req: [req.model])
    def neighbours(req: S.NeighboursRequest) -> dict[str, Any]:
        check_texts([*req.queries, *req.corpus], "corpus", "/v1/neighbours")
        key, opts = resolve(req.model, req.options)
        require_role(key, ENCODER)
        r = routed(key, opts, [*req.corpus, *req.queries])
        n = run(be.neighbours, r.key, req.queries, req.corpus, req.k, r.options)
        return {"model": n.model, "note": r.note, "indices": n.indices.tolist(), "scores": [_float_or_none(r) for r in n.scores],
                "warnings": n.warnings, "corpus_warnings": n.corpus_warnings}

    @app.post("/v1/project", response_model=S.ProjectResponse, tags=["vectors"],
              summary="2-D map of texts (UMAP or PCA)")
    @admitted(lambda req: [req.model])
    def project(req: S.ProjectRequest) -> dict[str, Any]:
        check_texts(req.texts, "texts", "/v1/project")
        key, opts = resolve(req.model, req.options)
        require_role(key, ENCODER)
        r = routed(key, opts, req.texts)
        proj = run(be.project_detailed, r.key, req.texts, req.method, req.seed, req.n_neighbors, req.min_dist,
                   r.options, fit_limit=req.fit_limit, fit_sample=req.fit_sample)
        return {"model": r.key, "note": r.note, "coords": [_float_or_none(r) for r in proj.coords], "info": asdict(proj.info)}

    @app.post("/v1/config", response_model=S.ConfigResponse, tags=["models"],
              summary="A model's configuration and its config_id (loads no weights)")
    @admitted(lambda req: [req.model])
    def config(req: S.ConfigRequest) -> dict[str, Any]:
        # No load: the id is computed from the registry entry and a fingerprint of the weight files, so a client
        # can check vectors it holds (an embedded corpus) before anything is loaded.
        key, opts = parse_known(req.model, "model")
        return run(be.model_config, key, {**opts, **(req.options or {})}).as_dict()

    @app.post("/v1/align", response_model=S.AlignResponse, tags=["scores"],
              summary="A pair scorer's word alignment of two texts (ESIM's attention), for a heatmap")
    @admitted(lambda req: [req.model])
    def align(req: S.AlignRequest) -> dict[str, Any]:
        check_texts([req.a, req.b], "a", "/v1/align")
        key, opts = resolve(req.model, None)
        if opts:
            raise ApiError(422, "invalid_option", "an alignment takes no options: it is the registered model's; "
                           f"send the plain key {key!r}", "model")
        al = run(be.align, key, req.a, req.b)
        if al is None:
            return {"model": key, "alignment": None}
        return {"model": key, "alignment": {
            "tokens_a": list(al["tokens_a"]), "tokens_b": list(al["tokens_b"]),
            "matrix": [_float_or_none(r) for r in np.asarray(al["matrix"], dtype=np.float64).reshape(
                len(al["tokens_a"]), len(al["tokens_b"]))],
            "score": None if al.get("score") is None else _float_or_none([al["score"]])[0],
            "warnings": list(al.get("warnings", []))}}

    @app.post("/v1/probe", response_model=S.ProbeResponse, tags=["scores"],
              summary="BERT layer probe: Spearman for every hidden layer x pooling on labelled pairs")
    @admitted(lambda req: [req.model])
    def probe(req: S.ProbeRequest) -> dict[str, Any]:
        from backend.lab.evaluation import LabelledPairs

        if not len(req.a) == len(req.b) == len(req.labels):
            raise ApiError(422, "invalid_request", f"a, b and labels must have the same length ({len(req.a)}, "
                           f"{len(req.b)}, {len(req.labels)})", "labels")
        check_texts([*req.a, *req.b], "a", "/v1/probe")
        key, opts = resolve(req.model, None)
        if opts:
            raise ApiError(422, "invalid_option", "the probe takes no options: it reads every layer with every "
                           f"pooling; send the plain key {key!r}", "model")
        labels = np.array([np.nan if v is None else v for v in req.labels], dtype=np.float64)
        finite = labels[np.isfinite(labels)]
        lo_hi = req.label_range or ((float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0))
        data = LabelledPairs(list(req.a), list(req.b), labels, req.kind, (float(lo_hi[0]), float(lo_hi[1])))
        res = run(be.probe, key, data, whiten=req.whiten, whiten_dim=req.whiten_dim)
        # Full precision, not ProbeResult.as_json's rounding: the client's numbers equal the in-process probe's.
        return {"model": res.model, "layers": res.layers, "poolings": list(res.poolings),
                "spearman": [_float_or_none(r) for r in res.spearman],
                "first_last_avg": None if res.first_last_avg is None else float(res.first_last_avg),
                "whitened": res.whitened, "n": res.n, "skipped": res.skipped, "notes": list(res.notes),
                "mix_weights": None if res.mix_weights is None else [float(w) for w in res.mix_weights],
                "mix_spearman": res.mix_spearman, "mix_baseline": res.mix_baseline, "mix_note": res.mix_note,
                "mix_pooling": res.mix_pooling}

    @app.get("/v1/cache", response_model=dict[str, Any], tags=["service"],
             summary="Entries and hit counts of the server's vector caches (memory and persistent)")
    def cache() -> dict[str, Any]:
        return be.cache_info()

    return app


__all__ = ["Admission", "ApiError", "BodyGuard", "ServerSettings", "create_app", "error_response"]
