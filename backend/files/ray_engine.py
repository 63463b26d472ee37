"""Ray as the engine for jobs bigger than one process: the same :class:`~backend.files.batch.FileJob`, run on Ray Data.

Ray is an optional extra (``pip install -r requirements-scale.txt``; docs/scale.md). A job runs as

1. a first pass on the driver that finds the chunk boundaries (byte offsets at row boundaries; the reader of
   :mod:`backend.files.stream`, so a bad row stops the job at the same row as the local engine would);
2. a Ray Data pipeline: one read task per chunk (workers read their byte range of the file), then, per model,
   ``map_batches`` over an **actor pool** whose actors each load the model once (``num_gpus`` per actor when
   the cluster has GPUs and the family uses one);
3. the driver iterating the results **in order** and writing them with the job's own writer and manifest.

So the output is the local engine's, row for row and byte for byte, and a killed Ray job resumes with
``--resume`` (on either engine) after its last finished chunk. Writing on the driver keeps one ordered file;
the models' work, which dominates, is what is spread over the cluster.

The input must be readable at the same path on every node that runs a read task (on a local Ray it is; on a
cluster, put it on shared storage). The project's code and ``models/`` travel to remote workers as Ray's
``working_dir``; the Python packages (requirements.txt) must be installed on the workers.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict
from urllib.parse import urlsplit

import pandas as pd

from backend.base import ProgressFn
from backend.files.batch import FileJob, FileResult
from backend.files.stream import Position, TableStream
from backend.jobs import StopRequested
from backend.registry import PROJECT_ROOT, ModelSpec, Registry

#: seconds to wait for a Ray address to accept a connection before saying it does not answer.
CONNECT_TIMEOUT = 10.0
#: environment variables that change what a model loads or where: passed on to every Ray worker.
FORWARDED_ENV = ("SIMDASH_DEVICE", "SIMDASH_DTYPE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME")


class EngineError(RuntimeError):
    """Ray is missing, or the cluster does not answer; the message says what to do."""


def _probe(address: str, timeout: float) -> None:
    """Fail fast, with a clear message, when nothing listens at ``address`` (``ray://host:port`` or ``host:port``)."""
    parts = urlsplit(address if "://" in address else f"gcs://{address}")
    host, port = parts.hostname, parts.port
    if not host or not port:
        raise EngineError(f"--address {address!r} is not host:port or ray://host:port")
    t0 = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise EngineError(f"no Ray cluster answers at {address} ({why} after {time.monotonic() - t0:.1f}s); start one "
                          "with `ray start --head` there, or check the address and port (the Ray client port is "
                          "10001: ray://head:10001)") from None


def connect(address: str | None = None, num_cpus: int | None = None, timeout: float = CONNECT_TIMEOUT) -> bool:
    """Make sure this process is connected to Ray; returns True when this call started the connection.

    Parameters
    ----------
    address : str, optional
        None or ``"local"``: start a Ray on this machine for this job; ``"auto"``: the Ray already started here
        with ``ray start``; ``ray://host:10001`` (Ray client) or ``host:6379``: a cluster.
    num_cpus : int, optional
        CPUs of a local Ray (logical: a model actor holds one).
    timeout : float
        Seconds an address may take to accept a connection.

    Raises
    ------
    EngineError
        Ray is not installed, the address does not answer within ``timeout``, or Ray refuses to connect.
    """
    try:
        import ray
    except ImportError:
        raise EngineError("Ray is not installed here: pip install -r requirements-scale.txt (see docs/scale.md)") from None
    if ray.is_initialized():
        return False
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    kw = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address in (None, "", "local"):
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
            # Ray starts its workers at nice 15 (to keep its own daemons responsive): on a machine shared with
            # other work that starves the actors, which do all of this job's work. A Ray started for the job runs
            # them at the priority of the command that started it, as the local engine runs.
            os.environ.setdefault("RAY_worker_niceness", str(os.nice(0)))
            ray.init(num_cpus=num_cpus, runtime_env={"env_vars": env}, **kw)
        else:
            if address != "auto":
                _probe(address, timeout)
            runtime_env = {"working_dir": str(PROJECT_ROOT), "env_vars": env,
                           "excludes": [".git", ".venv", "tests", "docs", "bench", "pages", "ui", "**/__pycache__",
                                        "*.parquet", "*.csv.progress.json"]}
            ray.init(address=address, runtime_env=runtime_env, **kw)
    except EngineError:
        raise
    except (ConnectionError, RuntimeError, TimeoutError, ValueError) as exc:
        hint = " (no Ray is running here: start one with `ray start --head`, or leave --address out)" if address == "auto" else ""
        raise EngineError(f"could not connect to Ray at {address or 'a local instance'}: {exc}{hint}") from None
    return True


def _spec_dicts(registry: Registry) -> list[dict]:
    # ModelSpec holds read-only mappings, which do not pickle: send plain dicts to the workers.
    from dataclasses import fields

    return [{f.name: (dict(v) if f.name in ("options", "variants") else v)
             for f in fields(s) for v in [getattr(s, f.name)]} for s in registry]


def _registry_from(specs: list[dict]) -> Registry:
    from types import MappingProxyType

    return Registry([ModelSpec(**{**d, "options": MappingProxyType(d["options"]),
                                  "variants": MappingProxyType(d["variants"])}) for d in specs])


class _StageActor:
    """A Ray actor that loads one model once and applies its stage to every block it is given.

    The last stage also finishes the chunk (formula escaping) and, for CSV/TSV output, serialises it: the driver
    then only appends bytes, so it is never the bottleneck of a many-actor job.
    """

    def __init__(self, stage, specs: list[dict], device: str | None, finalize: Callable | None = None,
                 serialize: str | None = None, all_stages: list | None = None) -> None:
        from backend.serving import Backend

        self.be = Backend(_registry_from(specs), device=device, cache_size=0)
        self.stage, self.finalize, self.serialize, self.all_stages = stage, finalize, serialize, all_stages or []

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        chunk_ids = frame.pop(CHUNK_COL)
        frame = self.stage.apply(self.be, frame.reset_index(drop=True))
        if self.finalize is not None:
            frame = self.finalize(frame)
        if self.serialize is None:
            frame[CHUNK_COL] = chunk_ids.to_numpy()
            return frame
        from backend.files.stream import csv_bytes

        out = []
        for cid in pd.unique(chunk_ids):  # usually one chunk per block; Ray may hand several at once
            part = frame[(chunk_ids == cid).to_numpy()].reset_index(drop=True)
            header, body = csv_bytes(part, self.serialize)
            for st in self.all_stages:
                st.observe(part)
            stats = {"missing": {st.name: st.missing(part) for st in self.all_stages},
                     "errors": {st.name: st.error for st in self.all_stages if st.error}}
            out.append({CHUNK_COL: int(cid), "rows": len(part), "body": body, "header": header,
                        "stats": json.dumps(stats)})
        return pd.DataFrame(out)


#: the column that carries each row's chunk number through the pipeline.
CHUNK_COL = "__simdash_chunk"


def _read_range(batch: pd.DataFrame, path: str, txt_column: str, encoding: str | None = None) -> pd.DataFrame:
    """A read task: the rows of one chunk (its byte range) of the input file, tagged with the chunk number."""
    start = Position(**json.loads(batch["start"].iloc[0]))
    stop = Position(**json.loads(batch["stop"].iloc[0]))
    stream = TableStream(path, txt_column=txt_column, encoding=encoding)
    frames = [c.frame for c in stream.chunks(stop.rows - start.rows, start, stop)]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame[CHUNK_COL] = int(batch["chunk"].iloc[0])
    return frame


def _gpu_share(stages, specs: dict[str, ModelSpec], workers: int, gpus: float) -> dict[str, float]:
    """GPUs per actor for each stage: none for families that always run on the CPU (word vectors)."""
    from backend.families import family_class

    users = [s.name for s in stages if getattr(family_class(specs[s.request.key].family), "runs_on_gpu", True)]
    if not gpus or not users:
        return {}
    return {n: min(1.0, gpus / (workers * len(users))) for n in users}


def _drain(job: FileJob, ds, positions: list[Position], progress: ProgressFn | None,
           should_stop: Callable[[], bool] | None) -> None:
    """Write the pipeline's output in chunk order and record each finished chunk in the manifest."""
    j, est = 0, positions[-1].rows
    pending: list[pd.DataFrame] = []
    for batch in ds.iter_batches(batch_size=None, batch_format="pandas"):
        if should_stop is not None and should_stop():
            raise StopRequested("stopped")
        if "body" in batch.columns:  # serialised chunks: one row each
            for cid, rows, body, header, stats in zip(batch[CHUNK_COL], batch["rows"], batch["body"], batch["header"],
                                                      batch["stats"], strict=True):
                if int(cid) != j:
                    raise RuntimeError(f"chunk {cid} arrived where chunk {j} was expected")
                st = json.loads(stats)
                job.commit_bytes(bytes(body), bytes(header), int(rows), positions[j + 1], st["missing"], st["errors"])
                j += 1
                if progress is not None:
                    progress(positions[j].rows, est)
            continue
        pending.append(batch)
        have = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]
        # Commit whole chunks only (Ray may split or join blocks): the manifest's position is always a boundary.
        while j + 1 < len(positions) and (have[CHUNK_COL] == j).sum() == positions[j + 1].rows - positions[j].rows:
            mine = (have[CHUNK_COL] == j).to_numpy()
            job.commit(have[mine].drop(columns=CHUNK_COL).reset_index(drop=True), positions[j + 1])
            have = have[~mine].reset_index(drop=True)
            j += 1
            if progress is not None:
                progress(positions[j].rows, est)
        pending = [have] if len(have) else []
    if j != len(positions) - 1:
        raise RuntimeError(f"the Ray job ended after {j} of {len(positions) - 1} chunks")


