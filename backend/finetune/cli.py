"""``python -m backend finetune`` and ``python -m backend curve``: fine-tune on labelled pairs, and the learning curve.

``finetune`` prints progress (with the time left) on stderr and, at the end, the new model's registry table on
stdout and nothing else there, so ``... > my.toml`` and ``SIMDASH_REGISTRY=...`` make it usable everywhere.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from backend.cli import command, positive_int

#: families whose weights a bi-encoder or cross-encoder can start from (a transformer that encodes text).
ENCODER_FAMILIES = ("sbert", "bert")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 0.9:
        raise argparse.ArgumentTypeError(f"must be in (0, 0.9], not {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {value}")
    return value


def base_spec(key: str, kind: str, registry=None):
    """The registered model to start from, refused (ValueError, with the reason) when it cannot be a base."""
    from backend.registry import Registry

    reg = registry or Registry.load()
    if key not in reg:
        raise ValueError(f"unknown base model {key!r}; registered: {', '.join(reg.keys())}")
    spec = reg[key]
    if spec.family not in ENCODER_FAMILIES:
        role = "scores pairs only (a pair scorer)" if spec.family in ("cross", "esim", "hybrid") else \
            "has no transformer to train (word vectors)"
        raise ValueError(f"{key!r} ({spec.family}) {role}: a {'bi-encoder' if kind == 'bi' else 'cross-encoder'} "
                         f"starts from a transformer encoder, one of the {'/'.join(ENCODER_FAMILIES)} models "
                         f"({', '.join(s.key for s in reg if s.family in ENCODER_FAMILIES)})")
    return spec


def load_data(args: argparse.Namespace):
    """(train, held_out, notes) from ``--train`` and ``--dev`` or a seeded ``--holdout`` split."""
    from backend.finetune.data import read_labelled, split_holdout, subsample

    train = read_labelled(args.train, "training data", label_max=args.label_max, bad_rows=args.bad_rows)
    notes = list(train.notes)
    if args.dev:
        held = read_labelled(args.dev, "dev data", label_max=args.label_max, bad_rows=args.bad_rows, min_pairs=4)
        if held.objective == "positive":
            raise ValueError("dev data: held-out pairs need labels (a score or 0/1 column) to be measured on")
    else:
        if train.objective == "positive":
            raise ValueError("positive pairs without labels cannot be measured: give --dev with labelled pairs")
        train, held = split_holdout(train, args.holdout, args.seed)
        notes.append(f"held out a random {len(held):,} of the pairs (seed {args.seed}) to measure on")
    if args.limit and args.limit < len(train):
        train = subsample(train, args.limit, args.seed)
        notes.append(f"trained on a random {args.limit:,} of the training pairs (seed {args.seed})")
    return train, held, notes


def _progress(quiet: bool):
    def report(fraction: float, message: str, metrics: dict[str, Any] | None = None) -> None:
        if not quiet:
            print(f"[{100 * fraction:5.1f}%] {message}", file=sys.stderr, flush=True)

    return report


def finetune(args: argparse.Namespace) -> tuple[str, Any]:
    """Run ``finetune`` from parsed arguments; returns (registry table, FinetuneResult)."""
    from backend.finetune.bi import train_bi_encoder
    from backend.finetune.card import registry_table, write_card

    spec = base_spec(args.base, args.kind)
    key = args.key or f"{args.base}-ft"
    out = Path(args.out)
    if out.exists() and not (args.overwrite or args.resume):
        raise FileExistsError(f"{out} exists: choose another --out, or add --overwrite to replace it")
    train, held, notes = load_data(args)
    say = _progress(args.quiet)
    for n in notes:
        say(0.0, n)
    command_line = "python -m backend " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["finetune"] else None
    extra = {"base_key": args.base, "key": key, "command": command_line}
    if args.kind == "bi":
        result = train_bi_encoder(train, held, out, spec.source, loss=args.loss, epochs=args.epochs,
                                  batch_size=args.batch_size, lr=args.lr or 2e-5, seed=args.seed, threads=args.threads,
                                  resume=args.resume, overwrite=args.overwrite, progress=say, extra_facts=extra)
    else:
        result = _finetune_cross(args, spec, train, held, out, say, extra)
    write_card(out, key, args.kind, spec, result.facts)
    metric = result.facts.get("metric", "spearman")
    say(1.0, f"done in {result.seconds:.0f} s: held-out {metric} {result.before.get(metric)} -> "
        f"{result.after.get(metric)} ({len(held):,} pairs); model in {out}")
    return registry_table(key, args.kind, spec, out, result.facts), result


def _finetune_cross(args, spec, train, held, out, say, extra):
    """The cross-encoder through :func:`backend.cross.train.train_cross_encoder` (issue 13's code), measured like
    the bi-encoder: "before" is the base model's cosine (what the ranker has to beat)."""
    import json
    import shutil

    from sentence_transformers import SentenceTransformer

    from backend.cross.checkpoint import load_compact, score_pairs
    from backend.cross.train import train_cross_encoder
    from backend.finetune.bi import FinetuneResult, bi_scores, pair_metrics
    from backend.registry import resolve_source

    if train.objective == "positive":
        raise ValueError("a cross-encoder learns from labelled pairs (similar and not); these have no labels")
    if out.exists() and args.overwrite and not args.resume:
        shutil.rmtree(out)
    say(0.0, f"measuring the base model's cosine on {len(held):,} held-out pairs")
    before = pair_metrics(bi_scores(SentenceTransformer(resolve_source(spec.source), device="cpu",
                                                        local_files_only=True), held), held)
    with tempfile.TemporaryDirectory() as tmp:
        tr_file, dv_file = Path(tmp) / "train.tsv", Path(tmp) / "held_out.tsv"
        train.frame().to_csv(tr_file, sep="\t", index=False)
        held.frame().to_csv(dv_file, sep="\t", index=False)
        r = train_cross_encoder(
            tr_file, dv_file, out, base_source=spec.source, lang="zh" if spec.language == "zh" else "en",
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr or 5e-5, seed=args.seed, threads=args.threads,
            select_symmetric=True, resume=args.resume, work_dir=out.with_name(out.name + ".ckpt"),
            progress=lambda s, t, m: say(s / max(1, t), f"step {s}/{t}: held-out Spearman "
                                                        f"{100 * m.get('dev_spearman_symmetric', 0):.2f}", m),
        )
    after = pair_metrics(score_pairs(load_compact(out), held.a, held.b, symmetric=True), held)
    facts = {"kind": "cross", "base_source": spec.source, "loss": "BinaryCrossEntropyLoss(logit, score/5)",
             "objective": train.objective, "label_max": train.label_max, "train_pairs": len(train),
             "held_out_pairs": len(held), "metric": "spearman" if held.kind == "graded" else "auc",
             "before": before, "after": after, "before_is": "the base model's cosine (as a bi-encoder)",
             "best_epoch": r.best_epoch, "epochs": args.epochs, "seconds": round(r.seconds, 1),
             "history": [{"epoch": h["epoch"], "spearman": round(100 * h.get("dev_spearman_symmetric",
                                                                             h["dev_spearman"]), 2)}
                         for h in r.history], **extra}
    (out / "simdash_finetune.json").write_text(json.dumps(facts, indent=1, ensure_ascii=False), encoding="utf-8")
    return FinetuneResult(out, "cross", before, after, r.best_epoch, facts["history"], r.seconds, r.notes, facts)


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train", required=True, help="labelled pairs: two text columns and a score/label column "
                   "(0/1, 0-1 or 0-5; other scales with --label-max), or two text columns of positive pairs")
    p.add_argument("--dev", default=None, help="labelled pairs to measure on (default: hold out --holdout of --train)")
    p.add_argument("--holdout", type=_fraction, default=0.2, help="fraction held out when no --dev (default 0.2)")
    p.add_argument("--label-max", type=_positive_float, default=None,
                   help="the top of the label scale (e.g. 10); needed when labels go above 5")
    p.add_argument("--bad-rows", choices=("error", "skip"), default="error",
                   help="a row with an empty text or a bad label: stop naming it (default) or skip it, counted")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


