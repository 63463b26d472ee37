"""Overload is an answer, not a queue: 64 clients at once against a bounded and an unbounded server.

Run from the repo root::

    python bench/bench_overload.py             # 64 clients x 6 requests per phase, one round (about a minute)

Starts two servers (``python -m backend serve``, ``sbert`` preloaded, persistent cache off): one with
``SIMDASH_MAX_QUEUE=16`` (at most 16 requests in flight for the model; the next gets a 429 with ``Retry-After``
at once) and one with the bound out of reach (100,000: the old unbounded queue). 64 clients each send their
requests back to back (8 sentences per request, no pause, no retry), so the model is always behind. Prints, per
server: accepted requests/s, the share answered 429, the p50/p99 latency of accepted requests and of refusals.

What to expect: the bounded server keeps the latency of what it accepts near the time of 16 queued requests and
refuses the rest within milliseconds, so a client (or a load balancer) can go elsewhere; the unbounded one accepts
everything and every answer waits behind the whole queue. Both run on the same machine as the load generator:
compare the two, not the absolute rates.
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
from bench.bench_server import wait_ready  # noqa: E402


def start(port: int, max_queue: int, model: str) -> subprocess.Popen:
    env = dict(os.environ, SIMDASH_CACHE="memory", HF_HUB_OFFLINE="1", SIMDASH_MAX_QUEUE=str(max_queue))
    return subprocess.Popen(
        [sys.executable, "-m", "backend", "serve", "--port", str(port), "--models", model, "--log-level", "warning",
         "--no-access-log"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


async def burst(url: str, model: str, batches: list[list[str]], clients: int) -> dict:
    import httpx

    ok_lat: list[float] = []
    refused_lat: list[float] = []
    other = 0
    shares = [batches[i::clients] for i in range(clients)]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        async def client(mine: list[list[str]]) -> None:
            nonlocal other
            for texts in mine:
                t0 = time.perf_counter()
                r = await http.post("/v1/embeddings", json={"model": model, "input": texts, "encoding_format": "base64"})
                dt = time.perf_counter() - t0
                if r.status_code == 200:
                    ok_lat.append(dt)
                elif r.status_code == 429 and r.headers.get("retry-after"):
                    refused_lat.append(dt)
                else:
                    other += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(client(m) for m in shares))
        wall = time.perf_counter() - t0

    def pct(x: list[float], q: float) -> float:
        return float(np.percentile(x, q) * 1000) if x else float("nan")

    n = len(ok_lat) + len(refused_lat) + other
    return {"accepted_rps": len(ok_lat) / wall, "refused": len(refused_lat) / max(n, 1), "other": other,
            "p50": pct(ok_lat, 50), "p99": pct(ok_lat, 99), "refused_p99": pct(refused_lat, 99), "n": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--per-client", type=int, default=6, help="requests per client per phase")
    ap.add_argument("--batch", type=int, default=8, help="sentences per request")
    ap.add_argument("--max-queue", type=int, default=16)
    ap.add_argument("--model", default="sbert")
    args = ap.parse_args()

    from tests.server.live import free_port

    need = args.clients * args.per_client * args.batch * 2
    texts, what = load_texts(need)
    texts = [f"{texts[i % len(texts)]} ({i})" for i in range(need)]  # every sentence new: no cache answers
    batches = [texts[i : i + args.batch] for i in range(0, need, args.batch)]
    half = len(batches) // 2
    servers = {"bounded": (free_port(), args.max_queue), "unbounded": (free_port(), 100_000)}
    procs = {name: start(port, q, args.model) for name, (port, q) in servers.items()}
    try:
        for name, p in procs.items():
            wait_ready(f"http://127.0.0.1:{servers[name][0]}", args.model, p)
        print(f"# {args.clients} clients x {args.per_client} requests of {args.batch} sentences, back to back; {what}; "
              f"model {args.model}; bounded server: SIMDASH_MAX_QUEUE={args.max_queue}")
        for i, name in enumerate(("unbounded", "bounded")):
            r = asyncio.run(burst(f"http://127.0.0.1:{servers[name][0]}", args.model,
                                  batches[i * half : (i + 1) * half], args.clients))
            print(f"{name:<9}  accepted {r['accepted_rps']:6.1f} req/s  refused (429) {r['refused']:6.1%}  "
                  f"accepted p50 {r['p50']:7.0f} ms  p99 {r['p99']:7.0f} ms  refusals p99 {r['refused_p99']:6.0f} ms  "
                  f"other errors {r['other']}  ({r['n']} requests)", flush=True)
    finally:
        for p in procs.values():
            p.terminate()


if __name__ == "__main__":
    main()
