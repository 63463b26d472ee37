from __future__ import annotations

import pandas as pd
import pytest

from backend.files.io import (
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
    assert (t.encoding == "gb18030") == (encoding == "gbk")
    assert bool(t.notes) == (encoding == "gbk")  # a detected (guessed) encoding is always said


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
    with pytest.raises(TableError, match=r"Excel \.xlsx"):
        read_table(b"PK\x03\x04\x00\x00rest")
    with pytest.raises(TableError, match="NUL bytes"):
        read_table(b"a,b\n\x00\x01\x02\x03,\x00\x00\x05\x06\x07\x08\x09\x0a\x0b")
    with pytest.raises(TableError, match="cannot be read as ascii"):
        read_table("a,b\nMüller,x\n".encode("latin-1"), encoding="ascii")


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


@pytest.mark.parametrize(("data", "encoding", "first"), [
    ("name,city\nHerr Müller,Köln\nFrau Schröder,Düsseldorf\n".encode("latin-1"), "cp1252", "Herr Müller"),
    ("a,b\n我的包裹什麼時候到,包裹多久能送達\n".encode("big5"), "big5", "我的包裹什麼時候到"),
    ("a,b\nhello,world\n".encode("utf-16"), "utf-16", "hello"),
    ("a,b\n电脑,ok\n".encode("utf-16-le"), "utf-16-le", "电脑"),
])
def test_encodings_are_detected_not_assumed(data, encoding, first):
    """A Latin-1 file is not decoded as GBK ("Herr M黮ler"); UTF-16 is text, not "binary"."""
    t = read_table(data)
    assert t.encoding == encoding and t.frame.iloc[0, 0] == first
    assert any("decoded as" in n for n in t.notes)


def test_encoding_can_be_chosen():
    data = "a,b\nHerr Müller,x\n".encode("latin-1")
    t = read_table(data, encoding="latin-1")
    assert t.frame.iloc[0, 0] == "Herr Müller" and t.notes == ["decoded as latin-1 (chosen)"]


def test_rows_in_equal_rows_out_and_long_lines_are_named():
    t = read_table(b"a,b,label\nx,y,1\np,q,0,extra\n,,\nm,n\n")
    assert len(t.frame) == 4  # every data line is a row: the long one, the empty one and the short one too
    assert t.frame.iloc[1].tolist() == ["p", "q", "0"] and t.frame.iloc[3].tolist() == ["m", "n", ""]
    assert any("line 3 (4 fields)" in n and "dropped" in n for n in t.notes)


def test_tsv_cell_with_a_quoted_line_break_is_one_row():
    t = read_table(b'a\tb\n"two\nlines"\tsecond\nplain\tx\n')
    assert len(t.frame) == 2 and t.frame.iloc[0, 0] == "two\nlines"
