"""Serving: the models behind one object, shared by the dashboard, the command line and the HTTP server.

* :mod:`backend.serving.backend` — :class:`Backend`: the model pool, caches asked before weights, routing to
  language variants, multi-model operations with a result per model;
* :mod:`backend.serving.batching` — dynamic batching of concurrent requests into shared forward passes;
* :mod:`backend.serving.cache` — the persistent vector and pair-score cache (SQLite);
* :mod:`backend.serving.client` — :class:`~backend.serving.client.RemoteBackend`, the same interface over HTTP;
* :mod:`backend.serving.speed` — throughput measurements.

The HTTP server itself is :mod:`backend.server`; result types are :mod:`backend.results`.
"""

from backend.serving.backend import Backend, get_backend, space_for

__all__ = ["Backend", "get_backend", "space_for"]
