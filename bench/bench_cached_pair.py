"""A ``pair`` over the ten default and Chinese models, cold and then with every score in the persistent cache.

Run from the repo root::

    python bench/bench_cached_pair.py

Runs ``python -m backend pair A B --models <ten models> --json`` three times as a user would, in fresh processes
sharing one new cache folder (``SIMDASH_CACHE_DIR``): once cold (every model loads, every score is computed and
stored), then twice warm (every score is in the persistent cache). For each run it prints the wall time and the
process's peak resident memory, and checks that the warm answers equal the cold ones. The warm run should load no
model: its peak memory is the imports' alone. Targets (issue 16): warm peak <= 600 MB and >= 3x faster than cold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = "w2v,bert,sbert,esim,cross,w2v-zh,bert-zh,sbert-zh,esim-zh,cross-zh"
PAIR = ("微信支付怎么绑定银行卡？", "微信如何绑定银行卡")
#: wraps the CLI so the child reports its own peak memory (ru_maxrss, KiB on Linux) on stderr.
WRAP = ("import resource, sys; from backend.cli import main; code = main(sys.argv[1:]); "
        "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(code)")


def run(cache: str) -> tuple[float, float, dict]:
    env = dict(os.environ, SIMDASH_CACHE_DIR=cache, HF_HUB_OFFLINE="1")
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", WRAP, "pair", *PAIR, "--models", MODELS, "--json"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(p.stderr[-2000:])
    peak = next(int(line.split()[1]) for line in p.stderr.splitlines() if line.startswith("PEAK_KB")) / 1024
    return wall, peak, json.loads(p.stdout)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="simdash-bench-") as cache:
        cold_s, cold_mb, cold = run(cache)
        print(f"cold  {cold_s:6.1f} s   peak {cold_mb:6.0f} MB   (10 models load, scores computed and stored)")
        warm = []
        for i in range(2):
            s, mb, got = run(cache)
            same = all(got[k]["score"] == cold[k]["score"] for k in cold)
            warm.append((s, mb))
            print(f"warm{i + 1} {s:6.1f} s   peak {mb:6.0f} MB   (same scores: {same})")
        s, mb = min(warm)
        print(f"\nwarm / cold time: {cold_s / s:.1f}x faster (target >= 3x); warm peak {mb:.0f} MB (target <= 600 MB)")


if __name__ == "__main__":
    main()
