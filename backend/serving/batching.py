"""Dynamic batching: concurrent requests for one model share one forward pass.

Many small requests arrive at once when the dashboard has several visitors (Streamlit serves each session as a
thread of one process) or when the HTTP server has several clients. Run one at a time, each pays a whole
forward pass for one sentence; merged, 32 sentences cost little more than one. :class:`Batcher` keeps one
queue and one worker thread per model configuration:

* a caller's texts are cut into **pieces of at most one batch**, and a caller has one piece in the queue at a
  time, so a 100k-row job and a one-pair request alternate batch by batch: the small request waits for about
  one batch, never for the whole job;
* the worker takes the oldest piece and adds others that fit (``max_batch`` items, ``max_chars`` characters —
  a character bound is an upper bound of word pieces, which is what a forward pass costs), waiting at most
  ``wait_ms`` after the oldest piece arrived for more to come; pieces that queued while the previous batch
  ran are merged without any wait at all;
* each model configuration has its own worker, so a slow model never holds up another;
* when a merged batch fails, its pieces are retried one by one, so one request's bad input fails only that
  request.

Results are split back per piece in input order; the numbers are those of an unbatched call (padding to the
longest text of a batch changes them by float rounding only, well under 1e-5).

``wait_ms = 0`` switches batching off (:func:`batch_settings` reads ``SIMDASH_BATCH_WAIT_MS``): every call runs
on the caller's thread, as before this module existed.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: items per merged forward pass: 64 is sentence-transformers' usual CPU batch and keeps one batch of
#: STS-length sentences near 0.2 s on two CPU cores, which bounds what an interactive request waits.
DEFAULT_MAX_BATCH = 64
#: characters per merged batch (an upper bound of word pieces): 64 texts of 256 characters; a batch of long
#: texts is cut earlier so its padded forward pass stays about as long as a batch of short ones.
DEFAULT_MAX_CHARS = 16_384
#: how long the oldest queued piece may wait for company: long enough for the requests of a burst to meet,
#: short against the ~20 ms a one-sentence forward pass takes on a CPU.
DEFAULT_WAIT_MS = 5.0
#: a worker with nothing to do for this long exits (a new request starts another).
IDLE_SECONDS = 30.0


@dataclass(frozen=True)
class BatchSettings:
    """How requests are merged; read from the environment by :func:`batch_settings`.

    Attributes
    ----------
    wait_ms : float
        Longest wait of the oldest queued piece for others to join it; 0 switches batching off.
    max_batch : int
        Items (texts or pairs) per merged forward pass; also the size of the pieces a request is cut into.
    max_chars : int
        Characters per merged forward pass (an upper bound of its word pieces).
    """

    wait_ms: float = DEFAULT_WAIT_MS
    max_batch: int = DEFAULT_MAX_BATCH
    max_chars: int = DEFAULT_MAX_CHARS

    @property
    def enabled(self) -> bool:
        """False when ``wait_ms`` is 0: calls run on the caller's thread."""
        return self.wait_ms > 0


def batch_settings(wait_ms: float | None = None, max_batch: int | None = None,
                   max_chars: int | None = None) -> BatchSettings:
    """Settings from the arguments, else ``SIMDASH_BATCH_WAIT_MS`` / ``_MAX`` / ``_MAX_CHARS``, else the defaults.

    Raises
    ------
    ValueError
        A negative wait or a non-positive size (the message names the variable).
    """
    def pick(value, var: str, default, kind):
        if value is not None:
            return kind(value)
        raw = os.environ.get(var, "").strip()
        if not raw:
            return default
        try:
            return kind(raw)
        except ValueError:
            raise ValueError(f"{var}={raw!r} is not a number") from None

    s = BatchSettings(pick(wait_ms, "SIMDASH_BATCH_WAIT_MS", DEFAULT_WAIT_MS, float),
                      pick(max_batch, "SIMDASH_BATCH_MAX", DEFAULT_MAX_BATCH, int),
                      pick(max_chars, "SIMDASH_BATCH_MAX_CHARS", DEFAULT_MAX_CHARS, int))
    if s.wait_ms < 0:
        raise ValueError(f"SIMDASH_BATCH_WAIT_MS must be >= 0 (0 = off), not {s.wait_ms}")
    if s.max_batch < 1 or s.max_chars < 1:
        raise ValueError(f"batch limits must be positive (max_batch={s.max_batch}, max_chars={s.max_chars})")
    return s


@dataclass
class BatchStats:
    """What one merged forward pass looked like (handed to observers, e.g. the server's metrics)."""

    key: str
    items: int
    pieces: int
    queue_wait: list[float]
    seconds: float


@dataclass
class _Piece(Generic[T, R]):
    items: list[T]
    cost: int
    fn: Callable[[list[T]], list[R]]
    future: Future = field(default_factory=Future)
    queued: float = field(default_factory=time.perf_counter)


class _Queue:
    def __init__(self, lock: threading.Lock) -> None:
        self.pieces: deque[_Piece] = deque()
        self.ready = threading.Condition(lock)


