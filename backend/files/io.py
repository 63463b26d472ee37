"""Reading users' tables (CSV/TSV/TXT in any of the encodings people actually send) and writing results.

Users upload spreadsheets exported from Excel (UTF-8 with BOM, or GBK on Chinese Windows), tab-separated
dumps whose text holds raw double quotes (STS-B), and semicolon files from European locales. Everything goes
through :func:`read_table`, so the CLI and the dashboard accept exactly the same files.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

SEPARATORS = (",", "\t", ";", "|")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
#: column names that hold a gold label, in order of preference.
LABEL_NAMES = ("score", "label", "gold", "similarity", "relatedness", "is_duplicate", "duplicate", "same",
               "is_same", "match", "paraphrase", "target", "y")
#: encodings a person can pick when detection guessed wrong (Batch page, ``--encoding``).
ENCODING_CHOICES = ("utf-8", "gb18030", "big5", "utf-16", "cp1252", "latin-1", "shift_jis", "euc_kr")
#: what detection chooses among when a file is not UTF-8 (GB18030 covers GBK and GB2312; cp1252 covers Latin-1's
#: letters).
DETECTABLE = ("gb18030", "big5", "cp1252", "shift_jis", "euc_kr")
DEMO_CORPUS = Path(__file__).resolve().parents[1] / "data" / "demo_corpus.csv"
FAQ_ZH = Path(__file__).resolve().parents[1] / "data" / "faq_zh.csv"
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


class TableError(ValueError):
    """A file that cannot be read as a table; the message says what to do."""


@dataclass
class Table:
    """A parsed table and how it was read.

    Attributes
    ----------
    frame : pandas.DataFrame
        All columns as strings (empty cells are ``""``), or numbers where a column is numeric.
    encoding, separator : str
        What was detected.
    notes : list of str
        Things the user should know (e.g. "decoded as GBK").
    """

    frame: pd.DataFrame
    encoding: str
    separator: str
    notes: list[str] = field(default_factory=list)


def decode_bytes(data: bytes, encoding: str | None = None) -> tuple[str, str, list[str]]:
    """Decode a file's bytes; returns ``(text, encoding, notes)``.

    Order: the encoding asked for; a byte-order mark (UTF-8, UTF-16, UTF-32); strict UTF-8; UTF-16 without a
    mark (every other byte NUL); else ``charset-normalizer``'s best guess (GB18030, Big5, cp1252, ...), which is
    a *guess*, and the note says so and how to override it.

    Raises
    ------
    TableError
        The bytes are not text in the asked or any detected encoding, or look like a binary file.
    """
    if encoding:
        try:
            return data.decode(encoding), encoding, [f"decoded as {encoding} (chosen)"]
        except (UnicodeDecodeError, LookupError) as exc:
            raise TableError(f"the file cannot be read as {encoding}: {exc}") from None
    for bom, enc in _BOMS:
        if data.startswith(bom):
            name = "utf-8" if enc == "utf-8-sig" else enc
            try:
                return data.decode(enc), name, [] if name == "utf-8" else [f"decoded as {name.upper()} (byte-order mark)"]
            except UnicodeDecodeError as exc:
                raise TableError(f"the file starts with a {name} byte-order mark but is not {name}: {exc}") from None
    if data[:4] == b"PK\x03\x04":
        raise TableError("this is an Excel .xlsx (or another zip) file, not CSV text: export it as CSV (UTF-8)")
    head = data[:4096]
    # UTF-16 without a mark: NUL in every other byte (ASCII-range text). NUL bytes are valid UTF-8, so this is
    # checked first.
    for enc, nul, text_half in (("utf-16-le", head[1::2], head[0::2]), ("utf-16-be", head[0::2], head[1::2])):
        if len(head) >= 4 and nul.count(0) > 0.4 * len(nul) and text_half.count(0) < 0.1 * len(text_half):
            try:
                return data.decode(enc), enc, ["decoded as UTF-16 (detected: no byte-order mark)"]
            except UnicodeDecodeError:
                break
    if b"\x00" in head:
        raise TableError("this looks like a binary file (it holds NUL bytes), not CSV text: export it as CSV (UTF-8)")
    try:
        return data.decode("utf-8"), "utf-8", []
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    # The encodings people's spreadsheets actually come in; an open search picks exotic code pages (cp775) for
    # short Western texts.
    best = from_bytes(data, cp_isolation=list(DETECTABLE)).best()
    if best is None or best.encoding is None:
        raise TableError("the file is not text in any encoding we recognise; save it as UTF-8 CSV and try again")
    enc = best.encoding
    text = str(best)
    return text, enc, [f"decoded as {enc} (detected: a guess; if the text looks wrong, choose its encoding)"]


def sniff_separator(text: str) -> str:
    """Pick the separator that splits the first lines into the most consistent number (>1) of fields.

    The tab wins ties, since tab-separated files often hold commas inside the text.
    """
    lines = [ln for ln in text.splitlines()[:50] if ln.strip()]
    if not lines:
        raise TableError("the file is empty")
    best, best_key = ",", (-1.0, 0)
    for sep in SEPARATORS:
        counts = [ln.count(sep) for ln in lines]
        if counts[0] == 0:
            continue
        consistent = sum(c == counts[0] for c in counts) / len(counts)
        key = (consistent, 1 if sep == "\t" else 0)
        if key > best_key:
            best, best_key = sep, key
    return best if best_key[0] >= 0 else ","


def read_table(source: str | Path | bytes | io.IOBase, *, max_rows: int | None = None, txt_column: str = "text",
               encoding: str | None = None) -> Table:
    """Read a CSV/TSV/TXT file into a :class:`Table`.

    Parameters
    ----------
    source : path, bytes or file object
    max_rows : int, optional
        Stop after this many data rows (previews of huge files).
    txt_column : str
        Column name for a plain ``.txt`` file (one text per line, no separator).
    encoding : str, optional
        Decode as this (otherwise detected: see :func:`decode_bytes`).

    Every data line of the file becomes one row: a line with too many fields keeps the fields that fit and a
    note names the line; a line with too few gets empty cells.

    Raises
    ------
    TableError
        Empty, binary or unparsable files, with a message a user can act on.
    """
    name = ""
    if isinstance(source, (str, Path)):
        name = str(source)
        data = Path(source).read_bytes()
    elif isinstance(source, bytes):
        data = source
    else:
        name = getattr(source, "name", "")
        data = source.read()
        if isinstance(data, str):
            data = data.encode("utf-8")
    if not data.strip(b" \t\r\n\x00"):
        raise TableError("the file is empty")
    text, encoding, notes = decode_bytes(data, encoding)
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise TableError("the file is empty")
    if name.lower().endswith(".txt") and "\t" not in text.splitlines()[0]:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        frame = pd.DataFrame({txt_column: lines[:max_rows] if max_rows else lines})
        return Table(frame, encoding, "\n", notes)
    sep = sniff_separator(text)
    frame, bad = _parse(text, sep, max_rows)
    if bad:
        shown = ", ".join(f"line {n} ({k} fields)" for n, k in bad[:5]) + (" ..." if len(bad) > 5 else "")
        notes.append(f"{len(bad)} line(s) have more fields than the header's {frame.shape[1]}: {shown}; "
                     "the extra fields were dropped (is a text cell missing its quotes?)")
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.shape[1] < 2 and sep != "\n":
        notes.append("only one column found; is the separator right?")
    return Table(frame, encoding, sep, notes)


def _parse(text: str, sep: str, max_rows: int | None) -> tuple[pd.DataFrame, list[tuple[int, int]]]:
    """Parse with the csv module so no line is lost; returns the frame and ``(line, fields)`` of long lines.

    Tab-separated files are read without quote handling (STS-B's text holds raw double quotes, and a quote
    opening a cell would otherwise swallow the lines after it), unless that leaves records of the wrong width
    while quote handling does not: then quoted cells hold tabs or line breaks, and quoting is right.
    """
    def rows_with(quoting: int) -> list[tuple[int, list[str]]]:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting)
        out: list[tuple[int, list[str]]] = []
        start = 1
        try:
            for fields in reader:
                if fields:  # a blank line is no record; a line of empty cells is one (it gets "no score")
                    out.append((start, fields))
                start = reader.line_num + 1
                if max_rows is not None and len(out) > max_rows:
                    break
        except csv.Error as exc:
            raise TableError(f"could not parse the file as a table (line {reader.line_num}: {exc})") from None
        return out

    def even(rows: list[tuple[int, list[str]]]) -> bool:
        return bool(rows) and all(len(f) == len(rows[0][1]) for _, f in rows)

    rows = rows_with(csv.QUOTE_MINIMAL)
    if sep == "\t":
        plain = rows_with(csv.QUOTE_NONE)
        if even(plain) or not even(rows):
            rows = plain
    if not rows:
        raise TableError("the file is empty")
    header = [h.strip() for h in rows[0][1]]
    width = len(header)
    bad = [(n, len(f)) for n, f in rows[1:] if len(f) > width]
    body = [(f + [""] * width)[:width] for _, f in rows[1:]]
    frame = pd.DataFrame(body, columns=_unique(header), dtype=object)
    return frame, bad


def _unique(names: list[str]) -> list[str]:
    """Column names made unique (``a``, ``a.1``) and never empty (``column 3``), as a person can pick them."""
    out, seen = [], {}
    for i, n in enumerate(names, start=1):
        n = n or f"column {i}"
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if k == 0 else f"{n}.{k}")
    return out


def require_columns(frame: pd.DataFrame, *columns: str) -> None:
    """Raise :class:`TableError` naming the file's actual columns when any of ``columns`` is missing."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise TableError(
            f"column(s) {', '.join(repr(c) for c in missing)} not found; the file has: "
            f"{', '.join(repr(c) for c in frame.columns)}"
        )


