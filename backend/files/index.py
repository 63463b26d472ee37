"""Nearest-neighbour search over large corpora: exact below a size, approximate (faiss IVF) above, with its recall.

The Neighbours page ranks a corpus by cosine similarity to each query. Below :data:`EXACT_LIMIT` vectors that is
one matrix product (exact, and fast enough: ~25 ms a query over 100,000 x 384 on a 2-core CPU). Above it,
:class:`VectorIndex` builds a faiss **IVF** index (inverted lists over k-means cells; a query scans the
``nprobe`` nearest cells). We measured HNSW too (``bench/bench_knn.py``): it answers faster at equal recall, but
building it took 4x longer than IVF on 200,000 x 384 on our CPU (about 15 minutes for a million), and a page
waiting on an index build is the worse trade. ``kind="hnsw"`` builds one anyway.

An approximate index is only useful with an honest number beside it: at build time :meth:`VectorIndex.build`
samples queries from the corpus, finds their true top-10 by exact search, and raises ``nprobe`` until
recall@10 reaches :data:`TARGET_RECALL`; the achieved recall is in :attr:`IndexInfo.recall_at_10`, so the page
can say "approximate search, recall@10 0.97 vs exact".

Indexes are saved beside an embedded-corpus file (``corpus.parquet.index/``) or else in the cache folder
(:func:`backend.paths.default_dir`; not there when ``SIMDASH_CACHE=0`` turns the persistent cache off), keyed
by the corpus id and the model configuration, and reused only after two checks, because a damaged index does
not fail, it answers wrongly (one with 4 KB flipped loaded, reported cosines up to 7,960, recall@10 0.3):

* **Integrity**: :meth:`VectorIndex.save` writes each file under a unique temporary name and moves it into
  place (``os.replace``); the ``.json`` sidecar, written last, records the size and SHA-256 of the ``.faiss``
  and ``.ids.npy`` files and a SHA-256 of its own content. :meth:`VectorIndex.load_checked` refuses a sidecar
  that is not byte for byte what was written or whose fields have the wrong types, and recomputes both
  digests *before* faiss parses a byte of the index (its reader trusts the file).
* **Fitness for these vectors**: the index must cover exactly the rows that have a vector now, and
  :data:`VERIFY_QUERIES` sampled rows searched through it must reach a recall@10 against exact search on the
  *current* vectors within :data:`VERIFY_MARGIN` of the saved figure, every score equal (within
  :data:`SCORE_TOL`) to the inner product of the vectors, so never above 1. Weights changed under the same
  configuration id, or another corpus saved under the same id, fail this.

An index that fails either is rebuilt, and :attr:`IndexInfo.note` says why (``the saved index failed its
checksum (...), rebuilt``). Without faiss (``pip install faiss-cpu``) every search is exact (numpy), and the
note says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from backend.base import ProgressFn
from backend.jobs import StopRequested
from backend.paths import default_dir, persistent_cache_off, temp_beside

#: below this many vectors search is exact: a query costs n x d multiply-adds (~25 ms at 100,000 x 384 here).
EXACT_LIMIT = 200_000
#: the recall@10 against exact search that an approximate index is tuned to reach on the sampled queries.
TARGET_RECALL = 0.95
#: queries sampled from the corpus to measure recall at build time (their exact top-10 costs a few seconds at 1M).
RECALL_QUERIES = 200
#: vectors added to an index per step (progress and cancellation happen between steps).
ADD_BATCH = 50_000
Kind = Literal["auto", "exact", "ivf", "hnsw"]
#: rows sampled when a saved index is reused, searched through it and exactly (64 exact top-10s over 1M x 384
#: cost about a second here, little beside a rebuild; fewer make the recall estimate noisy).
VERIFY_QUERIES = 64
#: how far the recall@10 measured on those rows may fall below the saved figure before the index is refused
#: (a 64-row estimate near 0.95 varies by about 0.02; a damaged or foreign index measures 0.0-0.4).
VERIFY_MARGIN = 0.1
#: seed of the rows sampled on reuse; not the build's seed, whose rows are the ones the index was tuned on.
VERIFY_SEED = 1
#: float32 rounding allowed between a score an index returns and the inner product recomputed from vectors.
SCORE_TOL = 1e-3
#: layout of the saved ``.json`` sidecar: a sidecar in another layout is rebuilt, not misread.
SAVE_FORMAT = 1
#: a saved index older than this that is still under a temporary name was left by a killed save.
STALE_TEMP_SECONDS = 24 * 3600


def have_faiss() -> bool:
    """True when faiss is importable."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class IndexInfo:
    """How a corpus is searched, for the page to show.

    Attributes
    ----------
    kind : {"exact", "ivf", "hnsw"}
    n, dim : int
        Indexed vectors (rows with a vector) and their dimension.
    build_seconds : float
    recall_at_10 : float or None
        Recall@10 against exact search on ``recall_queries`` sampled corpus rows (None for exact search).
    params : dict
        ``nlist``/``nprobe`` (IVF) or ``M``/``efSearch`` (HNSW).
    engine : {"faiss", "numpy"}
    config_id, corpus_id : str
        What the index was built on.
    path : str or None
        Where it is saved.
    reused : bool
        Loaded from disk instead of built.
    note : str
    """

    kind: str
    n: int
    dim: int
    build_seconds: float = 0.0
    recall_at_10: float | None = None
    recall_queries: int = 0
    params: dict = field(default_factory=dict)
    engine: str = "faiss"
    config_id: str = ""
    corpus_id: str = ""
    path: str | None = None
    reused: bool = False
    note: str = ""

    def describe(self) -> str:
        """One line: ``approximate search (IVF, nprobe 16), recall@10 0.97 vs exact on 200 sampled queries``
        (then ``; `` and the note, if any: a rebuilt or unsaved index says why)."""
        if self.kind == "exact":
            return f"exact search over {self.n:,} vectors" + (f" ({self.note})" if self.note else "")
        p = ", ".join(f"{k} {v}" for k, v in self.params.items() if k in ("nprobe", "efSearch"))
        rec = f"recall@10 {self.recall_at_10:.2f} vs exact on {self.recall_queries} sampled queries"
        return f"approximate search ({self.kind.upper()}, {p}) over {self.n:,} vectors, {rec}" + (
            f"; {self.note}" if self.note else "")


