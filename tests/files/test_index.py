"""backend.files.index: exact search below a size, approximate above with its measured recall, built once and reused."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import fields

import numpy as np
import pytest

import backend.files.index as bi
from backend.files.index import (
    TARGET_RECALL,
    VectorIndex,
    _exact_topk,
    get_index,
    index_folder,
    saved_index_exists,
)
from backend.jobs import StopRequested
from backend.serving.cache import OFF_VALUES
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
    import backend.files.index as index

    monkeypatch.setattr(index, "have_faiss", lambda: False)
    x = clustered(3_000)
    idx = index.VectorIndex.build(x, kind="ivf")
    assert idx.info.kind == "exact" and idx.info.engine == "numpy" and "faiss is not installed" in idx.info.note
    assert recall_vs_exact(idx, x, x[:50]) == 1.0


def hashed(t: str) -> np.ndarray:
    import zlib

    return np.random.default_rng(zlib.crc32(t.encode())).normal(size=8)


def test_backend_search_keeps_the_exact_path_for_small_corpora_and_indexes_embedded_ones(tmp_path, monkeypatch):
    from backend.files.embed import CorpusMismatch, embed_texts

    monkeypatch.setenv("SIMDASH_CACHE_DIR", str(tmp_path))  # where an index of an unsaved corpus goes
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


# -------------------------------------------------------------------- saved indexes: verified before reuse
def unit(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    """Random unit vectors (no clusters: the hardest case for IVF, so its recall needs a high nprobe)."""
    x = np.random.default_rng(seed).normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def saved(tmp_path, x: np.ndarray, corpus_id: str = "c1", config_id: str = "m:1"):
    """An IVF index of ``x`` saved beside ``tmp_path/c.parquet``: (get_index arguments, its three files)."""
    args = (np.ones(len(x), dtype=bool), config_id, corpus_id, tmp_path / "c.parquet")
    idx = get_index(x, *args, kind="ivf", exact_limit=1_000)
    assert idx.info.kind == "ivf" and not idx.info.reused and idx.info.recall_at_10 >= TARGET_RECALL
    base = tmp_path / "c.parquet.index" / f"{config_id.replace(':', '_')}-ivf"
    return args, [base.with_name(base.name + s) for s in (".faiss", ".ids.npy", ".json")]


def reload(x: np.ndarray, args) -> VectorIndex:
    return get_index(x, *args, kind="ivf", exact_limit=1_000)


def test_every_flipped_byte_of_a_saved_index_is_caught_and_the_index_rebuilt(tmp_path):
    x, q = unit(3_000), unit(200, seed=1)
    args, files = saved(tmp_path, x)
    pristine = {f: f.read_bytes() for f in files}
    assert reload(x, args).info.reused  # intact files pass: the checks do not refuse everything
    rng = np.random.default_rng(7)
    caught = 0
    for f in files:
        for pos in rng.choice(len(pristine[f]), size=20, replace=False):
            for g, data in pristine.items():
                g.write_bytes(data)
            damaged = bytearray(pristine[f])
            damaged[pos] ^= int(rng.integers(1, 256))
            f.write_bytes(bytes(damaged))
            assert VectorIndex.load(f.parent, f.name.split(".")[0]) is None, (f.name, pos)
            idx = reload(x, args)
            assert not idx.info.reused, (f.name, pos)
            assert "the saved index failed its checksum (" in idx.info.note
            assert idx.info.note.endswith(", rebuilt")
            assert idx.info.describe().endswith(f"; {idx.info.note}")  # the page shows why
            assert idx.info.recall_at_10 >= TARGET_RECALL and recall_vs_exact(idx, x, q) >= 0.9
            caught += 1
    assert caught == 60
    assert reload(x, args).info.reused  # the last rebuild was saved over the damaged files


def test_a_saved_index_that_does_not_fit_the_vectors_is_refused_and_rebuilt(tmp_path):
    faiss = pytest.importorskip("faiss")
    x, q = unit(3_000), unit(200, seed=1)
    # 1. Intact files (checksums pass) built over other vectors of the same shape, under the same ids.
    args, files = saved(tmp_path, unit(3_000, seed=5))
    idx = reload(x, args)
    m = re.search(r"does not fit these vectors \(recall@10 (\d\.\d+) vs exact on 64 sampled", idx.info.note)
    assert not idx.info.reused and m and float(m.group(1)) <= 0.1 and idx.info.note.endswith(", rebuilt")
    assert recall_vs_exact(idx, x, q) >= 0.9
    assert reload(x, args).info.reused  # the rebuilt one was saved, and fits

    # 2. An index damaged in memory (4 KB flipped in its stored vectors) and then saved: its checksums are
    #    right, its answers are not (cosines in the thousands, as the review found).
    good = reload(x, args)
    raw = faiss.serialize_index(good.index)
    raw[200_000:204_096] ^= 0xFF  # inside the inverted lists' vectors, past the header and the centroids
    bad = VectorIndex(faiss.deserialize_index(raw), good.ids, good.info)
    bad.index.nprobe = good.index.nprobe
    bad.save(files[0].parent, "m_1-ivf")
    assert VectorIndex.load(files[0].parent, "m_1-ivf") is not None  # integrity alone does not see it
    idx = reload(x, args)
    m = re.search(r"returns scores up to ([\d.e+,]+) where a cosine is at most 1, rebuilt", idx.info.note)
    assert not idx.info.reused and m and float(m.group(1).replace(",", "")) > 1.5
    assert recall_vs_exact(idx, x, q) >= 0.9

    # 3. Its own vectors, but a recall it does not have (nprobe 1 while the sidecar says 0.97): every sampled
    #    row still finds itself at the top, which was all the check before this one asked.
    good = reload(x, args)
    good.index.nprobe = 1
    good.info.params = {**good.info.params, "nprobe": 1}
    good.save(files[0].parent, "m_1-ivf")
    top = good.search(x[:64], 10)
    assert (top[1][:, 0] == np.arange(64)).all() and (top[0][:, 0] > 0.999).all()
    idx = reload(x, args)
    m = re.search(r"recall@10 (\d\.\d+) vs exact", idx.info.note)
    assert not idx.info.reused and m and float(m.group(1)) < good.info.recall_at_10 - 0.1


def test_a_hand_edited_or_cut_sidecar_is_refused_not_an_error(tmp_path):
    x = unit(3_000)
    args, (_, ids_file, sidecar) = saved(tmp_path, x)
    folder, name = sidecar.parent, "m_1-ivf"
    text = sidecar.read_text()
    obj = json.loads(text)
    body = {k: obj[k] for k in ("format", "info", "files")}
    assert set(bi._INFO_TYPES) == {f.name for f in fields(bi.IndexInfo)}  # every saved field is validated

    def resigned(**info) -> str:
        b = {**body, "info": {**body["info"], **info}}
        return bi._dump({**b, "sha256": bi._digest(b)})

    no_n = {**body, "info": {k: v for k, v in body["info"].items() if k != "n"}}
    cases = {
        "cut short": (text[: len(text) // 2], "is not valid JSON"),
        "a value edited": (text.replace('"n": 3000', '"n": 2999'), "changed since it was saved"),
        "reformatted": (json.dumps(obj), "is not the text that was saved"),
        "a count as text, re-signed": (resigned(n="3000"), "info n is str, not int"),
        "a bool for a count, re-signed": (resigned(dim=True), "info dim is bool, not int"),
        "a recall above 1, re-signed": (resigned(recall_at_10=1.5), "values out of range"),
        "a field missing, re-signed": (bi._dump({**no_n, "sha256": bi._digest(no_n)}), "fields of IndexInfo"),
        "an older version's sidecar": (json.dumps(body["info"]), "has no checksum"),
        "not an object": ("[1, 2]", "does not have the fields"),
    }
    for case, (content, why) in cases.items():
        sidecar.write_text(content)
        found, reason = VectorIndex.load_checked(folder, name)
        assert found is None and reason and why in reason, case
        idx = reload(x, args)
        assert not idx.info.reused and why in idx.info.note and idx.info.note.endswith(", rebuilt"), case
    ids_file.unlink()
    idx = reload(x, args)
    assert not idx.info.reused and "the saved index cannot be read" in idx.info.note
    assert reload(x, args).info.reused and reload(x, args).info.note == ""  # the reason is not saved with it


def test_with_the_persistent_cache_off_indexes_are_not_saved_in_the_cache_or_the_working_folder(tmp_path,
                                                                                                 monkeypatch):
    x, valid = unit(3_000), np.ones(3_000, dtype=bool)
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("SIMDASH_CACHE_DIR", str(cache))
    for off in [*sorted(OFF_VALUES), "OFF", " Memory "]:
        monkeypatch.setenv("SIMDASH_CACHE", off)
        assert index_folder(None, "c1") is None, off
    monkeypatch.setenv("SIMDASH_CACHE", "0")
    for _ in range(2):
        idx = get_index(x, valid, "m:1", "c1", None, kind="ivf", exact_limit=1_000)
        assert idx.info.kind == "ivf" and not idx.info.reused and idx.info.path is None
        assert "not saved: the persistent cache is off" in idx.info.note
    assert not saved_index_exists("m:1", "c1", None, "ivf")
    assert list(work.iterdir()) == [] and not (work / "0").exists() and not cache.exists()
    # Beside a corpus file in a writable folder it is still saved (and reused), cache or not.
    corpus = tmp_path / "corpus.parquet"
    assert not get_index(x, valid, "m:1", "c1", corpus, kind="ivf", exact_limit=1_000).info.reused
    assert get_index(x, valid, "m:1", "c1", corpus, kind="ivf", exact_limit=1_000).info.reused
    # With the cache on, an index without a corpus file goes to the cache folder, under a plain folder name.
    monkeypatch.setenv("SIMDASH_CACHE", "1")
    assert index_folder(None, "../../up") == cache / "index" / "_.._up"
    a = get_index(x, valid, "m:1", "c1", None, kind="ivf", exact_limit=1_000)
    assert a.info.path == str(cache / "index" / "c1" / "m_1-ivf.faiss") and saved_index_exists("m:1", "c1")
    assert get_index(x, valid, "m:1", "c1", None, kind="ivf", exact_limit=1_000).info.reused
    assert list(work.iterdir()) == []


def test_saving_uses_temporary_names_of_its_own_and_leaves_none_behind(tmp_path, monkeypatch):
    x = unit(3_000)
    idx = VectorIndex.build(x, kind="ivf")
    folder = tmp_path / "idx"
    folder.mkdir()
    # A file planted at the name the old code wrote to is neither written through nor removed.
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep me")
    (folder / "a.faiss.tmp").symlink_to(outside)
    stale, fresh = folder / ".a.faiss.1-dead.tmp", folder / ".a.faiss.2-beef.tmp"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(stale, (day_ago, day_ago))
    moved = []
    real_replace = os.replace

    def spy(src, dst):
        moved.append((os.path.basename(src), os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(bi.os, "replace", spy)
    idx.save(folder, "a")
    idx.save(folder, "a")
    temps = [s for s, _ in moved]
    assert [d for _, d in moved] == ["a.faiss", "a.ids.npy", "a.json"] * 2  # the sidecar last
    assert len(set(temps)) == 6 and all(re.fullmatch(r"\.a\.(faiss|ids\.npy|json)\.\d+-[0-9a-f]{8}\.tmp", t)
                                        for t in temps)
    assert outside.read_bytes() == b"keep me" and (folder / "a.faiss.tmp").is_symlink()
    assert not stale.exists() and fresh.exists()  # a day-old leftover of a killed save goes, not a young one
    fresh.unlink()
    before = {p.name: p.read_bytes() for p in folder.iterdir() if not p.is_symlink()}

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bi.np, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        idx.save(folder, "a")
    after = {p.name: p.read_bytes() for p in folder.iterdir() if not p.is_symlink()}
    assert after == before  # no temporary file left, the saved set untouched
    assert VectorIndex.load(folder, "a") is not None
    monkeypatch.setattr(bi.np, "save", disk_full)
    got = get_index(x, np.ones(3_000, dtype=bool), "m:2", "c", tmp_path / "c.parquet", kind="ivf",
                    exact_limit=1_000)
    assert "not saved (" in got.info.note and "No space left" in got.info.note and got.info.kind == "ivf"


def test_configuration_ids_with_a_dot_get_files_of_their_own(tmp_path):
    x, valid = unit(3_000), np.ones(3_000, dtype=bool)
    corpus = tmp_path / "c.parquet"
    for cfg in ("gte-v1.5:aaa", "gte-v1.5:bbb"):
        assert not get_index(x, valid, cfg, "c1", corpus, kind="ivf", exact_limit=1_000).info.reused
    for cfg in ("gte-v1.5:aaa", "gte-v1.5:bbb"):
        assert get_index(x, valid, cfg, "c1", corpus, kind="ivf", exact_limit=1_000).info.reused
    assert sorted(p.name for p in (tmp_path / "c.parquet.index").glob("*.faiss")) == [
        "gte-v1.5_aaa-ivf.faiss", "gte-v1.5_bbb-ivf.faiss"]


def test_a_saved_index_with_rows_left_out_is_reused_only_for_the_same_rows(tmp_path):
    x = unit(4_000)
    valid = np.random.default_rng(3).random(4_000) > 0.3  # 30% without a vector (their rows hold numbers)
    args = (valid, "m:1", "c1", tmp_path / "c.parquet")
    first = get_index(x, *args, kind="ivf", exact_limit=1_000)
    assert first.info.n == valid.sum() and not first.info.reused
    again = get_index(x, *args, kind="ivf", exact_limit=1_000)
    # Reused: the check searched exactly over the rows with a vector only (with the others its recall would
    # have measured about 0.7 and refused the index).
    assert again.info.reused and again.info.note == ""
    rows = again.search(x[:50], 10)[1]
    assert valid[rows[rows >= 0]].all()
    fewer = valid.copy()
    fewer[np.flatnonzero(valid)[:5]] = False  # five more texts lost their vector
    idx = get_index(x, fewer, "m:1", "c1", tmp_path / "c.parquet", kind="ivf", exact_limit=1_000)
    assert not idx.info.reused and idx.info.n == fewer.sum()
    assert "covers other rows than the corpus has vectors for, rebuilt" in idx.info.note