def guess_text_columns(frame: pd.DataFrame) -> tuple[str | None, str | None]:
    """Guess the two text columns of a pairs file: well-known names first, else the two wordiest columns."""
    known = [("sentence1", "sentence2"), ("sentence_a", "sentence_b"), ("text_a", "text_b"), ("a", "b"),
             ("query", "candidate"), ("question1", "question2"), ("s1", "s2"), ("text1", "text2")]
    lower = {c.lower(): c for c in frame.columns}
    for x, y in known:
        if x in lower and y in lower:
            return lower[x], lower[y]
    wordy = []
    for c in frame.columns:
        col = frame[c].astype(str).head(200)
        if pd.to_numeric(col, errors="coerce").notna().mean() > 0.8:
            continue
        wordy.append((col.str.len().mean(), c))
    wordy.sort(reverse=True)
    cols = [c for _, c in wordy[:2]]
    ordered = [c for c in frame.columns if c in cols]
    padded = [*ordered, None, None]
    return padded[0], padded[1]


def guess_label_column(frame: pd.DataFrame, exclude: tuple[str | None, ...] = ()) -> str | None:
    """A numeric column named like a gold label (score, label, similarity, ...), if any."""
    for c in frame.columns:
        if c in exclude:
            continue
        if c.lower() in LABEL_NAMES and pd.to_numeric(frame[c], errors="coerce").notna().mean() > 0.9:
            return c
    return None


