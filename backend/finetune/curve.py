"""The learning curve: is labelled data worth it, on the user's own pairs?

Train the bi-encoder, the cross-encoder and ESIM on seeded random subsets of the training pairs (100, 300, 1,000,
all; nested, so the 300 contain the 100) and measure each on the same held-out pairs, beside the untrained base
model. One row per (model kind, n): held-out Spearman x100 (graded labels), ROC-AUC x100, seconds.

Epochs follow n (a smaller set gets more passes, so every point trains for a comparable number of steps); the kept
epoch of each run is chosen on the held-out pairs, as the trainers do, so every point shares that small optimism.
Each trained model is written under ``out_dir/<kind>-<n>`` and the rows to ``out_dir/curve.csv`` as they come, so
a killed run resumes from the first missing point.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from backend.finetune.data import LabelledPairs, subsample

#: the points of the curve; "all" is the whole training set.
SIZES: tuple[int | str, ...] = (100, 300, 1000, "all")
KINDS = ("bi", "cross", "esim")
#: epochs per n and kind: about the same number of training steps for the small sets, one or two passes for the big.
EPOCHS = {
    "bi": {100: 4, 300: 3, 1000: 1, None: 2},
    "cross": {100: 4, 300: 3, 1000: 2, None: 1},
}
COLUMNS = ["kind", "n", "epochs", "spearman", "auc", "seconds", "model"]


def epochs_for(kind: str, n: int) -> int:
    """Epochs of a run of ``kind`` on ``n`` pairs (``EPOCHS``; the ``None`` row for anything above 1,000)."""
    table = EPOCHS[kind]
    for size in sorted(k for k in table if k is not None):
        if n <= size:
            return table[size]
    return table[None]


def _esim_scores(folder: Path, lang: str, data: LabelledPairs) -> np.ndarray:
    from backend.families import build_model
    from backend.registry import ModelSpec

    model = build_model(ModelSpec(key="esim-curve", family="esim", label="ESIM", source=f"path:{folder}",
                                  language=lang), "cpu")
    return np.asarray(model.score(data.a, data.b), np.float64)


def _cross_scores(folder: Path, data: LabelledPairs) -> np.ndarray:
    from backend.cross.checkpoint import load_compact, score_pairs

    return np.asarray(score_pairs(load_compact(folder), data.a, data.b, symmetric=True), np.float64)


def learning_curve(
    train: LabelledPairs,
    held_out: LabelledPairs,
    out_dir: str | Path,
    *,
    lang: str,
    bi_base: str,
    cross_base: str,
    sizes: Sequence[int | str] = SIZES,
    kinds: Sequence[str] = KINDS,
    seed: int = 13,
    threads: int | None = None,
    progress: Callable[[float, str, dict[str, Any] | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[dict[str, Any]]:
    """Train every (kind, n) point and return the rows (also in ``out_dir/curve.csv``); see the module docstring.

    ``n = 0`` rows are the untrained base models (the bi-encoder base; ESIM and a cross-encoder have no untrained
    form worth scoring). Rows already in ``curve.csv`` are kept and not trained again.
    """
    from backend.finetune.bi import bi_scores, pair_metrics, train_bi_encoder
    from backend.jobs import StopRequested

    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown kind(s) {', '.join(unknown)}: choose from {', '.join(KINDS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "curve.csv"
    rows: list[dict[str, Any]] = []
    if table.is_file():
        with table.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    done = {(r["kind"], int(r["n"])) for r in rows}
    ns = sorted({len(train) if s == "all" else min(int(s), len(train)) for s in sizes})
    plan = [("base", 0)] + [(k, n) for n in ns for k in kinds]
    plan = [p for p in plan if p not in done]

    def say(i: int, message: str, metrics: dict[str, Any] | None = None) -> None:
        if progress is not None:
            progress(i / max(1, len(plan)), message, metrics)

    def add(row: dict[str, Any]) -> None:
        rows.append(row)
        new = not table.is_file()
        with table.open("a", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS)
            if new:
                w.writeheader()
            w.writerow(row)

    for i, (kind, n) in enumerate(plan):
        if should_stop is not None and should_stop():
            raise StopRequested(f"stopped after {i} of {len(plan)} points; run again to continue")
        t0 = time.perf_counter()
        folder = out / f"{kind}-{n}"
        if kind == "base":
            from sentence_transformers import SentenceTransformer

            from backend.registry import resolve_source

            say(i, "scoring the untrained bi-encoder on the held-out pairs")
            m = pair_metrics(bi_scores(SentenceTransformer(resolve_source(bi_base), device="cpu",
                                                           local_files_only=True), held_out), held_out)
            add({"kind": "base", "n": 0, "epochs": 0, "spearman": m.get("spearman"), "auc": m["auc"],
                 "seconds": round(time.perf_counter() - t0, 1), "model": bi_base})
            continue
        part = subsample(train, n, seed)
        say(i, f"{kind} on {n:,} pairs ({i + 1} of {len(plan)})")

        def inner(fraction: float, message: str, metrics: dict[str, Any] | None = None, i: int = i,
                  kind: str = kind, n: int = n) -> None:
            say(i + fraction, f"{kind} on {n:,} pairs: {message}", metrics)

        if kind == "bi":
            epochs = epochs_for("bi", n)
            r = train_bi_encoder(part, held_out, folder, bi_base, epochs=epochs, seed=seed, threads=threads,
                                 overwrite=True, progress=inner, should_stop=should_stop)
            m = r.after
        elif kind == "cross":
            from backend.cross.train import train_cross_encoder

            epochs = epochs_for("cross", n)
            with tempfile.TemporaryDirectory() as tmp:
                tr_file, dv_file = Path(tmp) / "train.tsv", Path(tmp) / "held_out.tsv"
                part.frame().to_csv(tr_file, sep="\t", index=False)
                held_out.frame().to_csv(dv_file, sep="\t", index=False)
                shutil.rmtree(folder, ignore_errors=True)
                train_cross_encoder(tr_file, dv_file, folder, base_source=cross_base, lang=lang, epochs=epochs,
                                    seed=seed, threads=threads, lr=5e-5, evals_per_epoch=1, select_symmetric=True,
                                    progress=lambda s, t, mm: inner(s / max(1, t), f"step {s}/{t}", mm))
            m = pair_metrics(_cross_scores(folder, held_out), held_out)
        else:
            from backend.esim.train import train_esim

            epochs = 20
            train_esim(part.frame(), held_out.frame(), folder, lang=lang, epochs=epochs, seed=seed,
                       embeddings="auto", threads=threads, self_pairs=0.1, should_stop=should_stop,
                       **({"chinese": "char", "lr": 1e-3} if lang == "zh" else {}))
            m = pair_metrics(_esim_scores(folder, lang, held_out), held_out)
        add({"kind": kind, "n": n, "epochs": epochs, "spearman": m.get("spearman"), "auc": m["auc"],
             "seconds": round(time.perf_counter() - t0, 1), "model": str(folder)})
    return rows


def curve_table(rows: Sequence[dict[str, Any]], metric: str = "spearman") -> str:
    """A Markdown table: one row per kind, one column per n (the README's curves)."""
    ns = sorted({int(r["n"]) for r in rows if r["kind"] != "base"})
    base = next((r for r in rows if r["kind"] == "base"), None)
    head = "| model | " + " | ".join(f"{n:,}" for n in ns) + " |"
    lines = [head, "| --- |" + " --- |" * len(ns)]
    for kind in KINDS:
        got = {int(r["n"]): r.get(metric) for r in rows if r["kind"] == kind}
        if got:
            cells = [("" if got.get(n) in (None, "") else f"{float(got[n]):.1f}") for n in ns]
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    if base is not None and base.get(metric) not in (None, ""):
        lines.append("| untrained bi-encoder | " + " | ".join(f"{float(base[metric]):.1f}" for _ in ns) + " |")
    return "\n".join(lines)


__all__ = ["COLUMNS", "EPOCHS", "KINDS", "SIZES", "curve_table", "epochs_for", "learning_curve"]
