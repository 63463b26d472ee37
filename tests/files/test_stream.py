"""backend.files.stream: tables of any size read in chunks that know where they end, and writers that resume."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.files.io import TableError
from backend.files.stream import ChunkWriter, Manifest, Position, RowError, TableStream


def write_rows(path, n, sep=",", header=("sentence1", "sentence2", "id"), encoding="utf-8", extra=None):
    lines = [sep.join(header)] + [sep.join((f"text a {i}", f"text b {i}", str(i))) for i in range(n)]
    for at, line in (extra or {}).items():
        lines[at] = line
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def read_all(stream, rows=7, start=None):
    chunks = list(stream.chunks(rows, start))
    return pd.concat([c.frame for c in chunks], ignore_index=True) if chunks else None, chunks


def test_chunks_cover_every_row_once_in_order_and_resume_from_any_boundary(tmp_path):
    s = TableStream(write_rows(tmp_path / "a.csv", 50))
    assert s.columns == ["sentence1", "sentence2", "id"] and s.format == "csv" and s.encoding == "utf-8"
    frame, chunks = read_all(s)
    assert frame["id"].tolist() == [str(i) for i in range(50)]
    assert [len(c.frame) for c in chunks] == [7] * 7 + [1]
    assert chunks[0].start == s.data_start and chunks[-1].end.offset == s.size and chunks[-1].end.line == 51
    for c in chunks:  # every boundary is a place to start again
        rest, _ = read_all(TableStream(s.path), 10, c.end)
        assert (rest is None and c.end.rows == 50) or rest["id"].tolist() == [str(i) for i in range(c.end.rows, 50)]
    positions, err = s.positions(7)
    assert err is None and positions == [chunks[0].start] + [c.end for c in chunks]


def test_a_row_with_another_number_of_fields_names_its_line_after_handing_out_the_rows_before(tmp_path):
    s = TableStream(write_rows(tmp_path / "a.csv", 40, extra={23: "x,y,22,surplus"}))  # line 24 = data row 22
    got = []
    with pytest.raises(RowError) as err:
        for c in s.chunks(5):
            got.append(c.frame)
    assert "line 24 has 4 comma-separated fields where the header has 3" in str(err.value)
    assert pd.concat(got)["id"].tolist() == [str(i) for i in range(22)]  # the 22 rows before it
    assert err.value.line == 24 and err.value.position.rows == 22
    short = TableStream(write_rows(tmp_path / "b.csv", 10, extra={4: "only,two"}))
    with pytest.raises(RowError, match="line 5 has 2 comma-separated fields"):  # pandas would pad it silently
        list(short.chunks(100))


def test_a_second_header_line_is_named(tmp_path):
    s = TableStream(write_rows(tmp_path / "a.csv", 30, extra={16: "sentence1,sentence2,id"}))
    with pytest.raises(RowError, match="line 17 repeats the header line"):
        list(s.chunks(100))


def test_an_unclosed_quote_halfway_through_a_large_file_names_the_line_where_it_opens(tmp_path):
    n = 20_000
    s = TableStream(write_rows(tmp_path / "a.csv", n, extra={10_001: '"never closed,text b,10000'}))
    got = []
    with pytest.raises(RowError) as err:
        for c in s.chunks(3000):
            got.append(c.frame)
    assert "line 10,002: a quoted cell opens here and is never closed" in str(err.value)  # data row 10,000
    assert len(pd.concat(got)) == 10_000 == err.value.position.rows
    # a later quote pairs with the open one: still the line where it opened
    s2 = TableStream(write_rows(tmp_path / "b.csv", 100, extra={51: '"open,b,50', 60: '"q",b,59'}))
    with pytest.raises(RowError, match="line 52: a quoted cell opens here"):
        list(s2.chunks(1000))


def test_quoted_cells_with_separators_and_newlines_are_one_row(tmp_path):
    p = tmp_path / "q.csv"
    p.write_text('a,b\n"one, two","line\nbreak"\nx,y\n\n"z",w\n', encoding="utf-8")
    frame, chunks = read_all(TableStream(p))
    assert frame.values.tolist() == [["one, two", "line\nbreak"], ["x", "y"], ["z", "w"]]  # the blank line is no row
    assert chunks[-1].end.line == 6


@pytest.mark.parametrize("encoding, note", [("utf-8-sig", None), ("gbk", "decoded as gb18030 (detected: a guess"),
                                            ("utf-16", "decoded as UTF-16 (byte-order mark)")])
def test_encodings_and_bom(tmp_path, encoding, note):
    p = tmp_path / "z.csv"
    p.write_bytes("sentence1,sentence2\n猫在睡觉,一只猫\n狗,跑\n".encode(encoding))
    s = TableStream(p)
    frame, _ = read_all(s)
    assert s.columns == ["sentence1", "sentence2"] and frame.iloc[0].tolist() == ["猫在睡觉", "一只猫"]
    assert len(frame) == 2
    assert (s.notes[0].startswith(note) if note else s.notes == [])


def test_a_tab_file_whose_quoted_cells_hold_line_breaks_is_read_with_quotes(tmp_path):
    t = tmp_path / "q.tsv"
    t.write_text('a\tb\n"two\nlines"\tx\ny\tz\n', encoding="utf-8")
    frame, _ = read_all(TableStream(t))
    assert frame["a"].tolist() == ["two\nlines", "y"]


def test_gbk_after_an_ascii_head_is_found_by_sampling_and_a_mixed_file_names_the_line(tmp_path):
    ascii_rows = [f"plain ascii {i},more text {i}" for i in range(60_000)]  # > 1 MiB of ASCII head
    p = tmp_path / "g.csv"
    p.write_bytes(("a,b\n" + "\n".join(ascii_rows) + "\n").encode() + "猫,狗\n".encode("gbk"))
    s = TableStream(p)
    assert s.encoding == "gbk" and read_all(s, 100_000)[0].iloc[-1].tolist() == ["猫", "狗"]
    mixed = tmp_path / "m.csv"  # a UTF-8 head (> 1 MiB), then one GBK line
    mixed.write_bytes(("a,b\n" + "猫在睡觉,一只猫\n" * 60_000).encode() + "猫,狗\n".encode("gbk"))
    got = []
    with pytest.raises(RowError, match="line 60,002 is not UTF-8 text like the lines before it") as err:
        got.extend(c.frame for c in TableStream(mixed).chunks(25_000))
    assert sum(map(len, got)) == 60_000 == err.value.position.rows


def test_tab_files_keep_raw_quotes_and_semicolons_are_sniffed(tmp_path):
    t = tmp_path / "t.tsv"
    t.write_text('q\tc\nHe said "hi\tok\n', encoding="utf-8")
    assert read_all(TableStream(t))[0].iloc[0].tolist() == ['He said "hi', "ok"]
    s = tmp_path / "s.csv"
    s.write_text("a;b\nx;y\n", encoding="utf-8")
    st = TableStream(s)
    assert st.separator == ";" and read_all(st)[0].iloc[0].tolist() == ["x", "y"]


def test_txt_is_one_text_per_line(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("first text\n\nsecond text\n", encoding="utf-8")
    s = TableStream(p)
    frame, chunks = read_all(s, 1)
    assert s.columns == ["text"] and frame["text"].tolist() == ["first text", "second text"]
    assert read_all(TableStream(p), 1, chunks[0].end)[0]["text"].tolist() == ["second text"]


def test_parquet_chunks_across_row_groups_and_from_a_position(tmp_path):
    p = tmp_path / "p.parquet"
    pq.write_table(pa.table({"s1": [f"a{i}" for i in range(95)], "s2": ["b"] * 95}), p, row_group_size=20)
    s = TableStream(p)
    assert s.format == "parquet" and s.columns == ["s1", "s2"] and s.estimate_rows() == 95
    frame, chunks = read_all(s, 30)
    assert frame["s1"].tolist() == [f"a{i}" for i in range(95)] and [len(c.frame) for c in chunks] == [30, 30, 30, 5]
    rest, _ = read_all(TableStream(p), 30, Position(47, 47))
    assert rest["s1"].tolist() == [f"a{i}" for i in range(47, 95)]
    positions, err = TableStream(p).positions(30)
    assert err is None and positions == [chunks[0].start] + [c.end for c in chunks]  # from the metadata alone


def test_unreadable_files_say_what_to_do(tmp_path):
    (tmp_path / "e.csv").write_text("", encoding="utf-8")
    with pytest.raises(TableError, match="empty"):
        TableStream(tmp_path / "e.csv")
    (tmp_path / "x.csv").write_bytes(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(TableError, match=r"Excel \.xlsx"):
        TableStream(tmp_path / "x.csv")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(TableError, match="as Parquet"):
        TableStream(tmp_path / "bad.parquet")


@pytest.mark.parametrize("name", ["o.csv", "o.parquet"])
def test_writer_resumes_from_its_mark_dropping_a_half_written_chunk(tmp_path, name):
    out = tmp_path / name
    w = ChunkWriter(out)
    m1 = w.write(pd.DataFrame({"x": ["a", "b"], "y": [1.0, 2.0]}))
    w.write(pd.DataFrame({"x": ["c"], "y": [3.0]}))  # not recorded: as if the job died before its manifest
    w.close()
    w = ChunkWriter(out, resume_bytes=m1)
    w.write(pd.DataFrame({"x": ["d"], "y": [4.0]}))
    w.finish()
    back = pd.read_parquet(out) if name.endswith("parquet") else pd.read_csv(out)
    assert back["x"].tolist() == ["a", "b", "d"] and back["y"].tolist() == [1.0, 2.0, 4.0]
    assert not (tmp_path / "o.parquet.parts").exists()


def test_manifest_is_written_whole_and_names_what_differs(tmp_path):
    out = tmp_path / "o.csv"
    m = Manifest("score", {"path": "/x", "size": 10, "mtime_ns": 1, "head_sha1": "h"}, {"models": [{"name": "w2v", "config": "c1"}]})
    m.save(out)
    back = Manifest.load(out)
    assert back == m and not list(tmp_path.glob("*.tmp"))
    assert back.mismatch({"path": "/x", "size": 11, "mtime_ns": 1, "head_sha1": "h"}, m.options) == \
        "the input file changed since that run (its size differ)"
    assert "models = w2v (c1), this one bert (c2)" in back.mismatch(m.input, {"models": [{"name": "bert", "config": "c2"}]})
    Manifest.path_for(out).write_text("{broken", encoding="utf-8")
    with pytest.raises(TableError, match=r"delete o\.csv\.progress\.json .* to start over"):
        Manifest.load(out)
