"""Fine-tuning a bi-encoder on labelled pairs: it learns, saves a model the sbert family serves, prints only its
registry table on stdout, refuses a pair scorer as base and an existing folder, and resumes a stopped run."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import numpy as np
import pandas as pd
import pytest

from backend.finetune.bi import bi_scores, train_bi_encoder
from backend.finetune.data import read_labelled
from backend.jobs import StopRequested
from tests.conftest import REPO

pytest.importorskip("datasets")
BASE = "package:embedding/m3e-small"

DATA = REPO / "backend" / "data"


def labelled() -> pd.DataFrame:
    """Our FAQ set as labelled pairs: each user question with its FAQ (5) and with the FAQ it shares the most
    characters with among the others (0): near misses, which an untrained encoder ranks too high."""
    faq = pd.read_csv(DATA / "faq_zh_corpus.csv")
    questions = pd.read_csv(DATA / "faq_zh_questions.csv")
    text = dict(zip(faq["intent"], faq["text"], strict=True))
    rows = []
    for q, intent in zip(questions["query"], questions["intent"], strict=True):
        others = [t for k, t in text.items() if k != intent]
        near = max(others, key=lambda t: len(set(t) & set(q)))
        rows += [(q, text[intent], 5), (q, near, 0)]
    return pd.DataFrame(rows, columns=["sentence1", "sentence2", "score"])


def test_fine_tuning_separates_paraphrases_from_unrelated_pairs_better(tmp_path):
    data = read_labelled(labelled())
    out = tmp_path / "ft"
    from sentence_transformers import SentenceTransformer

    from backend.registry import resolve_source

    base = bi_scores(SentenceTransformer(resolve_source(BASE), device="cpu", local_files_only=True), data)
    res = train_bi_encoder(data, data, out, BASE, epochs=2, lr=5e-5, batch_size=16, threads=2)
    assert res.before["auc"] < 99 and res.after["auc"] > res.before["auc"] + 1
    assert res.after["spearman"] > res.before["spearman"]
    s = bi_scores(SentenceTransformer(str(out), device="cpu", local_files_only=True), data)
    gap = lambda x: x[data.y == 1].mean() - x[data.y == 0].mean()  # noqa: E731
    assert gap(s) > gap(base) + 0.05
    assert (out / "simdash_finetune.json").is_file() and not (tmp_path / "ft.ckpt").exists()
    with pytest.raises(FileExistsError, match="--overwrite"):
        train_bi_encoder(data, data, out, BASE, epochs=1)


def test_a_stopped_run_resumes_to_the_end(tmp_path):
    data = read_labelled(labelled())
    out = tmp_path / "ft"
    calls = {"n": 0}

    def stop_after_first_half() -> bool:
        calls["n"] += 1
        return calls["n"] > 4

    with pytest.raises(StopRequested, match="--resume"):
        train_bi_encoder(data, data, out, BASE, epochs=2, batch_size=32, should_stop=stop_after_first_half)
    assert (tmp_path / "ft.ckpt").is_dir()
    with pytest.raises(ValueError, match="other settings"):
        train_bi_encoder(data, data, out, BASE, epochs=3, batch_size=32, resume=True)
    res = train_bi_encoder(data, data, out, BASE, epochs=2, batch_size=32, resume=True)
    assert res.history[-1]["epoch"] == pytest.approx(2.0) and np.isfinite(res.after["spearman"])


def test_the_cli_prints_only_a_registry_table_that_makes_the_model_usable(tmp_path):
    train = tmp_path / "pairs.csv"
    labelled().to_csv(train, index=False)
    out = tmp_path / "model"
    proc = subprocess.run([sys.executable, "-m", "backend", "finetune", "--kind", "bi", "--base", "sbert-zh",
                           "--train", str(train), "--holdout", "0.25", "--out", str(out), "--key", "faq-zh",
                           "--quiet"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr
    table = tomllib.loads(proc.stdout)["models"]["faq-zh"]
    assert table["family"] == "sbert" and table["language"] == "zh" and table["research_only"] is True
    assert table["source"] == f"path:{out.resolve()}"
    registry = tmp_path / "registry.toml"
    registry.write_text(proc.stdout, encoding="utf-8")
    pair = subprocess.run([sys.executable, "-m", "backend", "pair", "花呗怎么换卡", "花呗绑定的银行卡怎么改",
                           "--models", "faq-zh", "--json"], capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**__import__("os").environ, "SIMDASH_REGISTRY": str(registry)})
    assert pair.returncode == 0, pair.stderr
    assert '"faq-zh"' in pair.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--base", "cross-zh"], "scores pairs only"),
    (["--base", "w2v"], "has no transformer"),
])
def test_a_base_without_an_encoder_is_refused(tmp_path, args, message):
    train = tmp_path / "pairs.csv"
    labelled().to_csv(train, index=False)
    proc = subprocess.run([sys.executable, "-m", "backend", "finetune", "--kind", "bi", *args, "--train", str(train),
                           "--out", str(tmp_path / "m")], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""
