"""Command line: ``python -m backend <command>``.

Commands (a stable contract that scripts rely on)
-------------------------------------------------
``pair A B [--models w2v,bert,sbert,esim] [--json]``
    One line per model: score and warnings. ``--json`` prints
    ``{"<key>": {"score": float|null, "warnings": [...], "model": "<key that scored>"}}``.
``score IN.csv OUT.csv [--models ...] [--a-col sentence1 --b-col sentence2]``
    Writes the input rows plus one ``score_<key>`` column per model; progress on stderr. Comma, tab,
    semicolon separated; UTF-8, UTF-8 with BOM, GBK.
``models [--json]``
    The registry.
``evaluate FILE [--models ...] [--a-col ... --b-col ... --label-col ...] [--json]``
    Metrics against gold labels (see :mod:`backend.evaluation_cli`); ``--json`` prints
    ``{"<key>": {"n", "spearman", "pearson", "auc", "best_f1", "threshold", "skipped"}}``.
``probe FILE --model bert [--whiten] [--json]``
    Spearman for every BERT layer x pooling.

ESIM training has its own entry point: ``python -m backend.esim train ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from backend.io import TableError, read_table, resolve_pair_columns

#: subcommands other modules add: name -> (configure(parser), run(args) -> exit code)
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help: str):
    """Register a subcommand: decorate ``run(args) -> int``; the decorated object gets ``.configure``."""

    def deco(run):
        def configure_default(p: argparse.ArgumentParser) -> None:
            pass

        run.help = help
        run.configure = configure_default
        COMMANDS[name] = (lambda p: run.configure(p), run)
        return run

    return deco


def _models_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", default=None, help="comma-separated registry keys (default: the registry's defaults)")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, mps")


def progress_bar(unit: str, quiet: bool = False):
    """A tqdm bar on stderr and a ``progress(done, total)`` callback that drives it."""
    from tqdm import tqdm

    bar = tqdm(total=0, unit=unit, file=sys.stderr, disable=quiet)
    last = [0]

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - last[0])
        last[0] = done

    return bar, progress


def _backend(args: argparse.Namespace):
    from backend.service import Backend

    return Backend(device=args.device)


# ------------------------------------------------------------------------------------------------- pair
@command("pair", "score one sentence pair with every model")
def run_pair(args: argparse.Namespace) -> int:
    be = _backend(args)
    keys = be.registry.parse_keys(args.models)
    results = be.similarity([args.text_a], [args.text_b], keys)
    if args.json:
        print(json.dumps({k: r.as_json(0) for k, r in results.items()}, ensure_ascii=False))
        return 0
    width = max(len(k) for k in keys)
    for k, r in results.items():
        j = r.as_json(0)
        score = "  n/a " if j["score"] is None else f"{j['score']:.4f}"
        note = "" if j["model"] == k else f"  [scored by {j['model']}]"
        warn = f"  ({'; '.join(j['warnings'])})" if j["warnings"] else ""
        print(f"{k:<{width}}  {score}{note}{warn}")
    return 0


def _configure_pair(p: argparse.ArgumentParser) -> None:
    p.add_argument("text_a")
    p.add_argument("text_b")
    _models_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


run_pair.configure = _configure_pair


# ------------------------------------------------------------------------------------------------ score
def score_frame(be, frame: pd.DataFrame, a_col: str, b_col: str, keys: list[str],
                progress: Callable[[int, int], None] | None = None, chunk: int = 2048,
                options: dict[str, dict] | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """Add ``score_<key>`` columns to a copy of ``frame``, chunk by chunk; returns (frame, errors per model).

    A failing model gets an empty column and an entry in the error dict; the others are unaffected.
    ``options`` holds per-model runtime options (``{"bert": {"layer": -1}}``).
    """
    out = frame.copy()
    a = out[a_col].tolist()
    b = out[b_col].tolist()
    n = len(out)
    total = n * len(keys)
    errors: dict[str, str] = {}
    done = 0
    for key in keys:
        col = np.full(n, np.nan, dtype=np.float64)
        for s in range(0, n, chunk):
            size = min(chunk, n - s)
            sub = None
            if progress:
                # Within a chunk the model reports texts encoded (about two per pair): scale to pairs.
                def sub(d: int, t: int, base: int = done, size: int = size) -> None:
                    progress(base + int(size * min(d, t) / max(t, 1)), total)
            r = be.score_pairs(key, a[s : s + chunk], b[s : s + chunk], (options or {}).get(key), progress=sub)
            if r.error:
                errors[key] = r.error
                break
            col[s : s + chunk] = r.scores
            done += min(chunk, n - s)
            if progress:
                progress(done, total)
        out[f"score_{key}"] = np.round(col, 6)
    return out, errors


@command("score", "add score_<key> columns to a CSV/TSV of sentence pairs")
def run_score(args: argparse.Namespace) -> int:
    try:
        table = read_table(args.input)
        a_col, b_col = resolve_pair_columns(table.frame, args.a_col, args.b_col)
    except (TableError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in table.notes:
        print(f"note: {note}", file=sys.stderr)
    be = _backend(args)
    keys = be.registry.parse_keys(args.models)
    n = len(table.frame)
    print(f"scoring {n} pairs ({a_col!r} vs {b_col!r}) with {', '.join(keys)} on {be.device}", file=sys.stderr)
    bar, progress = progress_bar("pair", args.quiet)
    t0 = time.perf_counter()
    out, errors = score_frame(be, table.frame, a_col, b_col, keys, progress)
    bar.close()
    for key, err in errors.items():
        print(f"warning: {key} failed, its column is empty: {err}", file=sys.stderr)
    sep = "\t" if str(args.output).endswith((".tsv", ".tab")) else ","
    out.to_csv(args.output, index=False, sep=sep)
    missing = {k: int(out[f"score_{k}"].isna().sum()) for k in keys if k not in errors}
    gaps = ", ".join(f"{k}: {v}" for k, v in missing.items() if v)
    print(
        f"wrote {args.output}: {n} rows in {time.perf_counter() - t0:.1f}s"
        + (f"; rows without a score (empty text / no known words): {gaps}" if gaps else ""),
        file=sys.stderr,
    )
    return 0 if not errors or len(errors) < len(keys) else 1


def _configure_score(p: argparse.ArgumentParser) -> None:
    p.add_argument("input")
    p.add_argument("output")
    _models_arg(p)
    p.add_argument("--a-col", default=None, help="first text column (default: guessed, e.g. sentence1)")
    p.add_argument("--b-col", default=None, help="second text column (default: guessed, e.g. sentence2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


run_score.configure = _configure_score


# ----------------------------------------------------------------------------------------------- models
@command("models", "list the registered models")
def run_models(args: argparse.Namespace) -> int:
    from backend.registry import Registry

    reg = Registry.load()
    rows = [
        {"key": s.key, "family": s.family, "label": s.label, "source": s.source, "language": s.language,
         "default": s.default, "options": dict(s.options)}
        for s in reg
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
    else:
        for r in rows:
            print(f"{r['key']:<10} {r['family']:<6} {r['language']:<5} {'*' if r['default'] else ' '} {r['source']}")
    return 0


def _configure_models(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true")


run_models.configure = _configure_models


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with every registered subcommand."""
    _load_extensions()
    parser = argparse.ArgumentParser(prog="python -m backend", description="Sentence-similarity models, side by side.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (configure, run) in COMMANDS.items():
        p = sub.add_parser(name, help=run.help, description=run.help)
        configure(p)
        p.set_defaults(_run=run)
    return parser


def _load_extensions() -> None:
    """Import modules that register more subcommands (evaluation lab), if present."""
    import importlib

    for mod in ("backend.evaluation_cli", "backend.w2v_cli"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m backend``."""
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyError as exc:
        print(f"error: {str(exc).strip(chr(39))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0