def run_on_ray(job: FileJob, address: str | None = None, workers: int | None = None, progress: ProgressFn | None = None,
               should_stop: Callable[[], bool] | None = None, device: str | None = None,
               registry: Registry | None = None) -> FileResult:
    """Run ``job`` on Ray Data (see the module docstring); the output and manifest are the local engine's.

    Parameters
    ----------
    job : FileJob
        From :func:`backend.files.batch.score_file` or :func:`backend.files.embed.embed_file`.
    address : str, optional
        See :func:`connect`.
    workers : int, optional
        Actors per model (default: the cluster's CPUs divided among the models).
    progress : callable, optional
        ``progress(rows_done, rows_total)``, per finished chunk.
    device : str, optional
        The actors' device (default: each worker's own choice: its GPU when Ray gave it one).
    registry : Registry, optional
        Where the models are described (default: models/registry.toml, or $SIMDASH_REGISTRY).

    Raises
    ------
    EngineError
        Ray is missing or does not answer.
    """
    if job.result.complete:
        return job.result
    t0 = time.perf_counter()
    n_stages = max(1, len(job.stages))
    local = address in (None, "", "local")
    cpus = os.cpu_count() or 1
    if local:
        workers = workers or max(1, cpus // n_stages)
    # A local Ray gets one logical CPU per actor plus one for the read tasks, so they never wait on each other.
    started = connect(address, num_cpus=workers * n_stages + 1 if local else None)
    import ray
    import ray.data

    try:
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # the output keeps the input's row order
        ctx.enable_progress_bars = False
        resources = ray.cluster_resources()
        if not workers:
            workers = max(1, int(resources.get("CPU", 1) - 1) // n_stages)
        registry = registry or Registry.load()
        specs = {s.key: s for s in registry}
        gpu = _gpu_share(job.stages, specs, workers, float(resources.get("GPU", 0)))
        job.manifest.engine = "ray"

        positions, stop_error = job.stream.positions(job.chunk_rows, job.start)
        ranges = [{"chunk": i, "start": json.dumps(asdict(a)), "stop": json.dumps(asdict(b))}
                  for i, (a, b) in enumerate(itertools.pairwise(positions))]
        if ranges:
            ds = ray.data.from_items(ranges, override_num_blocks=len(ranges))
            ds = ds.map_batches(_read_range, batch_size=1, batch_format="pandas", num_cpus=0.25 if not local else 1,
                                fn_kwargs={"path": str(job.stream.data_path), "txt_column": job.stream.columns[0],
                                           "encoding": job.stream.codec})
            spec_dicts = _spec_dicts(registry)
            serialize = job.writer().format if job.writer().format in ("csv", "tsv") else None
            for i, st in enumerate(job.stages):
                last = i == len(job.stages) - 1
                ds = ds.map_batches(
                    _StageActor, batch_size=None, batch_format="pandas", num_cpus=1, num_gpus=gpu.get(st.name, 0),
                    compute=ray.data.ActorPoolStrategy(size=min(workers, len(ranges))),
                    fn_constructor_kwargs={"stage": st, "specs": spec_dicts, "device": device,
                                           "finalize": job.finalize if last else None,
                                           "serialize": serialize if last else None,
                                           "all_stages": job.stages if last else None},
                )
            _drain(job, ds, positions, progress, should_stop)
        if stop_error is not None:
            job.stop_at(stop_error)
        else:
            job.done()
    except BaseException:
        if job._writer is not None:
            job._writer.close()
        raise
    finally:
        if started:
            ray.shutdown()
    job.result.seconds = time.perf_counter() - t0
    return job.result


__all__ = ["EngineError", "connect", "run_on_ray"]
