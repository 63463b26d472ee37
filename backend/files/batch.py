"""Batch scoring of tables: the columns a scored file gets, shared by the CLI and the dashboard's Batch page.

:func:`score_frame` runs :meth:`backend.serving.Backend.similarity` (the one chunked, cancellable scoring loop)
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
from pathlib import Path

import numpy as np
import pandas as pd

from backend.base import ProgressFn
from backend.files.io import TableError, escape_formulas, resolve_pair_columns
from backend.files.stream import (
    ChunkWriter,
    Manifest,
    Position,
    RowError,
    TableStream,
    check_output,
    output_format,
)
from backend.jobs import StopRequested
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
    requests = be.registry.requests(models, options)
    kw = {} if chunk is None else {"chunk": chunk}
    results = be.similarity(frame[a_col].tolist(), frame[b_col].tolist(), requests, progress=progress,
                            should_stop=should_stop, **kw)
    out = frame.copy()
    errors: dict[str, str] = {}
    for r in requests:
        res = results[r.name]
        if res.error is not None or res.scores is None:
            errors[r.name] = res.error or "failed"
        for col, values in model_columns(r.name, res, len(out)).items():
            out[col] = values
    return ScoredFrame(out, errors, time.perf_counter() - t0, [r.name for r in requests])


def model_columns(name: str, res, n: int) -> dict[str, object]:
    """The ``score_``, ``scored_by_`` and ``warnings_`` columns of one model's :class:`~backend.results.ModelResult`
    (or of its error, when ``res`` failed or is None)."""
    if res is None or res.error is not None or res.scores is None:
        err = "failed" if res is None else res.error
        return {f"score_{name}": np.full(n, np.nan), f"scored_by_{name}": [""] * n,
                f"warnings_{name}": [f"failed: {err}"] * n}
    return {f"score_{name}": np.round(res.scores.astype(np.float64), DECIMALS), f"scored_by_{name}": list(res.used),
            f"warnings_{name}": ["; ".join(w) for w in res.warnings]}


# ------------------------------------------------------------------------------------------ file jobs
#: rows per chunk of a file job: a chunk is scored, written and fsynced as one step, so a killed job loses at
#: most this many rows of work; 50,000 pairs keep memory in the tens of MB and fsyncs rare.
CHUNK_ROWS = 50_000


class ResumeError(ValueError):
    """A job that cannot start or go on as asked (another input, other models, an unfinished run); says why."""


@dataclass
class Stage:
    """One model's step over a chunk: adds that model's columns. Plain data, so a Ray actor can run it too.

    A model that fails is not retried on later chunks (its columns say ``failed: ...``), as in
    :meth:`backend.serving.Backend.similarity`.
    """

    request: ModelRequest
    error: str | None = None

    @property
    def name(self) -> str:
        return self.request.name

    def apply(self, be, frame: pd.DataFrame, progress: ProgressFn | None = None,
              should_stop: Callable[[], bool] | None = None) -> pd.DataFrame:
        raise NotImplementedError

    def missing(self, frame: pd.DataFrame) -> int:
        """Rows of a finished chunk that got no result from this model (counted for the summary)."""
        return 0

    def observe(self, frame: pd.DataFrame) -> None:
        """Learn this model's failure from a chunk another process scored (a Ray actor)."""


@dataclass
class ScoreStage(Stage):
    """Adds ``score_``, ``scored_by_`` and ``warnings_`` columns of one model (as :func:`score_frame` does)."""

    a_col: str = ""
    b_col: str = ""

    def apply(self, be, frame, progress=None, should_stop=None):
        res = None
        if self.error is None:
            res = be.similarity(frame[self.a_col].tolist(), frame[self.b_col].tolist(), [self.request],
                                progress=progress, should_stop=should_stop)[self.name]
            if res.error is not None:
                self.error = res.error
        else:
            res = _Failed(self.error)
        for col, values in model_columns(self.name, res, len(frame)).items():
            frame[col] = values
        return frame

    def missing(self, frame):
        return int(frame[f"score_{self.name}"].isna().sum()) if self.error is None else 0

    def observe(self, frame):
        w = frame[f"warnings_{self.name}"]
        if self.error is None and len(w) and str(w.iloc[0]).startswith("failed: ") and frame[f"score_{self.name}"].isna().all():
            self.error = str(w.iloc[0])[len("failed: "):]


@dataclass
class _Failed:
    error: str
    scores: None = None


