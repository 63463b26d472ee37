"""word2vec training: co-occurring words end up closer, progress per epoch, cancellation, session models."""

from __future__ import annotations

import time

import numpy as np
import pytest
from gensim.models import KeyedVectors

from backend.files.io import TableError
from backend.w2v.train import (
    BackgroundJob,
    Word2VecConfig,
    corpus_language,
    nearest_words,
    read_corpus,
    register_session_model,
    train_word2vec,
    word2vec_job,
    word2vec_text_bytes,
)

GROUP_A = [f"alpha{i}" for i in range(10)]
GROUP_B = [f"beta{i}" for i in range(10)]
SMALL = Word2VecConfig(vector_size=16, window=3, min_count=1, epochs=5, seed=7)


def two_topic_corpus(n: int = 1500, seed: int = 0) -> list[str]:
    """Sentences drawn from one of two disjoint vocabularies: alpha words never co-occur with beta words."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        group = GROUP_A if i % 2 == 0 else GROUP_B
        out.append(" ".join(rng.choice(group, size=8)))
    return out


@pytest.fixture(scope="module")
def trained():
    return train_word2vec(two_topic_corpus(), SMALL)


def test_cooccurring_words_are_closer_than_never_cooccurring(trained):
    kv = trained.kv
    within = np.mean([kv.similarity(a, b) for a in GROUP_A for b in GROUP_A if a != b])
    across = np.mean([kv.similarity(a, b) for a in GROUP_A for b in GROUP_B])
    assert within > across + 0.3
    # and word by word: each alpha word's nearest neighbour is an alpha word
    for w in GROUP_A:
        assert nearest_words(kv, w, 1)[0][0].startswith("alpha")
    assert nearest_words(kv, "unknownword") == []


def test_progress_every_epoch_and_metadata(trained):
    seen = []
    r = train_word2vec(two_topic_corpus(200), SMALL, progress=lambda e, t, m: seen.append((e, t, m["loss"])))
    assert [(e, t) for e, t, _ in seen] == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    assert all(loss > 0 for _, _, loss in seen)
    assert r.epochs_done == 5 and not r.stopped and len(r.history) == 5
    assert trained.language == "en" and trained.vocabulary == 20 and trained.sentences == 1500
    assert trained.tokens == 1500 * 8


def test_same_seed_same_vectors():
    a = train_word2vec(two_topic_corpus(300), SMALL).kv
    b = train_word2vec(two_topic_corpus(300), SMALL).kv
    assert np.array_equal(a.vectors, b.vectors)


def test_cancel_keeps_completed_epochs():
    epochs = []
    r = train_word2vec(two_topic_corpus(300), SMALL, progress=lambda e, t, m: epochs.append(e),
                       should_stop=lambda: len(epochs) >= 2)
    assert r.stopped and r.epochs_done == 2 and epochs == [1, 2]
    assert r.kv.vectors.shape == (20, 16)
    r0 = train_word2vec(two_topic_corpus(300), SMALL, should_stop=lambda: True)
    assert r0.stopped and r0.epochs_done == 0


def test_min_count_too_high_and_empty_corpus():
    with pytest.raises(ValueError, match="min_count"):
        train_word2vec(["one two three"], Word2VecConfig(min_count=5))
    with pytest.raises(ValueError, match="no words"):
        train_word2vec(["!!!", "..."], SMALL)


def test_chinese_corpus_is_segmented_like_the_w2v_family():
    texts = ["我喜欢喝咖啡", "他每天早上喝咖啡", "我们一起去公园散步", "公园里有很多人散步"] * 20
    assert corpus_language(texts) == "zh"
    r = train_word2vec(texts, SMALL)
    # jieba words, as backend.text.tokenize gives them at inference
    assert r.language == "zh" and {"公园", "散步", "喜欢"} <= set(r.kv.key_to_index)
    rc = train_word2vec(texts, Word2VecConfig(vector_size=8, min_count=1, epochs=1, chinese="char"))
    assert "咖" in rc.kv.key_to_index


def test_download_round_trips_in_word2vec_text_format(trained, tmp_path):
    data = word2vec_text_bytes(trained.kv)
    assert data.splitlines()[0] == b"20 16"
    (tmp_path / "v.txt").write_bytes(data)
    kv = KeyedVectors.load_word2vec_format(str(tmp_path / "v.txt"), binary=False)
    assert np.allclose(kv["alpha3"], trained.kv["alpha3"], atol=1e-5)


def test_read_corpus_lines_and_columns():
    assert read_corpus(b"first line\n\nsecond line\n", name="c.txt") == ["first line", "second line"]
    csv = b"id,body\n1,a long text about cats\n2,another long text\n"
    assert read_corpus(csv) == ["a long text about cats", "another long text"]
    assert read_corpus(csv, column="id") == ["1", "2"]
    with pytest.raises(TableError, match="'nope' not found"):
        read_corpus(csv, column="nope")


@pytest.mark.slow
def test_session_model_joins_the_comparison(trained, tmp_path):
    from backend.serving import Backend

    be = Backend(device="cpu")
    spec = register_session_model(be, trained, session="abc", folder=tmp_path)
    assert spec.key.startswith("w2v-abc-") and spec.key in be.registry and not spec.default
    assert spec.family == "w2v" and spec.options["format"] == "word2vec"
    a = " ".join(GROUP_A[:4])
    r = be.similarity([a, a, "zzz"], [" ".join(GROUP_A[4:8]), " ".join(GROUP_B[:4]), a], [spec.key])[spec.key]
    assert r.error is None
    assert r.scores[0] > r.scores[1] + 0.3
    assert np.isnan(r.scores[2])  # every word unknown: no score, with a warning
    assert r.warnings[2]
    spec2 = register_session_model(be, trained, weighting="sif", session="abc", folder=tmp_path / "2")
    assert spec2.key != spec.key and be.score_pairs(spec2.key, [a], [a]).scores[0] == pytest.approx(1.0)


def test_background_job_progress_cancel_and_failure():
    job = word2vec_job(two_topic_corpus(200), SMALL).start()
    job.join(60)
    st = job.state()
    assert st.status == "done" and st.fraction == 1.0 and len(st.history) == 5
    assert st.result.epochs_done == 5 and st.error is None

    def slow(job: BackgroundJob) -> int:
        for i in range(1000):
            if job.should_stop():
                raise RuntimeError("stopped")
            job.report(i / 1000, f"step {i}")
            time.sleep(0.005)
        return 1

    j2 = BackgroundJob(slow, "slow").start()
    time.sleep(0.05)
    assert j2.running
    j2.cancel()
    j2.join(10)
    assert j2.state().status == "cancelled" and not j2.running

    def broken(job: BackgroundJob) -> None:
        raise ValueError("bad corpus")

    j3 = BackgroundJob(broken).start()
    j3.join(10)
    assert j3.state().status == "failed" and "bad corpus" in j3.state().error
    with pytest.raises(RuntimeError):
        j3.start()
