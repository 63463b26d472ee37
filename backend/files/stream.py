"""Tables of any size, chunk by chunk: a reader that knows where every chunk ends, writers that can resume.

:func:`backend.files.io.read_table` reads a whole upload into memory; this module serves the command line's batch jobs
(``python -m backend score``, ``embed``), whose files can hold millions of rows. It keeps the same rules
(the encoding detected on the file's head by :func:`backend.files.io.decode_bytes`, or the one asked for;
comma/tab/semicolon/pipe sniffed on the file's head; tab files read without quote handling; ``.txt`` one text per
line) and adds what a long job needs:

* **bounded memory**: rows are parsed a chunk at a time (Python's ``csv`` module over the file's lines, Parquet
  through ``iter_batches``);
* **exact positions**: every chunk ends at a known byte offset and line number, so a job can resume after the
  last chunk it finished (:class:`Position`) and an error names its line;
* **no silent loss**: a row with another number of fields than the header, a repeated header line, a quote that
  is never closed or bytes in another encoding stop the read with the line number, *after* the rows before
  it have been handed out (so the caller keeps them). pandas would pad short rows or skip bad ones with a
  warning; here rows in equal rows out for every file that is read to the end.

Writers append CSV/TSV (flushed and fsynced per chunk, truncated back to the last finished chunk on resume)
or write Parquet parts that are joined into one file at the end. :class:`Manifest` is the small sidecar file
(``OUT.progress.json``) that says how far a job got and with which input and options.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from backend.files.io import TableError, decode_bytes, sniff_separator
from backend.paths import temp_beside

#: bytes of the file's head used to detect its encoding and separator (and hashed to recognise the file).
HEAD_BYTES = 1 << 20
#: the longest cell read (characters): longer than any sentence or document people score, short enough that a
#: quote left open is caught within a megabyte instead of swallowing the rest of the file.
MAX_CELL = 1 << 20
Format = Literal["csv", "tsv", "parquet", "txt"]
PARQUET_SUFFIXES = (".parquet", ".pq")


class RowError(TableError):
    """A row that cannot be read; ``line`` is where it starts, ``position`` where the good rows end."""

    def __init__(self, message: str, line: int | None, position: Position) -> None:
        super().__init__(message)
        self.line = line
        self.position = position


@dataclass(frozen=True)
class Position:
    """A point between two rows of a file.

    Attributes
    ----------
    rows : int
        Data rows before this point.
    offset : int
        Byte offset (CSV/TXT) or row index (Parquet) where reading goes on.
    line : int
        Physical lines before this point (the header included); 0 for Parquet.
    """

    rows: int = 0
    offset: int = 0
    line: int = 0


@dataclass
class Chunk:
    """Consecutive rows of a file and where they end.

    Attributes
    ----------
    frame : pandas.DataFrame
        The rows (text columns as ``object`` strings, empty cells ``""``), indexed from 0.
    start, end : Position
        Before the first row and after the last one.
    """

    frame: pd.DataFrame
    start: Position
    end: Position


def _format_of(path: Path, head: bytes) -> Format:
    if path.suffix.lower() in PARQUET_SUFFIXES or head[:4] == b"PAR1":
        return "parquet"
    return "csv"


def _sample_encoding(path: Path, size: int, samples: int = 8, width: int = 1 << 16) -> str | None:
    """Decide UTF-8 vs GBK from a few slices across a file whose head was plain ASCII (None: no evidence)."""
    with open(path, "rb") as f:
        # Evenly spaced slices, and the tail (where appended rows are).
        for at in [size * i // (samples + 1) for i in range(1, samples + 1)] + [max(0, size - width)]:
            f.seek(at)
            block = f.read(width) + b"\n"
            # Cut at line breaks so no multi-byte character is split (0x0A never occurs inside one).
            first, last = block.find(b"\n"), block.rfind(b"\n")
            if first < 0 or last <= first:
                continue
            block = block[first + 1 : last]
            if max(block, default=0) < 0x80:
                continue
            try:
                block.decode("utf-8")
                return "utf-8"
            except UnicodeDecodeError:
                return "gbk"
    return None


class _Lines:
    """The file's lines, decoded, counting bytes and lines as the csv reader pulls them (one at a time)."""

    def __init__(self, f, codec: str, offset: int, line: int, end: int | None) -> None:
        self.f, self.codec, self.offset, self.line, self.end = f, codec, offset, line, end

    def __iter__(self) -> Iterator[str]:
        for raw in self.f:
            if self.end is not None and self.offset >= self.end:
                return
            codec = "utf-8-sig" if self.offset == 0 and self.codec == "utf-8" else self.codec
            self.offset += len(raw)
            self.line += 1
            try:
                yield raw.decode(codec)
            except UnicodeDecodeError:
                name = "UTF-8" if self.codec == "utf-8" else self.codec.upper()
                raise _DecodeError(f"line {self.line:,} is not {name} text like the lines before it; save the whole "
                                   "file in one encoding (UTF-8) and try again, or name it with --encoding") from None


