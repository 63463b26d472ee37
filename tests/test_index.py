"""backend.index: exact search below a size, approximate above with its measured recall, built once and reused."""

from __future__ import annotations

import numpy as np
import pytest

from backend.index import VectorIndex, _exact_topk, get_index
from backend.jobs import StopRequested
from tests.fakes import fake_backend


def clustered(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    """Unit vectors around 50 centres (nearest neighbours mean something, as with real sentence vectors)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, d))
    x = centres[rng.integers(0, 50, n)] + rng.normal(scale=0.7, size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def recall_vs_exact(idx: VectorIndex, x: np.ndarray, q: np.ndarray) -> float:
    _, truth = _exact_topk(x, q, 10)
    _, got = idx.search(q, 10)
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth.tolist(), got.tolist(), strict=True)]))


def test_exact_search_is_brute_force_and_skips_rows_without_a_vector():
    x = clustered(500)
    valid = np.ones(500, dtype=bool)
    valid[[3, 10]] = False
    idx = VectorIndex.build(x, valid)
    assert idx.info.kind == "exact" and idx.info.n == 498 and idx.info.recall_at_10 is None
    scores, rows = idx.search(x[:5], 7)
    sims = x[:5] @ x.T
    sims[:, ~valid] = -np.inf
    np.testing.assert_array_equal(rows, np.argsort(-sims, axis=1, kind="stable")[:, :7])
    np.testing.assert_allclose(scores, np.sort(sims, axis=1)[:, ::-1][:, :7], rtol=1e-5)
    assert 3 not in rows and 10 not in rows
    s, r = VectorIndex.build(x[:4]).search(x[:1], 6)  # fewer vectors than k: padded
    assert r[0, 4:].tolist() == [-1, -1] and np.isnan(s[0, 4:]).all()
    assert "exact search over 498 vectors" in idx.info.describe()


@pytest.mark.parametrize("kind, knob", [("ivf", "nprobe"), ("hnsw", "efSearch")])
def test_an_approximate_index_reaches_its_recall_target_and_says_so(kind, knob):
    both = clustered(6_300)
    x, q = both[:6_000], both[6_000:]
    seen = []
    idx = VectorIndex.build(x, kind=kind, target_recall=0.95, progress=lambda d, t: seen.append((d, t)))
    info = idx.info
    assert info.kind == kind and info.recall_at_10 >= 0.95 and info.recall_queries == 200 and knob in info.params
    assert seen[-1] == (6_000, 6_000) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    # the measured recall holds on queries it was not tuned on
    assert recall_vs_exact(idx, x, q) >= 0.9
    line = info.describe()
    assert line.startswith(f"approximate search ({kind.upper()}, {knob} ") and f"recall@10 {info.recall_at_10:.2f} vs exact" in line


def test_auto_switches_to_ivf_above_the_exact_limit_and_refuses_to_approximate_tiny_corpora():
    x = clustered(3_000)
    assert VectorIndex.build(x, exact_limit=2_000).info.kind == "ivf"
    assert VectorIndex.build(x, exact_limit=5_000).info.kind == "exact"
    assert VectorIndex.build(x[:500], kind="ivf").info.kind == "exact"


def test_building_can_be_stopped():
    x = clustered(120_000, d=8)
    calls = [0]

    def stop() -> bool:
        calls[0] += 1
        return calls[0] > 2

    with pytest.raises(StopRequested):
        VectorIndex.build(x, kind="ivf", should_stop=stop, nlist=64)


def test_an_index_is_saved_beside_the_corpus_and_reused(tmp_path):
    x = clustered(4_000)
    valid = np.ones(4_000, dtype=bool)
    corpus = tmp_path / "c.parquet"
    a = get_index(x, valid, "m:123", "corpus1", corpus, exact_limit=1_000)
    assert a.info.kind == "ivf" and not a.info.reused and (tmp_path / "c.parquet.index" / "m_123-ivf.faiss").exists()
    b = get_index(x, valid, "m:123", "corpus1", corpus, exact_limit=1_000)
    assert b.info.reused and b.info.params == a.info.params and b.info.recall_at_10 == a.info.recall_at_10
    np.testing.assert_array_equal(a.search(x[:20], 10)[1], b.search(x[:20], 10)[1])
    c = get_index(x, valid, "m:123", "corpus2", corpus, exact_limit=1_000)  # another corpus: rebuilt
    assert not c.info.reused
    y = clustered(4_000, seed=3)  # other vectors under the same ids (weights changed in place): not trusted
    assert not get_index(y, valid, "m:123", "corpus2", corpus, exact_limit=1_000).info.reused


def test_without_faiss_search_is_exact_and_says_why(monkeypatch):
    import backend.index as index

    monkeypatch.setattr(index, "have_faiss", lambda: False)
    x = clustered(3_000)
    idx = index.VectorIndex.build(x, kind="ivf")
    assert idx.info.kind == "exact" and idx.info.engine == "numpy" and "faiss is not installed" in idx.info.note
    assert recall_vs_exact(idx, x, x[:50]) == 1.0


def hashed(t: str) -> np.ndarray:
    import zlib

    return np.random.default_rng(zlib.crc32(t.encode())).normal(size=8)


def test_backend_search_keeps_the_exact_path_for_small_corpora_and_indexes_embedded_ones(tmp_path, monkeypatch):
    from backend.embed import CorpusMismatch, embed_texts

    monkeypatch.setenv("SIMDASH_CACHE", str(tmp_path))
    be = fake_backend(encoders={"h": hashed})
    corpus = [f"doc {i}" for i in range(3_000)] + [""]
    small = be.search("h", ["doc 5", "doc 77"], corpus[:200], k=5)
    ref = be.neighbours("h", ["doc 5", "doc 77"], corpus[:200], k=5)
    np.testing.assert_array_equal(small.indices, ref.indices)
    assert small.search.kind == "exact" and small.indices[0, 0] == 5

    ec = embed_texts(be, "h", corpus)
    nb = be.search("h", ["doc 5", "doc 2999", ""], ec, k=10, kind="ivf")
    assert nb.search.kind == "ivf" and nb.search.n == 3_000 and nb.search.recall_at_10 >= 0.95
    assert nb.indices[0, 0] == 5 and nb.indices[1, 0] == 2999 and nb.scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert (nb.indices[2] == -1).all() and "empty text" in nb.warnings[2][0]
    assert be.build_index("h", ec, kind="ivf") is be.build_index("h", ec, kind="ivf")  # built once per process
    with pytest.raises(CorpusMismatch, match=r"embedded with h scale 1\.0; the selected model has scale 2\.0"):
        be.search("h", ["doc 5"], ec, options={"scale": 2.0})
