"""Hostile and careless input, tried as an attacker or a tired user would: every case gets a message that names the
problem, loses no row, raises no traceback and leaves no unexplained NaN.

Texts go through every default model (the real ones); files go through the CLI as a subprocess would see them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from backend.cli import main
from backend.registry import Registry
from tests.conftest import REPO

DEFAULTS = Registry.load().defaults()

#: (case, text A, text B, what every model's warnings must say when it gives no score, must it score?)
TEXT_CASES = [
    ("emoji only", "😀🎉🙂", "👍👍", "no words found", False),
    ("punctuation only", "?!...", "---", "no words found", False),
    ("empty", "", "a cat", "empty text", False),
    ("whitespace", " \t\n ", "a cat", "empty text", False),
    ("control characters", "\x00\x1b\x7f", "a cat", "empty text", False),
    ("zero-width inside a word", "hel\u200blo wor\u00adld", "hello world", None, True),
    ("lone surrogate", "a cat \ud800 sleeps", "a cat sleeps", None, True),
    ("Arabic", "مرحبا بالعالم", "hello world", "Arabic", None),
    ("Japanese kana", "こんにちは、世界", "hello world", "Japanese", None),
    ("Korean", "안녕하세요 세계", "hello world", "Korean", None),
    ("very long", "word " * 3000, "word", None, True),
    ("markdown and html", "[x](http://evil.example) <img src=x onerror=alert(1)>", "x", None, True),
]


@pytest.mark.slow
@pytest.mark.parametrize(("case", "a", "b", "says", "scores"), TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_text_cases_through_every_model(backend, case, a, b, says, scores):
    res = backend.similarity([a], [b], DEFAULTS)
    for key, r in res.items():
        assert r.error is None, f"{case}: {key} failed: {r.error}"
        s = float(r.scores[0])
        if scores is True:
            assert np.isfinite(s), f"{case}: {key} gave no score: {r.warnings[0]}"
        if scores is False:
            assert np.isnan(s), f"{case}: {key} scored {s}"
        if np.isnan(s):  # never an unexplained NaN
            assert r.warnings[0], f"{case}: {key} NaN without a reason"
        if says is not None and (np.isnan(s) or says in ("Arabic", "Japanese", "Korean")):
            assert any(says in w for w in r.warnings[0]), f"{case}: {key} warnings {r.warnings[0]} lack {says!r}"
    if case == "very long":
        assert any("truncated" in w for r in res.values() for w in r.warnings[0])
    if case == "emoji only":  # the same reason from every model
        reasons = {tuple(w for w in r.warnings[0] if "no words" in w) for r in res.values()}
        assert len(reasons) == 1


def _score(tmp_path, data: bytes, name: str = "in.csv", *extra: str) -> subprocess.CompletedProcess:
    src, dst = tmp_path / name, tmp_path / "out.csv"
    src.write_bytes(data)
    return subprocess.run([sys.executable, "-m", "backend", "score", str(src), str(dst), "--models", "w2v", "--quiet",
                           *extra], cwd=REPO, capture_output=True, text=True, timeout=300)


FORMULAS = ["=cmd|' /C calc'!A0", "+1+2", "-2+3", "@SUM(A1:A2)", "\t=1+1", '=HYPERLINK("http://x","y")']


@pytest.mark.slow
def test_cli_escapes_every_formula_cell(tmp_path):
    frame = pd.DataFrame({"sentence1": FORMULAS, "sentence2": ["a cat"] * 6})
    p = _score(tmp_path, frame.to_csv(index=False).encode())
    assert p.returncode == 0, p.stderr
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert len(out) == 6 and all(v.startswith("'") for v in out["sentence1"]), out["sentence1"].tolist()
    assert "Traceback" not in p.stderr


@pytest.mark.slow
@pytest.mark.parametrize(("case", "data", "rows", "message"), [
    ("quoted newline in a TSV", b'sentence1\tsentence2\n"two\nlines"\tx\ny\tz\n', 2, None),
    ("UTF-16 with a mark", "sentence1,sentence2\n猫,狗\n".encode("utf-16"), 1, "UTF-16"),
    ("UTF-16 without a mark", "sentence1,sentence2\ncat,dog\n".encode("utf-16-le"), 1, "UTF-16"),
    ("Latin-1", "sentence1,sentence2\nHerr Müller,Frau Schröder\n".encode("latin-1"), 1, "cp1252"),
    ("GBK", "sentence1,sentence2\n一只猫,一只狗\n".encode("gbk"), 1, "gb18030"),
    ("empty cells", b"sentence1,sentence2\na,\n,b\n,\n", 3, "rows without a score"),
])
def test_cli_files_keep_every_row_and_say_what_happened(tmp_path, case, data, rows, message):
    p = _score(tmp_path, data)
    assert p.returncode == 0, f"{case}: {p.stderr}"
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert len(out) == rows, f"{case}: {len(out)} rows out of {rows}"
    if message:
        assert message in p.stderr, f"{case}: {p.stderr}"
    assert "Traceback" not in p.stderr
    if case == "Latin-1":
        assert out.loc[0, "sentence1"] == "Herr Müller"


@pytest.mark.slow
def test_cli_a_row_with_too_many_fields_stops_there_and_keeps_the_rows_before(tmp_path):
    """The command line streams files of any size: a bad row stops the run with its line and what is wrong, the rows
    before it are written, and the progress file says where (the Batch page, which reads the whole file, keeps
    the row and names the line instead)."""
    p = _score(tmp_path, b"sentence1,sentence2\na,b\nc,d,e\nf,g\n")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "line 3 has 3 comma-separated fields where the header has 2" in p.stderr
    assert len(pd.read_csv(tmp_path / "out.csv")) == 1


@pytest.mark.parametrize(("case", "data", "name", "message"), [
    ("xlsx", b"PK\x03\x04\x14\x00binary", "book.csv", "Excel .xlsx"),
    ("NUL bytes", b"sentence1,sentence2\n\x00\x01\x02,\x03\x04\x05\x06\x07\x08\x0b\x0c", "bin.csv", "NUL bytes"),
    ("empty", b"", "empty.csv", "empty"),
    ("missing columns", b"x,y\n1,2\n", "cols.csv", "could not find two text columns"),
])
def test_cli_unreadable_files_get_a_message_not_a_traceback(tmp_path, capsys, case, data, name, message):
    (tmp_path / name).write_bytes(data)
    code = main(["score", str(tmp_path / name), str(tmp_path / "out.csv"), "--models", "w2v"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, f"{case}: {err}"


def test_cli_encoding_can_be_forced(tmp_path, capsys):
    (tmp_path / "in.csv").write_bytes("sentence1,sentence2\nHerr Müller,Frau Schröder\n".encode("latin-1"))
    assert main(["score", str(tmp_path / "in.csv"), str(tmp_path / "out.csv"), "--models", "w2v", "--quiet",
                 "--encoding", "latin-1"]) == 0
    assert pd.read_csv(tmp_path / "out.csv")["sentence1"][0] == "Herr Müller"
    assert main(["score", str(tmp_path / "in.csv"), str(tmp_path / "out.csv"), "--encoding", "ascii"]) == 2
    assert "cannot be read as ascii" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_json_says_why_metrics_are_null(tmp_path):
    f = tmp_path / "const.csv"
    pd.DataFrame({"sentence1": ["a cat", "a dog", "a car"], "sentence2": ["a cat", "the dog", "a bus"],
                  "score": [3, 3, 3]}).to_csv(f, index=False)
    p = subprocess.run([sys.executable, "-m", "backend", "evaluate", str(f), "--models", "w2v", "--json", "--quiet"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)["w2v"]
    assert out["spearman"] is None and any("same" in n for n in out["notes"])