class _DecodeError(Exception):
    pass


def _tab_file_uses_quotes(head: str) -> bool:
    """True when a tab file's quoted cells hold tabs or line breaks (read with quoting), False when its text merely
    contains raw quotes (STS-B: read without quote handling). Decided on the head, as :func:`backend.files.io.read_table`
    decides on the whole file: quoting is used only when it gives every record the header's width and reading
    without it does not."""
    lines = head.splitlines(keepends=True)[:-1] or head.splitlines(keepends=True)  # drop a cut last line

    def widths(quoting: int) -> set[int]:
        try:
            return {len(r) for r in csv.reader(lines, delimiter="\t", quoting=quoting) if r}
        except csv.Error:
            return {-1, -2}

    return len(widths(csv.QUOTE_NONE)) > 1 and len(widths(csv.QUOTE_MINIMAL)) == 1


def _utf8_copy(path: Path, encoding: str) -> Path:
    """A UTF-8 copy of a UTF-16/32 file, converted in blocks (bounded memory), in a private temporary folder.

    The folder comes from :func:`tempfile.mkdtemp` (mode 0700, a fresh unpredictable name every time) and the
    file is created exclusively inside it, so nothing another user planted (a file, a symlink) is ever read or
    written through, and no copy is reused by name. The caller removes the folder (:meth:`TableStream.close`,
    or at exit).

    Raises
    ------
    TableError
        The bytes are not valid ``encoding`` (the copy is removed).
    """
    import codecs

    folder = Path(tempfile.mkdtemp(prefix="simdash-utf8-"))
    out = folder / "data.csv"
    decoder = codecs.getincrementaldecoder(encoding)()
    done = 0
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with open(path, "rb") as src, open(fd, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(decoder.decode(block).encode("utf-8"))
                done += len(block)
            dst.write(decoder.decode(b"", final=True).encode("utf-8"))
    except UnicodeDecodeError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise TableError(f"the file is not valid {encoding.upper()} (byte {done + exc.start:,}); name its real "
                         "encoding with --encoding, or leave --encoding out to detect it") from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder / "data.csv"


class TableStream:
    """A table file opened for reading in chunks; detects format, encoding, separator and columns on open.

    Parameters
    ----------
    path : str or Path
    txt_column : str
        Column name for a ``.txt`` file (one text per line).

    Raises
    ------
    TableError
        Empty, binary (xlsx) or unreadable files, a header that cannot be parsed (the message says what to do).
    FileNotFoundError
    """

    def __init__(self, path: str | Path, txt_column: str = "text", encoding: str | None = None) -> None:
        self.path = Path(path)
        st = self.path.stat()
        if self.path.is_dir():
            raise IsADirectoryError(f"{self.path} is a folder, not a table file")
        self.size, self.mtime_ns = st.st_size, st.st_mtime_ns
        with open(self.path, "rb") as f:
            head = f.read(HEAD_BYTES)
        self.head_sha1 = hashlib.sha1(head).hexdigest()
        self.format: Format = _format_of(self.path, head)
        self.notes: list[str] = []
        self._build_frames = True  # False while positions() scans: rows are parsed and checked, not kept
        self.encoding, self.separator = "", ""
        self._data_start = Position()
        if self.format == "parquet":
            self._open_parquet()
            return
        if not head.strip():
            raise TableError("the file is empty")
        if len(head) == HEAD_BYTES and b"\n" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
            head = head[: head.rfind(b"\n") + 1]  # whole lines only: no multi-byte character cut in two
        text, self.encoding, notes = decode_bytes(head, encoding)  # xlsx, NUL bytes: a TableError saying so
        if encoding is None and self.encoding == "utf-8" and max(head, default=0) < 0x80 and self.size > len(head):
            # An ASCII head says nothing: a few slices further in decide between UTF-8 and GB18030.
            self.encoding = _sample_encoding(self.path, self.size) or "utf-8"
            notes = [] if self.encoding == "utf-8" else ["decoded as GB18030 (detected further into the file)"]
        self.notes += notes
        if self.encoding.replace("_", "-").lower().startswith(("utf-16", "utf-32")):
            # Lines of UTF-16/32 are not split at a single newline byte: read a UTF-8 copy, made once, in blocks.
            self._data_path = _utf8_copy(self.path, self.encoding)
            # Removed by close(), or when this object is collected, or at exit: never left behind.
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._data_path.parent, True)
            self.encoding = "utf-8"
        first = text.splitlines()[0] if text.splitlines() else ""
        if self.path.suffix.lower() == ".txt" and "\t" not in first:
            self.format, self.separator, self.columns = "txt", "\n", [txt_column]
            return
        self.separator = sniff_separator(text)
        self.format = "tsv" if self.separator == "\t" else "csv"
        self._tsv_quotes = self.separator == "\t" and _tab_file_uses_quotes(text)
        self._read_header()
        if len(self.columns) < 2:
            self.notes.append("only one column found; is the separator right?")

    def close(self) -> None:
        """Remove the temporary UTF-8 copy, if one was made (the stream cannot be read after this)."""
        cleanup = getattr(self, "_cleanup", None)
        if cleanup is not None:
            cleanup()

    # ------------------------------------------------------------------------------------------- setup
    @property
    def codec(self) -> str:
        """The Python codec each line is decoded with."""
        return "gb18030" if self.encoding == "gbk" else self.encoding

    def _reader(self, lines: _Lines):
        if csv.field_size_limit() < MAX_CELL:  # Python's default is 128 KiB; only ever raised, process-wide
            csv.field_size_limit(MAX_CELL)
        # Tab files often hold raw double quotes in their text (STS-B): read them without quote handling, as
        # read_table does. Other separators keep standard CSV quoting, strictly, so a stray quote is an error.
        if self.separator == "\t" and not getattr(self, "_tsv_quotes", False):
            return csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
        return csv.reader(lines, delimiter=self.separator, strict=True)

    def _read_header(self) -> None:
        with open(self.data_path, "rb") as f:
            lines = _Lines(f, self.codec, 0, 0, None)
            reader = self._reader(lines)
            try:
                header = next((r for r in reader if r), None)
            except (csv.Error, _DecodeError) as exc:
                raise TableError(f"could not parse the header line ({exc}); is it really CSV?") from None
            if header is None:
                raise TableError("the file is empty")
            self._data_start = Position(0, lines.offset, lines.line)
        self._header_raw = header
        self.columns = _unique([c.strip() for c in header])

    def _open_parquet(self) -> None:
        import pyarrow.parquet as pq

        try:
            self._pq = pq.ParquetFile(self.path)
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError with its own words
            raise TableError(f"could not read {self.path.name} as Parquet: {exc}") from None
        self.columns = list(self._pq.schema_arrow.names)
        self.rows = self._pq.metadata.num_rows

    @property
    def data_path(self) -> Path:
        """The file the rows are read from: the input, or its UTF-8 copy for UTF-16/32 input."""
        return getattr(self, "_data_path", self.path)

    @property
    def data_start(self) -> Position:
        """The position of the first data row (after the header)."""
        return self._data_start

    def identity(self) -> dict[str, Any]:
        """What a resume checks: path, size, modification time and a hash of the head."""
        return {"path": str(self.path.resolve()), "size": self.size, "mtime_ns": self.mtime_ns,
                "head_sha1": self.head_sha1}

    def estimate_rows(self, done: Position | None = None) -> int | None:
        """Rows in the file: exact for Parquet, else extrapolated from the bytes read so far (or the head)."""
        if self.format == "parquet":
            return self.rows
        if done is not None and done.rows and done.offset > self._data_start.offset:
            per_row = (done.offset - self._data_start.offset) / done.rows
        else:
            with open(self.data_path, "rb") as f:
                f.seek(self._data_start.offset)
                sample = f.read(HEAD_BYTES)
            n = sample.count(b"\n")
            if not n:
                return 1
            per_row = len(sample) / n
        return max(done.rows if done else 0, round((self.size - self._data_start.offset) / max(per_row, 1.0)))

    # ------------------------------------------------------------------------------------------ reading
    def chunks(self, rows: int, start: Position | None = None, stop: Position | None = None) -> Iterator[Chunk]:
        """Yield chunks of up to ``rows`` rows from ``start`` (default: the first row) up to ``stop`` (default: the end).

        Raises
        ------
        RowError
            A row that cannot be read (after yielding the rows before it): its message names the line, its
            ``position`` is where the good rows end.
        """
        rows = max(1, int(rows))
        start = start or self._data_start
        if self.format == "parquet":
            yield from self._parquet_chunks(rows, start, stop)
            return
        with open(self.data_path, "rb") as f:
            f.seek(start.offset)
            lines = _Lines(f, self.codec, start.offset, start.line, stop.offset if stop else None)
            if self.format == "txt":
                yield from self._txt_chunks(lines, rows, start)
                return
            reader = self._reader(lines)
            ncol, header, sep = len(self._header_raw), self._header_raw, _SEP_NAMES.get(self.separator, self.separator)
            buf: list[list[str]] = []
            first = pos = start
            while True:
                line0 = lines.line + 1
                try:
                    rec = next(reader, None)
                except csv.Error as exc:
                    msg = str(exc)
                    if "field larger than field limit" in msg or "unexpected end of data" in msg or "expected after" in msg:
                        msg = (f"line {line0:,}: a quoted cell opens here and is never closed properly (the reader was "
                               f"at line {lines.line:,}: {exc}); close the quote or remove it")
                    else:
                        msg = f"line {line0:,}: {exc}"
                    yield from self._flush(buf, first, pos)
                    raise RowError(msg, line0, pos) from None
                except _DecodeError as exc:
                    yield from self._flush(buf, first, pos)
                    raise RowError(str(exc), lines.line, pos) from None
                if rec is None:
                    break
                if not rec:  # a blank line is no row (as pandas and read_table treat it)
                    pos = Position(pos.rows, lines.offset, lines.line)
                    if not buf:
                        first = pos
                    continue
                if len(rec) != ncol or rec == header:
                    if rec == header:
                        msg = f"line {line0:,} repeats the header line (were two files joined?); remove it"
                    else:
                        span = (f" (a quoted cell runs from line {line0:,} to {lines.line:,}: is a quote left open?)"
                                if lines.line > line0 else "")
                        msg = (f"line {line0:,} has {len(rec)} {sep}-separated fields where the header has {ncol}"
                               f"{span}; a stray separator, or a row from another file?")
                    yield from self._flush(buf, first, pos)
                    raise RowError(msg, line0, pos)
                buf.append(rec)
                pos = Position(pos.rows + 1, lines.offset, lines.line)
                if len(buf) >= rows:
                    yield from self._flush(buf, first, pos)
                    buf, first = [], pos

            yield from self._flush(buf, first, pos)

    def _flush(self, buf: list[list[str]], first: Position, end: Position) -> Iterator[Chunk]:
        if buf:
            # object columns build ~4x faster than pandas' inferred string dtype; the values are str either way.
            frame = pd.DataFrame(buf, columns=self.columns, dtype=object) if self._build_frames else None
            yield Chunk(frame, first, end)

    def _txt_chunks(self, lines: _Lines, rows: int, start: Position) -> Iterator[Chunk]:
        buf: list[str] = []
        first = pos = start
        try:
            for ln in lines:
                t = ln.strip()
                if t:
                    buf.append(t)
                    pos = Position(pos.rows + 1, lines.offset, lines.line)
                    if len(buf) >= rows:
                        yield Chunk(pd.DataFrame({self.columns[0]: buf}, dtype=object), first, pos)
                        buf, first = [], pos
                else:
                    pos = Position(pos.rows, lines.offset, lines.line)
        except _DecodeError as exc:
            if buf:
                yield Chunk(pd.DataFrame({self.columns[0]: buf}, dtype=object), first, pos)
            raise RowError(str(exc), lines.line, pos) from None
        if buf:
            yield Chunk(pd.DataFrame({self.columns[0]: buf}, dtype=object), first, pos)

    def _parquet_chunks(self, rows: int, start: Position, stop: Position | None) -> Iterator[Chunk]:
        md = self._pq.metadata
        end_row = self.rows if stop is None else min(stop.offset, self.rows)
        # Skip whole row groups before ``start`` without reading them.
        groups, first_row = [], 0
        acc = 0
        for g in range(md.num_row_groups):
            n = md.row_group(g).num_rows
            if acc + n > start.offset and acc < end_row:
                if not groups:
                    first_row = acc
                groups.append(g)
            acc += n
        if not groups:
            return
        at = first_row
        pending: list[pd.DataFrame] = []
        pending_rows, chunk_start = 0, start.offset
        for batch in self._pq.iter_batches(batch_size=rows, row_groups=groups):
            frame = batch.to_pandas()
            lo, hi = max(0, start.offset - at), min(len(frame), end_row - at)
            at += len(frame)
            if hi > lo:
                pending.append(frame.iloc[lo:hi])
                pending_rows += hi - lo
            while pending_rows >= rows or (pending_rows and at >= end_row):
                whole = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0].reset_index(drop=True)
                take = whole.iloc[:rows].reset_index(drop=True)
                rest = whole.iloc[rows:]
                yield Chunk(take, Position(chunk_start, chunk_start, 0),
                            Position(chunk_start + len(take), chunk_start + len(take), 0))
                chunk_start += len(take)
                pending, pending_rows = ([rest] if len(rest) else []), len(rest)
            if at >= end_row:
                break

    def positions(self, rows: int, start: Position | None = None) -> tuple[list[Position], RowError | None]:
        """Chunk boundaries from ``start`` (a first pass that parses but keeps no rows), and the error that
        ended the file early, if any. ``[start, p1, p2, ..., end]``: chunk ``i`` runs from ``p[i]`` to ``p[i+1]``."""
        start = start or self._data_start
        out = [start]
        if self.format == "parquet":  # row counts are in the metadata: nothing to read
            out += [Position(r, r, 0) for r in range(start.offset + rows, self.rows, rows)]
            if self.rows > start.offset:
                out.append(Position(self.rows, self.rows, 0))
            return out, None
        self._build_frames = False
        try:
            for ch in self.chunks(rows, start):
                out.append(ch.end)
        except RowError as exc:
            return out, exc
        finally:
            self._build_frames = True
        return out, None


