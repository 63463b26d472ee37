"""Command line: ``python -m backend.cross train --train FILE --dev FILE --out DIR --lang en`` and
``python -m backend.cross evaluate FOLDER DEV.tsv``."""

from __future__ import annotations

import argparse
import json
import shlex
import sys


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
    t.add_argument("--evals-per-epoch", type=int, default=1, help="dev evaluations per epoch (best kept)")
    t.add_argument("--limit", type=int, help="train on a seeded random N of the training pairs")
    e = sub.add_parser("evaluate", help="Spearman/Pearson of a checkpoint on a scored table")
    e.add_argument("folder")
    e.add_argument("table")
    e.add_argument("--symmetric", action="store_true", help="average the scores of both orders")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args(argv)

    if args.command == "train":
        from backend.cross.train import train_cross_encoder

        command = "python -m backend.cross " + shlex.join(sys.argv[1:] if argv is None else argv)
        result = train_cross_encoder(
            args.train, args.dev, args.out, base_source=args.base, lang=args.lang, epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, seed=args.seed, threads=args.threads,
            both_orders=not args.one_order, loss=args.loss, warmup_ratio=args.warmup_ratio,
            weight_decay=args.weight_decay, max_length=args.max_length, freeze_embeddings=args.freeze_embeddings,
            freeze_layers=args.freeze_layers, select_symmetric=args.select_symmetric, evals_per_epoch=args.evals_per_epoch,
            limit=args.limit,
            command=command, verbose=True,
        )
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        print(json.dumps({"out": str(result.out_dir), "best_epoch": result.best_epoch,
                          "dev_spearman_x100": round(100 * result.dev_spearman, 2),
                          "dev_pearson_x100": round(100 * result.dev_pearson, 2),
                          "dev_spearman_symmetric_x100": round(100 * result.dev_spearman_symmetric, 2),
                          "seconds": round(result.seconds, 1)}, indent=2))
        return 0

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


if __name__ == "__main__":
    sys.exit(main())