def _recall_at_10(got: np.ndarray, truth: np.ndarray, rows: np.ndarray) -> float:
    """Mean share of each query row's exact top-10 that ``got`` found, the row itself left out of both.

    ``got`` and ``truth`` are (m, 11) index positions (an extra column, as the row finds itself); ``rows`` are
    the query rows' own positions.
    """
    per_row = []
    for g, t, i in zip(got, truth, rows, strict=True):
        want = set(t[(t != i) & (t >= 0)].tolist()[:10])
        per_row.append(len(set(g[g != i].tolist()[:10]) & want) / max(len(want), 1))
    return float(np.mean(per_row)) if per_row else 1.0


def _exact_topk(corpus: np.ndarray, queries: np.ndarray, k: int, block: int = 65_536,
                exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner products (numpy, corpus in blocks so memory stays bounded); ``-1``/``-inf`` pad.

    ``exclude`` (bool per corpus row) leaves rows out without copying the corpus without them.
    """
    m = len(queries)
    k_eff = min(k, len(corpus))
    best_s = np.full((m, k), -np.inf, dtype=np.float32)
    best_i = np.full((m, k), -1, dtype=np.int64)
    if k_eff == 0:
        return best_s, best_i
    for s in range(0, len(corpus), block):
        sims = queries @ corpus[s : s + block].T
        if exclude is not None:
            sims[:, exclude[s : s + block]] = -np.inf
        kk = min(k_eff, sims.shape[1])
        part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        cand_s = np.concatenate([best_s, np.take_along_axis(sims, part, 1)], axis=1)
        cand_i = np.concatenate([best_i, part + s], axis=1)
        order = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, order, 1), np.take_along_axis(cand_i, order, 1)
    if exclude is not None:
        best_i[best_s == -np.inf] = -1  # an excluded row that filled a place pads, as a missing one does
    return best_s, best_i


class VectorIndex:
    """Top-k inner-product search over one corpus's unit vectors (cosine), exact or approximate.

    Build with :meth:`build`; rows without a vector are left out (``ids`` maps index positions to corpus rows).
    """

    def __init__(self, index, ids: np.ndarray, info: IndexInfo, vectors: np.ndarray | None = None) -> None:
        self.index, self.ids, self.info, self._vectors = index, ids, info, vectors

    # ------------------------------------------------------------------------------------------ build
    @classmethod
    def build(
        cls, vectors: np.ndarray, valid: np.ndarray | None = None, kind: Kind = "auto", *,
        exact_limit: int = EXACT_LIMIT, target_recall: float = TARGET_RECALL, seed: int = 0,
        progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
        nlist: int | None = None, recall_queries: int = RECALL_QUERIES,
    ) -> VectorIndex:
        """Build an index over ``vectors[valid]``.

        Parameters
        ----------
        vectors : np.ndarray, shape (n, d), float32
            Unit rows.
        valid : np.ndarray of bool, optional
            Rows that have a vector (default: all).
        kind : {"auto", "exact", "ivf", "hnsw"}
            ``auto``: exact below ``exact_limit`` vectors, IVF above.
        target_recall : float
            An approximate index searches more cells (IVF ``nprobe``) or a longer list (HNSW ``efSearch``)
            until recall@10 on the sampled queries reaches this.
        progress : callable, optional
            ``progress(done, total)`` in vectors added (training is one uninterruptible step at the start).
        should_stop : callable, optional
            Checked between steps; raises :class:`~backend.jobs.StopRequested`.
        nlist : int, optional
            IVF cells (default: about the square root of n, a scan of ``nprobe`` cells then costs
            ``nprobe * sqrt(n)`` vectors).
        """
        t0 = time.perf_counter()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.flatnonzero(valid) if valid is not None else np.arange(len(vectors))
        x = vectors[ids] if len(ids) != len(vectors) else vectors
        n, d = x.shape if x.ndim == 2 else (0, 0)
        if kind == "auto":
            kind = "exact" if n < exact_limit else "ivf"
        if kind != "exact" and n < 1_000:
            kind = "exact"  # nothing to gain below a thousand vectors
        if not have_faiss():
            info = IndexInfo("exact", n, d, engine="numpy",
                             note="faiss is not installed, so search is exact (pip install faiss-cpu)" if kind != "exact" else "")
            return cls(None, ids, info, x)
        import faiss

        def check() -> None:
            if should_stop is not None and should_stop():
                raise StopRequested("index build stopped")

        def add(index) -> None:
            for s in range(0, n, ADD_BATCH):
                check()
                index.add(x[s : s + ADD_BATCH])
                if progress is not None:
                    progress(min(s + ADD_BATCH, n), n)

        if kind == "exact":
            index = faiss.IndexFlatIP(d)
            add(index)
            return cls(index, ids, IndexInfo("exact", n, d, time.perf_counter() - t0))
        rng = np.random.default_rng(seed)
        if kind == "ivf":
            nlist = int(nlist or max(16, round(np.sqrt(n))))
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.niter = 15  # k-means iterations: past ~15 the cells barely move and training time grows
            index.cp.seed = seed
            train = x[np.sort(rng.choice(n, size=min(n, 40 * nlist), replace=False))]
            check()
            if progress is not None:
                progress(0, n)
            index.train(train)
            add(index)
            params, knob, values = {"nlist": nlist}, "nprobe", (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 40
            add(index)
            params, knob, values = {"M": 32}, "efSearch", (16, 32, 64, 128, 256, 512)
        else:
            raise ValueError(f"kind must be 'auto', 'exact', 'ivf' or 'hnsw', not {kind!r}")
        # Tune the search knob on sampled corpus rows against their exact top-10 (the row itself left out).
        nq = min(recall_queries, n)
        qi = np.sort(rng.choice(n, size=nq, replace=False))
        _, truth = _exact_topk(x, x[qi], 11)
        recall = 0.0
        for v in values:
            check()
            _set_knob(index, knob, v)
            _, got = index.search(x[qi], 11)
            recall = _recall_at_10(got, truth, qi)
            params[knob] = v
            if recall >= target_recall:
                break
        info = IndexInfo(kind, n, d, time.perf_counter() - t0, round(recall, 4), nq, params)
        if recall < target_recall:
            info.note = f"recall@10 stays below {target_recall} even at {knob} {params[knob]}"
        return cls(index, ids, info)

    # ----------------------------------------------------------------------------------------- search
    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` corpus rows for each query row, best first.

        Returns
        -------
        scores : np.ndarray, shape (m, k), float32
            Inner products (cosines of unit rows); NaN pads.
        rows : np.ndarray, shape (m, k), int64
            Corpus row indices; ``-1`` pads (fewer than ``k`` vectors, or an IVF scan that found fewer).
        """
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self.index is None:
            s, i = _exact_topk(self._vectors, q, k)
        else:
            s, i = self.index.search(q, k)
        ok = (i >= 0) & np.isfinite(s) & (s > -1e30)
        rows = np.where(ok, self.ids[np.clip(i, 0, max(len(self.ids) - 1, 0))] if len(self.ids) else -1, -1)
        return np.where(ok, s, np.nan).astype(np.float32), rows.astype(np.int64)

    # ---------------------------------------------------------------------------------------- storage
    def save(self, folder: str | Path, name: str) -> Path:
        """Write ``name.faiss``, ``name.ids.npy`` and ``name.json`` to ``folder`` (approximate indexes only).

        Each file is written under a temporary name of its own and moved into place with ``os.replace``, the
        ``.json`` sidecar last: it records the size and SHA-256 of the other two and a SHA-256 of its own
        content, which :meth:`load_checked` verifies. A crash, a full disk or two processes saving at once
        leave the old set, the new one, or a mix that fails those checks (then the index is rebuilt); never a
        half-written file that passes. (No fsync either, for the same reason: a file torn by a power cut fails
        its checksum.)

        Returns
        -------
        Path
            The ``.faiss`` file.

        Raises
        ------
        OSError
            The folder cannot be written; no temporary file is left behind.
        ValueError
            A numpy (no faiss) index: it is rebuilt from the vectors, there is nothing to save.
        """
        import faiss

        if self.index is None:
            raise ValueError("only a faiss index is saved; search without faiss is exact, from the vectors")
        paths = _files(folder, name)
        paths["json"].parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(paths)
        tmp: dict[str, Path] = {}
        try:
            tmp["faiss"] = temp_beside(paths["faiss"])
            try:
                faiss.write_index(self.index, str(tmp["faiss"]))
            except RuntimeError as exc:  # faiss reports a full disk or an I/O error as a RuntimeError
                raise OSError(f"cannot write {paths['faiss']}: {exc}") from exc
            tmp["ids"] = temp_beside(paths["ids"])
            with open(tmp["ids"], "wb") as f:
                np.save(f, np.asarray(self.ids, dtype=np.int64), allow_pickle=False)
            files = {k: {"bytes": tmp[k].stat().st_size, "sha256": _sha256(tmp[k])} for k in ("faiss", "ids")}
            info = {**asdict(self.info), "path": str(paths["faiss"]), "reused": False}
            body = {"format": SAVE_FORMAT, "info": info, "files": files}
            tmp["json"] = temp_beside(paths["json"])
            tmp["json"].write_text(_dump({**body, "sha256": _digest(body)}), encoding="utf-8")
            for k in ("faiss", "ids", "json"):
                os.replace(tmp[k], paths[k])
                del tmp[k]
        finally:
            for t in tmp.values():
                with contextlib.suppress(OSError):
                    t.unlink()
        self.info.path = str(paths["faiss"])
        return paths["faiss"]

    @classmethod
    def load(cls, folder: str | Path, name: str) -> VectorIndex | None:
        """The index saved as ``name`` in ``folder``, or None when there is none or it fails its checks
        (:meth:`load_checked` says why)."""
        return cls.load_checked(folder, name)[0]

    @classmethod
    def load_checked(cls, folder: str | Path, name: str) -> tuple[VectorIndex | None, str | None]:
        """The index saved as ``name`` in ``folder`` after its integrity checks, or why it is refused.

        The sidecar must be exactly what :meth:`save` wrote (its own SHA-256 matches, its fields have their
        types) and the ``.faiss`` and ``.ids.npy`` files their recorded sizes and SHA-256, checked before
        faiss reads them. Hashing costs about 1 s per GB here, against minutes to rebuild a large index.
        Whether the index fits the current vectors is :func:`get_index`'s second check.

        Returns
        -------
        index : VectorIndex or None
            With ``info.reused`` True.
        reason : str or None
            Why a saved index is refused (``the saved index failed its checksum (...)``); None when it loaded
            or when nothing is saved.
        """
        paths = _files(folder, name)
        if not (paths["json"].exists() and paths["faiss"].exists() and have_faiss()):
            return None, None
        import faiss

        try:
            info, files = _read_sidecar(paths["json"])
            for k in ("faiss", "ids"):
                if paths[k].stat().st_size != files[k]["bytes"] or _sha256(paths[k]) != files[k]["sha256"]:
                    raise _Refused(f"{_CHECKSUM_FAILED} ({paths[k].name} is not the file that was saved)")
            # Read by name after hashing: a save that replaces the files in between gives an index of the same
            # corpus and configuration, and get_index's fitness check still tests it against the vectors.
            ids = np.load(paths["ids"], allow_pickle=False)
            index = faiss.read_index(str(paths["faiss"]))
        except _Refused as exc:
            return None, str(exc)
        except (OSError, ValueError, RuntimeError) as exc:
            return None, f"the saved index cannot be read ({exc})"
        if (ids.ndim != 1 or ids.dtype != np.int64 or len(ids) != info.n or index.ntotal != info.n
                or index.d != info.dim or (len(ids) and (ids[0] < 0 or np.any(np.diff(ids) <= 0)))):
            return None, "the saved index does not agree with its own description"
        try:
            for knob in ("nprobe", "efSearch"):
                if knob in info.params:
                    _set_knob(index, knob, info.params[knob])
        except (AttributeError, RuntimeError):
            return None, f"the saved index is not the {info.kind.upper()} index its description says"
        info.reused = True
        return cls(index, ids, info), None


class _Refused(Exception):
    """A saved index fails a check (the message is the reason shown in :attr:`IndexInfo.note`)."""


_CHECKSUM_FAILED = "the saved index failed its checksum"
#: what each saved field must be (bool is excluded where an int is asked: JSON ``true`` is not a count).
_INFO_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,), "n": (int,), "dim": (int,), "build_seconds": (int, float),
    "recall_at_10": (int, float, type(None)), "recall_queries": (int,), "params": (dict,), "engine": (str,),
    "config_id": (str,), "corpus_id": (str,), "path": (str, type(None)), "reused": (bool,), "note": (str,),
}
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _files(folder: str | Path, name: str) -> dict[str, Path]:
    """The three files of a saved index. Names are joined, not made with ``with_suffix``: a configuration id
    such as ``gte-v1.5:ab12`` has a dot, and ``with_suffix`` would cut there (two configurations, one
    file)."""
    folder = Path(folder)
    return {"faiss": folder / f"{name}.faiss", "ids": folder / f"{name}.ids.npy",
            "json": folder / f"{name}.json"}


