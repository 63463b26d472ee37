"""Benchmark ESIM inference: pairs per second on STS-length pairs, and the latency of a 100-candidate rerank.

Usage::

    .venv/bin/python bench/bench_esim.py [--model models/esim-en] [--pairs 2000] [--threads N] [--device cpu,cuda]

Pairs are STS-B dev sentences when ``../shared/data`` is present, else synthetic sentences of STS-B's length
distribution (5-20 words drawn from the checkpoint's vocabulary); the numbers printed say which.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.families.esim import ESIMModel
from backend.registry import PROJECT_ROOT, ModelSpec

DATA = PROJECT_ROOT.parent / "shared" / "data"


def sentences(model: ESIMModel, n: int, seed: int = 0) -> tuple[list[str], list[str], str]:
    """``n`` pairs of realistic length, and where they came from."""
    lang = model.config.language
    dev = DATA / ("stsb-zh" if lang == "zh" else "stsb-en") / "dev.tsv"
    if dev.exists():
        import pandas as pd

        df = pd.read_csv(dev, sep="\t", quoting=csv.QUOTE_NONE)
        a, b = df.sentence1.astype(str).tolist(), df.sentence2.astype(str).tolist()
        reps = n // len(a) + 1
        return (a * reps)[:n], (b * reps)[:n], f"STS-B {lang} dev"
    rng = random.Random(seed)
    words = model.vocab.itos[2:5000]
    sep = "" if lang == "zh" and model.config.chinese == "char" else " "

    def sent() -> str:
        return sep.join(rng.choice(words) for _ in range(rng.randint(5, 20)))

    return [sent() for _ in range(n)], [sent() for _ in range(n)], "synthetic"


def bench(model: ESIMModel, n_pairs: int, batch_size: int, repeats: int = 3) -> dict[str, float | str]:
    """Throughput and rerank latency for one loaded model."""
    a, b, origin = sentences(model, n_pairs)
    model.score(a[:256], b[:256], batch_size=batch_size)  # warm-up: allocator, kernels, tokenizer caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.score(a, b, batch_size=batch_size)
        if model.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    query, cands = a[0], b[:100]
    model.rerank(query, cands)
    lat = []
    for _ in range(20):
        t0 = time.perf_counter()
        model.rerank(query, cands)
        if model.device.startswith("cuda"):
            torch.cuda.synchronize()
        lat.append(time.perf_counter() - t0)
    return {
        "device": model.device,
        "threads": torch.get_num_threads(),
        "pairs": n_pairs,
        "data": origin,
        "pairs_per_s": round(n_pairs / statistics.median(times), 1),
        "rerank100_ms_median": round(1000 * statistics.median(lat), 1),
        "rerank100_ms_p90": round(1000 * sorted(lat)[int(0.9 * len(lat)) - 1], 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON line per device."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models/esim-en", help="checkpoint folder")
    p.add_argument("--language", default=None, help="en or zh (default: the checkpoint's)")
    p.add_argument("--pairs", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default=None, help="comma-separated; default cpu, plus cuda when available")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device.split(",") if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    folder = Path(args.model).resolve()
    reference = None
    for device in devices:
        spec = ModelSpec(key="esim", family="esim", label="ESIM", source=f"path:{folder}", language=args.language or "en")
        model = ESIMModel(spec, device)
        if args.language is None:
            model.languages = (model.config.language,)
        row: dict[str, object] = {"model": folder.name, **bench(model, args.pairs, args.batch_size)}
        # The same 1000 pairs on every device: half precision on a GPU must not move the scores much.
        a, b, _ = sentences(model, 1000, seed=1)
        scores = model.score(a, b)
        if reference is None:
            reference = scores
        else:
            row["max_abs_diff_vs_" + devices[0]] = round(float(abs(scores - reference).max()), 5)
            row["vector_dim"] = int(model.encode(a[:4]).shape[1])
            row["align_shape"] = list(model.align(a[0], b[0])["matrix"].shape)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
