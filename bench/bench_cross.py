"""Benchmark the fine-tuned cross-encoder on the CPU: pairs per second, and the latency of reranking 20 candidates.

Usage::

    .venv/bin/python bench/bench_cross.py [--model models/cross-en] [--pairs 1000] [--threads 1,2] [--int8]

Pairs are drawn (seeded) from the texts of ``backend/data/demo_corpus.csv`` in the checkpoint's language (our own
sentences, not STS-B). Each configuration is timed in one order (``score(a, b)``) and symmetric (the average of both
orders, twice the work). ``--int8`` adds rows for torch's dynamic int8 quantisation of the linear layers, with the
largest score change it causes on the same pairs. Run it on an otherwise idle machine: the numbers are wall-clock.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.cross.checkpoint import load_compact, read_compact_config, score_pairs
from backend.io import load_demo_corpus


def demo_pairs(lang: str, n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` random pairs of distinct demo-corpus texts of one language."""
    texts = load_demo_corpus(lang)["text"].tolist()
    rng = random.Random(seed)
    pairs = [rng.sample(texts, 2) for _ in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def time_pairs(model, a: list[str], b: list[str], symmetric: bool, batch_size: int, repeats: int) -> float:
    """Median pairs per second over ``repeats`` runs (after one warm-up)."""
    score_pairs(model, a[:64], b[:64], symmetric=symmetric, batch_size=batch_size)
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        score_pairs(model, a, b, symmetric=symmetric, batch_size=batch_size)
        runs.append(time.perf_counter() - t0)
    return len(a) / statistics.median(runs)


def time_rerank(model, query: str, candidates: list[str], symmetric: bool, runs: int = 15) -> float:
    """Median milliseconds to score one query against its candidates (one batch)."""
    q = [query] * len(candidates)
    score_pairs(model, q, candidates, symmetric=symmetric, batch_size=64)
    lat = []
    for _ in range(runs):
        t0 = time.perf_counter()
        score_pairs(model, q, candidates, symmetric=symmetric, batch_size=64)
        lat.append(time.perf_counter() - t0)
    return 1000 * statistics.median(lat)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a Markdown table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models/cross-en", help="compact checkpoint folder")
    p.add_argument("--pairs", type=int, default=1000)
    p.add_argument("--candidates", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts to try")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--int8", action="store_true", help="also time dynamic int8 quantisation of the linear layers")
    args = p.parse_args(argv)

    section = read_compact_config(args.model)["simdash_cross"]
    lang = section.get("language") or "en"
    a, b = demo_pairs(lang, args.pairs)
    query = demo_pairs(lang, 1, seed=1)[0][0]
    candidates = demo_pairs(lang, args.candidates, seed=2)[1]
    models = {"fp32": load_compact(args.model)}
    if args.int8:
        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
            q = load_compact(args.model)
            quantize_dynamic(q.model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
        models["int8"] = q
    ref = score_pairs(models["fp32"], a, b)
    tokens = np.mean([len(x) for x in models["fp32"].tokenizer(a, b, truncation=True)["input_ids"]])

    print(f"model {Path(args.model).name} ({lang}), {args.pairs} demo-corpus pairs, {tokens:.1f} tokens per pair "
          f"on average, rerank of {args.candidates} candidates, batch {args.batch_size}, torch {torch.__version__}")
    print()
    print("| weights | threads | order | pairs/s | rerank 20 (median ms) | max score change vs fp32 |")
    print("| --- | --- | --- | --- | --- | --- |")
    old = torch.get_num_threads()
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for name, model in models.items():
            diff = "" if name == "fp32" else f"{float(np.abs(score_pairs(model, a, b) - ref).max()):.4f}"
            for symmetric in (False, True):
                pps = time_pairs(model, a, b, symmetric, args.batch_size, args.repeats)
                ms = time_rerank(model, query, candidates, symmetric)
                order = "both (averaged)" if symmetric else "one"
                print(f"| {name} | {threads} | {order} | {pps:.0f} | {ms:.1f} | {diff} |", flush=True)
    torch.set_num_threads(old)
    return 0


if __name__ == "__main__":
    sys.exit(main())
