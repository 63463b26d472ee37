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
    assert out.loc[1, "score_sbert"] > 0.7 and pd.isna(out.loc[2, "score_w2v"])
    assert out.loc[0, "sentence1"] == "猫在睡觉"
    # the Chinese pair goes to each family's Chinese member, which finds the paraphrase similar
    assert out["scored_by_sbert"].tolist() == ["sbert-zh", "sbert", "sbert"]
    assert out["scored_by_w2v"].tolist() == ["w2v-zh", "w2v", "w2v"]
    assert out.loc[0, "score_w2v"] > 0.7 and out.loc[0, "score_sbert"] > 0.7
    # every empty score says why
    assert "A: empty text" in out.loc[2, "warnings_w2v"]
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


# A `python -m backend score` process whose model blocks on its fourth scoring call until it is killed: the kill
# lands mid-run at a known place, with no timing involved.
GATED_CLI = """
import os, sys, time
import numpy as np
from backend.families import register_family
from tests.fakes import FakeEncoder, TEXT_VECTORS

class Gated(FakeEncoder):
    seen = 0
    def _encode(self, texts, *args):
        # Texts, not calls: the backend may hand a chunk over in several batches. Each chunk of 300 pairs holds
        # 600 distinct texts, so the first text past 1,800 is in the fourth chunk.
        Gated.seen += len(texts)
        if Gated.seen > 1800 and os.environ.get("GATE"):
            open(os.environ["GATE"], "w").close()
            time.sleep(600)
        return super()._encode(texts, *args)

TEXT_VECTORS["g"] = lambda t: np.array([len(t), t.count("1"), t.count("2"), 1, 0, 0, 0, 0], dtype=np.float32)
register_family("gated", Gated)
from backend.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_score_killed_mid_run_resumes_with_no_row_lost_or_repeated(tmp_path):
    import os
    import signal
    import time

    reg = tmp_path / "registry.toml"
    reg.write_text('[models.g]\nfamily = "gated"\nlabel = "G"\nsource = "path:nowhere"\n', encoding="utf-8")
    n = 2_000
    src = tmp_path / "in.csv"
    src.write_text("sentence1,sentence2,id\n" + "".join(f"row {i} a,row {i * 7} b,{i}\n" for i in range(n)), encoding="utf-8")
    out, gate = tmp_path / "out.csv", tmp_path / "gate"
    env = {**os.environ, "SIMDASH_REGISTRY": str(reg), "GATE": str(gate)}
    args = [sys.executable, "-c", GATED_CLI, "score", str(src), str(out), "--models", "g", "--chunk-rows", "300", "--quiet"]
    proc = subprocess.Popen(args, cwd=REPO, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300  # a bound on a hang only: the kill waits for the gate, not a clock
        while not gate.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gate.exists(), proc.stderr.read().decode() if proc.poll() is not None else "gate never reached"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    progress = json.loads((tmp_path / "out.csv.progress.json").read_text())
    assert progress["done"]["rows"] == 900 and not progress["complete"]  # three chunks were finished
    assert not out.exists() and len(pd.read_csv(tmp_path / "out.csv.partial")) == 900  # OUT appears when whole
    env.pop("GATE")
    p = subprocess.run([*args, "--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "resuming after row 900" in p.stderr and f"{n} rows (1100 in this run)" in p.stderr
    back = pd.read_csv(out)
    assert len(back) == n and back["id"].tolist() == list(range(n))  # none lost, none twice, in order
    assert not (tmp_path / "out.csv.partial").exists()
    assert back["score_g"].notna().all()


def test_score_bad_row_cli_message_and_exit_code(tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text("sentence1,sentence2\na cat,a dog\n\"open quote,x\nmore,text\n", encoding="utf-8")
    dst = tmp_path / "out.csv"
    assert main(["score", str(src), str(dst), "--models", "w2v", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "line 3: a quoted cell opens here and is never closed" in err and "the output has the 1 row before it" in err
    assert len(pd.read_csv(dst)) == 1
