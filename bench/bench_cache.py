"""The persistent vector cache across a restart: a new process reads vectors instead of encoding them.

Run from the repo root::

    python bench/bench_cache.py           # 2,000 STS-B dev sentences (demo corpus if ../shared/data is absent)
    python bench/bench_cache.py --full    # three cold/warm pairs, median ratio

Each measurement is its own Python process over a fresh temporary cache folder: the **cold** process loads
``sbert`` and encodes the sentences (storing them in the cache), then a **warm** process — a restart — loads the
model and asks for the same sentences, which come from the SQLite file. Both time ``Backend.embed`` only (model
loading is reported apart: a restart pays it either way). Target: warm >= 50x cold.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def child(n: int, model: str) -> None:
    """One process: load the model, embed ``n`` sentences, print the timings as JSON."""
    from backend.serving import Backend
    from bench.bench_backend import load_texts

    texts, _ = load_texts(n)
    be = Backend(device="cpu")  # SIMDASH_CACHE_DIR is set by the parent
    t0 = time.perf_counter()
    be.model(model)
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    enc = be.embed(model, texts)
    took = time.perf_counter() - t0
    print(json.dumps({"n": len(texts), "load_s": load, "embed_s": took, "disk_hits": be.stats["vector_disk_hits"],
                      "computed": be.stats["vector_misses"], "checksum": float(enc.vectors.sum())}))


def run_child(folder: str, n: int, model: str) -> dict:
    env = dict(os.environ, SIMDASH_CACHE_DIR=folder, HF_HUB_OFFLINE="1")
    env.pop("SIMDASH_CACHE", None)
    out = subprocess.run([sys.executable, __file__, "--child", "--n", str(n), "--model", model], env=env,
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--model", default="sbert")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--full", action="store_true", help="three cold/warm pairs")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.n, args.model)
        return
    if args.full:
        args.repeats = 3
    ratios = []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="simdash-bench-cache-") as folder:
            cold = run_child(folder, args.n, args.model)
            warm = run_child(folder, args.n, args.model)
            size = Path(folder, "vectors.sqlite").stat().st_size
        assert warm["computed"] == 0 and warm["disk_hits"] == cold["computed"], (cold, warm)
        assert abs(warm["checksum"] - cold["checksum"]) < 1e-3 * max(1.0, abs(cold["checksum"]))
        ratio = cold["embed_s"] / warm["embed_s"]
        ratios.append(ratio)
        print(f"run {i + 1}: {cold['n']} sentences, {args.model}: cold encode {cold['embed_s']:.2f} s "
              f"({cold['n'] / cold['embed_s']:.0f}/s), warm after restart {warm['embed_s'] * 1000:.1f} ms "
              f"({warm['n'] / warm['embed_s']:,.0f}/s) = {ratio:,.0f}x; model load {cold['load_s']:.1f} s / "
              f"{warm['load_s']:.1f} s; cache file {size / 2**20:.1f} MiB", flush=True)
    print(f"\nwarm persistent cache after a restart vs cold encode: **{statistics.median(ratios):,.0f}x** "
          "(target >= 50x)")


if __name__ == "__main__":
    main()
