"""The persistent vector cache: round trips, restarts, bounds, broken files, SIGKILL mid-write, Backend use."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from backend.serving.cache import (
    FILE_NAME,
    KEEP_BROKEN,
    OFF_VALUES,
    VectorStore,
    entry_key,
    open_store,
    persistent_cache_off,
)
from tests.fakes import CALLS, fake_backend

REPO = Path(__file__).resolve().parents[2]


def vec(i: int, d: int = 16) -> np.ndarray:
    return np.arange(d, dtype=np.float32) + i


def test_round_trip_and_absent_keys(tmp_path):
    s = VectorStore(tmp_path)
    k1, k2, k3 = entry_key("m:1", "a"), entry_key("m:1", "b"), entry_key("m:1", "never stored")
    s.put_many([(k1, "m:1", vec(1), True, ["truncated: 300 word pieces > limit 256"]),
                (k2, "m:1", np.zeros(16, np.float32), False, ["empty text: no vector", "文本"])])
    got = s.get_many([k1, k3, k2, k1])
    assert got[1] is None
    np.testing.assert_array_equal(got[0][0], vec(1))
    assert got[0][1] is True and got[0][2] == ["truncated: 300 word pieces > limit 256"]
    assert got[2][1] is False and got[2][2] == ["empty text: no vector", "文本"]
    np.testing.assert_array_equal(got[3][0], vec(1))  # a key asked twice is answered twice
    assert s.stats["hits"] == 3 and s.stats["misses"] == 1


def test_keys_separate_models_texts_and_pairs():
    assert entry_key("bert:aaa", "x") != entry_key("bert:bbb", "x")
    assert entry_key("m", "ab", "c") != entry_key("m", "a", "bc")  # a separator between the texts
    assert entry_key("m", "x") != entry_key("m", "x", "")
    assert len(entry_key("m", "x")) == 16


def test_survives_a_restart(tmp_path):
    VectorStore(tmp_path).put_many([(entry_key("m", "t"), "m", vec(7), True, [])])
    again = VectorStore(tmp_path)
    np.testing.assert_array_equal(again.get_many([entry_key("m", "t")])[0][0], vec(7))


def test_bounded_size_drops_the_oldest(tmp_path):
    s = VectorStore(tmp_path, max_bytes=200_000)
    for i in range(60):
        s.put_many([(entry_key("m", f"{i}-{j}"), "m", vec(i, 384), True, []) for j in range(20)])
    info = s.info()
    assert info["bytes"] <= 200_000 + 70_000  # checked every ~1% of the bound written, pages round it up
    assert s.stats["evicted"] > 0 and info["entries"] < 1200
    assert s.get_many([entry_key("m", "0-0")])[0] is None  # the oldest went first
    assert s.get_many([entry_key("m", "59-19")])[0] is not None


def test_clear_all_or_one_model(tmp_path):
    s = VectorStore(tmp_path)
    s.put_many([(entry_key("a", "t"), "a", vec(1), True, []), (entry_key("b", "t"), "b", vec(2), True, [])])
    assert s.clear("a") == 1
    assert s.get_many([entry_key("a", "t"), entry_key("b", "t")])[0] is None
    assert s.clear() == 1 and s.info()["entries"] == 0


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path):
    (tmp_path / FILE_NAME).write_bytes(b"this is not sqlite" * 100)
    s = VectorStore(tmp_path)
    assert s.disabled is None
    s.put_many([(entry_key("m", "t"), "m", vec(1), True, [])])
    assert s.get_many([entry_key("m", "t")])[0] is not None
    assert list(tmp_path.glob(f"{FILE_NAME}.broken-*"))


def test_only_the_newest_broken_files_are_kept(tmp_path):
    def broken_sets() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for p in tmp_path.glob(f"{FILE_NAME}.broken-*"):
            stamp, _, suffix = p.name.removeprefix(f"{FILE_NAME}.broken-").partition("-")
            if stamp.isdigit():
                out.setdefault(stamp, []).append(suffix)
        return {k: sorted(v) for k, v in out.items()}

    # Three sets moved aside by earlier runs (their time stamps long past), one without its -shm.
    for stamp in ("1000", "2000", "3000"):
        for suffix in ("", "-wal", "-shm")[: 2 if stamp == "2000" else 3]:
            (tmp_path / f"{FILE_NAME}.broken-{stamp}{suffix}").write_bytes(b"old junk")
    (tmp_path / f"{FILE_NAME}.broken-notes.txt").write_text("mine")  # not a moved-aside set: left alone
    (tmp_path / "other.sqlite").write_text("not ours")
    made = []
    for round_ in range(3):  # within one second: each set still gets a name of its own
        for suffix in ("", "-wal"):
            (tmp_path / f"{FILE_NAME}{suffix}").write_bytes(b"this is not sqlite" * 100)
        s = VectorStore(tmp_path)
        assert s.disabled is None
        s.put_many([(entry_key("m", "t"), "m", vec(round_), True, [])])  # the fresh file works
        s.close()
        made.append(max(broken_sets(), key=int))
        assert len(broken_sets()) == KEEP_BROKEN == 2
    sets = broken_sets()
    assert sorted(sets, key=int) == made[-2:] and len(set(made)) == 3
    assert all({"", "wal"} <= set(v) for v in sets.values())  # kept whole (SQLite may have added a -shm)
    assert (tmp_path / f"{FILE_NAME}.broken-notes.txt").read_text() == "mine"
    assert (tmp_path / "other.sqlite").exists()
    assert VectorStore(tmp_path).get_many([entry_key("m", "t")])[0] is not None


def test_an_undecodable_row_counts_as_absent(tmp_path):
    s = VectorStore(tmp_path)
    db = sqlite3.connect(tmp_path / FILE_NAME)
    db.execute("INSERT INTO entries VALUES (?, 'm', ?, 1, '[]', 0)", (entry_key("m", "odd"), b"\x00\x01\x02"))
    db.execute("INSERT INTO entries VALUES (?, 'm', ?, 1, 'not json', 0)", (entry_key("m", "w"), vec(1).tobytes()))
    db.commit()
    db.close()
    assert s.get_many([entry_key("m", "odd"), entry_key("m", "w")]) == [None, None]


def test_an_unusable_folder_disables_the_cache_without_failing(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    s = VectorStore(blocker / "cache")
    assert s.disabled and "cannot open" in s.disabled
    s.put_many([(entry_key("m", "t"), "m", vec(1), True, [])])
    assert s.get_many([entry_key("m", "t")]) == [None]


def test_open_store_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMDASH_CACHE_DIR", str(tmp_path / "c"))
    assert open_store().path == tmp_path / "c" / FILE_NAME
    for off in ("0", "memory", "off"):
        monkeypatch.setenv("SIMDASH_CACHE", off)
        assert open_store() is None
    assert open_store("memory") is None
    assert open_store(tmp_path / "d").path.parent == tmp_path / "d"
    # One set of "off" words, shared with backend.files.index (which then saves no index in the cache folder).
    for off in [*OFF_VALUES, " OFF ", "Memory"]:
        assert persistent_cache_off(off)
        monkeypatch.setenv("SIMDASH_CACHE", off)
        assert persistent_cache_off() and open_store() is None
    for on in ("", "1", "on", str(tmp_path)):
        assert not persistent_cache_off(on)
        monkeypatch.setenv("SIMDASH_CACHE", on)
        assert not persistent_cache_off() and open_store().path == tmp_path / "c" / FILE_NAME


WRITER = textwrap.dedent("""
    import sys, numpy as np
    sys.path.insert(0, {repo!r})
    from backend.serving.cache import VectorStore, entry_key
    s = VectorStore({folder!r})
    i = 0
    while True:  # until killed: 200 rows per transaction, each row's content derived from its number
        rows = []
        for j in range(i, i + 200):
            v = np.full(64, j, dtype=np.float32)
            rows.append((entry_key("m", str(j)), "m", v, j % 2 == 0, [f"row {{j}}"] * (j % 3)))
        s.put_many(rows)
        i += 200
        print(i, flush=True)