def resolve_pair_columns(frame: pd.DataFrame, a_col: str | None, b_col: str | None) -> tuple[str, str]:
    """The two text columns: as given (checked), else guessed; raises TableError naming the file's columns."""
    if a_col or b_col:
        ga, gb = guess_text_columns(frame)
        a_col, b_col = a_col or ga, b_col or gb
        require_columns(frame, *(c for c in (a_col, b_col) if c))
    else:
        a_col, b_col = guess_text_columns(frame)
    if not a_col or not b_col:
        raise TableError(
            f"could not find two text columns; the file has: {', '.join(map(repr, frame.columns))}. "
            "Name them with --a-col and --b-col"
        )
    return a_col, b_col


@lru_cache(maxsize=1)
def _demo_corpus() -> pd.DataFrame:
    return pd.read_csv(DEMO_CORPUS, dtype=str, keep_default_na=False)


def load_demo_corpus(lang: str = "all") -> pd.DataFrame:
    """The bundled demo corpus (``text, topic, lang``; our own writing), read once per process.

    Parameters
    ----------
    lang : {"all", "en", "zh"}
        Keep one language's rows (index reset).
    """
    frame = _demo_corpus()
    if lang != "all":
        frame = frame[frame["lang"] == lang].reset_index(drop=True)
    return frame.copy()  # callers may modify their copy; the cached one stays as read


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that start with ``= + - @`` (or tab/CR) with a quote, against CSV formula injection.

    Numbers are left alone (a negative score is data, not a formula). Column names are escaped the same way: a
    header cell is a cell to a spreadsheet.
    """
    out = frame.copy()
    out.columns = [_escape_cell(c) for c in out.columns]
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c]):
            out[c] = out[c].map(_escape_cell)
    return out


def _escape_cell(v):
    return "'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """CSV bytes for a download: UTF-8 with BOM (so Excel shows Chinese correctly), formulas escaped."""
    return escape_formulas(frame).to_csv(index=False).encode("utf-8-sig")
