"""Long work off the request thread: a background job with progress, a history and a cancel flag.

:class:`BackgroundJob` runs ``fn(job)`` in a daemon thread; ``fn`` reports progress with :meth:`~BackgroundJob.report`
and polls :meth:`~BackgroundJob.should_stop`. The dashboard keeps one job per tab in a session and redraws its
progress bar from :meth:`~BackgroundJob.state`, so a page stays responsive while word2vec or ESIM trains or a
large evaluation runs, and other visitors are never blocked. It knows nothing about Streamlit.

:class:`StopRequested` is what long backend loops (scoring, evaluation, reranking) raise when their
``should_stop`` callable says so.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class StopRequested(RuntimeError):
    """Raised when a ``should_stop`` callable asked a long computation to stop."""


@dataclass
class JobState:
    """A snapshot of a :class:`BackgroundJob` for display.

    Attributes
    ----------
    status : {"running", "done", "failed", "cancelled"}
    fraction : float
        0..1.
    message : str
    history : list of dict
        Per-step metrics reported so far (e.g. per epoch).
    result : Any
    error : str or None
    seconds : float
    """

    status: str
    fraction: float
    message: str
    history: list[dict[str, Any]]
    result: Any
    error: str | None
    seconds: float


class BackgroundJob:
    """Run ``fn(job)`` in a daemon thread; ``fn`` reports with :meth:`report` and polls :meth:`should_stop`.

    Parameters
    ----------
    fn : callable
        ``fn(job) -> result``. Raising ends the job as failed (the message is kept), unless a cancel was
        requested, which ends it as cancelled.
    name : str
    """

    def __init__(self, fn: Callable[[BackgroundJob], Any], name: str = "job") -> None:
        self.fn, self.name = fn, name
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._status = "pending"
        self._fraction = 0.0
        self._message = ""
        self._history: list[dict[str, Any]] = []
        self._result: Any = None
        self._error: str | None = None
        self._t0 = 0.0
        self._t1: float | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> BackgroundJob:
        """Start the thread (once)."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f"{self.name} was already started")
            self._status, self._t0 = "running", time.perf_counter()
            self._thread = threading.Thread(target=self._run, name=f"simdash-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            result = self.fn(self)
            with self._lock:
                self._result = result
                self._status = "cancelled" if self._cancel.is_set() else "done"
        except Exception as exc:  # the job's failure is reported in its state, never raised into a page
            with self._lock:
                self._status = "cancelled" if self._cancel.is_set() else "failed"
                self._error = f"{type(exc).__name__}: {exc}"
                self._traceback = traceback.format_exc()
        finally:
            with self._lock:
                self._t1 = time.perf_counter()
                if self._status == "done":
                    self._fraction = 1.0

    def report(self, fraction: float, message: str = "", metrics: dict[str, Any] | None = None) -> None:
        """Called by ``fn``: progress in [0, 1], a line of text, optional metrics appended to the history."""
        with self._lock:
            self._fraction = float(min(max(fraction, 0.0), 1.0))
            self._message = message
            if metrics is not None:
                self._history.append(dict(metrics))

    def cancel(self) -> None:
        """Ask ``fn`` to stop (it does at its next :meth:`should_stop` poll)."""
        self._cancel.set()

    def should_stop(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._cancel.is_set()

    @property
    def running(self) -> bool:
        """True while the thread is working."""
        return self._status in ("pending", "running")

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread (tests, the CLI)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def state(self) -> JobState:
        """A consistent snapshot."""
        with self._lock:
            end = self._t1 if self._t1 is not None else time.perf_counter()
            return JobState(self._status, self._fraction, self._message, list(self._history), self._result,
                            self._error, (end - self._t0) if self._t0 else 0.0)


__all__ = ["BackgroundJob", "JobState", "StopRequested"]