def _sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces (about 1 GB/s on our 2-core CPU)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _dump(obj: dict) -> str:
    """The sidecar's text: one canonical form, so that a load can ask for the file byte for byte."""
    return json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=True) + "\n"


def _digest(body: dict) -> str:
    """SHA-256 of the sidecar's content (what is signed: format, info and the files' digests)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("ascii")).hexdigest()


def _read_sidecar(path: Path) -> tuple[IndexInfo, dict]:
    """The saved :class:`IndexInfo` and file records of a ``.json`` sidecar; raises :class:`_Refused`."""
    bad = f"{_CHECKSUM_FAILED} ({path.name}"
    raw = path.read_bytes()
    try:
        obj = json.loads(raw.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError is one: a flipped byte, or a file cut short
        raise _Refused(f"{bad} is not valid JSON: {exc})") from exc
    if isinstance(obj, dict) and "format" not in obj and "kind" in obj:
        raise _Refused("the saved index has no checksum (an older version saved it)")
    if not isinstance(obj, dict) or set(obj) != {"format", "info", "files", "sha256"}:
        raise _Refused(f"{bad} does not have the fields format, info, files and sha256)")
    # Byte for byte: a value changed by hand fails the digest below; a change that leaves the values equal
    # (a reformat, a digit past float precision) would pass it, and is refused here instead.
    if raw != _dump(obj).encode("utf-8"):
        raise _Refused(f"{bad} is not the text that was saved)")
    body = {k: obj[k] for k in ("format", "info", "files")}
    if obj["sha256"] != _digest(body):
        raise _Refused(f"{bad} changed since it was saved)")
    if obj["format"] != SAVE_FORMAT:
        raise _Refused(f"the saved index has format {obj['format']!r}; this version reads {SAVE_FORMAT}")
    files = obj["files"]
    if not (isinstance(files, dict) and set(files) == {"faiss", "ids"} and all(
            isinstance(f, dict) and set(f) == {"bytes", "sha256"} and _is_int(f["bytes"]) and f["bytes"] >= 0
            and isinstance(f["sha256"], str) and _HEX64.fullmatch(f["sha256"]) for f in files.values())):
        raise _Refused(f"{bad}: its file records are malformed)")
    return _check_info(obj["info"], bad), files


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_info(info, bad: str) -> IndexInfo:
    """A saved info dictionary as :class:`IndexInfo`, each field of its type and in its range."""
    if not isinstance(info, dict) or set(info) != set(_INFO_TYPES):
        raise _Refused(f"{bad}: info does not have the fields of IndexInfo)")
    for k, types in _INFO_TYPES.items():
        v = info[k]
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
            want = "/".join(t.__name__ for t in types)
            raise _Refused(f"{bad}: info {k} is {type(v).__name__}, not {want})")
    r = info["recall_at_10"]
    if (info["kind"] not in ("exact", "ivf", "hnsw") or info["engine"] != "faiss" or info["n"] < 0
            or info["dim"] < 1 or (r is not None and not 0.0 <= r <= 1.0)
            or not all(isinstance(k, str) and _is_int(v) and v >= 1 for k, v in info["params"].items())):
        raise _Refused(f"{bad}: info has values out of range)")
    return IndexInfo(**info)


def _remove_stale_temps(paths: dict[str, Path]) -> None:
    """Delete temporary files that a killed save of these files left (older than :data:`STALE_TEMP_SECONDS`:
    a younger one may be another process's save in progress)."""
    prefixes = tuple(f".{p.name}." for p in paths.values())
    folder = paths["json"].parent
    with contextlib.suppress(OSError):
        for p in folder.iterdir():
            if p.name.startswith(prefixes) and p.name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    if time.time() - p.stat().st_mtime > STALE_TEMP_SECONDS:
                        p.unlink()


def _set_knob(index, knob: str, value: int) -> None:
    if knob == "nprobe":
        index.nprobe = int(value)
    else:
        index.hnsw.efSearch = int(value)


def _unfit(idx: VectorIndex, vectors: np.ndarray, valid: np.ndarray, config_id: str, corpus_id: str,
           queries: int = VERIFY_QUERIES) -> str | None:
    """Why a loaded index does not answer for these vectors, or None when it does.

    It must be of this corpus and configuration and cover exactly the rows that have a vector; then
    ``queries`` sampled rows (seed :data:`VERIFY_SEED`) are searched through it and exactly over the current
    vectors: its recall@10 must be at least the saved figure less :data:`VERIFY_MARGIN`, and every score it
    returns the inner product of the two vectors (within :data:`SCORE_TOL`; so at most ``|q| |r|``, 1 for
    unit rows). A damaged index returns wrong neighbours and impossible cosines; an index of other vectors
    under the same ids (weights changed in place) finds other neighbours.
    """
    info = idx.info
    if info.config_id != config_id or info.corpus_id != corpus_id:
        return "the saved index is of another corpus or model configuration"
    rows = np.flatnonzero(valid)
    if not np.array_equal(rows, idx.ids) or (len(rows) and vectors.shape[1] != info.dim):
        return "the saved index covers other rows than the corpus has vectors for"
    n = len(rows)
    if n == 0 or idx.index is None:
        return None
    # In corpus rows throughout: no copy of the valid rows (a rebuild makes one; a reuse should stay light).
    x = np.asarray(vectors, dtype=np.float32)
    pick = rows[np.sort(np.random.default_rng(VERIFY_SEED).choice(n, size=min(queries, n), replace=False))]
    q = np.ascontiguousarray(x[pick])
    _, truth = _exact_topk(x, q, 11, exclude=None if n == len(x) else ~np.asarray(valid, dtype=bool))
    scores, pos = idx.index.search(q, 11)
    if np.any(pos >= n):
        return "the saved index returns rows the corpus does not have"
    found = pos >= 0
    got = np.where(found, idx.ids[np.where(found, pos, 0)], -1)
    hit = x[np.where(found, got, 0)]  # (m, 11, d): the vectors it returned
    exact = np.einsum("md,mkd->mk", q, hit)
    bound = np.linalg.norm(q, axis=1)[:, None] * np.linalg.norm(hit, axis=2) + SCORE_TOL
    if np.any(found & ~np.isfinite(scores)):
        return "the saved index returns scores that are not numbers"
    if np.any(found & (np.abs(scores) > bound)):
        worst = float(np.nanmax(np.where(found, np.abs(scores), 0)))
        return f"the saved index returns scores up to {worst:,.3g} where a cosine is at most 1"
    recall = _recall_at_10(got, truth, pick)
    floor = (info.recall_at_10 if info.recall_at_10 is not None else 1.0) - VERIFY_MARGIN
    if recall < floor:
        return (f"the saved index does not fit these vectors (recall@10 {recall:.2f} vs exact on {len(pick)}"
                f" sampled rows; {info.recall_at_10} when built)")
    if np.any(found & (np.abs(scores - exact) > SCORE_TOL)):
        return "the saved index returns scores that are not the inner products of the vectors"
    return None


def index_folder(corpus_path: str | Path | None, corpus_id: str) -> Path | None:
    """Where an index of a corpus is kept.

    Beside its file (``corpus.parquet.index/``) when that folder is writable, else in the cache folder
    (:func:`backend.paths.default_dir`: ``$SIMDASH_CACHE_DIR``, else ``~/.cache/simdash``) under
    ``index/<corpus id>``; None when neither, because ``SIMDASH_CACHE=0`` (or ``off``, ``memory``: see
    :func:`backend.serving.cache.persistent_cache_off`) turns the persistent cache off: the index is then built and
    kept in memory only.
    """
    if corpus_path is not None:
        p = Path(corpus_path)
        if os.access(p.parent, os.W_OK):
            return p.with_name(p.name + ".index")
    if persistent_cache_off():
        return None
    # The corpus id comes from the corpus file's metadata: keep it one plain folder name (no "../").
    safe = re.sub(r"[^A-Za-z0-9._:-]", "_", corpus_id).lstrip(".") or "_"
    return default_dir() / "index" / safe


def _index_name(config_id: str, kind: str) -> str:
    return f"{config_id.replace(':', '_')}-{kind}"


def saved_index_exists(config_id: str, corpus_id: str, corpus_path: str | Path | None = None,
                       kind: str = "auto") -> bool:
    """True when an approximate index of this corpus and configuration is saved (``auto`` means IVF, the kind
    :func:`get_index` builds above :data:`EXACT_LIMIT`); it is still verified on load, and rebuilt if it
    fails."""
    want = "ivf" if kind == "auto" else kind
    if want == "exact":
        return True
    folder = index_folder(corpus_path, corpus_id)
    if folder is None:
        return False
    paths = _files(folder, _index_name(config_id, want))
    return paths["json"].exists() and paths["faiss"].exists() and have_faiss()


def get_index(vectors: np.ndarray, valid: np.ndarray, config_id: str, corpus_id: str,
              corpus_path: str | Path | None = None, kind: Kind = "auto", progress: ProgressFn | None = None,
              should_stop: Callable[[], bool] | None = None, **build_kw) -> VectorIndex:
    """The index of a corpus under one model configuration: loaded when saved before and it passes its
    checks (integrity, then fitness for ``vectors``: see the module docstring), else built, and saved when
    approximate (an exact index is rebuilt in seconds from the vectors). A refused saved index is replaced,
    and the new index's :attr:`IndexInfo.note` says why (``the saved index failed its checksum (...),
    rebuilt``); so does an index that could not be saved."""
    n = int(np.count_nonzero(valid))
    want = kind if kind != "auto" else ("exact" if n < build_kw.get("exact_limit", EXACT_LIMIT) else "ivf")
    folder = index_folder(corpus_path, corpus_id)
    name = _index_name(config_id, want)
    notes = []
    if want != "exact" and folder is not None:
        found, why = VectorIndex.load_checked(folder, name)
        if found is not None:
            why = _unfit(found, vectors, valid, config_id, corpus_id)
            if why is None:
                return found
        if why:
            notes.append(f"{why}, rebuilt")
    idx = VectorIndex.build(vectors, valid, want, progress=progress, should_stop=should_stop, **build_kw)
    idx.info.config_id, idx.info.corpus_id = config_id, corpus_id
    if idx.info.kind != "exact" and idx.index is not None:
        if folder is None:
            notes.append("not saved: the persistent cache is off (SIMDASH_CACHE) and the corpus has no"
                         " writable folder")
        else:
            try:
                idx.save(folder, name)
            except OSError as exc:
                notes.append(f"not saved ({exc})")
    # After saving: a rebuilt index's reason belongs to this build, not to the next process that reuses it.
    idx.info.note = "; ".join([idx.info.note, *notes] if idx.info.note else notes)
    return idx


__all__ = ["EXACT_LIMIT", "SAVE_FORMAT", "TARGET_RECALL", "VERIFY_MARGIN", "VERIFY_QUERIES", "IndexInfo",
           "VectorIndex", "get_index", "have_faiss", "index_folder", "saved_index_exists"]
