"""GPU check: the CUDA code paths agree with the CPU and are fast. Run on a machine with a GPU::

    python bench/gpu_check.py            # exits 1 if a check fails, 0 (and says so) without a GPU

Checks, for every default model: it loads on ``cuda`` in half precision (bf16 where supported), its scores on a
set of pairs agree with the CPU's within 0.02 (half precision moves cosines in the third decimal), and it
reports sentences/s (pairs/s for ESIM) on the GPU beside the CPU figure. Tests never require a GPU; this script
is what a session with one runs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    """Run the checks; return the process exit code."""
    import pandas as pd
    import torch

    from backend.service import Backend

    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check (this is not a failure)")
        return 0
    print(f"# {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    corpus = pd.read_csv(ROOT / "backend" / "data" / "demo_corpus.csv")
    en = corpus[corpus.lang == "en"].text.tolist()
    a, b = en[0::2], en[1::2]
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    big = [f"{x} {y}" for x in en[:60] for y in en[60:100]]  # 2,400 distinct longer texts for throughput
    cpu, gpu = Backend(device="cpu"), Backend(device="cuda")
    failed = False
    for key in gpu.registry.defaults():
        try:
            mg = gpu.model(key)
        except Exception as exc:
            print(f"{key:6s} FAIL to load on cuda: {exc}")
            failed = True
            continue
        info = mg.info()
        sc, sg = cpu.score_pairs(key, a, b).scores, gpu.score_pairs(key, a, b).scores
        diff = float(np.nanmax(np.abs(sc - sg)))
        ok = diff < 0.02 and info["device"].startswith("cuda")
        failed |= not ok
        if mg.can_encode and key != "esim":
            gpu.embed(key, big[:64])
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            gpu.clear_cache()
            gpu.embed(key, big)
            torch.cuda.synchronize()
            rate = f"{len(big) / (time.perf_counter() - t0):,.0f} sentences/s"
        else:
            xs, ys = big[: len(big) // 2], big[len(big) // 2 :]
            mg.score(xs[:64], ys[:64])
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            mg.score(xs, ys)
            torch.cuda.synchronize()
            rate = f"{len(xs) / (time.perf_counter() - t0):,.0f} pairs/s"
        print(f"{key:6s} {'ok  ' if ok else 'FAIL'} dtype {info.get('dtype')}, max |cpu - gpu| = {diff:.4f}, {rate}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
