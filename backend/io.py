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

#: encodings tried in order; gb18030 is a superset of GBK and GB2312.
ENCODINGS = ("utf-8-sig", "gb18030")
SEPARATORS = (",", "\t", ";", "|")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
#: column names that hold a gold label, in order of preference.
LABEL_NAMES = ("score", "label", "gold", "similarity", "relatedness", "is_duplicate", "y")
DEMO_CORPUS = Path(__file__).resolve().parent / "data" / "demo_corpus.csv"
#: Chinese FAQ-matching pairs (our own writing): ``sentence1, sentence2, label, topic``; 1 = same intent.
FAQ_ZH = Path(__file__).resolve().parent / "data" / "faq_zh.csv"


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


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Decode bytes as UTF-8 (with or without BOM), else GB18030/GBK; returns ``(text, encoding)``."""
    for enc in ENCODINGS:
        try:
            return data.decode(enc), ("utf-8" if enc == "utf-8-sig" else "gbk")
        except UnicodeDecodeError:
            continue
    raise TableError("the file is neither UTF-8 nor GBK text; save it as UTF-8 CSV and try again")


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


def read_table(source: str | Path | bytes | io.IOBase, *, max_rows: int | None = None, txt_column: str = "text") -> Table:
    """Read a CSV/TSV/TXT file into a :class:`Table`.

    Parameters
    ----------
    source : path, bytes or file object
    max_rows : int, optional
        Stop after this many data rows (previews of huge files).
    txt_column : str
        Column name for a plain ``.txt`` file (one text per line, no separator).

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
    if not data.strip():
        raise TableError("the file is empty")
    if b"\x00" in data[:4096]:
        raise TableError("this looks like a binary file (Excel .xlsx?), not CSV text: export it as CSV (UTF-8)")
    text, encoding = decode_bytes(data)
    notes = [] if encoding == "utf-8" else [f"decoded as {encoding.upper()}"]
    if name.lower().endswith(".txt") and "\t" not in text.splitlines()[0]:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        frame = pd.DataFrame({txt_column: lines[:max_rows] if max_rows else lines})
        return Table(frame, encoding, "\n", notes)
    sep = sniff_separator(text)
    # A tab file whose text holds raw double quotes (STS-B) must be read without quote handling, or pandas
    # swallows whole lines into one field. Commas/semicolons keep the standard CSV quoting.
    quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            quoting=quoting,
            dtype=str,
            keep_default_na=False,
            nrows=max_rows,
            on_bad_lines="warn",
            engine="python" if sep not in (",", "\t") else "c",
        )
    except (pd.errors.ParserError, csv.Error) as exc:
        raise TableError(f"could not parse the file as a table ({exc}); is it really CSV?") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.shape[1] < 2 and sep != "\n":
        notes.append("only one column found; is the separator right?")
    return Table(frame, encoding, sep, notes)


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

    Numbers are left alone (a negative score is data, not a formula).
    """
    out = frame.copy()
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c]):
            out[c] = out[c].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v)
    return out


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """CSV bytes for a download: UTF-8 with BOM (so Excel shows Chinese correctly), formulas escaped."""
    return escape_formulas(frame).to_csv(index=False).encode("utf-8-sig")