@command("finetune", "fine-tune a bi-encoder or a cross-encoder on labelled pairs; prints its registry table")
def run_finetune(args: argparse.Namespace) -> int:
    import contextlib

    # The trainer prints its summary on stdout; stdout is the registry table's alone.
    with contextlib.redirect_stdout(sys.stderr):
        table, _ = finetune(args)
    sys.stdout.write(table)
    return 0


def _configure_finetune(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", choices=("bi", "cross"), required=True,
                   help="bi: a twin-tower encoder (cosine of two vectors); cross: a ranker reading both texts")
    p.add_argument("--base", required=True, help="registry key of the transformer encoder to start from (sbert-zh)")
    _data_args(p)
    p.add_argument("--out", required=True, help="the model folder to write (refused when it exists)")
    p.add_argument("--key", default=None, help="the new model's registry key (default <base>-ft)")
    p.add_argument("--epochs", type=positive_int, default=1)
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--lr", type=_positive_float, default=None, help="default 2e-5 (bi), 5e-5 (cross)")
    p.add_argument("--loss", choices=("auto", "cosent", "mnrl"), default="auto",
                   help="bi only: auto = CoSENT for labelled pairs, MultipleNegativesRankingLoss for positive pairs")
    p.add_argument("--limit", type=positive_int, default=None, help="train on a seeded random N of the pairs")
    p.add_argument("--resume", action="store_true", help="continue a killed run of the same command")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")


run_finetune.configure = _configure_finetune


@command("curve", "the learning curve: bi-encoder, cross-encoder and ESIM trained on 100, 300, 1,000, all pairs")
def run_curve(args: argparse.Namespace) -> int:
    from backend.finetune.curve import curve_table, learning_curve

    bi = base_spec(args.bi_base, "bi")
    cross = base_spec(args.cross_base or args.bi_base, "cross")
    train, held, notes = load_data(args)
    say = _progress(args.quiet)
    for n in notes:
        say(0.0, n)
    sizes = [s if s == "all" else int(s) for s in args.sizes.split(",")]
    import contextlib

    with contextlib.redirect_stdout(sys.stderr):
        rows = learning_curve(train, held, args.out, lang="zh" if bi.language == "zh" else "en", bi_base=bi.source,
                          cross_base=cross.source, sizes=sizes, kinds=args.kinds.split(","), seed=args.seed,
                              threads=args.threads, progress=say)
    print(curve_table(rows, "spearman"))
    return 0


def _configure_curve(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bi-base", required=True, help="registry key of the encoder (sbert, sbert-zh)")
    p.add_argument("--cross-base", default=None, help="registry key of the cross-encoder's base (default --bi-base)")
    _data_args(p)
    p.add_argument("--out", required=True, help="folder for curve.csv and the trained models (a rerun resumes)")
    p.add_argument("--sizes", default="100,300,1000,all", help="training-set sizes (default 100,300,1000,all)")
    p.add_argument("--kinds", default="bi,cross,esim", help="models to train (default bi,cross,esim)")
    p.add_argument("--limit", type=positive_int, default=None, help=argparse.SUPPRESS)


run_curve.configure = _configure_curve