""")


def test_sigkill_during_writes_leaves_every_entry_absent_or_complete(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(repo=str(REPO), folder=str(tmp_path / "c")))
    for round_ in range(3):
        p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
        # Let it commit a few transactions, then kill it wherever it is (likely inside one).
        for _ in range(3 + 2 * round_):
            assert p.stdout.readline(), "writer died on its own"
        os.kill(p.pid, signal.SIGKILL)
        p.wait(30)
        p.stdout.close()
    s = VectorStore(tmp_path / "c")
    db = sqlite3.connect(tmp_path / "c" / FILE_NAME)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    n = s.info()["entries"]
    assert n >= 600
    found = 0
    got = s.get_many([entry_key("m", str(j)) for j in range(n + 2000)])
    for j, e in enumerate(got):
        if e is None:
            continue
        found += 1
        v, ok, w = e
        assert v.shape == (64,) and (v == j).all()
        assert ok == (j % 2 == 0) and w == [f"row {j}"] * (j % 3)
    assert found == n


# ------------------------------------------------------------------------------------------ in Backend
def _enc(t: str) -> np.ndarray:
    return np.array([len(t), t.count("a"), 1, 0, 0, 0, 0, 1], dtype=np.float32)


def test_backend_reads_vectors_a_previous_process_stored(tmp_path):
    texts = ["banana bread", "a cat", "", "apple"]
    first = fake_backend({"enc_c": _enc}, cache_dir=tmp_path)
    v1 = first.embed("enc_c", texts)
    CALLS.clear()
    second = fake_backend({"enc_c": _enc}, cache_dir=tmp_path)  # a new process would see the same folder
    v2 = second.embed("enc_c", texts)
    assert [c for c in CALLS if c[0] == "enc_c"] == []  # nothing recomputed
    np.testing.assert_array_equal(v1.vectors, v2.vectors)
    assert v2.valid.tolist() == v1.valid.tolist() and v2.warnings == v1.warnings
    assert second.stats["vector_disk_hits"] == 4 and second.stats["vector_misses"] == 0
    # Another option value is another configuration: computed, not read.
    second.embed("enc_c", texts, options={"scale": 2.0})
    assert [c for c in CALLS if c[0] == "enc_c"] == [("enc_c", 3)]


def test_backend_persists_native_pair_scores(tmp_path):
    CALLS.clear()
    score = {"pair_c": lambda a, b: float("nan") if a == "nothing" else len(a) / 10}
    fake_backend(scorers=score, cache_dir=tmp_path).score_pairs("pair_c", ["abc", "nothing", ""], ["x", "y", "z"])
    r = fake_backend(scorers=score, cache_dir=tmp_path).score_pairs("pair_c", ["abc", "nothing", ""], ["x", "y", "z"])
    assert [c for c in CALLS if c[0] == "pair_c"] == [("pair_c", 2)]  # the second backend computed nothing
    assert r.scores[0] == pytest.approx(0.3) and np.isnan(r.scores[1]) and np.isnan(r.scores[2])
    assert r.warnings[1] == ["A: nothing to read: no score"]


def test_clear_cache_empties_the_persistent_level(tmp_path):
    be = fake_backend({"enc_d": _enc}, cache_dir=tmp_path)
    be.embed("enc_d", ["x"])
    be.clear_cache(persistent=False)
    be.embed("enc_d", ["x"])
    assert be.stats["vector_disk_hits"] == 1
    be.clear_cache()
    assert be.store.info()["entries"] == 0
    assert be.cache_info()["persistent"]["path"].startswith(str(tmp_path))


def test_tests_use_a_temporary_cache_folder():
    from backend.serving.cache import default_dir

    assert "simdash-test-cache-" in str(default_dir())