@dataclass
class FileResult:
    """What a file job did.

    Attributes
    ----------
    output : Path
    rows : int
        Rows in the output now (earlier runs included).
    rows_this_run : int
    resumed_from : int
        Rows that an earlier run had written (0 for a new run).
    seconds : float
        This run's wall time.
    complete : bool
        Every row of the input is in the output.
    stopped : RowError or None
        The bad row that ended the input early (the rows before it are written).
    errors : dict
        ``{model: message}`` for models that failed.
    missing : dict
        Rows without a result per model (empty text, no known words, ...), earlier runs included.
    notes : list of str
    """

    output: Path
    rows: int = 0
    rows_this_run: int = 0
    resumed_from: int = 0
    seconds: float = 0.0
    complete: bool = False
    stopped: RowError | None = None
    errors: dict[str, str] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class FileJob:
    """A table file through a list of :class:`Stage` into one output file, chunk by chunk, resumable.

    The one runner behind ``python -m backend score`` and ``embed``, on the local engine (:meth:`run`) and on
    Ray (:func:`backend.files.ray_engine.run_on_ray`). Build it with :meth:`open`, which checks the input, the output
    folder and any earlier run before a single row is scored.
    """

    def __init__(self, stream: TableStream, output: Path, command: str, stages: list[Stage],
                 finalize: Callable[[pd.DataFrame], pd.DataFrame] | None, manifest: Manifest, start: Position,
                 writer_mark: int | None, chunk_rows: int, metadata: Callable[[], dict[bytes, bytes]] | None,
                 notes: list[str], to_table: Callable | None = None) -> None:
        self.stream, self.output, self.command, self.stages = stream, output, command, stages
        self.finalize, self.manifest, self.start, self.chunk_rows = finalize, manifest, start, chunk_rows
        self._writer_mark, self.metadata, self.notes = writer_mark, metadata, notes
        self.result = FileResult(output, rows=start.rows, resumed_from=start.rows, notes=notes,
                                 missing=dict(manifest.stats))
        self._writer: ChunkWriter | None = None
        self.to_table = to_table

    # ---------------------------------------------------------------------------------------- opening
    @classmethod
    def open(cls, input: str | Path, output: str | Path, command: str, make_stages: Callable[[pd.DataFrame], tuple],
             resume: bool = False, chunk_rows: int = CHUNK_ROWS, txt_column: str = "text",
             to_table: Callable | None = None, encoding: str | None = None) -> FileJob:
        """Check everything a job needs before it starts.

        Parameters
        ----------
        make_stages : callable
            ``make_stages(head) -> (stages, finalize, options, metadata)`` given the first rows (to find the
            columns): the steps, an optional last step, the options a resume must match, and a callable giving
            Parquet schema metadata.
        resume : bool
            Go on after the last finished chunk of an earlier run of the same output.
        to_table : callable, optional
            ``to_table(frame) -> pyarrow.Table`` for Parquet output (default: ``pa.Table.from_pandas``).

        Raises
        ------
        TableError
            Unreadable input, missing columns (named), an output folder that does not exist.
        ResumeError
            An earlier run that does not match, or an unfinished one when ``resume`` is False.
        """
        if chunk_rows < 1:
            raise TableError(f"chunk_rows must be at least 1, not {chunk_rows}")
        output = check_output(output, (input,))
        stream = TableStream(input, txt_column=txt_column, encoding=encoding)
        try:
            head = next(stream.chunks(200), None)
        except RowError:
            head = None
        head_frame = head.frame if head is not None else pd.DataFrame({c: [] for c in stream.columns}, dtype=object)
        stages, finalize, options, metadata = make_stages(head_frame)
        identity = stream.identity()
        notes = list(stream.notes)
        old = Manifest.load(output)
        mpath = Manifest.path_for(output)
        start, mark = stream.data_start, None
        manifest = Manifest(command, identity, options)
        if resume and old is not None:
            why = old.mismatch(identity, options) if old.command == command else f"it is a {old.command} run"
            if why:
                raise ResumeError(f"cannot resume {output}: {why}; run without --resume to start over "
                                  f"(the output is rewritten)")
            if old.stopped:
                raise ResumeError(f"cannot resume {output}: that run stopped at a bad row ({old.stopped['error']}); "
                                  "fix the file and run without --resume")
            manifest = old
            if not old.complete:
                start, mark = old.position(), old.done["mark"]
                why = _resume_state_problem(stream, output, start, mark)
                if why:
                    raise ResumeError(f"cannot resume {output}: {why}; run without --resume to start over")
                notes.append(f"resuming after row {start.rows:,} (line {start.line:,})" if start.line
                             else f"resuming after row {start.rows:,}")
        elif resume:
            notes.append(f"nothing to resume ({mpath.name} not found): starting from the first row")
        elif old is not None and not old.complete and not old.stopped and old.done["rows"]:
            raise ResumeError(f"an unfinished run of {output} exists ({old.done['rows']:,} rows written); add --resume "
                              f"to continue it, or delete {mpath} to start over")
        job = cls(stream, output, command, list(stages), finalize, manifest, start, mark, chunk_rows, metadata, notes,
                  to_table)
        if not manifest.complete:
            manifest.engine = "local"
            manifest.done = {"rows": start.rows, "offset": start.offset, "line": start.line, "mark": mark or 0}
            manifest.save(output)
        else:
            job.result.complete = True
            job.result.notes.append(f"{output} is already complete ({manifest.done['rows']:,} rows); nothing to do")
        return job

    # ---------------------------------------------------------------------------------------- running
    def writer(self) -> ChunkWriter:
        if self._writer is None:
            self._writer = ChunkWriter(self.output, self._writer_mark, self.to_table)
        return self._writer

    def apply(self, be, frame: pd.DataFrame, progress: ProgressFn | None = None,
              should_stop: Callable[[], bool] | None = None) -> pd.DataFrame:
        """Every stage, then the last step, over one chunk (the local engine's inner loop)."""
        n, rows = len(self.stages), len(frame)
        for i, st in enumerate(self.stages):
            sub = None
            if progress is not None:
                def sub(d: int, t: int, i: int = i) -> None:
                    progress(int(rows * (i + min(d, t) / max(t, 1)) / n), rows)
            frame = st.apply(be, frame, sub, should_stop)
        return self.finalize(frame) if self.finalize else frame

    def commit(self, frame: pd.DataFrame, end: Position) -> None:
        """Write one finished chunk, make it durable, then record it in the manifest."""
        mark = self.writer().write(frame)
        for st in self.stages:
            st.observe(frame)
            n = st.missing(frame)
            if n:
                self.result.missing[st.name] = self.result.missing.get(st.name, 0) + n
        self._record(len(frame), end, mark)

    def commit_bytes(self, body: bytes, header: bytes, rows: int, end: Position, missing: dict[str, int],
                     errors: dict[str, str]) -> None:
        """Like :meth:`commit` for a CSV/TSV chunk serialised elsewhere (a Ray actor) with its counts."""
        mark = self.writer().write_bytes(body, header)
        for name, n in missing.items():
            if n:
                self.result.missing[name] = self.result.missing.get(name, 0) + int(n)
        for st in self.stages:
            if st.error is None and errors.get(st.name):
                st.error = errors[st.name]
        self._record(rows, end, mark)

    def _record(self, rows: int, end: Position, mark: int) -> None:
        self.result.errors = {st.name: st.error for st in self.stages if st.error}
        self.result.rows = end.rows
        self.result.rows_this_run += rows
        m = self.manifest
        m.done = {"rows": end.rows, "offset": end.offset, "line": end.line, "mark": mark}
        m.stats, m.errors = dict(self.result.missing), dict(self.result.errors)
        m.save(self.output)

    def stop_at(self, exc: RowError) -> None:
        """A bad row ended the input: keep the rows before it, and say in the manifest where and why."""
        self.result.stopped = exc
        self.manifest.stopped = {"line": exc.line, "rows": exc.position.rows, "error": str(exc)}
        self._close(finish=True)
        self.manifest.save(self.output)

    def done(self) -> FileResult:
        """Every row is written: close the output (join Parquet parts) and mark the manifest complete."""
        if not self.writer().header_written:
            empty = pd.DataFrame({c: [] for c in self.stream.columns}, dtype=object)
            # A header-only input still gets every output column.
            self.writer().write(self.apply(_NoModels(), empty))
        self._close(finish=True)
        self.manifest.complete = True
        self.manifest.save(self.output)
        self.result.complete = True
        return self.result

    def _close(self, finish: bool) -> None:
        w = self.writer()
        if finish and w.header_written:
            w.finish(self.metadata() if self.metadata else None)
        else:
            w.close()
        self._writer = None
        self._writer_mark = None
        self.stream.close()  # the job reads no more rows: its temporary UTF-8 copy (if any) goes now

    def run(self, be, progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None) -> FileResult:
        """Run on this process (the local engine): read, apply the stages, write and record, chunk by chunk.

        Parameters
        ----------
        be : Backend
        progress : callable, optional
            ``progress(rows_done, rows_total_estimate)`` (the estimate is refined as the file is read).
        should_stop : callable, optional
            Checked between chunks and inside them; stopping raises :class:`~backend.jobs.StopRequested` and
            leaves a resumable output.
        """
        if self.result.complete:
            return self.result
        t0 = time.perf_counter()
        est = self.stream.estimate_rows(self.start)
        try:
            for ch in self.stream.chunks(self.chunk_rows, self.start):
                if should_stop is not None and should_stop():
                    raise StopRequested("stopped")
                sub = None
                if progress is not None:
                    def sub(d: int, t: int, base: int = ch.start.rows, est: int | None = est) -> None:
                        progress(base + d, max(est or 0, base + t))
                frame = self.apply(be, ch.frame, sub, should_stop)
                self.commit(frame, ch.end)
                est = self.stream.estimate_rows(ch.end)
                if progress is not None:
                    progress(ch.end.rows, max(est or 0, ch.end.rows))
        except RowError as exc:
            self.stop_at(exc)
            self.result.seconds = time.perf_counter() - t0
            return self.result
        except BaseException:
            if self._writer is not None:
                self._writer.close()
            self.stream.close()
            raise
        self.done()
        self.result.seconds = time.perf_counter() - t0
        return self.result


