"""The one interface of a backend: what the dashboard, the command line and the lab functions call on one.

Two classes implement it, with the same signatures (``tests/serving/test_protocol.py`` compares them and runs one
conformance suite against both):

* :class:`~backend.serving.Backend` — the models in this process;
* :class:`~backend.serving.client.RemoteBackend` — the models on ``python -m backend serve`` elsewhere, reached over
  HTTP. Work that needs the weights (vectors, pair scores, alignments, the layer probe, model cards) runs on the
  server; work on vectors the dashboard already holds (an embedded corpus's search index, its 2-D map and its
  clusters) runs where the corpus file is, in the dashboard's process, after checking that the file's vectors
  were made by the server's model configuration. Models trained in a dashboard session run in the dashboard's
  process too (the server loads no model files sent over the network): the client routes every call that names
  one to a small in-process :class:`~backend.serving.Backend` of session models.

Code that holds "a backend" types it :class:`BackendProtocol` and asks it, never ``hasattr``, what it can do: what
an implementation may lack is named in :attr:`BackendProtocol.capabilities` (both of ours offer all of it). What is
deliberately outside the protocol: ``model()`` (a server's model objects exist only in its process; the command
line, which always holds a :class:`~backend.serving.Backend`, uses it), the server's own state (``store``,
``batcher``, ``stats``) and the client's transport (``health()``, ``status()``, ``close()``).

``isinstance(x, BackendProtocol)`` checks that every member is there; on Python 3.11 that reads the attributes, so
on a :class:`~backend.serving.client.RemoteBackend` it asks the server for its health and registry once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:  # the protocol is read at run time by isinstance only: these stay out of the import graph
    import numpy as np

    from backend.base import Encoding, ProgressFn, Role
    from backend.files.embed import EmbeddedCorpus
    from backend.files.index import VectorIndex
    from backend.lab.evaluation import LabelledPairs
    from backend.lab.probe import ProbeResult
    from backend.lab.projection import Projection
    from backend.options import Option
    from backend.registry import ModelRequest, ModelSpec, Registry
    from backend.results import ModelConfig, ModelResult, Neighbours
    from backend.routing import Route
    from backend.serving.speed import Speed

#: capability: models trained in a dashboard session (the Evaluation lab's Train tab) can join the backend with
#: :meth:`BackendProtocol.add_session_model`. Both implementations have it; a remote backend keeps such models in
#: the dashboard's own process, never on the server: a server's registry is its ``models/registry.toml``, and it
#: loads nothing a browser sends (a trained word2vec or ESIM would arrive as pickles or torch checkpoints, which the
#: server never unpickles from the network).
SESSION_MODELS = "session_models"
Capability = Literal["session_models"]


@runtime_checkable
class BackendProtocol(Protocol):
    """What every backend offers; see the module docstring for the two implementations.

    Attributes
    ----------
    registry : Registry
        The models it can run (read-only for a remote backend: the server's, then the session models held in the
        dashboard's process).
    device : str
        Where the models run: ``cpu``, ``cuda``, ``mps`` (the server's device for a remote backend).
    load_errors : dict of str to str
        Model -> why its last load failed (the server's, fresh, for a remote backend).
    url : str or None
        The model server's address, or None when the models run in this process.
    capabilities : frozenset of str
        What only some backends can do (:data:`SESSION_MODELS`); ask this instead of probing for methods.
    """

    registry: Registry
    device: str
    load_errors: dict[str, str]
    url: str | None
    capabilities: frozenset[str]

    # ---------------------------------------------------------------------------------------- models
    def loaded(self) -> list[str]:
        """Keys of the models in memory now."""
        ...

    def model_states(self) -> dict[str, str]:
        """Every key -> ``loaded``, ``loading``, ``failed`` or ``not loaded`` (loads nothing)."""
        ...

    def load(self, key: str) -> None:
        """Load model ``key`` now; :class:`~backend.results.ModelLoadError` when it cannot be."""
        ...

    def roles(self, key: str) -> frozenset[Role]:
        """``{"encoder"}``, ``{"pair_scorer"}`` or both (loads no weights); KeyError for an unknown key."""
        ...

    def keys_with_role(self, role: Role, keys: Sequence[str] | None = None) -> list[str]:
        """Those of ``keys`` (default: every registered model) that play ``role``."""
        ...

    def option_specs(self, key: str) -> tuple[Option, ...]:
        """The options of model ``key``."""
        ...

    def check_request(self, key: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run-time ``options`` for ``key``, checked and converted (no work done)."""
        ...

    def model_config(self, key: str, options: dict[str, Any] | None = None) -> ModelConfig:
        """The configuration that makes ``key``'s numbers what they are (loads no weights)."""
        ...

    def info(self, key: str, **options: Any) -> dict[str, Any]:
        """The model card facts of ``key`` (loads it)."""
        ...

    def variant_for(self, key: str, lang: str) -> str:
        """The registered language variant of ``key`` for ``lang``, else ``key``."""
        ...

    def space_for(self, key: str, texts: Sequence[str]) -> tuple[str, str | None]:
        """The one model whose vector space holds all of ``texts``, and a note when a rule chose it."""
        ...

    def route_texts(self, key: str, texts: Sequence[str], options: dict[str, Any] | None = None) -> Route:
        """The one model and its options that embed all of ``texts`` for ``key`` (:mod:`backend.routing`)."""
        ...

    def route_pair(self, key: str, a: str, b: str, options: dict[str, Any] | None = None) -> Route:
        """The model and its options that score the pair ``(a, b)`` for ``key`` (:mod:`backend.routing`)."""
        ...

    def add_session_model(self, spec: ModelSpec, folder: str | Path | None = None) -> list[str]:
        """Register a model trained in a dashboard session (needs :data:`SESSION_MODELS`; NotImplementedError
        saying why otherwise); returns the keys removed to keep the session within its quota. A remote backend
        runs it in the dashboard's process."""
        ...

    def remove_owner(self, owner: str) -> list[str]:
        """Remove every model of a session that has ended; returns their keys."""
        ...

    # --------------------------------------------------------------------------------------- vectors
    def embed(
        self, key: str, texts: Sequence[str], options: dict[str, Any] | None = None, progress: ProgressFn | None = None,
        batch_size: int | None = None,
    ) -> Encoding:
        """Sentence vectors (unit rows), validity and warnings of ``texts``."""
        ...

    def neighbours(
        self, key: str, queries: Sequence[str], corpus: Sequence[str], k: int = 10,
        options: dict[str, Any] | None = None, progress: ProgressFn | None = None,
    ) -> Neighbours:
        """Exact top-``k`` cosine neighbours of each query in ``corpus``."""
        ...

    def open_corpus(self, path: str | Path, key: str, options: dict[str, Any] | None = None) -> EmbeddedCorpus:
        """``key``'s vectors in an embedded-corpus file, checked against ``key`` with ``options``."""
        ...

    def has_index(self, key: str, corpus: Sequence[str] | EmbeddedCorpus, options: dict[str, Any] | None = None,
                  kind: str = "auto") -> bool:
        """True when :meth:`build_index` would answer at once."""
        ...

    def build_index(
        self, key: str, corpus: Sequence[str] | EmbeddedCorpus, options: dict[str, Any] | None = None,
        kind: str = "auto", progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
    ) -> VectorIndex:
        """The search index of ``corpus`` under ``key`` (built once, kept; saved when approximate)."""
        ...

    def search(
        self, key: str, queries: Sequence[str], corpus: Sequence[str] | EmbeddedCorpus, k: int = 10,
        options: dict[str, Any] | None = None, progress: ProgressFn | None = None,
        should_stop: Callable[[], bool] | None = None, kind: str = "auto",
    ) -> Neighbours:
        """Top-``k`` neighbours in a corpus of any size, with ``search`` saying how they were found."""
        ...

    def project(
        self, key: str, texts: Sequence[str], method: Literal["umap", "pca"] = "umap", seed: int = 42,
        n_neighbors: int = 15, min_dist: float = 0.1, options: dict[str, Any] | None = None,
        progress: ProgressFn | None = None,
    ) -> np.ndarray:
        """2-D coordinates of ``texts`` (NaN rows: no vector)."""
        ...

    def project_detailed(
        self, key: str, corpus: Sequence[str] | EmbeddedCorpus, method: Literal["umap", "pca"] = "umap",
        seed: int = 42, n_neighbors: int = 15, min_dist: float = 0.1, options: dict[str, Any] | None = None,
        progress: ProgressFn | None = None, fit_limit: int | None = None, fit_sample: int | None = None,
    ) -> Projection:
        """Like :meth:`project`, for texts or an embedded corpus of any size, saying what was done."""
        ...

    def clusters(self, key: str, texts: Sequence[str] | EmbeddedCorpus, n_clusters: int = 8, seed: int = 42,
                 options: dict[str, Any] | None = None) -> np.ndarray:
        """K-means ids in ``key``'s own vector space (-1: no vector)."""
        ...

    # ---------------------------------------------------------------------------------------- scores
    def similarity(
        self, a: Sequence[str], b: Sequence[str], keys: Sequence[str | ModelRequest] | None = None,
        options: dict[str, dict[str, Any]] | None = None, progress: ProgressFn | None = None,
        should_stop: Callable[[], bool] | None = None, chunk: int = 2048,
    ) -> dict[str, ModelResult]:
        """Score columns of pairs with several models, ``chunk`` pairs per step (2048:
        :data:`backend.serving.backend.CHUNK`); one model's failure is in its result."""
        ...

    def score_pairs(
        self, key: str, a: Sequence[str], b: Sequence[str], options: dict[str, Any] | None = None,
        progress: ProgressFn | None = None, route_language: bool = True,
    ) -> ModelResult:
        """Score aligned pairs with one model; model failures are in ``error``."""
        ...

    def rerank(self, key: str, query: str, candidates: Sequence[str],
               options: dict[str, Any] | None = None) -> ModelResult:
        """Score one query against many candidates (input order)."""
        ...

    def align(self, key: str, a: str, b: str) -> dict[str, Any] | None:
        """A pair scorer's word alignment (``tokens_a``, ``tokens_b``, ``matrix``, ``score``, ``warnings``), or
        None when the model has none."""
        ...

    def probe(self, key: str, data: LabelledPairs, whiten: bool = False, whiten_dim: int | None = None,
              progress: ProgressFn | None = None) -> ProbeResult:
        """The layer probe: Spearman x 100 for every hidden layer x pooling of ``key`` on ``data``."""
        ...

    # ----------------------------------------------------------------------------------- the machine
    def measure_speed(self, key: str, options: dict[str, Any] | None = None, n: int | None = None) -> Speed:
        """Latency of one pair and throughput of ``key`` as this backend's caller sees them."""
        ...

    def cache_info(self) -> dict[str, Any]:
        """Entries and hit counts of the vector caches (the server's, for a remote backend)."""
        ...


__all__ = ["SESSION_MODELS", "BackendProtocol", "Capability"]
