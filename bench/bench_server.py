"""Dynamic batching through the HTTP server: many concurrent single-sentence clients, batching off vs on.

Run from the repo root::

    python bench/bench_server.py            # 32 clients x 8 requests per phase, one round (about a minute)
    python bench/bench_server.py --full     # 32 clients x 24 requests, two rounds

Starts two servers (``python -m backend serve``, model ``sbert`` preloaded, persistent cache off): one with
``SIMDASH_BATCH_WAIT_MS=0`` (one request, one forward pass: the baseline) and one with batching on. Then
alternates load phases between them (baseline, batched, baseline, batched, ...) so a slow spell of the machine
hits both. Each client sends one sentence per request, waits for the answer, sends the next; every sentence is
sent once in the whole run, so no answer comes from a cache. Requests ask for base64 vectors, as the ``openai``
client does by default. Prints throughput (requests/s), p50 and p99 latency per phase and the ratio of the
batched throughput to the baseline's (target >= 4x at 32 clients).

The load generator runs on the same machine as the servers (asyncio + httpx, one process): on a 2-core machine
it takes CPU from both alike, so the ratio is the honest figure, not the absolute rates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_backend import load_texts  # noqa: E402


def start_server(port: int, wait_ms: float, model: str, threads: int | None = None) -> subprocess.Popen:
    env = dict(os.environ, SIMDASH_BATCH_WAIT_MS=str(wait_ms), SIMDASH_CACHE="memory", HF_HUB_OFFLINE="1")
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return subprocess.Popen(
        [sys.executable, "-m", "backend", "serve", "--port", str(port), "--models", model, "--log-level", "warning",
         "--no-access-log"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_ready(url: str, model: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    import httpx

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()[-2000:]}")
        try:
            if model in httpx.get(f"{url}/health", timeout=2).json()["loaded"]:
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not load {model} in {timeout} s")


async def phase(url: str, model: str, sentences: list[str], clients: int) -> dict:
    """``clients`` concurrent loops, each sending its share of ``sentences`` one per request."""
    import httpx

    latencies: list[float] = []
    errors = 0
    shares = [sentences[i::clients] for i in range(clients)]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        async def client(mine: list[str]) -> None:
            nonlocal errors
            for s in mine:
                t0 = time.perf_counter()
                r = await http.post("/v1/embeddings", json={"model": model, "input": s, "encoding_format": "base64"})
                latencies.append(time.perf_counter() - t0)
                errors += r.status_code != 200

        t0 = time.perf_counter()
        await asyncio.gather(*(client(m) for m in shares))
        wall = time.perf_counter() - t0
    lat = np.array(latencies)
    return {"n": len(lat), "rps": len(lat) / wall, "p50": float(np.percentile(lat, 50) * 1000),
            "p99": float(np.percentile(lat, 99) * 1000), "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--per-client", type=int, default=8, help="requests per client per phase")
    ap.add_argument("--rounds", type=int, default=1, help="baseline/batched phase pairs")
    ap.add_argument("--wait-ms", type=float, default=5.0, help="SIMDASH_BATCH_WAIT_MS of the batched server")
    ap.add_argument("--model", default="sbert")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads of both servers (OMP_NUM_THREADS; default: torch's own, one per core)")
    ap.add_argument("--full", action="store_true", help="24 requests per client, two rounds")
    args = ap.parse_args()
    if args.full:
        args.per_client, args.rounds = 24, 2

    from tests.server.live import free_port

    per_phase = args.clients * args.per_client
    need = per_phase * 2 * args.rounds + 64
    texts, what = load_texts(need)
    # Every request gets a sentence no server has seen (its in-memory cache would answer otherwise).
    texts = [t if i < len(texts) else f"{texts[i % len(texts)]} ({i})" for i, t in enumerate(texts + [""] * need)][:need]
    ports = {"baseline": free_port(), "batched": free_port()}
    procs = {"baseline": start_server(ports["baseline"], 0, args.model, args.threads),
             "batched": start_server(ports["batched"], args.wait_ms, args.model, args.threads)}
    try:
        for name, p in procs.items():
            wait_ready(f"http://127.0.0.1:{ports[name]}", args.model, p)
        print(f"# {args.clients} clients x {args.per_client} single-sentence requests per phase; {what}; "
              f"model {args.model}; batched server: wait {args.wait_ms} ms; torch threads {args.threads or 'default'}")
        # Warm-up: first requests allocate buffers and start the batching thread.
        warm = texts[-64:]
        for name in procs:
            asyncio.run(phase(f"http://127.0.0.1:{ports[name]}", args.model, warm[:32] if name == "baseline"
                              else warm[32:], min(8, args.clients)))
        results: dict[str, list[dict]] = {"baseline": [], "batched": []}
        k = 0
        for rnd in range(args.rounds):
            for name in ("baseline", "batched"):
                chunk = texts[k * per_phase : (k + 1) * per_phase]
                k += 1
                r = asyncio.run(phase(f"http://127.0.0.1:{ports[name]}", args.model, chunk, args.clients))
                results[name].append(r)
                print(f"round {rnd + 1} {name:<8}  {r['rps']:7.1f} req/s  p50 {r['p50']:7.1f} ms  "
                      f"p99 {r['p99']:7.1f} ms  ({r['n']} requests, {r['errors']} errors)", flush=True)
        base = np.median([r["rps"] for r in results["baseline"]])
        bat = np.median([r["rps"] for r in results["batched"]])
        p99b = np.median([r["p99"] for r in results["baseline"]])
        p99 = np.median([r["p99"] for r in results["batched"]])
        print(f"\nthroughput batched / one-request-one-forward: {bat:.1f} / {base:.1f} req/s = **{bat / base:.2f}x** "
              f"(target >= 4x); p99 latency {p99:.0f} ms batched vs {p99b:.0f} ms")
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.wait(30)


if __name__ == "__main__":
    main()