def _resume_state_problem(stream: TableStream, output: Path, start: Position, mark: int) -> str | None:
    """Why the files on disk do not fit a (checksummed) manifest's position (None: they do)."""
    if stream.format == "parquet":
        if start.offset > stream.rows:
            return f"the progress file's position (row {start.offset:,}) is past the input's end ({stream.rows:,} rows)"
    elif start.offset > stream.data_path.stat().st_size:
        return f"the progress file's position (byte {start.offset:,}) is past the input's end"
    if output_format(output) == "parquet":
        parts = output.with_name(output.name + ".parts")
        have = len(list(parts.glob("part-*.parquet"))) if parts.is_dir() else 0
        if have < mark:
            return f"{parts.name} holds {have} finished parts where the progress file says {mark}; was it changed?"
        return None
    partial = ChunkWriter.partial_path(output)
    size = partial.stat().st_size if partial.is_file() else -1
    if size < mark:
        got = "missing" if size < 0 else f"{size:,} bytes"
        return f"{partial.name} is {got} where the progress file says {mark:,} bytes; was it changed?"
    return None


class _NoModels:
    """A stand-in backend for an empty chunk: no model is asked anything."""

    def similarity(self, a, b, keys, **kw):
        from backend.results import ModelResult

        return {r.name: ModelResult(r.key, np.zeros(0, dtype=np.float32), [], []) for r in keys}


