from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from backend.cli import main
from tests.conftest import REPO


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_pair_json_contract():
    p = run_cli("pair", "The chef chops onions for the soup.", "A cook is cutting onions for a soup.", "--models", "w2v,bert,sbert", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert list(out) == ["w2v", "bert", "sbert"]
    for v in out.values():
        assert set(v) >= {"score", "warnings"} and 0.3 < v["score"] <= 1.0 and v["warnings"] == []


def test_pair_text_output_and_no_score(capsys):
    assert main(["pair", "qzxv blorp", "a cat", "--models", "w2v"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("w2v") and "n/a" in line and "no known words" in line


def test_unknown_model_is_a_clear_error(capsys):
    assert main(["pair", "a", "b", "--models", "w2v,nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("models, message", [
    ("bert:layer=99", "option 'layer' must be within -7..6, not 99"),
    ("bert:pooling=median", "option 'pooling' must be one of 'mean', 'cls', 'max', 'first_last_avg'"),
    ("w2v:colour=red", "unknown option 'colour'"),
    ("sbert:max_tokens=64", "option 'max_tokens' is set when the model loads"),
    ("bert:layer", "use key:option=value"),
])
def test_bad_model_options_are_refused_before_any_work(capsys, models, message):
    for cmd in (["pair", "a", "b"], ["evaluate", "missing.csv"]):
        assert main([*cmd, "--models", models]) == 2
        assert message in capsys.readouterr().err


def test_score_refuses_an_output_folder_that_does_not_exist(tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text("sentence1,sentence2\na,b\n", encoding="utf-8")
    assert main(["score", str(src), str(tmp_path / "nowhere" / "out.csv"), "--models", "w2v"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gbk"])
def test_score_csv_roundtrip(tmp_path, capsys, encoding):
    src = tmp_path / "in.csv"
    df = pd.DataFrame({"sentence1": ["猫在睡觉", "A dog runs", ""], "sentence2": ["一只猫在睡觉", "A dog is running", "x"], "id": [1, 2, 3]})
    src.write_bytes(df.to_csv(index=False).encode(encoding))
    dst = tmp_path / "out.csv"
    assert main(["score", str(src), str(dst), "--models", "w2v,sbert", "--quiet"]) == 0
    out = pd.read_csv(dst)
    assert list(out.columns) == ["sentence1", "sentence2", "id", "score_w2v", "scored_by_w2v", "warnings_w2v",
                                 "score_sbert", "scored_by_sbert", "warnings_sbert"]
    assert out.loc[1, "score_sbert"] > 0.7 and pd.isna(out.loc[2, "score_w2v"]) and pd.isna(out.loc[0, "score_w2v"])
    assert out.loc[0, "sentence1"] == "猫在睡觉"
    # every empty score says why, and which model answered
    assert "A: empty text" in out.loc[2, "warnings_w2v"] and "Chinese" in out.loc[0, "warnings_w2v"]
    assert out["scored_by_sbert"].tolist() == ["sbert-zh", "sbert", "sbert"]  # the Chinese pair: the Chinese model
    err = capsys.readouterr().err
    assert "wrote" in err and "rows without a score" in err


def test_score_tsv_with_explicit_columns_and_missing_column(tmp_path, capsys):
    src = tmp_path / "in.tsv"
    src.write_text('q\tc\tlabel\nHe said "hi\tshe said hello\t1\n', encoding="utf-8")
    dst = tmp_path / "out.csv"
    assert main(["score", str(src), str(dst), "--models", "w2v", "--a-col", "q", "--b-col", "c", "--quiet"]) == 0
    assert pd.read_csv(dst)["score_w2v"].notna().all()
    assert main(["score", str(src), str(dst), "--a-col", "sentence1", "--b-col", "c"]) == 2
    assert "the file has: 'q', 'c', 'label'" in capsys.readouterr().err
