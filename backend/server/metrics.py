"""Prometheus metrics of the server (``GET /metrics``), in a registry of their own per app.

Counted per request by the app's middleware: requests and latency per route. Reported by the backend's batcher
after every merged forward pass: batch sizes, requests merged, time queued, forward time. Read when scraped:
cache hits per level, loaded models, requests in flight per model, GPU memory (where there is a GPU).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from backend.serving.batching import BatchStats

#: seconds: from a warm one-pair request (~1 ms) to a big batch on a CPU (tens of seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    """The server's metrics; :meth:`observe_batch` is registered as an observer of the backend's batcher.

    ``in_flight`` (the app's :meth:`~backend.server.app.Admission.in_flight`) gives requests in flight per model
    at scrape time.
    """

    def __init__(self, backend, in_flight: Callable[[], dict[str, int]] | None = None) -> None:
        self.backend = backend
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("simdash_requests", "HTTP requests by route, method and status.",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("simdash_request_seconds", "HTTP request latency by route.", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.texts = Counter("simdash_texts", "Texts (or pairs) received, by route.", ["route"], registry=r)
        self.batch_size = Histogram("simdash_batch_size", "Items (texts or pairs) per merged forward pass.",
                                    ["model", "op"], buckets=SIZE_BUCKETS, registry=r)
        self.batch_requests = Histogram("simdash_batch_requests", "Request pieces merged into one forward pass.",
                                        ["model", "op"], buckets=SIZE_BUCKETS, registry=r)
        self.queue_wait = Histogram("simdash_queue_wait_seconds", "Time a request piece waited in the batching "
                                    "queue.", ["model", "op"], buckets=LATENCY_BUCKETS, registry=r)
        self.forward = Histogram("simdash_forward_seconds", "Time of one merged forward pass.", ["model", "op"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        r.register(_BackendCollector(backend))
        if in_flight is not None:
            r.register(_InFlightCollector(in_flight))

    def observe_batch(self, st: BatchStats) -> None:
        """Record one merged forward pass (keys look like ``encode:<config id>``)."""
        op, _, cid = st.key.partition(":")
        model = cid.split(":", 1)[0]
        self.batch_size.labels(model, op).observe(st.items)
        self.batch_requests.labels(model, op).observe(st.pieces)
        self.forward.labels(model, op).observe(st.seconds)
        for w in st.queue_wait:
            self.queue_wait.labels(model, op).observe(w)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


class _BackendCollector:
    """Numbers read from the backend at scrape time (cache counters, model states, GPU memory)."""

    def __init__(self, backend) -> None:
        self.backend = backend

    def collect(self):
        be = self.backend
        st = be.stats
        look = CounterMetricFamily("simdash_cache_lookups", "Vector and pair-score lookups by cache level and "
                                   "result (memory hit, disk hit, miss = computed).", labels=["level", "result"])
        mem = st["vector_hits"] + st["pair_hits"]
        disk = st["vector_disk_hits"] + st["pair_disk_hits"]
        miss = st["vector_misses"] + st["pair_misses"]
        look.add_metric(["memory", "hit"], mem)
        look.add_metric(["disk", "hit"], disk)
        look.add_metric(["any", "miss"], miss)
        yield look
        ratio = GaugeMetricFamily("simdash_cache_hit_ratio", "Share of lookups served from either cache level "
                                  "since start.")
        ratio.add_metric([], (mem + disk) / max(mem + disk + miss, 1))
        yield ratio
        entries = GaugeMetricFamily("simdash_cache_entries", "Entries in each cache level.", labels=["level"])
        entries.add_metric(["memory"], len(be._vectors) + len(be._pairs))
        if be.store is not None and be.store.disabled is None:
            info = be.store.info()
            entries.add_metric(["disk"], info.get("entries", 0))
            yield entries
            size = GaugeMetricFamily("simdash_cache_disk_bytes", "Bytes in use by the persistent cache.")
            size.add_metric([], info.get("bytes", 0))
            yield size
        else:
            yield entries
        states = be.model_states()
        loaded = GaugeMetricFamily("simdash_models_loaded", "Models in memory.")
        loaded.add_metric([], sum(s == "loaded" for s in states.values()))
        yield loaded
        state = GaugeMetricFamily("simdash_model_state", "1 for each model's current state.", labels=["model", "state"])
        for k, s in states.items():
            state.add_metric([k, s], 1)
        yield state
        yield from _gpu_memory(be.device)


class _InFlightCollector:
    """Requests in flight per model, read at scrape time (a model a scrape once saw busy reports 0 when idle)."""

    def __init__(self, in_flight: Callable[[], dict[str, int]]) -> None:
        self.in_flight = in_flight
        self.seen: set[str] = set()

    def collect(self):
        now = self.in_flight()
        self.seen.update(now)
        g = GaugeMetricFamily("simdash_requests_in_flight", "Requests admitted per model and not yet answered "
                              "(running or waiting); past SIMDASH_MAX_QUEUE a request gets a 429.", labels=["model"])
        for k in sorted(self.seen):
            g.add_metric([k], now.get(k, 0))
        yield g


def _gpu_memory(device: str):
    """Allocated and reserved bytes on the backend's CUDA device (nothing on a CPU or MPS machine)."""
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        return
    g = GaugeMetricFamily("simdash_gpu_memory_bytes", "GPU memory held by torch.", labels=["device", "kind"])
    g.add_metric([device, "allocated"], torch.cuda.memory_allocated(device))
    g.add_metric([device, "reserved"], torch.cuda.memory_reserved(device))
    yield g
