"""ESIM: the network's masks and alignment, the trainer, checkpoints, the dashboard adapter and the shipped weights."""

from __future__ import annotations

import csv
import math
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from scipy.stats import spearmanr

from backend.esim.model import ESIM, ESIMConfig, load_checkpoint, pad_batch, predict_ids
from backend.esim.train import read_pairs, train_esim
from backend.families.esim import ALL_UNKNOWN, ESIMModel
from backend.registry import PROJECT_ROOT, ModelSpec

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ESIM_EN = PROJECT_ROOT / "models" / "esim-en"
ESIM_ZH = PROJECT_ROOT / "models" / "esim-zh"


def spec_for(folder: Path, language: str = "en", key: str = "esim") -> ModelSpec:
    return ModelSpec(key=key, family="esim", label=key, source=f"path:{folder}", language=language)


def tiny_config(**kw) -> ESIMConfig:
    base = dict(vocab_size=40, embedding_dim=8, hidden_size=8, projection_dim=8, mlp_dim=8, dropout=0.0)
    base.update(kw)
    return ESIMConfig(**base)


# --------------------------------------------------------------------------------------------- toy data
WORDS = [f"w{i}" for i in range(60)]


def toy_pairs(n: int, seed: int) -> pd.DataFrame:
    """Sentence b is a copy of a with k of its words replaced; gold score = 5 * (1 - k / len)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        length = rng.randint(4, 9)
        a = [rng.choice(WORDS) for _ in range(length)]
        k = rng.randint(0, length)
        b = list(a)
        for j in rng.sample(range(length), k):
            b[j] = rng.choice(WORDS)
        rng.shuffle(b)
        rows.append({"sentence1": " ".join(a), "sentence2": " ".join(b), "score": round(5 * (1 - k / length), 2)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("esim-toy")
    seen = []
    result = train_esim(
        toy_pairs(400, 0), toy_pairs(100, 1), out, lang="en", epochs=6, seed=3, embeddings="random",
        progress=lambda e, total, m: seen.append((e, total, m)), min_count=1, patience=6, lr=3e-3,
        config=ESIMConfig(embedding_dim=16, hidden_size=16, projection_dim=16, mlp_dim=16, dropout=0.1),
    )
    return result, seen


@pytest.fixture(scope="session")
def toy_model(toy_run):
    return ESIMModel(spec_for(toy_run[0].out_dir), "cpu")


# ------------------------------------------------------------------------------------------- network
def test_forward_shapes_and_attention_masks():
    torch.manual_seed(0)
    net = ESIM(tiny_config()).eval()
    a_ids, a_len = pad_batch([[2, 3, 4], [5, 6, 7, 8, 9]])
    b_ids, b_len = pad_batch([[3, 4], [10, 11, 12, 13, 14, 15, 16]])
    out = net(a_ids, a_len, b_ids, b_len)
    assert out.logits.shape == (2,)
    assert out.attention.shape == (2, 5, 7)
    # Real rows sum to 1 over real columns; padded rows and columns carry no weight.
    assert torch.allclose(out.attention[0, :3, :2].sum(-1), torch.ones(3), atol=1e-6)
    assert float(out.attention[0, 3:].abs().sum().detach()) == 0.0
    assert float(out.attention[0, :, 2:].abs().sum().detach()) == 0.0
    assert net.sentence_vector(a_ids, a_len).shape == (2, 4 * 8)


def test_padding_does_not_change_scores_or_vectors():
    torch.manual_seed(1)
    net = ESIM(tiny_config(exact_match=True)).eval()
    a, b = [2, 3, 4], [4, 5]
    with torch.inference_mode():
        alone = net(*pad_batch([a]), *pad_batch([b])).logits[0]
        # The same pair next to much longer ones: 9 and 12 pad positions on its two sides.
        xa, la = pad_batch([a, list(range(2, 14))])
        xb, lb = pad_batch([b, list(range(2, 16))])
        batched = net(xa, la, xb, lb).logits[0]
        v_alone = net.sentence_vector(*pad_batch([a]))[0]
        v_batched = net.sentence_vector(*pad_batch([a, list(range(2, 30))]))[0]
    assert abs(float(alone - batched)) < 1e-5
    assert torch.allclose(v_alone, v_batched, atol=1e-5)


def test_predict_ids_restores_input_order():
    torch.manual_seed(2)
    net = ESIM(tiny_config()).eval()
    a = [[2], [3, 4, 5, 6, 7], [8, 9]]
    b = [[4, 5, 6], [7], [2, 3, 4, 5]]
    batched = predict_ids(net, a, b, batch_size=2)
    one_by_one = torch.cat([predict_ids(net, [x], [y]) for x, y in zip(a, b, strict=True)])
    assert torch.allclose(batched, one_by_one, atol=1e-6)
    assert ((batched >= 0) & (batched <= 1)).all()


# ------------------------------------------------------------------------------------------- training
def test_tiny_training_learns_toy_task(toy_run):
    result, seen = toy_run
    hist = result.history
    assert [e for e, _, _ in seen] == list(range(1, len(hist) + 1))
    assert seen[0][1] == 6
    assert hist[-1]["train_loss"] < 0.7 * hist[0]["train_loss"]
    # Chance is a Spearman of 0: the toy task is learnable from exact matches within a few epochs.
    assert result.best_metric > 0.6
    assert result.config.training["seed"] == 3
    assert result.seconds < 60


def test_training_is_deterministic(tmp_path):
    kw = dict(lang="en", epochs=1, seed=5, embeddings="random", min_count=1, config=tiny_config(vocab_size=2))
    r1 = train_esim(toy_pairs(120, 4), toy_pairs(40, 5), tmp_path / "a", **kw)
    r2 = train_esim(toy_pairs(120, 4), toy_pairs(40, 5), tmp_path / "b", **kw)
    # Compare tensors, not file bytes: safetensors writes its metadata map in a per-process hash order.
    wa, wb = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert r1.best_metric == r2.best_metric


def test_should_stop_keeps_a_checkpoint(tmp_path):
    result = train_esim(toy_pairs(100, 6), None, tmp_path / "s", epochs=5, embeddings="random", min_count=1,
                        config=tiny_config(vocab_size=2), should_stop=lambda: True)
    assert result.stopped
    assert (tmp_path / "s" / "model.safetensors").is_file()
    assert any("held out" in n for n in result.notes)


def test_binary_labels_train_on_accuracy(tmp_path):
    train, dev = toy_pairs(200, 10), toy_pairs(60, 11)
    train["score"] = (train["score"] >= 2.5).astype(int)
    dev["score"] = (dev["score"] >= 2.5).astype(int)
    result = train_esim(train, dev, tmp_path / "bin", epochs=3, embeddings="random", min_count=1, lr=3e-3,
                        config=tiny_config(vocab_size=2))
    assert result.config.objective == "binary" and result.config.label_max == 1.0
    assert "dev_accuracy" in result.history[0] and "dev_spearman" not in result.history[0]
    assert 0.0 <= result.best_metric <= 1.0


def test_bad_labels_name_the_rows(tmp_path):
    df = toy_pairs(8, 7)
    df["score"] = df["score"].astype(object)
    df.loc[2, "score"] = np.nan
    df.loc[5, "score"] = "high"
    with pytest.raises(ValueError, match=r"row\(s\) 3, 6"):
        read_pairs(df)
    df = toy_pairs(8, 7)
    df.loc[4, "score"] = 7.5
    with pytest.raises(ValueError, match=r"out of range in row\(s\) 5\b"):
        train_esim(df, None, tmp_path / "x", epochs=1, embeddings="random")


def test_label_kinds_are_detected(tmp_path):
    df = toy_pairs(6, 8)
    assert read_pairs(df).objective == "regression" and read_pairs(df).label_max == 5.0
    df["score"] = [0, 1, 1, 0, 1, 0]
    pairs = read_pairs(df)
    assert pairs.objective == "binary" and pairs.y.tolist() == [0, 1, 1, 0, 1, 0]
    df["score"] = [0.1, 0.9, 0.5, 0.0, 1.0, 0.3]
    assert read_pairs(df).label_max == 1.0
    # A TSV whose text holds raw double quotes (STS-B style) reads row for row.
    path = tmp_path / "pairs.tsv"
    path.write_text('sentence1\tsentence2\tscore\nhe said "hi\tshe said hi\t3.5\nx y\tz\t0\n', encoding="utf-8")
    pairs = read_pairs(path)
    assert pairs.a == ['he said "hi', "x y"]
    np.testing.assert_allclose(pairs.y, [0.7, 0.0], rtol=1e-6)


# ------------------------------------------------------------------------------------- checkpoints
def test_save_load_gives_identical_scores(toy_run, toy_model):
    df = toy_pairs(30, 9)
    net, vocab = load_checkpoint(toy_run[0].out_dir)
    a = [vocab.ids(vocab.tokenize(t)) for t in df.sentence1]
    b = [vocab.ids(vocab.tokenize(t)) for t in df.sentence2]
    direct = predict_ids(net, a, b).numpy()
    via_adapter = toy_model.score(df.sentence1.tolist(), df.sentence2.tolist())
    np.testing.assert_array_equal(direct, via_adapter)
    # Weights round-trip exactly through safetensors.
    again, _ = load_checkpoint(toy_run[0].out_dir)
    for (k, v), (_, w) in zip(net.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(v, w), k


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "vocab.txt"])
def test_missing_checkpoint_file_is_named(toy_run, tmp_path, name):
    folder = tmp_path / "ckpt"
    shutil.copytree(toy_run[0].out_dir, folder)
    (folder / name).unlink()
    with pytest.raises(FileNotFoundError, match=name.replace(".", r"\.")):
        ESIMModel(spec_for(folder), "cpu")


def test_mismatched_vocabulary_is_an_error(toy_run, tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(toy_run[0].out_dir, folder)
    with open(folder / "vocab.txt", "a", encoding="utf-8") as fh:
        fh.write("extra\n")
    with pytest.raises(ValueError, match=r"vocab\.txt"):
        ESIMModel(spec_for(folder), "cpu")


def test_missing_folder_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        ESIMModel(spec_for(tmp_path / "nowhere"), "cpu")


# ------------------------------------------------------------------------------------------ adapter
def test_adapter_edge_cases(toy_model):
    long = " ".join(["w1"] * (toy_model.max_tokens + 7))
    res = toy_model.score_detailed(["w1 w2 w3", "", "w1 w2", "qq zz", "!!!", long], ["w3 w2 w1", "w1", "   ", "w1 w2", "w1", "w1"])
    s = res.scores
    assert s.dtype == np.float32 and s.shape == (6,)
    assert 0.0 <= s[0] <= 1.0
    assert math.isnan(s[1]) and "A: empty text: no score" in res.warnings[1]
    assert math.isnan(s[2]) and "B: empty text: no score" in res.warnings[2]
    assert not math.isnan(s[3]) and f"A: {ALL_UNKNOWN}" in res.warnings[3]
    assert math.isnan(s[4]) and any("no words found" in w for w in res.warnings[4])
    assert not math.isnan(s[5])
    n, limit = toy_model.max_tokens + 7, toy_model.max_tokens
    assert any(f"A: truncated: {n} tokens > limit {limit}; only the first {limit} were read (cut after 'w1')" == w
               for w in res.warnings[5])


def test_adapter_encode_rerank_info(toy_model):
    v = toy_model.encode(["w1 w2 w3", "w4", ""])
    assert v.shape == (3, toy_model.dim) and toy_model.dim == 64
    np.testing.assert_allclose(np.linalg.norm(v[:2], axis=1), 1.0, atol=1e-5)
    assert not v[2].any()
    cands = ["w1 w2 w3", "w9 w8", "", "w3 w1"]
    ranked = toy_model.rank("w1 w2 w3", cands, return_documents=True)
    assert [r["corpus_id"] for r in ranked][-1] == 2 and math.isnan(ranked[-1]["score"])  # unscorable last
    want = toy_model.score(["w1 w2 w3"] * 3, ["w1 w2 w3", "w9 w8", "w3 w1"])
    got = {r["corpus_id"]: r["score"] for r in ranked}
    np.testing.assert_allclose([got[0], got[1], got[3]], want, atol=1e-6)
    assert [r["score"] for r in ranked[:3]] == sorted(want.tolist(), reverse=True)
    assert ranked[0]["text"] == cands[ranked[0]["corpus_id"]] and len(toy_model.rank("q", cands, top_k=2)) == 2
    info = toy_model.info()
    assert info["dim"] == 64 and info["vocabulary"] == len(toy_model.vocab)
    assert info["parameters"] > 0 and info["max_tokens"] == 64 and info["dtype"] == "fp32"
    assert "ESIM encoder vector" in info["vector"]


# ------------------------------------------------------------------------------------ shipped models
needs_en = pytest.mark.skipif(not (ESIM_EN / "model.safetensors").exists(), reason="models/esim-en not trained yet")
needs_zh = pytest.mark.skipif(not (ESIM_ZH / "model.safetensors").exists(), reason="models/esim-zh not trained yet")


@pytest.fixture(scope="module")
def esim_en():
    return ESIMModel(spec_for(ESIM_EN, "en"), "cpu")


@needs_en
def test_shipped_en_ranks_paraphrase_above_unrelated(esim_en):
    s = esim_en.score(["An old man strums a guitar on his porch."] * 2, ["On the porch, an elderly man plays the guitar.", "The chef chops onions for the soup."])
    assert s[0] > s[1] + 0.3
    r = esim_en.rank("An old man strums a guitar on his porch.", ["The stock market fell today.", "An elderly man plays guitar on the porch."])
    assert r[0]["corpus_id"] == 1


@needs_en
def test_shipped_en_alignment_of_identical_sentences_is_diagonal(esim_en):
    text = "A man is playing a guitar on the stage."
    al = esim_en.align(text, text)
    m = al["matrix"]
    assert al["tokens_a"] == al["tokens_b"] == ["a", "man", "is", "playing", "a", "guitar", "on", "the", "stage"]
    assert m.shape == (9, 9)
    np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-5)
    # Each content word attends most to itself ("a" occurs twice, so its rows may split between both).
    content = [1, 2, 3, 5, 8]
    assert all(int(np.argmax(m[i])) == i for i in content)
    assert float(np.mean(np.diag(m))) > 3 * float(np.mean(m[~np.eye(9, dtype=bool)]))
    assert al["score"] > 0.75


@needs_en
def test_shipped_en_info_and_size(esim_en):
    info = esim_en.info()
    assert info["dev_spearman"] >= 0.77 and info["vocabulary"] > 10_000
    total = sum(p.stat().st_size for p in ESIM_EN.iterdir())
    assert total <= 20 * 2**20


@needs_zh
def test_shipped_zh_ranks_paraphrase_above_unrelated():
    m = ESIMModel(spec_for(ESIM_ZH, "zh", "esim-zh"), "cpu")
    s = m.score(["一位老人坐在门廊上弹吉他。"] * 2, ["门廊上有位老人在弹吉他。", "厨师正在为汤切洋葱。"])
    assert s[0] > s[1] + 0.2
    assert sum(p.stat().st_size for p in ESIM_ZH.iterdir()) <= 20 * 2**20


@pytest.mark.slow
@needs_en
@pytest.mark.skipif(not (DATA / "stsb-en" / "dev.tsv").exists(), reason="shared STS-B data not present")
def test_shipped_en_dev_spearman_floor(esim_en):
    dev = pd.read_csv(DATA / "stsb-en" / "dev.tsv", sep="\t", quoting=csv.QUOTE_NONE)
    s = esim_en.score(dev.sentence1.tolist(), dev.sentence2.tolist())
    assert not np.isnan(s).any()
    rho = spearmanr(s, dev.score).statistic
    assert rho >= 0.77, rho


@pytest.mark.slow
@needs_zh
@pytest.mark.skipif(not (DATA / "stsb-zh" / "dev.tsv").exists(), reason="shared STS-B data not present")
def test_shipped_zh_dev_spearman_floor():
    m = ESIMModel(spec_for(ESIM_ZH, "zh", "esim-zh"), "cpu")
    dev = pd.read_csv(DATA / "stsb-zh" / "dev.tsv", sep="\t", quoting=csv.QUOTE_NONE)
    s = m.score(dev.sentence1.tolist(), dev.sentence2.tolist())
    rho = spearmanr(s[~np.isnan(s)], dev.score[~np.isnan(s)]).statistic
    assert rho >= 0.72, rho


# ------------------------------------------------------------------------------------------- resume
class _Killed(Exception):
    pass


def test_a_killed_run_resumes_to_the_same_weights(tmp_path):
    """Kill after epoch 2 of 4, resume: the weights equal an uninterrupted run's (seeded, one thread)."""
    from safetensors.torch import load_file

    kw = dict(lang="en", epochs=4, seed=5, embeddings="random", min_count=1, patience=9, lr=3e-3, threads=1,
              config=ESIMConfig(embedding_dim=16, hidden_size=16, projection_dim=16, mlp_dim=16, dropout=0.1))
    train, dev = toy_pairs(200, 0), toy_pairs(60, 1)
    whole = train_esim(train, dev, tmp_path / "whole", **kw)

    def kill(epoch, total, metrics):
        if epoch == 3:
            raise _Killed

    work = tmp_path / "part.ckpt"
    with pytest.raises(_Killed):
        train_esim(train, dev, tmp_path / "part", progress=kill, work_dir=work, **kw)
    assert (work / "resume.json").is_file()
    with pytest.raises(ValueError, match="other data or settings"):
        train_esim(train, dev, tmp_path / "part", work_dir=work, resume=True, **{**kw, "lr": 1e-3})
    resumed = train_esim(train, dev, tmp_path / "part", work_dir=work, resume=True, **kw)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert resumed.best_metric == pytest.approx(whole.best_metric, abs=1e-9)
    a = load_file(str(whole.out_dir / "model.safetensors"))
    b = load_file(str(resumed.out_dir / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not work.exists()  # a completed run removes its resumable state
    assert any("resumed after epoch 2" in n for n in resumed.notes)


def test_bad_rows_stop_with_the_row_or_are_skipped_and_counted():
    df = toy_pairs(30, 4)
    df["score"] = df["score"].astype(object)
    df.loc[3, "score"] = "n/a"
    df.loc[7, "sentence2"] = "  "
    with pytest.raises(ValueError, match=r"non-numeric 'score' in row\(s\) 4\b"):
        read_pairs(df)
    pairs = read_pairs(df, bad_rows="skip")
    assert len(pairs.a) == 28
    assert "skipped 2 of 30 rows" in pairs.notes[0] and "an empty text" in pairs.notes[0]


def test_negate_makes_the_opposite_or_returns_none():
    from backend.esim.train import negate

    assert negate("The film was good.", "en") == "The film was not good."
    assert negate("She does not like tea.", "en") == "She does like tea."
    assert negate("Dogs run.", "en") is None
    assert negate("订单已经发货了。", "zh") == "订单还没有发货了。"
    assert negate("他不是医生", "zh") == "他是医生"
    assert negate("今天天气很好", "zh") is None
