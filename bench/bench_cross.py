"""Benchmark the cross-encoders on the CPU: pairs per second and the latency of reranking 20 candidates, for each
``runtime`` (torch, onnx, onnx-int8), with torch as the baseline measured in the same run.

Usage::

    .venv/bin/python bench/bench_cross.py [--model cross] [--pairs 1000] [--threads 2] [--runtimes torch,onnx]

Pairs are drawn (seeded) from the texts of ``backend/data/demo_corpus.csv`` in the model's language (our own
sentences, not STS-B). Each runtime is timed through the family (``PairScorer.score``, as the dashboard calls it) in
one order and symmetric (the average of both orders, twice the work); the table gives the speed-up against torch
and the largest score change. Goals (issue 15): >= 300 pairs/s and a 20-candidate rerank <= 100 ms. Run it on an
otherwise idle machine: the numbers are wall-clock.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from backend.families import build_model
from backend.files.io import load_demo_corpus
from backend.registry import Registry


def demo_pairs(lang: str, n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` random pairs of distinct demo-corpus texts of one language."""
    texts = load_demo_corpus(lang)["text"].tolist()
    rng = random.Random(seed)
    pairs = [rng.sample(texts, 2) for _ in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def time_pairs(model, a: list[str], b: list[str], batch_size: int, repeats: int) -> float:
    """Median pairs per second over ``repeats`` runs (after one warm-up)."""
    model.score(a[:64], b[:64], batch_size=batch_size)
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.score(a, b, batch_size=batch_size)
        runs.append(time.perf_counter() - t0)
    return len(a) / statistics.median(runs)


def time_rerank(model, query: str, candidates: list[str], runs: int = 15) -> float:
    """Median milliseconds to score one query against its candidates (one batch)."""
    q = [query] * len(candidates)
    model.score(q, candidates, batch_size=64)
    lat = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model.score(q, candidates, batch_size=64)
        lat.append(time.perf_counter() - t0)
    return 1000 * statistics.median(lat)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a Markdown table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="cross", help="registry key of a cross-encoder (cross, cross-zh)")
    p.add_argument("--pairs", type=int, default=1000)
    p.add_argument("--candidates", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2, help="torch and onnxruntime CPU threads")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--runtimes", default="torch,onnx,onnx-int8", help="comma-separated; the first is the baseline")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    spec = Registry.load()[args.model]
    lang = spec.language if spec.language in ("en", "zh") else "en"
    a, b = demo_pairs(lang, args.pairs)
    query = demo_pairs(lang, 1, seed=1)[0][0]
    candidates = demo_pairs(lang, args.candidates, seed=2)[1]
    print(f"model {args.model} ({lang}), {args.pairs} demo-corpus pairs, rerank of {args.candidates} candidates, "
          f"batch {args.batch_size}, {args.threads} threads, torch {torch.__version__}")
    print()
    print("| runtime | order | pairs/s | x baseline | rerank 20 (median ms) | max score change | goal |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    base: dict[bool, tuple[float, np.ndarray]] = {}
    for runtime in args.runtimes.split(","):
        model = build_model(spec.with_options(runtime=runtime), "cpu")
        for symmetric in (False, True):
            m = model.with_options(symmetric=symmetric)
            scores = m.score(a, b, batch_size=args.batch_size)
            pps = time_pairs(m, a, b, args.batch_size, args.repeats)
            ms = time_rerank(m, query, candidates)
            if symmetric not in base:
                base[symmetric] = (pps, scores)
            ratio = pps / base[symmetric][0]
            diff = float(np.nanmax(np.abs(scores - base[symmetric][1])))
            goal = "met" if pps >= 300 and ms <= 100 else "missed"
            order = "both (averaged)" if symmetric else "one"
            print(f"| {runtime} | {order} | {pps:.0f} | {ratio:.2f}x | {ms:.1f} | {diff:.4f} | {goal} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
