"""The ``runtime`` option on a CPU: onnx / onnx-int8 against plain ``SentenceTransformer.encode``.

Run from the repo root (needs ../shared/data/stsb-en/dev.tsv and requirements-onnx.txt)::

    python bench/bench_onnx.py            # the first 500 STS-B dev pairs, three interleaved rounds
    python bench/bench_onnx.py --full     # all 1,500 dev pairs, and bert (layer -2 mean) as well

For each runtime: sentences/s encoding the distinct dev sentences (best of the rounds; the runtimes take turns
within each round, so a slow spell of the shared machine hits them alike), the speed-up against plain
``SentenceTransformer.encode(batch_size=64)`` on the same weights, and Spearman x 100 of cosine vs the gold
scores, with its change against torch. Targets: onnx-int8 >= 2x plain with <= 0.5 Spearman points lost.
Exports are made (once) before timing and land in the cache folder (``$SIMDASH_CACHE_DIR/onnx``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import sys
import time
from pathlib import Path
from types import MappingProxyType

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=500, help="STS-B dev pairs (their distinct sentences are encoded)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bert", action="store_true", help="also bert (hidden-state pooling)")
    ap.add_argument("--full", action="store_true", help="all 1,500 pairs, with bert")
    args = ap.parse_args()
    if args.full:
        args.pairs, args.bert = 1500, True

    import pandas as pd
    import torch
    from scipy.stats import spearmanr

    from backend.families import build_model
    from backend.registry import Registry

    dev = ROOT.parent / "shared" / "data" / "stsb-en" / "dev.tsv"
    if not dev.exists():
        sys.exit(f"{dev} is needed (STS-B dev)")
    df = pd.read_csv(dev, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False).iloc[: args.pairs]
    texts = list(dict.fromkeys(df.sentence1.tolist() + df.sentence2.tolist()))
    pos = {t: i for i, t in enumerate(texts)}
    ia = np.array([pos[t] for t in df.sentence1])
    ib = np.array([pos[t] for t in df.sentence2])
    gold = df.score.astype(float).to_numpy()

    def spearman(v: np.ndarray) -> float:
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        return 100 * spearmanr((v[ia] * v[ib]).sum(1), gold).correlation

    reg = Registry.load()
    print(f"# {len(df)} STS-B dev pairs, {len(texts)} distinct sentences; CPU, torch threads {torch.get_num_threads()}; "
          f"{args.rounds} interleaved rounds, best time of each")
    for key in ["sbert"] + (["bert"] if args.bert else []):
        spec = reg[key]
        models = {rt: build_model(dataclasses.replace(spec, options=MappingProxyType({**spec.options, "runtime": rt})),
                                  "cpu") for rt in ("torch", "onnx", "onnx-int8")}
        runs = {}
        if key == "sbert":
            st = models["torch"].net
            runs["plain SentenceTransformer.encode"] = lambda st=st: st.encode(texts, batch_size=64, convert_to_numpy=True)
        for rt, m in models.items():
            runs[f"{key} runtime={rt}"] = lambda m=m: m.encode(texts, batch_size=64)
        warm = texts[:32]  # first calls allocate; not timed
        models["torch"].net.encode(warm)
        for m in models.values():
            m.encode(warm)
        best = dict.fromkeys(runs, float("inf"))
        vecs = {}
        for _ in range(args.rounds):
            for name, fn in runs.items():
                t0 = time.perf_counter()
                vecs[name] = np.asarray(fn(), dtype=np.float32)
                best[name] = min(best[name], time.perf_counter() - t0)
        base_name = next(iter(runs))
        base_t, base_s = best[base_name], spearman(vecs[base_name])
        print(f"\n| {key}: runtime | sentences/s | speed-up vs {base_name.split(' runtime')[0]} | Spearman x 100 | "
              "change |\n| --- | --- | --- | --- | --- |")
        for name in runs:
            s = spearman(vecs[name])
            print(f"| {name} | {len(texts) / best[name]:.0f} | {base_t / best[name]:.2f}x | {s:.2f} | {s - base_s:+.2f} |")


if __name__ == "__main__":
    main()
