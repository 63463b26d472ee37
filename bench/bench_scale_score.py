"""Batch scoring at scale: throughput and peak memory of ``python -m backend score``, and Ray with 1 vs 2 workers.

    python bench/bench_scale_score.py          # 100,000 generated pairs (a few minutes)
    python bench/bench_scale_score.py --full   # 1,000,000 pairs (the issue's size)

Pairs are generated from wordfreq's list of the 5,000 most frequent English words (no STS-B): sentence A has
5-15 words, sentence B is A with a third of its words replaced (near-duplicates, as in a dedup run). The local
engine runs as its own process, whose peak RSS is read from the kernel (``os.wait4``). Ray runs on a local Ray
started once (3 logical CPUs: two actors and the reader), with 1 actor then with 2. Each engine also runs a
one-chunk job first: the big job's extra rows over its extra time is the rate once started ("marginal"; Ray's
actor start and model loading cancel out), reported beside the end-to-end rate; the ratio of the two Ray
rates is the same-run comparison. Targets: peak RSS <= 1 GB whatever
the file size; Ray 2 workers >= 1.6x one worker. This is a 2-core machine shared with other work: ratios hold
better than absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def generate(path: Path, n: int, seed: int = 0) -> None:
    """``n`` pairs of near-duplicate sentences made of frequent English words, as CSV."""
    from wordfreq import top_n_list

    words = np.array([w for w in top_n_list("en", 5000) if w.isalpha()])
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as f:
        f.write("id,sentence1,sentence2\n")
        for s in range(0, n, 100_000):
            m = min(100_000, n - s)
            lens = rng.integers(5, 16, m)
            idx = rng.integers(0, len(words), (m, 15))
            swap = rng.random((m, 15)) < 0.33
            other = rng.integers(0, len(words), (m, 15))
            rows = []
            for i in range(m):
                a = words[idx[i, : lens[i]]]
                b = np.where(swap[i, : lens[i]], words[other[i, : lens[i]]], a)
                rows.append(f"{s + i},{' '.join(a)},{' '.join(b)}\n")
            f.write("".join(rows))


def run_local(src: Path, out: Path, models: str, chunk_rows: int) -> dict:
    """The CLI as its own process: wall time and peak RSS (kernel-reported, the process and its children)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "backend", "score", str(src), str(out), "--models", models,
                             "--chunk-rows", str(chunk_rows), "--quiet"], cwd=REPO, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read()
    if status != 0:
        raise SystemExit(f"score failed:\n{err}")
    rows = json.loads(Path(str(out) + ".progress.json").read_text())["done"]["rows"]
    return {"rows": rows, "seconds": round(wall, 1), "rows_per_s": round(rows / wall),
            "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def run_ray(src: Path, out: Path, models: str, workers: int, chunk_rows: int) -> dict:
    """One job on the running local Ray: wall time, and the time to the first finished chunk (start-up)."""
    from backend.cli import resolve_models
    from backend.files.batch import score_file
    from backend.files.ray_engine import run_on_ray
    from backend.serving import Backend

    be = Backend(device="cpu", cache_size=0)
    marks: list[tuple[float, int]] = []
    job = score_file(be, src, out, resolve_models(be, models), chunk_rows=chunk_rows)
    t0 = time.perf_counter()
    res = run_on_ray(job, workers=workers, progress=lambda d, t: marks.append((time.perf_counter(), d)))
    wall = time.perf_counter() - t0
    return {"workers": workers, "rows": res.rows, "seconds": round(wall, 1), "rows_per_s": round(res.rows / wall),
            "first_chunk_after_s": round(marks[0][0] - t0, 1)}


def marginal(big: dict, small: dict) -> float:
    """Rows/s once started: the extra rows of the big job over its extra time (start-up and model loading,
    the same for both jobs, cancel out)."""
    return round((big["rows"] - small["rows"]) / max(big["seconds"] - small["seconds"], 1e-9))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="1,000,000 pairs (default 100,000)")
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--models", default="w2v")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--no-local", action="store_true", help="only the Ray comparison")
    ap.add_argument("--workdir", default=None, help="where the generated files go (default: a temporary folder)")
    args = ap.parse_args()
    n = args.rows or (1_000_000 if args.full else 100_000)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_scale_"))
    src = work / f"pairs_{n}.csv"
    if not src.exists():
        t = time.perf_counter()
        generate(src, n)
        print(f"generated {n:,} pairs ({src.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f}s", flush=True)
    report: dict = {"rows": n, "models": args.models, "file_mb": round(src.stat().st_size / 1e6)}
    chunk = max(10_000, n // 40)
    small = work / "pairs_small.csv"
    with open(src, encoding="utf-8") as f, open(small, "w", encoding="utf-8") as g:
        for _, line in zip(range(chunk + 1), f, strict=False):
            g.write(line)
    if not args.no_local:
        report["local_small"] = run_local(small, work / "out_small.csv", args.models, chunk)
        print(f"local, {chunk:,} rows:", report["local_small"], flush=True)
        report["local"] = run_local(src, work / "out_local.csv", args.models, chunk)
        report["local"]["marginal_rows_per_s"] = marginal(report["local"], report["local_small"])
        print(f"local, {n:,} rows:", report["local"], flush=True)
    if not args.no_ray:
        from backend.files.ray_engine import connect

        connect(None, num_cpus=3)
        for w in (1, 2):
            s = run_ray(small, work / f"out_ray{w}_small.csv", args.models, w, chunk)
            r = run_ray(src, work / f"out_ray{w}.csv", args.models, w, chunk)
            r["small_seconds"], r["marginal_rows_per_s"] = s["seconds"], marginal(r, s)
            report[f"ray_{w}"] = r
            print(f"ray, {w} worker(s):", r, flush=True)
        report["ray_2_vs_1"] = round(report["ray_2"]["rows_per_s"] / report["ray_1"]["rows_per_s"], 2)
        report["ray_2_vs_1_marginal"] = round(report["ray_2"]["marginal_rows_per_s"]
                                              / report["ray_1"]["marginal_rows_per_s"], 2)
        if (work / "out_local.csv").exists():
            same = (work / "out_ray2.csv").read_bytes() == (work / "out_local.csv").read_bytes()
            report["ray_output_equals_local"] = same
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
