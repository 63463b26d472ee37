"""The evaluation lab's subcommands of ``python -m backend`` (imported by :func:`backend.cli._load_extensions`).

``evaluate FILE [--models w2v,bert,esim,sbert] [--a-col A --b-col B --label-col L] [--label-range 0,5] [--json]``
    Metrics of every model against the gold labels of a pairs file. ``--json`` prints exactly
    ``{"<model>": {"n": int, "spearman": float|null, "pearson": float|null, "auc": float|null,
    "best_f1": float|null, "threshold": float|null, "skipped": int}}``; correlations x 100, AUC and F1 in
    [0, 1], threshold in score units. For graded labels AUC / F1 / threshold binarise the gold label at
    the range midpoint (2.5 on 0–5). A model key may carry options: ``bert:pooling=cls``.
    Without ``--json``: a table, notes, and (graded labels) the Sentence-BERT-paper-style table.
``probe FILE --model bert [--whiten] [--json]``
    Spearman x 100 of every hidden layer x pooling (mean, cls, max) plus first_last_avg. ``--json`` prints
    ``{"model", "layers", "poolings", "spearman": [[...]], "first_last_avg", "whitened", "n", "skipped"}``.

Exit status: 0 done, 1 every model failed, 2 bad input (the message on stderr says what is needed).
"""

from __future__ import annotations

import argparse
import json
import sys

from backend.cli import _backend, _models_arg, command, positive_int, progress_bar, resolve_models


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="CSV/TSV of sentence pairs with a gold label column")
    p.add_argument("--a-col", default=None, help="first text column (default: guessed, e.g. sentence1)")
    p.add_argument("--b-col", default=None, help="second text column (default: guessed, e.g. sentence2)")
    p.add_argument("--label-col", default=None, help="gold label column (default: score, label, gold, similarity)")
    p.add_argument("--label-range", default=None, metavar="LO,HI",
                   help="declared label range, e.g. 0,5; labels outside it are skipped (default: inferred)")
    p.add_argument("--max-rows", type=positive_int, default=None, help="read only the first N rows")
    p.add_argument("--encoding", default=None, help="the file's encoding, when detection guesses wrong")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _load(args: argparse.Namespace):
    from backend.lab.evaluation import load_labelled_pairs

    rng = None
    if args.label_range:
        try:
            lo, hi = (float(x) for x in args.label_range.split(","))
        except ValueError:
            raise ValueError(f"--label-range must be LO,HI (e.g. 0,5), not {args.label_range!r}") from None
        rng = (lo, hi)
    data = load_labelled_pairs(args.input, args.a_col, args.b_col, args.label_col, rng, max_rows=args.max_rows,
                               encoding=args.encoding)  # a bad file ends in main()'s one error line (exit 2)
    for note in data.notes:
        print(f"note: {note}", file=sys.stderr)
    return data


# --------------------------------------------------------------------------------------------- evaluate
@command("evaluate", "metrics of every model against gold similarity labels (Spearman, Pearson, AUC, F1)")
def run_evaluate(args: argparse.Namespace) -> int:
    from backend.lab.evaluation import evaluate, format_table, paper_table

    be = _backend(args)
    models = resolve_models(be, args.models)  # a mistyped option fails before the file is read
    data = _load(args)
    a_col, b_col, label_col = data.columns
    lo, hi = data.label_range
    print(f"evaluating {len(data)} pairs ({a_col!r} vs {b_col!r}, {data.kind} label {label_col!r} on {lo:g}–{hi:g}) "
          f"with {', '.join(m.name for m in models)} on {be.device}", file=sys.stderr)
    bar, progress = progress_bar("pair", args.quiet)
    report = evaluate(be, data, models, progress)
    bar.close()
    for name, r in report.results.items():
        if r.error:
            print(f"warning: {name} failed: {r.error}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        table = report.table()
        print(format_table(table.drop(columns=["notes"])))
        for _, row in table.iterrows():
            if row["notes"]:
                print(f"  {row['model']}: {row['notes']}")
        print("spearman/pearson x100; auc, avg_precision, best_f1, accuracy in [0,1]; threshold in score units"
              + ("" if data.kind == "binary" else f"; binary metrics cut the gold label at {data.midpoint:g}"))
        if data.kind == "graded":
            print("\nSentence-BERT paper, Table 1 style (published: STS-B test; ours: this file):")
            print(format_table(paper_table(report)))
    return 1 if report.results and all(r.error for r in report.results.values()) else 0


def _configure_evaluate(p: argparse.ArgumentParser) -> None:
    _data_args(p)
    _models_arg(p)


run_evaluate.configure = _configure_evaluate


# ------------------------------------------------------------------------------------------------ probe
@command("probe", "BERT layer probe: Spearman for every hidden layer x pooling")
def run_probe(args: argparse.Namespace) -> int:
    from backend.lab.evaluation import format_table
    from backend.lab.probe import layer_name, probe_model
    from backend.lab.verdicts import probe_verdict

    data = _load(args)
    be = _backend(args)
    bar, progress = progress_bar("sentence", args.quiet)
    try:
        result = probe_model(be, args.model, data, whiten=args.whiten, whiten_dim=args.whiten_dim, progress=progress)
    finally:
        bar.close()  # before main() prints an error under it
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.as_json(), ensure_ascii=False))
        return 0
    frame = result.frame().reset_index()
    frame["layer"] = [layer_name(int(i), len(frame)) for i in frame["layer"]]
    print(f"{result.model}: Spearman x100 on {result.n} pairs{' (whitened)' if result.whitened else ''}")
    print(format_table(frame))
    fla = result.first_last_avg
    print(f"first_last_avg: {'-' if fla is None else f'{fla:.2f}'}")
    # the learnt mix and the model string that uses it (python -m backend evaluate --models <it>)
    print(f"layer mix: {result.mix_note}")
    if option := result.mix_option():
        print(f"layer mix option: {option}")
    verdict = probe_verdict(result)
    if verdict:
        print(verdict.text())
    return 0


def _configure_probe(p: argparse.ArgumentParser) -> None:
    _data_args(p)
    p.add_argument("--model", default="bert", help="a BERT-family registry key (default: bert)")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, mps")
    p.add_argument("--whiten", action="store_true", help="whiten vectors, fitted on the evaluation sentences")
    p.add_argument("--whiten-dim", type=positive_int, default=None, help="keep this many whitened dimensions")


run_probe.configure = _configure_probe

__all__ = ["run_evaluate", "run_probe"]
