"""Command line: ``python -m backend.esim train --train FILE --dev FILE --out DIR --lang en``."""

from __future__ import annotations

import argparse
import json
import sys

from backend.esim.model import ESIMConfig


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run a sub-command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m backend.esim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train ESIM on labelled pairs and write a checkpoint folder")
    t.add_argument("--train", required=True, help="CSV/TSV with two text columns and a score or 0/1 label")
    t.add_argument("--dev", help="development table for early stopping (default: 10%% of --train)")
    t.add_argument("--out", required=True, help="checkpoint folder to write")
    t.add_argument("--lang", choices=["en", "zh"], default="en")
    t.add_argument("--epochs", type=int, default=20, help="maximum epochs (early stopping usually ends sooner)")
    t.add_argument("--seed", type=int, default=13)
    t.add_argument("--embeddings", choices=["auto", "pretrained", "random"], default="auto",
                   help="auto = GloVe for English, learnt for Chinese")
    t.add_argument("--chinese", choices=["char", "word"], default="char", help="Chinese tokens: characters or jieba words")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=4e-4, help="Adam learning rate (Chen et al. use 4e-4)")
    t.add_argument("--patience", type=int, default=4)
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 = reproducible, shares the machine)")
    t.add_argument("--hidden-size", type=int, default=ESIMConfig.hidden_size)
    t.add_argument("--dropout", type=float, default=ESIMConfig.dropout)
    t.add_argument("--max-len", type=int, default=ESIMConfig.max_len, help="tokens read per sentence (longer: truncated)")
    t.add_argument("--no-exact-match", action="store_true", help="drop the exact-match word feature")
    t.add_argument("--finetune-embeddings", action="store_true", help="update pretrained vectors too")
    t.add_argument("--glove-top-k", type=int, default=50_000, help="GloVe words added to the training vocabulary")
    t.add_argument("--self-pairs", type=float, default=0.0,
                   help="fraction of extra (sentence, same sentence, top score) training pairs")
    t.add_argument("--negations", type=float, default=0.0,
                   help="fraction of extra (sentence, its negation, 2/5) training pairs (backend.esim.train.negate)")
    t.add_argument("--work-dir", help="resumable state after each epoch (default: OUT.ckpt; removed when done)")
    t.add_argument("--resume", action="store_true", help="continue a killed run from its work folder")
    args = parser.parse_args(argv)

    from backend.esim.train import train_esim

    config = ESIMConfig(
        hidden_size=args.hidden_size,
        projection_dim=args.hidden_size,
        mlp_dim=args.hidden_size,
        dropout=args.dropout,
        max_len=args.max_len,
        exact_match=not args.no_exact_match,
        freeze_embeddings=not args.finetune_embeddings,
    )
    result = train_esim(
        args.train, args.dev, args.out, lang=args.lang, epochs=args.epochs, seed=args.seed,
        embeddings=args.embeddings, chinese=args.chinese, batch_size=args.batch_size, lr=args.lr,
        patience=args.patience, threads=args.threads, glove_top_k=args.glove_top_k, self_pairs=args.self_pairs, negations=args.negations,
        config=config, verbose=True, work_dir=args.work_dir or args.out.rstrip("/") + ".ckpt", resume=args.resume,
    )
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(json.dumps({"out": str(result.out_dir), "best_epoch": result.best_epoch,
                      "best_metric": round(result.best_metric, 4), "seconds": round(result.seconds, 1),
                      "training": result.config.training}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
