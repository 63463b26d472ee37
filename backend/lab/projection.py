"""Vectors to a 2-D map (UMAP with a cosine metric, or PCA) and clusters of a corpus, for the Projection page.

Pure functions of vectors: :meth:`backend.serving.Backend.project_detailed` embeds the texts and caches the
maps; these compute them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: above this many points UMAP is fitted on a sample and the rest are placed with ``transform``: a fit grows
#: faster than linearly with the points (its k-NN graph), placing a point with transform costs a fixed share.
FIT_LIMIT = 20_000
#: the seeded sample UMAP is fitted on above FIT_LIMIT: enough points for every cluster of a corpus to shape
#: the map, few enough to fit in well under a minute.
FIT_SAMPLE = 10_000
#: above this many fitted points, UMAP works on the first PCA_DIMS principal components (see fit_2d).
PCA_FIRST_ABOVE = 5_000
PCA_DIMS = 50


@dataclass
class ProjectionInfo:
    """What :meth:`Backend.project_detailed` did, for the page to say.

    Attributes
    ----------
    method : {"umap", "pca"}
    n : int
        Points placed (texts with a vector).
    fitted_on : int
        Points the map was fitted on (``n`` unless sampled).
    seed : int
    seconds : float
    cached : bool
        Served from the cache.
    without_vector : int
        Texts left out (NaN rows).
    note : str
        Why the method differs from the one asked for, if it does.
    """

    method: str
    n: int
    fitted_on: int
    seed: int
    seconds: float = 0.0
    cached: bool = False
    without_vector: int = 0
    note: str = ""

    def describe(self) -> str:
        """``UMAP fitted on 10,000 of 100,000 points (seed 42); the rest placed with transform``."""
        name = self.method.upper()
        if self.fitted_on < self.n:
            out = (f"{name} fitted on {self.fitted_on:,} of {self.n:,} points (a sample drawn with seed {self.seed}); "
                   "the rest placed with transform")
        else:
            out = f"{name} of {self.n:,} points (seed {self.seed})"
        if self.note:
            out += f"; {self.note}"
        return out + (" (cached)" if self.cached else "")


@dataclass
class Projection:
    """2-D coordinates and how they were made.

    Attributes
    ----------
    coords : np.ndarray, shape (n, 2), float32
        NaN rows: no vector.
    info : ProjectionInfo
    """

    coords: np.ndarray
    info: ProjectionInfo


def fit_2d(x: np.ndarray, method: str = "umap", seed: int = 42, n_neighbors: int = 15, min_dist: float = 0.1,
           fit_limit: int = FIT_LIMIT, sample: int = FIT_SAMPLE) -> tuple[np.ndarray, ProjectionInfo]:
    """Project unit vectors to 2-D with UMAP (cosine) or PCA, sampling the fit above ``fit_limit`` points.

    Tiny inputs fall back to PCA. Above ``fit_limit`` points, UMAP is fitted on ``sample`` points drawn with
    ``seed`` and the others are placed with ``transform`` (which embeds new points next to their neighbours
    among the fitted ones: the map's layout comes from the sample); PCA, cheap at any size, fits them all.
    Above :data:`PCA_FIRST_ABOVE` fitted points UMAP runs on :data:`PCA_DIMS` principal components with 200
    epochs (the info's note says so).

    Returns
    -------
    coords : np.ndarray, shape (n, 2), float32
    info : ProjectionInfo
    """
    if method not in ("umap", "pca"):
        raise ValueError(f"method must be 'umap' or 'pca', not {method!r}")
    n = len(x)
    if method == "umap" and n > 5:
        import umap

        nn = max(2, min(n_neighbors, n - 1))
        if n > fit_limit:
            fit_idx = np.sort(np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False))
            rest = np.setdiff1d(np.arange(n), fit_idx, assume_unique=True)
        else:
            fit_idx, rest = np.arange(n), np.zeros(0, dtype=np.int64)
        note, kw = "", {}
        z = x
        if len(fit_idx) > PCA_FIRST_ABOVE and x.shape[1] > PCA_DIMS:
            # UMAP's neighbour search and layout cost grow with the dimension; 50 principal components keep the
            # neighbourhoods (trustworthiness 0.86 either way in bench/bench_umap.py) at a quarter of the time,
            # and 200 epochs (UMAP's own choice above 10,000 points) halve it again.
            from sklearn.decomposition import PCA

            pca = PCA(n_components=PCA_DIMS, random_state=seed).fit(x[fit_idx])
            z = pca.transform(x).astype(np.float32)
            note, kw = f"reduced to {PCA_DIMS} dimensions with PCA first", {"n_epochs": 200}
        reducer = umap.UMAP(n_components=2, n_neighbors=nn, min_dist=min_dist, metric="cosine", random_state=seed,
                            init="spectral" if len(fit_idx) > nn + 1 else "random", n_jobs=1, **kw)
        coords = np.empty((n, 2), dtype=np.float32)
        coords[fit_idx] = reducer.fit_transform(z[fit_idx])
        if len(rest):
            for s in range(0, len(rest), 50_000):  # transform in blocks: its neighbour search holds a block in memory
                part = rest[s : s + 50_000]
                coords[part] = reducer.transform(z[part])
        return coords, ProjectionInfo("umap", n, len(fit_idx), seed, note=note)
    from sklearn.decomposition import PCA

    note = "PCA: too few points for UMAP" if method == "umap" else ""
    return PCA(n_components=2, random_state=seed).fit_transform(x).astype(np.float32), ProjectionInfo("pca", n, n, seed,
                                                                                                        note=note)


def reduce_2d(x: np.ndarray, method: str = "umap", seed: int = 42, n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """Project unit vectors to 2-D with UMAP (cosine) or PCA; tiny inputs fall back to PCA (:func:`fit_2d`)."""
    return fit_2d(x, method, seed, n_neighbors, min_dist)[0]


def cluster_labels(vectors: np.ndarray, valid: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """K-means ids (0..k-1) for the valid rows of ``vectors``, -1 elsewhere; ``k`` is capped by the row count."""
    from sklearn.cluster import KMeans

    out = np.full(len(vectors), -1, dtype=np.int64)
    x = vectors[valid]
    if len(x) == 0:
        return out
    k = max(1, min(int(n_clusters), len(x)))
    out[np.flatnonzero(valid)] = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    return out


__all__ = ["FIT_LIMIT", "FIT_SAMPLE", "PCA_DIMS", "PCA_FIRST_ABOVE", "Projection", "ProjectionInfo", "cluster_labels",
           "fit_2d", "reduce_2d"]
