"""Command line: ``python -m backend.cross train --train FILE --dev FILE --out DIR --lang en`` and
``python -m backend.cross evaluate FOLDER DEV.tsv``."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run a sub-command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m backend.cross", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="fine-tune a cross-encoder on scored pairs and write a compact checkpoint")
    t.add_argument("--train", required=True, help="CSV/TSV with two text columns and a 0-5 or 0-1 score")
    t.add_argument("--dev", required=True, help="development table: chooses the epoch kept, nothing else")
    t.add_argument("--out", required=True, help="checkpoint folder to write")
    t.add_argument("--lang", choices=["en", "zh"], default="en")
    t.add_argument("--base", help="registry-style source of the base encoder (default: per --lang)")
    t.add_argument("--epochs", type=int, default=4)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=2e-5)
    t.add_argument("--seed", type=int, default=13)
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 shares the machine)")
    t.add_argument("--warmup-ratio", type=float, default=0.1)
    t.add_argument("--weight-decay", type=float, default=0.01)
    t.add_argument("--max-length", type=int, default=256, help="tokens per pair; longer pairs are truncated")
    t.add_argument("--loss", choices=["bce", "mse"], default="bce")
    t.add_argument("--one-order", action="store_true", help="train on (a, b) only, not also on (b, a)")
    t.add_argument("--freeze-embeddings", choices=["word", "all", "none"], default="word",
                   help="embedding parameters to freeze and not ship")
    t.add_argument("--freeze-layers", type=int, default=0, help="also freeze the bottom N transformer layers")
    t.add_argument("--select-symmetric", action="store_true",
                   help="pick the epoch by the dev Spearman of both-order averaged scores")
    t.add_argument("--evals-per-epoch", type=int, default=2,
                   help="dev evaluations and resumable checkpoints per epoch (best kept)")
    t.add_argument("--self-pairs", type=float, default=0.0,
                   help="add this fraction of sentence-with-itself pairs at the top score")
    t.add_argument("--negations", type=float, default=0.0,
                   help="add this fraction of (sentence, its negation) pairs at a low score")
    t.add_argument("--bad-rows", choices=["error", "skip"], default="error",
                   help="a row with a bad score or an empty text: stop naming it, or skip it and count")
    t.add_argument("--work-dir", help="resumable checkpoints (default: OUT.ckpt; removed when the run completes)")
    t.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the work folder")
    t.add_argument("--limit", type=int, help="train on a seeded random N of the training pairs")
    e = sub.add_parser("evaluate", help="Spearman/Pearson of a checkpoint on a scored table")
    e.add_argument("folder")
    e.add_argument("table")
    e.add_argument("--symmetric", action="store_true", help="average the scores of both orders")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--threads", type=int, help="torch CPU threads")
    f = sub.add_parser("fuse", help="fit a hybrid pair scorer (cross-encoder + bi-encoder cosine) on a dev table")
    f.add_argument("--cross", required=True, help="registry key of the cross-encoder (e.g. cross-zh)")
    f.add_argument("--encoder", required=True, help="registry key of the bi-encoder (e.g. sbert-zh)")
    f.add_argument("--dev", required=True, help="scored pairs the three fusion weights are fitted on")
    f.add_argument("--out", required=True, help="folder to write fusion.json into")
    f.add_argument("--folds", type=int, default=5, help="cross-validation folds for the honest estimate")
    f.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args(argv)

    if args.command == "train":
        from backend.cross.train import train_cross_encoder

        command = "python -m backend.cross " + shlex.join(sys.argv[1:] if argv is None else argv)
        try:
            result = train_cross_encoder(
                args.train, args.dev, args.out, base_source=args.base, lang=args.lang, epochs=args.epochs,
                batch_size=args.batch_size, lr=args.lr, seed=args.seed, threads=args.threads,
                both_orders=not args.one_order, loss=args.loss, warmup_ratio=args.warmup_ratio,
                weight_decay=args.weight_decay, max_length=args.max_length, freeze_embeddings=args.freeze_embeddings,
                freeze_layers=args.freeze_layers, select_symmetric=args.select_symmetric,
                evals_per_epoch=args.evals_per_epoch, limit=args.limit, self_pairs=args.self_pairs, negations=args.negations,
                bad_rows=args.bad_rows, work_dir=args.work_dir, resume=args.resume, command=command, verbose=True,
            )
        except (ValueError, FileNotFoundError, FileExistsError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        print(json.dumps({"out": str(result.out_dir), "best_epoch": result.best_epoch,
                          "dev_spearman_x100": round(100 * result.dev_spearman, 2),
                          "dev_pearson_x100": round(100 * result.dev_pearson, 2),
                          "dev_spearman_symmetric_x100": round(100 * result.dev_spearman_symmetric, 2),
                          "seconds": round(result.seconds, 1)}, indent=2))
        return 0

    if args.command == "fuse":
        return _fuse(args, "python -m backend.cross " + shlex.join(sys.argv[1:] if argv is None else argv))

    import torch

    from backend.cross.checkpoint import load_compact
    from backend.cross.train import evaluate_pairs
    from backend.esim.train import read_pairs

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_compact(args.folder)
    data = read_pairs(args.table, args.table)
    m = evaluate_pairs(model, data, symmetric=args.symmetric, batch_size=args.batch_size)
    print(json.dumps({"pairs": len(data.a), "symmetric": args.symmetric,
                      "spearman_x100": round(100 * m["spearman"], 2),
                      "pearson_x100": round(100 * m["pearson"], 2)}, indent=2))
    return 0


def _fuse(args: argparse.Namespace, command: str) -> int:
    """Score the dev table with both parts, fit the fusion and write ``fusion.json``."""
    import datetime

    import torch

    from backend.cross.fusion import FusionConfig, fit_fusion, write_fusion
    from backend.esim.train import read_pairs
    from backend.families import build_model
    from backend.registry import Registry

    if args.threads:
        torch.set_num_threads(args.threads)
    reg = Registry.load()
    try:
        specs = {"cross": reg[args.cross], "encoder": reg[args.encoder]}
        data = read_pairs(args.dev, args.dev)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cross = build_model(specs["cross"].with_options(symmetric=True), "cpu")
    encoder = build_model(specs["encoder"], "cpu")
    if "pair_scorer" not in cross.roles or "encoder" not in encoder.roles:
        print(f"error: --cross must be a pair scorer and --encoder an encoder ({args.cross}: {sorted(cross.roles)}, "
              f"{args.encoder}: {sorted(encoder.roles)})", file=sys.stderr)
        return 2
    p_cross = cross.score(data.a, data.b)
    va, vb = encoder.encode(data.a), encoder.encode(data.b)
    cosine = (va * vb).sum(1)
    weights, metrics = fit_fusion(p_cross, cosine, data.y, folds=args.folds)
    parts = {role: {"family": spec.family, "source": spec.source,
                    "options": {k: v for k, v in spec.options.items() if k != "runtime"}, "registry_key": spec.key}
             for role, spec in specs.items()}
    parts["cross"]["options"]["symmetric"] = True
    config = FusionConfig(parts["cross"], parts["encoder"], weights, metrics, {
        "dev": Path(args.dev).name, "dev_pairs": len(data.a), "command": command,
        "date": datetime.date.today().isoformat()})
    out = write_fusion(args.out, config)
    print(json.dumps({"out": str(out), "weights": {k: round(v, 4) for k, v in weights.items()},
                      **{k: round(100 * v, 2) if isinstance(v, float) else v for k, v in metrics.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