def score_file(
    be, input: str | Path, output: str | Path, models: Sequence[str | ModelRequest], a_col: str | None = None,
    b_col: str | None = None, *, options: dict[str, dict] | None = None, raw: bool = False, resume: bool = False,
    chunk_rows: int = CHUNK_ROWS, encoding: str | None = None,
) -> FileJob:
    """A resumable job that scores every row of a pairs file of any size into ``output`` (CSV, TSV or Parquet).

    Reads ``input`` (CSV/TSV in UTF-8, UTF-8 with BOM or GBK, or Parquet) chunk by chunk with bounded memory,
    adds the columns :func:`score_frame` adds, and writes as it goes; text cells that start like a spreadsheet
    formula are escaped in CSV/TSV output unless ``raw`` (Parquet output is written as it is). Call
    ``.run(be, progress, should_stop)`` on the returned job (or run it on Ray with
    :func:`backend.files.ray_engine.run_on_ray`).

    Parameters
    ----------
    be : Backend
        Used to check the models and their options (no weights are loaded here).
    a_col, b_col : str, optional
        The text columns (default: guessed from the first rows, as :func:`backend.files.io.resolve_pair_columns`).
    resume : bool
        Continue an earlier run of the same ``output`` after its last finished chunk; refused (with the
        reason) when the input, the models or the options differ.
    chunk_rows : int
        Rows per chunk.
    encoding : str, optional
        The input's encoding when detection guesses wrong.

    Returns
    -------
    FileJob
        ``job.a_col``, ``job.b_col`` name the columns found; ``job.notes`` what the user should know.

    Raises
    ------
    TableError, ResumeError, KeyError, OptionError
        Before any scoring, with a message naming what is wrong.
    """
    requests = be.registry.requests(models, options)
    fmt = output_format(check_output(output, (input,)))  # a folder, a device, the input itself: refused first
    escape = fmt != "parquet" and not raw
    cols: dict[str, str] = {}

    def make(head: pd.DataFrame):
        a, b = resolve_pair_columns(head, a_col, b_col)
        cols.update(a=a, b=b)
        stages = [ScoreStage(r, a_col=a, b_col=b) for r in requests]
        opts = {"a_col": a, "b_col": b, "escape_formulas": escape, "format": fmt,
                "models": [{"name": r.name, "config": be.model_config(r.key, r.options).config_id} for r in requests]}
        return stages, (escape_formulas if escape else None), opts, None

    job = FileJob.open(input, output, "score", make, resume=resume, chunk_rows=chunk_rows, encoding=encoding)
    job.a_col, job.b_col = cols["a"], cols["b"]
    return job


__all__ = ["CHUNK_ROWS", "FileJob", "FileResult", "ResumeError", "ScoreStage", "ScoredFrame", "Stage", "model_columns",
           "score_file", "score_frame"]