class Batcher:
    """Per-model queues whose workers merge concurrent pieces into one call.

    Parameters
    ----------
    settings : BatchSettings, optional
        Defaults to :func:`batch_settings` (the environment).

    Examples
    --------
    >>> b = Batcher(BatchSettings(wait_ms=2))
    >>> b.run("double", lambda xs: [2 * x for x in xs], [1, 2, 3])
    [2, 4, 6]
    """

    def __init__(self, settings: BatchSettings | None = None) -> None:
        self.settings = settings or batch_settings()
        self._lock = threading.Lock()
        self._queues: dict[str, _Queue] = {}
        #: called after every merged call with a :class:`BatchStats` (metrics); exceptions are ignored.
        self.observers: list[Callable[[BatchStats], None]] = []
        self.stats = {"batches": 0, "items": 0, "pieces": 0, "max_pieces": 0}

    def run(
        self, key: str, fn: Callable[[list[T]], list[R]], items: Sequence[T], cost: Callable[[T], int] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[R]:
        """``fn(items)``, computed in pieces that may be merged with other callers' pieces for the same ``key``.

        Parameters
        ----------
        key : str
            Which queue: calls with the same key must compute the same function (one model configuration).
        fn : callable
            ``fn(list of items) -> list of results``, one result per item, in order. Runs on the key's worker
            thread (or on the caller's when batching is off).
        items : sequence
        cost : callable, optional
            An item's size for the ``max_chars`` bound (default: ``len`` of a string, the summed lengths of a
            tuple of strings).
        progress : callable, optional
            ``progress(done, total)`` after each piece.

        Returns
        -------
        list
            ``fn``'s results for ``items``, in order.

        Raises
        ------
        Exception
            Whatever ``fn`` raised on this caller's own items.
        """
        items = list(items)
        if not self.settings.enabled:
            out = fn(items)
            if progress is not None:
                progress(len(items), len(items))
            return out
        cost = cost or _default_cost
        out: list[R] = []
        for piece in self._cut(items, cost):
            p = _Piece(piece, sum(cost(x) for x in piece), fn)
            self._submit(key, p)
            out.extend(p.future.result())
            if progress is not None:
                progress(len(out), len(items))
        return out

    def _cut(self, items: list[T], cost: Callable[[T], int]) -> list[list[T]]:
        """Pieces of at most ``max_batch`` items and (unless one item alone exceeds it) ``max_chars``."""
        s = self.settings
        pieces: list[list[T]] = []
        cur: list[T] = []
        chars = 0
        for x in items:
            c = cost(x)
            if cur and (len(cur) >= s.max_batch or chars + c > s.max_chars):
                pieces.append(cur)
                cur, chars = [], 0
            cur.append(x)
            chars += c
        if cur:
            pieces.append(cur)
        return pieces

    def _submit(self, key: str, piece: _Piece) -> None:
        with self._lock:
            q = self._queues.get(key)
            if q is None:
                q = self._queues[key] = _Queue(self._lock)
                threading.Thread(target=self._work, args=(key, q), name=f"batcher-{key}", daemon=True).start()
            q.pieces.append(piece)
            q.ready.notify()

    def _take(self, key: str, q: _Queue) -> list[_Piece] | None:
        """The next merged batch (oldest piece first, then any that fit); None when idle long enough to exit."""
        s = self.settings
        with self._lock:
            idle_since = time.perf_counter()
            while not q.pieces:
                q.ready.wait(timeout=IDLE_SECONDS)
                if not q.pieces and time.perf_counter() - idle_since >= IDLE_SECONDS:
                    del self._queues[key]
                    return None
            # Wait for company only while the batch is not full, and only until the oldest piece has waited
            # wait_ms in all: pieces that queued during the previous forward pass go at once.
            deadline = q.pieces[0].queued + s.wait_ms / 1000
            while sum(len(p.items) for p in q.pieces) < s.max_batch:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                q.ready.wait(timeout=left)
            taken = [q.pieces.popleft()]
            n, chars = len(taken[0].items), taken[0].cost
            # First fit: a small interactive piece may join a batch behind a big job's piece.
            for p in list(q.pieces):
                if n + len(p.items) <= s.max_batch and chars + p.cost <= s.max_chars:
                    q.pieces.remove(p)
                    taken.append(p)
                    n += len(p.items)
                    chars += p.cost
            return taken

    def _work(self, key: str, q: _Queue) -> None:
        while True:
            taken = self._take(key, q)
            if taken is None:
                return
            t0 = time.perf_counter()
            merged = [x for p in taken for x in p.items]
            try:
                results = taken[0].fn(merged)
                if len(results) != len(merged):
                    raise RuntimeError(f"batched call for {key} returned {len(results)} results for {len(merged)} items")
            except BaseException as exc:
                if len(taken) == 1:
                    taken[0].future.set_exception(exc)
                else:
                    # Isolate the failure: each piece alone, so only the request that causes it sees it.
                    for p in taken:
                        try:
                            p.future.set_result(p.fn(p.items))
                        except BaseException as one:
                            p.future.set_exception(one)
                continue
            start = 0
            for p in taken:
                p.future.set_result(results[start : start + len(p.items)])
                start += len(p.items)
            self._observe(BatchStats(key, len(merged), len(taken), [t0 - p.queued for p in taken],
                                     time.perf_counter() - t0))

    def _observe(self, st: BatchStats) -> None:
        with self._lock:
            self.stats["batches"] += 1
            self.stats["items"] += st.items
            self.stats["pieces"] += st.pieces
            self.stats["max_pieces"] = max(self.stats["max_pieces"], st.pieces)
        for fn in list(self.observers):
            with contextlib.suppress(Exception):  # metrics must never break scoring
                fn(st)

    def active(self) -> list[str]:
        """Keys with a running worker."""
        with self._lock:
            return list(self._queues)


def _default_cost(item: Any) -> int:
    if isinstance(item, str):
        return len(item)
    if isinstance(item, tuple):
        return sum(len(x) for x in item if isinstance(x, str))
    return 1


__all__ = ["BatchSettings", "BatchStats", "Batcher", "batch_settings"]