_SEP_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}


def _unique(names: list[str]) -> list[str]:
    """Column names made unique the way pandas does it (``x``, ``x.1``, ``x.2``)."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n in seen:
            seen[n] += 1
            new = f"{n}.{seen[n]}"
            while new in seen:
                seen[n] += 1
                new = f"{n}.{seen[n]}"
            seen[new] = 0
            out.append(new)
        else:
            seen[n] = 0
            out.append(n)
    return out


# --------------------------------------------------------------------------------------------- writing
#: what an output's name may end with, and the format it is then written in.
OUTPUT_SUFFIXES: dict[str, Format] = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet",
                                      ".pq": "parquet"}


def output_format(path: str | Path) -> Format:
    """The format an output is written in, from its extension: ``.csv``, ``.tsv``/``.tab``, ``.parquet``/``.pq``.

    Raises
    ------
    TableError
        Any other name (an ``.xlsx`` name would otherwise get CSV bytes Excel refuses to open).
    """
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        hint = " (Excel opens .csv files; this tool does not write .xlsx)" if suffix in (".xlsx", ".xls") else ""
        raise TableError(f"the output name {Path(path).name!r} must end in .csv, .tsv or .parquet{hint}")
    return OUTPUT_SUFFIXES[suffix]


def check_output(output: str | Path, inputs: tuple[str | Path, ...] = ()) -> Path:
    """Refuse an output that cannot be written safely, before any work; returns it as a Path.

    Refused: a name whose extension is not a known format, a folder that does not exist, a folder or a
    device/pipe at the output's name (no side files are created next to those), and the input itself, also
    under another name (a hard link or symlink: :func:`os.path.samefile`).

    Raises
    ------
    TableError
    """
    out = Path(output)
    if out.is_dir():
        raise TableError(f"the output {str(out)!r} is a folder; name a file in it (e.g. {str(out / 'scored.csv')!r})")
    if out.exists() and not out.is_file():
        raise TableError(f"the output {str(out)!r} is not a regular file (a device or a pipe); name a file")
    output_format(out)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise TableError(f"the output folder {str(parent)!r} does not exist")
    for src in inputs:
        try:
            same = out.exists() and os.path.samefile(out, src)
        except OSError:
            same = False
        if same:
            raise TableError("the output file is the input file (or a link to it); write the results to another file")
    return out


def _open_private(path: Path, resume: bool):
    """Open a file for writing without following a symlink planted at its name; a new run creates it afresh."""
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    if resume and path.exists():
        return open(os.open(path, os.O_RDWR | nofollow), "r+b")
    if path.is_symlink() or path.exists():
        path.unlink()
    return open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | nofollow, 0o644), "wb")


class ChunkWriter:
    """Writes chunks towards one output file so that a killed job can go on from its last finished chunk.

    The output appears only when it is whole: CSV/TSV rows are appended to ``OUT.partial`` (flushed and
    fsynced per chunk) and renamed to ``OUT`` by :meth:`finish`; :meth:`write` returns the partial file's size,
    which the manifest keeps, and a resumed writer cuts the file back to it (dropping a half-written chunk).
    Parquet chunks become numbered part files in ``OUT.parts/`` (a Parquet file is unreadable until its footer
    is written), joined into a temporary file and renamed to ``OUT``. Because ``OUT`` is replaced by a rename,
    never truncated, a file that shares its inode (a hard link) is never overwritten.

    Parameters
    ----------
    path : str or Path
    resume_bytes : int, optional
        CSV/TSV: cut the partial file back to this size and append; Parquet: the number of parts to keep.
        None starts afresh.
    to_table : callable, optional
        ``to_table(frame) -> pyarrow.Table`` for Parquet (default: ``pa.Table.from_pandas``).
    """

    def __init__(self, path: str | Path, resume_bytes: int | None = None, to_table=None) -> None:
        self.path = Path(path)
        self.to_table = to_table
        self.format = output_format(self.path)
        self.parts_dir = self.path.with_name(self.path.name + ".parts")
        self.partial = self.partial_path(self.path)
        self._schema = None
        if self.format == "parquet":
            if resume_bytes is None:
                shutil.rmtree(self.parts_dir, ignore_errors=True)
                self.parts = 0
            else:
                self.parts = int(resume_bytes)
                for p in self.parts_dir.glob("part-*.parquet"):
                    if int(p.stem.split("-")[1]) >= self.parts:
                        p.unlink()
            self.parts_dir.mkdir(exist_ok=True)
            if self.parts:
                import pyarrow.parquet as pq

                self._schema = pq.read_schema(self._part(0))
            self.header_written = self.parts > 0
            return
        self._f = _open_private(self.partial, resume=resume_bytes is not None)
        if resume_bytes is not None:
            self._f.truncate(resume_bytes)
            self._f.seek(resume_bytes)
        self.header_written = self._f.tell() > 0

    @staticmethod
    def partial_path(path: str | Path) -> Path:
        """``OUT.partial``: where CSV/TSV rows go until the job is done."""
        p = Path(path)
        return p.with_name(p.name + ".partial")

    def _part(self, i: int) -> Path:
        return self.parts_dir / f"part-{i:06d}.parquet"

    def write(self, frame: pd.DataFrame) -> int:
        """Append ``frame``, make it durable (flush + fsync), and return the resume mark (bytes or parts)."""
        if self.format == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = self.to_table(frame) if self.to_table else pa.Table.from_pandas(frame, preserve_index=False)
            if self._schema is None:
                self._schema = table.schema.remove_metadata()
            else:
                table = table.cast(self._schema)  # every part has the first one's column types
            tmp = temp_beside(self._part(self.parts))
            try:
                pq.write_table(table.replace_schema_metadata(None), tmp)
                _fsync_path(tmp)
                os.replace(tmp, self._part(self.parts))
            finally:
                tmp.unlink(missing_ok=True)
            self.parts += 1
            self.header_written = True
            return self.parts
        header, body = csv_bytes(frame, self.format)
        return self.write_bytes(body, header)

    def write_bytes(self, body: bytes, header: bytes) -> int:
        """Append CSV/TSV rows already serialised by :func:`csv_bytes` (the header only before the first rows),
        make them durable, and return the partial file's size."""
        if not self.header_written:
            self._f.write(header)
        self._f.write(body)
        self._f.flush()
        os.fsync(self._f.fileno())
        self.header_written = True
        return self._f.tell()

    def finish(self, metadata: dict[bytes, bytes] | None = None) -> None:
        """Make ``OUT`` whole in one rename: the partial CSV/TSV, or the Parquet parts joined (with ``metadata``
        in its schema)."""
        if self.format != "parquet":
            self._f.close()
            os.replace(self.partial, self.path)
            return
        import pyarrow.parquet as pq

        schema = self._schema
        if schema is None:
            raise TableError("no rows to write")
        schema = schema.with_metadata(metadata or {})
        tmp = temp_beside(self.path)
        try:
            with pq.ParquetWriter(tmp, schema) as w:
                for i in range(self.parts):
                    pf = pq.ParquetFile(self._part(i))
                    for g in range(pf.metadata.num_row_groups):
                        w.write_table(pf.read_row_group(g).cast(schema.remove_metadata()).replace_schema_metadata(
                            schema.metadata))
            _fsync_path(tmp)
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        shutil.rmtree(self.parts_dir, ignore_errors=True)

    def close(self) -> None:
        """Close without finishing (the job stopped; the partial file or the parts stay for a resume)."""
        if self.format != "parquet":
            self._f.close()


