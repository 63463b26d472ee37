from __future__ import annotations

import pandas as pd
import pytest

from backend.io import (
    TableError,
    escape_formulas,
    guess_label_column,
    guess_text_columns,
    read_table,
    require_columns,
    to_csv_bytes,
)

ROWS = "sentence1,sentence2,score\n一只猫在睡觉,猫在睡觉,4.5\nA dog runs,\"A dog, running\",4.0\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_read_table_encodings(encoding):
    t = read_table(ROWS.encode(encoding))
    assert list(t.frame.columns) == ["sentence1", "sentence2", "score"]
    assert t.frame.iloc[0, 0] == "一只猫在睡觉"
    assert t.frame.iloc[1, 1] == "A dog, running"
    assert (t.encoding == "gbk") == (encoding == "gbk")


def test_tab_with_raw_quotes_and_semicolon():
    t = read_table(b'a\tb\tscore\nHe said "hi\tShe said hi"\t3\n')
    assert t.separator == "\t" and t.frame.shape == (1, 3) and t.frame.iloc[0, 0] == 'He said "hi'
    t = read_table(b"a;b\nx;y\n")
    assert t.separator == ";" and t.frame.iloc[0].tolist() == ["x", "y"]


def test_txt_one_text_per_line(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text("first line\n\nsecond, with comma\n", encoding="utf-8")
    t = read_table(p)
    assert t.frame["text"].tolist() == ["first line", "second, with comma"]


def test_bad_files_give_clear_errors():
    with pytest.raises(TableError, match="empty"):
        read_table(b"  \n")
    with pytest.raises(TableError, match="binary"):
        read_table(b"PK\x03\x04\x00\x00rest")
    with pytest.raises(TableError, match="neither UTF-8 nor GBK"):
        read_table(b"a,b\n\xff\xfe\xfa\xfb,\x81\n")


def test_empty_cells_are_empty_strings():
    t = read_table(b"a,b\nx,\n,y\n")
    assert t.frame["b"].tolist() == ["", "y"]


def test_column_guessing_and_errors():
    df = pd.DataFrame({"id": ["1", "2"], "question1": ["q a", "q b"], "question2": ["c", "d"], "is_duplicate": ["0", "1"]})
    assert guess_text_columns(df) == ("question1", "question2")
    assert guess_label_column(df, exclude=("question1", "question2")) == "is_duplicate"
    with pytest.raises(TableError, match="the file has: 'id', 'question1'"):
        require_columns(df, "sentence1")


def test_formula_escaping():
    df = pd.DataFrame({"t": ["=1+1", "+x", "-y", "@z", "ok"], "score": [-0.5, 0.1, 0.2, 0.3, 0.4]})
    out = escape_formulas(df)
    assert out["t"].tolist() == ["'=1+1", "'+x", "'-y", "'@z", "ok"]
    assert out["score"].tolist()[0] == -0.5
    assert to_csv_bytes(df).startswith(b"\xef\xbb\xbf")
