"""Batch scoring of tables: the columns a scored file gets, shared by the CLI and the dashboard's Batch page.

:func:`score_frame` runs :meth:`backend.service.Backend.similarity` (the one chunked, cancellable scoring loop)
over two text columns and adds, per model,

``score_<model>``
    the score (empty where it cannot be defined);
``scored_by_<model>``
    which network produced it (``esim-zh`` for a Chinese pair sent to ``esim``);
``warnings_<model>``
    why a score is missing or doubtful (empty text, unknown words, truncation, a language the model was not
    trained on, or the model's error).

So a downloaded file says for every row which model scored it and why a cell is empty.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backend.base import ProgressFn
from backend.registry import ModelRequest

#: score columns are rounded: six decimals keep every real difference and make files diff-able.
DECIMALS = 6


@dataclass
class ScoredFrame:
    """A table with score columns added.

    Attributes
    ----------
    frame : pandas.DataFrame
        The input rows, in order, plus ``score_``, ``scored_by_`` and ``warnings_`` columns per model.
    errors : dict
        ``{model: message}`` for models that failed (their score columns are empty).
    seconds : float
    names : list of str
        The models' result names, in column order.
    """

    frame: pd.DataFrame
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    names: list[str] = field(default_factory=list)

    def missing(self) -> dict[str, int]:
        """Rows without a score per model that did not fail (empty text, no known words, ...)."""
        return {n: int(self.frame[f"score_{n}"].isna().sum()) for n in self.names if n not in self.errors}


def score_frame(
    be, frame: pd.DataFrame, a_col: str, b_col: str, models: Sequence[str | ModelRequest],
    options: dict[str, dict] | None = None, progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None, chunk: int | None = None,
) -> ScoredFrame:
    """Score every row's ``(a_col, b_col)`` pair with each model and add the result columns.

    Parameters
    ----------
    be : Backend
    frame : pandas.DataFrame
    a_col, b_col : str
        The two text columns (empty cells give an empty score with a reason).
    models : sequence of str or ModelRequest
    options : dict, optional
        Per-key run-time options (the dashboard sidebar's).
    progress : callable, optional
        ``progress(done, total)`` in pair-model units.
    should_stop : callable, optional
        Cancels between chunks (:class:`~backend.jobs.StopRequested`).
    chunk : int, optional
        Pairs per scoring call (default: the backend's).

    Returns
    -------
    ScoredFrame
    """
    t0 = time.perf_counter()
    requests = [m if isinstance(m, ModelRequest) else ModelRequest(m, m, dict((options or {}).get(m) or {}))
                for m in models]
    kw = {} if chunk is None else {"chunk": chunk}
    results = be.similarity(frame[a_col].tolist(), frame[b_col].tolist(), requests, progress=progress,
                            should_stop=should_stop, **kw)
    out = frame.copy()
    n = len(out)
    errors: dict[str, str] = {}
    for r in requests:
        res = results[r.name]
        if res.error is not None or res.scores is None:
            errors[r.name] = res.error or "failed"
            out[f"score_{r.name}"] = np.full(n, np.nan)
            out[f"scored_by_{r.name}"] = ""
            out[f"warnings_{r.name}"] = f"failed: {res.error}"
            continue
        out[f"score_{r.name}"] = np.round(res.scores.astype(np.float64), DECIMALS)
        out[f"scored_by_{r.name}"] = list(res.used)
        out[f"warnings_{r.name}"] = ["; ".join(w) for w in res.warnings]
    return ScoredFrame(out, errors, time.perf_counter() - t0, [r.name for r in requests])


__all__ = ["ScoredFrame", "score_frame"]