def csv_bytes(frame: pd.DataFrame, fmt: Format) -> tuple[bytes, bytes]:
    """``(header line, rows)`` of ``frame`` as UTF-8 CSV (or TSV), exactly as one ``to_csv`` call writes them.

    A pure function, so a Ray actor can serialise its chunk and the driver only appends bytes.
    """
    sep = "\t" if fmt == "tsv" else ","
    header = frame.iloc[:0].to_csv(index=False, sep=sep, lineterminator="\n").encode("utf-8")
    body = frame.to_csv(index=False, header=False, sep=sep, lineterminator="\n").encode("utf-8") if len(frame) else b""
    return header, body


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -------------------------------------------------------------------------------------------- manifest
@dataclass
class Manifest:
    """How far a chunked job got: the sidecar ``OUT.progress.json``, rewritten atomically after every chunk.

    Attributes
    ----------
    command : str
        ``score`` or ``embed``.
    input : dict
        :meth:`TableStream.identity` of the input: a resume against another file is refused.
    options : dict
        Everything that changes the output (models and their configuration ids, columns, formula escaping).
    done : dict
        ``rows``, ``offset``, ``line`` (the :class:`Position` after the last written chunk) and ``mark``
        (the output's size in bytes, or its number of Parquet parts, at that point).
    complete : bool
        True once every row is written.
    stopped : dict or None
        ``{"line", "rows", "error"}`` when a bad row ended the job early (``rows`` were written before it).
    engine : str
        ``local`` or ``ray``.
    errors : dict
        ``{model: message}`` for models that failed.
    stats : dict
        Rows without a result per model so far.
    """

    command: str
    input: dict[str, Any]
    options: dict[str, Any]
    done: dict[str, int] = field(default_factory=lambda: {"rows": 0, "offset": 0, "line": 0, "mark": 0})
    complete: bool = False
    stopped: dict[str, Any] | None = None
    engine: str = "local"
    errors: dict[str, str] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    #: 2: checksummed (:meth:`save`); earlier files are refused with a message.
    version: int = 2

    @staticmethod
    def path_for(output: str | Path) -> Path:
        """``OUT.progress.json`` beside ``OUT``."""
        out = Path(output)
        return out.with_name(out.name + ".progress.json")

    @classmethod
    def load(cls, output: str | Path) -> Manifest | None:
        """The manifest beside ``output``, or None when there is none.

        The file is checked before it is trusted: its fields against the layout this class writes (types and
        ranges), and its checksum (SHA-256 of its content, written by :meth:`save`), so an edited or damaged
        progress file is refused rather than resumed into wrong output.

        Raises
        ------
        TableError
            It exists but cannot be read, fails its checksum or its layout (the message says to delete it to
            start over).
        """
        p = cls.path_for(output)
        if not p.exists():
            return None
        redo = f"delete {p.name} (and {Path(output).name}.partial) to start over"
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TableError(f"{p} is not a progress file of this tool ({exc}); {redo}") from None
        if not isinstance(data, dict):
            raise TableError(f"{p} is not a progress file of this tool (not a JSON object); {redo}")
        stored = data.pop("checksum", None)
        if stored != _checksum(data):
            why = "it has no checksum" if stored is None else "its checksum does not match its content"
            raise TableError(f"{p} was changed since this tool wrote it ({why}); {redo}")
        problem = _manifest_problem(data)
        if problem:
            raise TableError(f"{p} is not a valid progress file ({problem}); {redo}")
        return cls(**data)

    def position(self) -> Position:
        return Position(self.done["rows"], self.done["offset"], self.done["line"])

    def save(self, output: str | Path) -> None:
        """Write atomically: a fresh temporary file, fsync, rename, fsync the folder (a crash leaves old or new,
        whole), with a checksum of the content that :meth:`load` verifies."""
        p = self.path_for(output)
        body = asdict(self)
        body["checksum"] = _checksum(body)
        tmp = temp_beside(p)
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(body, f, ensure_ascii=False, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        finally:
            tmp.unlink(missing_ok=True)
        try:
            fd = os.open(p.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:  # some filesystems refuse fsync on a folder; the rename is still atomic
            pass

    def mismatch(self, input_identity: dict[str, Any], options: dict[str, Any]) -> str | None:
        """Why this manifest cannot be resumed with this input and these options (None: it can)."""
        a, b = self.input, input_identity
        if a.get("path") != b.get("path"):
            return f"it belongs to input {a.get('path')}, not {b.get('path')}"
        for k, what in (("size", "its size"), ("head_sha1", "its first bytes"), ("mtime_ns", "its modification time")):
            if a.get(k) != b.get(k):
                return f"the input file changed since that run ({what} differ)"
        for k in sorted(set(self.options) | set(options)):
            if self.options.get(k) != options.get(k):
                return f"that run used {k} = {_show(self.options.get(k))}, this one {_show(options.get(k))}"
        return None


def _checksum(data: dict[str, Any]) -> str:
    """SHA-256 of a manifest's fields in a canonical JSON form (keys sorted), the checksum field left out."""
    body = {k: v for k, v in data.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _manifest_problem(data: dict[str, Any]) -> str | None:
    """What is wrong with a manifest's fields (None: the layout :class:`Manifest` writes)."""
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    expected = {"command": str, "input": dict, "options": dict, "done": dict, "complete": bool, "engine": str,
                "errors": dict, "stats": dict, "version": int}
    for name, kind in expected.items():
        if name not in data:
            return f"the field {name!r} is missing"
        if not isinstance(data[name], kind) or (kind is int and isinstance(data[name], bool)):
            return f"{name} is {json.dumps(data[name])[:40]}, not a {kind.__name__}"
    unknown = set(data) - set(expected) - {"stopped"}
    if unknown:
        return f"unknown field(s) {', '.join(sorted(unknown))}"
    done = data["done"]
    for k in ("rows", "offset", "line", "mark"):
        if not is_int(done.get(k)) or done[k] < 0:
            return f"done.{k} is {done.get(k)!r}, not a count"
    # Every data row takes at least one line (CSV/TXT) or one row index (Parquet, which counts no lines).
    if done["rows"] > (done["line"] if done["line"] else done["offset"]):
        return f"done.rows ({done['rows']:,}) is more than the file had by then"
    if data.get("stopped") is not None and not isinstance(data["stopped"], dict):
        return "stopped is not an object"
    if not all(isinstance(v, str) for v in data["errors"].values()):
        return "errors holds a non-text message"
    if not all(is_int(v) and v >= 0 for v in data["stats"].values()):
        return "stats holds a value that is not a count"
    return None


def _show(v: Any) -> str:
    if isinstance(v, list) and v and isinstance(v[0], dict) and "name" in v[0]:
        return ", ".join(f"{m['name']} ({m.get('config', '')})" for m in v)
    return json.dumps(v, ensure_ascii=False)


__all__ = ["OUTPUT_SUFFIXES", "Chunk", "ChunkWriter", "Manifest", "Position", "RowError", "TableStream", "check_output",
           "csv_bytes", "output_format"]
