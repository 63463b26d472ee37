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

Indexes are saved beside an embedded-corpus file (``corpus.parquet.index/``) or in a cache folder, keyed by the
corpus id and the model configuration, and reused. Without faiss (``pip install faiss-cpu``) every search is
exact (numpy), and :attr:`IndexInfo.note` says so.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from backend.base import ProgressFn
from backend.jobs import StopRequested

#: below this many vectors search is exact: a query costs n x d multiply-adds (~25 ms at 100,000 x 384 here).
EXACT_LIMIT = 200_000
#: the recall@10 against exact search that an approximate index is tuned to reach on the sampled queries.
TARGET_RECALL = 0.95
#: queries sampled from the corpus to measure recall at build time (their exact top-10 costs a few seconds at 1M).
RECALL_QUERIES = 200
#: vectors added to an index per step (progress and cancellation happen between steps).
ADD_BATCH = 50_000
Kind = Literal["auto", "exact", "ivf", "hnsw"]


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
        """One line: ``approximate search (IVF, nprobe 16), recall@10 0.97 vs exact on 200 sampled queries``."""
        if self.kind == "exact":
            return f"exact search over {self.n:,} vectors" + (f" ({self.note})" if self.note else "")
        p = ", ".join(f"{k} {v}" for k, v in self.params.items() if k in ("nprobe", "efSearch"))
        rec = f"recall@10 {self.recall_at_10:.2f} vs exact on {self.recall_queries} sampled queries"
        return f"approximate search ({self.kind.upper()}, {p}) over {self.n:,} vectors, {rec}"


