"""A persistent vector cache shared by the server, the command line and the dashboard.

The in-memory LRU of :class:`~backend.serving.Backend` is the first level; this is the second: an SQLite file
(``vectors.sqlite`` in ``$SIMDASH_CACHE_DIR``, default ``~/.cache/simdash``) that survives restarts and is
shared by every process on the machine. A restarted server, or the CLI scoring a file the dashboard already
saw, reads vectors instead of recomputing them.

* **Key**: the first 16 bytes of SHA-256 of (model configuration id, text) — the configuration id
  (:attr:`~backend.base.SentenceModel.config_id`) changes with the weights' source and every option, so a
  changed model never reads another's vectors. Pair scores (ESIM) are stored under (configuration id, a, b).
* **Value**: float32 little-endian bytes, a valid flag and the warnings as JSON text; nothing is pickled,
  so reading the cache never runs code.
* **Crash safety**: every write is one SQLite transaction in WAL mode, so a process killed mid-write leaves
  each entry either absent or complete (tests/serving/test_cache.py kills writers with SIGKILL to check it). A row
  that does not decode is treated as absent; a file that is not a database is moved aside
  (``vectors.sqlite.broken-<time>``, kept for inspection, the newest :data:`KEEP_BROKEN` sets only) and
  started afresh.
* **Bounded**: past ``max_bytes`` (``SIMDASH_CACHE_SIZE_MB``, default 1024) the least recently *stored*
  entries are dropped, 10% at a time (diskcache's default policy; tracking reads would turn reads into writes).
* **Never in the way**: a read-only folder, a locked or broken database turns the cache off (one warning in
  the log) or skips a write; scoring goes on without it.

``SIMDASH_CACHE=0`` (or ``memory``, ``off``: :func:`persistent_cache_off`) turns the persistent level off, and
with it the saving of search indexes in the cache folder (:mod:`backend.files.index`); :func:`open_store` reads the
settings, :func:`default_dir` the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from backend.paths import OFF_VALUES, default_dir, persistent_cache_off

log = logging.getLogger(__name__)

#: bump when the table layout changes: an older file is then moved aside rather than misread.
SCHEMA = 1
FILE_NAME = "vectors.sqlite"
#: 1 GiB holds about 600,000 384-d vectors.
DEFAULT_MAX_MB = 1024
#: unreadable files moved aside are kept for inspection, but only the newest few sets: a disk that keeps
#: corrupting the cache would otherwise fill up with copies of it.
KEEP_BROKEN = 2
#: a moved-aside file: its time stamp, then nothing (the database) or its -wal/-shm.
_BROKEN = re.compile(re.escape(FILE_NAME) + r"\.broken-(\d+)(-wal|-shm)?")

Entry = tuple[np.ndarray, bool, list[str]]
"""``(vector float32 (d,), valid, warnings)``: what the backend caches per text (a pair score is a 1-vector)."""


def entry_key(config_id: str, *texts: str) -> bytes:
    """16-byte key of (configuration id, text) or (configuration id, text a, text b)."""
    h = hashlib.sha256(config_id.encode("utf-8"))
    for t in texts:
        h.update(b"\x1f")
        h.update(t.encode("utf-8", "surrogatepass"))
    return h.digest()[:16]


class VectorStore:
    """Vectors (and pair scores) on disk, keyed by :func:`entry_key`.

    Parameters
    ----------
    folder : str or Path
        Created if missing; the database is ``folder/vectors.sqlite``.
    max_bytes : int, optional
        Bound on the stored data (default ``SIMDASH_CACHE_SIZE_MB`` MiB, else 1 GiB).

    Notes
    -----
    Thread-safe (one connection behind a lock) and process-safe (SQLite's locking; a write that cannot get the
    lock within 5 s is skipped, not waited for).
    """

    def __init__(self, folder: str | os.PathLike, max_bytes: int | None = None) -> None:
        self.folder = Path(folder).expanduser()
        if max_bytes is None:
            max_bytes = int(float(os.environ.get("SIMDASH_CACHE_SIZE_MB") or DEFAULT_MAX_MB) * 2**20)
        self.max_bytes = int(max_bytes)
        self.path = self.folder / FILE_NAME
        self._lock = threading.Lock()
        self._written = 0
        #: why the store turned itself off (None while it works).
        self.disabled: str | None = None
        self.stats = {"hits": 0, "misses": 0, "writes": 0, "skipped_writes": 0, "evicted": 0}
        self._db: sqlite3.Connection | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._db = self._open()
        except (OSError, sqlite3.Error) as exc:
            self._disable(f"cannot open {self.path}: {exc}")

    # ------------------------------------------------------------------------------------------ opening
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False, isolation_level=None)
        # WAL: readers never block the writer, and a killed writer leaves the last committed state.
        # synchronous=NORMAL is durable against a process crash (what we test); a power cut may lose the last
        # transactions but does not corrupt the file.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute(
            "CREATE TABLE IF NOT EXISTS entries (key BLOB PRIMARY KEY, model TEXT NOT NULL, vec BLOB NOT NULL, "
            "valid INTEGER NOT NULL, warnings TEXT NOT NULL, stored REAL NOT NULL) WITHOUT ROWID"
        )
        db.execute("CREATE INDEX IF NOT EXISTS entries_stored ON entries(stored)")
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA),))
        row = db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        if row is None or row[0] != str(SCHEMA):
            db.close()
            raise sqlite3.DatabaseError(f"schema {row[0] if row else '?'} is not {SCHEMA}")
        return db

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise
            # Not a database, or another layout: keep the file for inspection, start a fresh one.
            stamp, taken = int(time.time()), self._broken_sets()
            while stamp in taken:  # a name of its own, also when two files break within a second
                stamp += 1
            aside = self.path.with_name(f"{FILE_NAME}.broken-{stamp}")
            log.warning("vector cache %s is unreadable (%s); moved to %s", self.path, exc, aside.name)
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.path) + suffix)
                if p.exists():
                    p.replace(Path(str(aside) + suffix))
            self._drop_old_broken(keep=stamp)
            return self._connect()

    def _broken_sets(self) -> dict[int, list[Path]]:
        """The files moved aside so far, by their time stamp (a set is the file and its -wal/-shm)."""
        sets: dict[int, list[Path]] = {}
        with contextlib.suppress(OSError):
            for p in self.folder.iterdir():
                m = _BROKEN.fullmatch(p.name)
                if m:
                    sets.setdefault(int(m.group(1)), []).append(p)
        return sets

    def _drop_old_broken(self, keep: int) -> None:
        """Delete all but the newest :data:`KEEP_BROKEN` sets of moved-aside files (set ``keep``, the one just
        moved aside, always stays: a clock set back must not delete it in favour of older ones)."""
        sets = self._broken_sets()
        kept = {keep, *sorted(sets.keys() - {keep}, reverse=True)[: KEEP_BROKEN - 1]}
        for stamp in sets.keys() - kept:
            for p in sets[stamp]:
                try:
                    p.unlink()
                except OSError as exc:  # another process removed it first, or a read-only folder: let it be
                    log.debug("could not remove %s: %s", p, exc)

    def _disable(self, why: str) -> None:
        if self.disabled is None:
            log.warning("persistent vector cache off: %s", why)
        self.disabled = why
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    # -------------------------------------------------------------------------------------- reads/writes
    def get_many(self, keys: Sequence[bytes]) -> list[Entry | None]:
        """The stored entry per key, None where absent (or undecodable)."""
        out: list[Entry | None] = [None] * len(keys)
        if self._db is None or not keys:
            return out
        pos: dict[bytes, list[int]] = {}
        for i, k in enumerate(keys):
            pos.setdefault(k, []).append(i)
        uniq = list(pos)
        try:
            with self._lock:
                # 500 per statement: SQLite's default limit on bound parameters is 999 on old builds.
                for s in range(0, len(uniq), 500):
                    part = uniq[s : s + 500]
                    rows = self._db.execute(
                        f"SELECT key, vec, valid, warnings FROM entries WHERE key IN ({','.join('?' * len(part))})",
                        part,
                    ).fetchall()
                    for key, vec, valid, warnings in rows:
                        e = _decode(vec, valid, warnings)
                        for i in pos.get(bytes(key), ()):
                            out[i] = e
        except sqlite3.OperationalError as exc:
            log.debug("vector cache read skipped: %s", exc)  # locked for too long: a miss, not an error
        except sqlite3.Error as exc:
            self._disable(f"read failed: {exc}")
        found = sum(e is not None for e in out)
        self.stats["hits"] += found
        self.stats["misses"] += len(out) - found
        return out

    def put_many(self, items: Sequence[tuple[bytes, str, np.ndarray, bool, Sequence[str]]]) -> None:
        """Store ``(key, config id, vector, valid, warnings)`` rows in one transaction (replacing old ones)."""
        if self._db is None or not items:
            return
        now = time.time()
        rows = [(k, model, np.ascontiguousarray(v, dtype="<f4").tobytes(), int(bool(ok)),
                 json.dumps(list(w), ensure_ascii=False), now) for k, model, v, ok, w in items]
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?)", rows)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self.stats["writes"] += len(rows)
                self._written += sum(len(r[2]) + len(r[4]) + 40 for r in rows)
                # Check the size every ~1% of the bound written (a page-count query is cheap, not free).
                if self._written > max(self.max_bytes // 100, 1 << 16):
                    self._written = 0
                    self._evict()
        except sqlite3.OperationalError as exc:
            self.stats["skipped_writes"] += len(rows)
            log.debug("vector cache write skipped: %s", exc)
        except sqlite3.Error as exc:
            self._disable(f"write failed: {exc}")

    def _evict(self) -> None:
        """Drop the oldest-stored entries while the data is over the bound (10% of the rows at a time)."""
        assert self._db is not None
        while self.used_bytes_locked() > self.max_bytes:
            n = self._db.execute("SELECT count(*) FROM entries").fetchone()[0]
            if n == 0:
                return
            drop = max(1, n // 10)
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM entries WHERE key IN (SELECT key FROM entries ORDER BY stored LIMIT ?)",
                             (drop,))
            self._db.execute("COMMIT")
            self.stats["evicted"] += drop

    def used_bytes_locked(self) -> int:
        """Bytes of the file in use (pages not on the free list); call with the lock held."""
        assert self._db is not None
        page = self._db.execute("PRAGMA page_size").fetchone()[0]
        count = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        return int(page * (count - free))

    # ------------------------------------------------------------------------------------------- admin
    def clear(self, model: str | None = None) -> int:
        """Delete every entry (or those of one configuration id); returns how many."""
        if self._db is None:
            return 0
        try:
            with self._lock:
                if model is None:
                    cur = self._db.execute("DELETE FROM entries")
                else:
                    cur = self._db.execute("DELETE FROM entries WHERE model = ?", (model,))
                return int(cur.rowcount)
        except sqlite3.Error as exc:
            log.warning("vector cache not cleared: %s", exc)
            return 0

    def info(self) -> dict:
        """Where the cache is, how full, and its hit counts (for ``/health``, metrics and the Models page)."""
        out = {"path": str(self.path), "max_bytes": self.max_bytes, "disabled": self.disabled, **self.stats}
        if self._db is not None:
            try:
                with self._lock:
                    out["entries"] = int(self._db.execute("SELECT count(*) FROM entries").fetchone()[0])
                    out["bytes"] = self.used_bytes_locked()
            except sqlite3.Error as exc:
                out["error"] = str(exc)
        return out

    def close(self) -> None:
        """Close the database (the store then answers every read with a miss)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _decode(vec: bytes, valid: int, warnings: str) -> Entry | None:
    """A stored row as an entry; None when it does not decode (then it counts as absent)."""
    if not isinstance(vec, bytes) or len(vec) % 4 or not vec or valid not in (0, 1):
        return None
    try:
        w = json.loads(warnings)
    except (TypeError, ValueError):
        return None
    if not isinstance(w, list) or not all(isinstance(x, str) for x in w):
        return None
    return np.frombuffer(vec, dtype="<f4").astype(np.float32), bool(valid), w


def open_store(setting: str | os.PathLike | None = None) -> VectorStore | None:
    """The persistent store a :class:`~backend.serving.Backend` uses, from ``setting`` or the environment.

    Parameters
    ----------
    setting : str or Path, optional
        A folder; ``"memory"``, ``"0"``, ``"off"`` (:data:`OFF_VALUES`) for none. None reads ``SIMDASH_CACHE``
        (``0``/``memory``/... turn it off, :func:`persistent_cache_off`) and ``SIMDASH_CACHE_DIR``.

    Returns
    -------
    VectorStore or None
        None when the persistent level is off. A store that cannot open its folder is returned disabled
        (it says why in ``disabled``) rather than raising: the backend works without it.
    """
    if persistent_cache_off(setting):
        return None
    return VectorStore(default_dir() if setting is None else setting)


__all__ = ["KEEP_BROKEN", "OFF_VALUES", "Entry", "VectorStore", "default_dir", "entry_key", "open_store",
           "persistent_cache_off"]
