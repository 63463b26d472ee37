"""backend.files.batch: the columns a scored table gets (the CLI's and the Batch page's download)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.files.batch import ResumeError, score_frame
from backend.files.io import TableError
from tests.fakes import CALLS, fake_backend


def test_every_row_says_its_score_who_scored_it_and_why_one_is_missing():
    be = fake_backend(encoders={"e": lambda t: np.arange(8.0) + len(t)}, scorers={"p": lambda a, b: 0.25},
                      broken=("gone",))
    frame = pd.DataFrame({"a": ["one", "", "three"], "b": ["uno", "dos", "tres"], "id": [1, 2, 3]})
    out = score_frame(be, frame, "a", "b", ["e", "p", "gone"])
    f = out.frame
    assert len(f) == 3 and f["id"].tolist() == [1, 2, 3]  # rows in = rows out, in order
    assert list(f.columns[3:6]) == ["score_e", "scored_by_e", "warnings_e"]
    assert np.isnan(f.loc[1, "score_e"]) and "A: empty text" in f.loc[1, "warnings_e"]
    assert f["score_p"].tolist()[0] == pytest.approx(0.25) and f["scored_by_p"].tolist() == ["p"] * 3
    assert f["score_gone"].isna().all() and f.loc[0, "warnings_gone"].startswith("failed: ")
    assert set(out.errors) == {"gone"} and out.missing() == {"e": 1, "p": 1}


def test_each_model_gets_its_own_options_and_requests_name_their_columns():
    from backend.registry import ModelRequest

    be = fake_backend(encoders={"e": lambda t: np.ones(8)})
    frame = pd.DataFrame({"a": ["x", "y"], "b": ["u", "v"]})
    out = score_frame(be, frame, "a", "b", [ModelRequest("e:scale=2", "e", {"scale": 2}), "e"], options={"e": {"scale": 3}})
    assert out.names == ["e:scale=2", "e"] and "score_e:scale=2" in out.frame and "score_e" in out.frame
    bad = score_frame(be, frame, "a", "b", ["e"], options={"e": {"scale": 50}})
    assert "must be within 0..10" in bad.errors["e"]


def test_language_variant_is_named_per_row():
    be = fake_backend(scorers={"m": lambda a, b: 0.1, "m-zh": lambda a, b: 0.9}, languages={"m-zh": "zh"},
                      variants={"m": {"zh": "m-zh"}})
    CALLS.clear()
    out = score_frame(be, pd.DataFrame({"a": ["a cat", "一只猫"], "b": ["a dog", "一只狗"]}), "a", "b", ["m"]).frame
    assert out["scored_by_m"].tolist() == ["m", "m-zh"] and out["score_m"].tolist() == pytest.approx([0.1, 0.9])
    assert "scored by m-zh" in out.loc[1, "warnings_m"]


# ------------------------------------------------------------------------------------------- file jobs
def vec(t: str) -> np.ndarray:
    """A deterministic fake vector: letter counts (empty text has none)."""
    return np.array([t.count(c) for c in "abcdefgh"], dtype=np.float32) + (1.0 if t else 0.0)


def pairs_file(path, n, extra=None, header="sentence1,sentence2,id"):
    lines = [header] + [f"text {i} abc,other {i} {'de' * (i % 5)},{i}" for i in range(n)]
    for at, line in (extra or {}).items():
        lines[at] = line
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_score_file_writes_what_score_frame_gives_for_every_row_in_order(tmp_path):
    from backend.files.batch import score_file

    be = fake_backend(encoders={"e": vec}, scorers={"p": lambda a, b: len(a) / 100})
    src = pairs_file(tmp_path / "in.csv", 103, extra={5: "=cmd,-x,4"})
    job = score_file(be, src, tmp_path / "out.csv", ["e", "p"], chunk_rows=10)
    res = job.run(be)
    out = pd.read_csv(tmp_path / "out.csv", dtype={"id": str}, keep_default_na=False)
    whole = score_frame(be, pd.read_csv(src, dtype=str, keep_default_na=False), "sentence1", "sentence2", ["e", "p"]).frame
    assert res.complete and res.rows == res.rows_this_run == 103 and len(out) == 103
    assert out["id"].tolist() == whole["id"].tolist()  # rows in = rows out, in order
    assert list(out.columns) == list(whole.columns)
    np.testing.assert_allclose(out["score_e"].astype(float), whole["score_e"])
    assert out.loc[4, "sentence1"] == "'=cmd" and out.loc[4, "sentence2"] == "'-x"  # formulas escaped
    raw = score_file(be, src, tmp_path / "raw.parquet", ["e"], chunk_rows=10)
    raw.run(be)
    pq_out = pd.read_parquet(tmp_path / "raw.parquet")
    assert len(pq_out) == 103 and pq_out.loc[4, "sentence1"] == "=cmd"  # Parquet is data, not a spreadsheet
    np.testing.assert_allclose(pq_out["score_e"], whole["score_e"])


def test_header_only_and_parquet_inputs(tmp_path):
    from backend.files.batch import score_file

    be = fake_backend(encoders={"e": vec})
    src = tmp_path / "h.csv"
    src.write_text("sentence1,sentence2\n", encoding="utf-8")
    score_file(be, src, tmp_path / "h_out.csv", ["e"]).run(be)
    assert (tmp_path / "h_out.csv").read_text().strip() == "sentence1,sentence2,score_e,scored_by_e,warnings_e"
    pqin = tmp_path / "in.parquet"
    pd.DataFrame({"q": ["abc", "", "b"], "c": ["abd", "x", "b"], "n": [1, 2, 3]}).to_parquet(pqin)
    res = score_file(be, pqin, tmp_path / "o.csv", ["e"], "q", "c", chunk_rows=2).run(be)
    out = pd.read_csv(tmp_path / "o.csv")
    assert res.rows == 3 and out["n"].tolist() == [1, 2, 3] and res.missing == {"e": 1}


def test_a_parquet_file_without_the_text_column_names_the_columns_it_has(tmp_path):
    from backend.files.batch import score_file

    be = fake_backend(encoders={"e": vec})
    pqin = tmp_path / "in.parquet"
    pd.DataFrame({"query": ["a"], "doc": ["b"], "label": [1]}).to_parquet(pqin)
    with pytest.raises(TableError, match="column\\(s\\) 'sentence1' not found; the file has: 'query', 'doc', 'label'"):
        score_file(be, pqin, tmp_path / "o.csv", ["e"], "sentence1", "doc")


def test_a_stopped_job_resumes_to_the_same_bytes_as_an_uninterrupted_one(tmp_path):
    from backend.files.batch import score_file
    from backend.files.stream import Manifest
    from backend.jobs import StopRequested

    be = fake_backend(encoders={"e": vec})
    src = pairs_file(tmp_path / "in.csv", 95)
    score_file(be, src, tmp_path / "full.csv", ["e"], chunk_rows=10).run(be)
    calls = [0]

    def stop_after_three_chunks() -> bool:
        calls[0] += 1
        return calls[0] > 3 * 2 + 1  # checked once per chunk by the job and once per chunk by the scoring loop

    out = tmp_path / "out.csv"
    with pytest.raises(StopRequested):
        score_file(be, src, out, ["e"], chunk_rows=10).run(be, should_stop=stop_after_three_chunks)
    m = Manifest.load(out)
    assert not m.complete and m.done["rows"] == 30 and m.done["line"] == 31
    # The output appears only when whole: until then the rows are in OUT.partial.
    assert not out.exists() and len(pd.read_csv(tmp_path / "out.csv.partial")) == 30
    with open(tmp_path / "out.csv.partial", "ab") as f:  # a chunk half written when the process died
        f.write(b"text 30 abc,oth")
    with pytest.raises(ResumeError, match=r"unfinished run .* \(30 rows written\); add --resume"):
        score_file(be, src, out, ["e"], chunk_rows=10)
    job = score_file(be, src, out, ["e"], chunk_rows=25, resume=True)  # another chunk size is fine
    assert "resuming after row 30 (line 31)" in job.notes
    res = job.run(be)
    assert res.resumed_from == 30 and res.rows_this_run == 65 and res.rows == 95
    assert out.read_bytes() == (tmp_path / "full.csv").read_bytes()
    again = score_file(be, src, out, ["e"], resume=True)
    assert again.result.complete and "already complete" in again.notes[-1]


def test_parquet_output_resumes_from_its_parts(tmp_path):
    from backend.files.batch import score_file
    from backend.jobs import StopRequested

    be = fake_backend(encoders={"e": vec})
    src = pairs_file(tmp_path / "in.csv", 42)
    out = tmp_path / "out.parquet"
    n = [0]
    with pytest.raises(StopRequested):
        score_file(be, src, out, ["e"], chunk_rows=10).run(be, should_stop=lambda: (n.__setitem__(0, n[0] + 1) or n[0] > 5))
    assert not out.exists() and len(list((tmp_path / "out.parquet.parts").iterdir())) == 2
    score_file(be, src, out, ["e"], chunk_rows=10, resume=True).run(be)
    back = pd.read_parquet(out)
    assert back["id"].tolist() == [str(i) for i in range(42)]


def test_resume_refuses_another_input_or_other_models(tmp_path):
    import os

    from backend.files.batch import score_file
    from backend.jobs import StopRequested
    from backend.registry import ModelRequest

    be = fake_backend(encoders={"e": vec, "f": vec})
    src = pairs_file(tmp_path / "in.csv", 30)
    out = tmp_path / "out.csv"
    with pytest.raises(StopRequested):
        score_file(be, src, out, ["e"], chunk_rows=10).run(be, should_stop=iter([False, False, True]).__next__)
    with pytest.raises(ResumeError, match=r"that run used models = e \(e:\w+\), this one f \(f:\w+\)"):
        score_file(be, src, out, ["f"], resume=True)
    with pytest.raises(ResumeError, match=r"that run used models = e \(e:\w+\), this one e:scale=2"):
        score_file(be, src, out, [ModelRequest("e:scale=2", "e", {"scale": 2})], resume=True)
    with pytest.raises(ResumeError, match="that run used a_col"):
        score_file(be, src, out, ["e"], "sentence2", "sentence1", resume=True)
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(ResumeError, match="the input file changed since that run \\(its modification time differ\\)"):
        score_file(be, src, out, ["e"], resume=True)


def test_a_bad_row_keeps_the_rows_before_it_and_the_manifest_says_where(tmp_path):
    from backend.files.batch import score_file
    from backend.files.stream import Manifest

    be = fake_backend(encoders={"e": vec})
    src = pairs_file(tmp_path / "in.csv", 60, extra={38: "a,b,c,d"})
    res = score_file(be, src, tmp_path / "out.csv", ["e"], chunk_rows=10).run(be)
    out = pd.read_csv(tmp_path / "out.csv")
    assert not res.complete and res.rows == 37 and len(out) == 37 and out["id"].tolist() == list(range(37))
    assert "line 39 has 4 comma-separated fields" in str(res.stopped)
    m = Manifest.load(tmp_path / "out.csv")
    assert m.stopped["line"] == 39 and m.stopped["rows"] == 37 and not m.complete
    with pytest.raises(ResumeError, match="stopped at a bad row"):
        score_file(be, src, tmp_path / "out.csv", ["e"], resume=True)


def test_a_model_that_fails_is_reported_and_not_retried(tmp_path):
    from backend.files.batch import score_file

    be = fake_backend(encoders={"e": vec}, broken=("gone",))
    src = pairs_file(tmp_path / "in.csv", 25)
    res = score_file(be, src, tmp_path / "out.csv", ["e", "gone"], chunk_rows=10).run(be)
    out = pd.read_csv(tmp_path / "out.csv")
    assert set(res.errors) == {"gone"} and out["score_gone"].isna().all() and out["score_e"].notna().all()
    assert out["warnings_gone"].str.startswith("failed: ").all()