def _exact_topk(corpus: np.ndarray, queries: np.ndarray, k: int, block: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner products (numpy, corpus in blocks so memory stays bounded); ``-1``/``-inf`` pad."""
    m = len(queries)
    k_eff = min(k, len(corpus))
    best_s = np.full((m, k), -np.inf, dtype=np.float32)
    best_i = np.full((m, k), -1, dtype=np.int64)
    if k_eff == 0:
        return best_s, best_i
    for s in range(0, len(corpus), block):
        sims = queries @ corpus[s : s + block].T
        kk = min(k_eff, sims.shape[1])
        part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        cand_s = np.concatenate([best_s, np.take_along_axis(sims, part, 1)], axis=1)
        cand_i = np.concatenate([best_i, part + s], axis=1)
        order = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, order, 1), np.take_along_axis(cand_i, order, 1)
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
        truth_sets = [set(t[t != i].tolist()[:10]) for t, i in zip(truth, qi, strict=True)]
        recall = 0.0
        for v in values:
            check()
            _set_knob(index, knob, v)
            _, got = index.search(x[qi], 11)
            recall = float(np.mean([len(set(g[g != i].tolist()[:10]) & t) / max(len(t), 1)
                                    for g, t, i in zip(got, truth_sets, qi, strict=True)]))
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
        """Write ``name.faiss``, ``name.ids.npy`` and ``name.json`` to ``folder`` (approximate indexes only)."""
        import faiss

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        base = folder / name
        tmp = base.with_suffix(".faiss.tmp")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, base.with_suffix(".faiss"))
        np.save(base.with_suffix(".ids.npy"), self.ids)
        self.info.path = str(base.with_suffix(".faiss"))
        base.with_suffix(".json").write_text(json.dumps(asdict(self.info)), encoding="utf-8")
        return base.with_suffix(".faiss")

    @classmethod
    def load(cls, folder: str | Path, name: str) -> VectorIndex | None:
        """The index saved as ``name`` in ``folder``, or None when there is none (or it cannot be read)."""
        base = Path(folder) / name
        if not (base.with_suffix(".json").exists() and base.with_suffix(".faiss").exists() and have_faiss()):
            return None
        import faiss

        try:
            info = IndexInfo(**json.loads(base.with_suffix(".json").read_text(encoding="utf-8")))
            index = faiss.read_index(str(base.with_suffix(".faiss")))
            ids = np.load(base.with_suffix(".ids.npy"))
        except (OSError, ValueError, TypeError, RuntimeError):
            return None
        for knob in ("nprobe", "efSearch"):
            if knob in info.params:
                _set_knob(index, knob, info.params[knob])
        info.reused = True
        return cls(index, ids, info)


def _set_knob(index, knob: str, value: int) -> None:
    if knob == "nprobe":
        index.nprobe = int(value)
    else:
        index.hnsw.efSearch = int(value)


def _finds_itself(idx: VectorIndex, vectors: np.ndarray, valid: np.ndarray, probes: int = 8) -> bool:
    """A saved index answers for these vectors: sampled rows find themselves (weights changed under the same
    configuration id, or another file with the same id, would fail this)."""
    rows = np.flatnonzero(valid)
    if not len(rows):
        return True
    pick = rows[np.linspace(0, len(rows) - 1, min(probes, len(rows))).astype(int)]
    scores, got = idx.search(vectors[pick], 10)
    return bool(np.all(scores[:, 0] > 0.999) and np.mean([r in g for r, g in zip(pick, got, strict=True)]) >= 0.75)


def index_folder(corpus_path: str | Path | None, corpus_id: str) -> Path:
    """Where an index of a corpus is kept: beside its file (``corpus.parquet.index/``) when that folder is
    writable, else ``$SIMDASH_CACHE`` (default ``~/.cache/simdash``)``/index/<corpus id>``."""
    if corpus_path is not None:
        p = Path(corpus_path)
        if os.access(p.parent, os.W_OK):
            return p.with_name(p.name + ".index")
    root = Path(os.environ.get("SIMDASH_CACHE") or Path.home() / ".cache" / "simdash")
    return root / "index" / corpus_id


def _index_name(config_id: str, kind: str) -> str:
    return f"{config_id.replace(':', '_')}-{kind}"


def saved_index_exists(config_id: str, corpus_id: str, corpus_path: str | Path | None = None,
                       kind: str = "auto") -> bool:
    """True when an approximate index of this corpus and configuration is saved (``auto`` means IVF, the kind
    :func:`get_index` builds above :data:`EXACT_LIMIT`); it is still checked against the vectors on load."""
    want = "ivf" if kind == "auto" else kind
    if want == "exact":
        return True
    base = index_folder(corpus_path, corpus_id) / _index_name(config_id, want)
    return base.with_suffix(".json").exists() and base.with_suffix(".faiss").exists() and have_faiss()


def get_index(vectors: np.ndarray, valid: np.ndarray, config_id: str, corpus_id: str,
              corpus_path: str | Path | None = None, kind: Kind = "auto", progress: ProgressFn | None = None,
              should_stop: Callable[[], bool] | None = None, **build_kw) -> VectorIndex:
    """The index of a corpus under one model configuration: loaded when saved before, else built (and saved
    when approximate: an exact index is rebuilt in seconds from the vectors)."""
    n = int(np.count_nonzero(valid))
    want = kind if kind != "auto" else ("exact" if n < build_kw.get("exact_limit", EXACT_LIMIT) else "ivf")
    folder = index_folder(corpus_path, corpus_id)
    name = _index_name(config_id, want)
    if want != "exact":
        found = VectorIndex.load(folder, name)
        if (found is not None and found.info.n == n and found.info.corpus_id == corpus_id
                and found.info.config_id == config_id and _finds_itself(found, vectors, valid)):
            return found
    idx = VectorIndex.build(vectors, valid, want, progress=progress, should_stop=should_stop, **build_kw)
    idx.info.config_id, idx.info.corpus_id = config_id, corpus_id
    if idx.info.kind != "exact":
        try:
            idx.save(folder, name)
        except OSError as exc:
            idx.info.note = f"not saved ({exc})"
    return idx


__all__ = ["EXACT_LIMIT", "TARGET_RECALL", "IndexInfo", "VectorIndex", "get_index", "have_faiss", "index_folder",
           "saved_index_exists"]
