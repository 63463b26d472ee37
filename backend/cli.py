"""Command line: ``python -m backend <command>``.

Commands (a stable contract that scripts rely on)
-------------------------------------------------
``pair A B [--models w2v,bert,sbert,esim] [--json]``
    One line per model: score and warnings. ``--json`` prints
    ``{"<model>": {"score": float|null, "warnings": [...], "model": "<key that scored>"}}``.
``score IN.csv OUT.csv [--models ...] [--a-col sentence1 --b-col sentence2]``
    Writes the input rows plus ``score_<model>``, ``scored_by_<model>`` and ``warnings_<model>`` columns per
    model (:mod:`backend.batch`); progress on stderr. Comma, tab, semicolon separated; UTF-8, UTF-8 with BOM,
    GBK. Text cells that start like a spreadsheet formula are escaped unless ``--raw``.

``--models`` takes registry keys with optional run-time options: ``w2v,bert:layer=-1:pooling=cls,esim``.
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
from collections.abc import Callable
from pathlib import Path

from backend.batch import score_frame
from backend.io import TableError, escape_formulas, read_table, resolve_pair_columns
from backend.options import OptionError
from backend.registry import ModelRequest

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
    p.add_argument("--models", default=None,
                   help="comma-separated registry keys, each with optional run-time options, e.g. "
                   "w2v,bert:layer=-1:pooling=cls (default: the registry's defaults)")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, mps")


def resolve_models(be, text: str | None) -> list[ModelRequest]:
    """Parse ``--models`` and check every option against its family's declaration, before any work.

    Raises
    ------
    KeyError
        An unknown model key.
    OptionError
        A malformed part, an unknown option or a value the model does not accept.
    """
    requests = be.registry.parse_models(text)
    for r in requests:
        be.check_request(r.key, r.options)
    return requests


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
    requests = resolve_models(be, args.models)
    results = be.similarity([args.text_a], [args.text_b], requests)
    if args.json:
        print(json.dumps({k: r.as_json(0) for k, r in results.items()}, ensure_ascii=False))
        return 0
    width = max(len(k) for k in results)
    for k, r in results.items():
        j = r.as_json(0)
        score = "  n/a " if j["score"] is None else f"{j['score']:.4f}"
        note = "" if j["model"] == r.key else f"  [scored by {j['model']}]"
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
@command("score", "add score_<model> columns to a CSV/TSV of sentence pairs")
def run_score(args: argparse.Namespace) -> int:
    out_path = Path(args.output)
    if not out_path.parent.exists():
        print(f"error: the output folder {str(out_path.parent)!r} does not exist", file=sys.stderr)
        return 2
    be = _backend(args)
    requests = resolve_models(be, args.models)  # a mistyped option fails before a big file is read
    try:
        table = read_table(args.input, encoding=args.encoding)
        a_col, b_col = resolve_pair_columns(table.frame, args.a_col, args.b_col)
    except (TableError, FileNotFoundError, IsADirectoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in table.notes:
        print(f"note: {note}", file=sys.stderr)
    n = len(table.frame)
    print(f"scoring {n} pairs ({a_col!r} vs {b_col!r}) with {', '.join(r.name for r in requests)} on {be.device}",
          file=sys.stderr)
    bar, progress = progress_bar("pair", args.quiet)
    scored = score_frame(be, table.frame, a_col, b_col, requests, progress=progress)
    bar.close()
    for name, err in scored.errors.items():
        print(f"warning: {name} failed, its column is empty: {err}", file=sys.stderr)
    sep = "\t" if str(args.output).endswith((".tsv", ".tab")) else ","
    frame = scored.frame if args.raw else escape_formulas(scored.frame)
    frame.to_csv(out_path, index=False, sep=sep)
    gaps = ", ".join(f"{k}: {v}" for k, v in scored.missing().items() if v)
    print(
        f"wrote {args.output}: {n} rows in {scored.seconds:.1f}s"
        + (f"; rows without a score (the warnings_<model> column says why): {gaps}" if gaps else ""),
        file=sys.stderr,
    )
    return 0 if len(scored.errors) < len(requests) else 1


def _configure_score(p: argparse.ArgumentParser) -> None:
    p.add_argument("input")
    p.add_argument("output")
    _models_arg(p)
    p.add_argument("--a-col", default=None, help="first text column (default: guessed, e.g. sentence1)")
    p.add_argument("--b-col", default=None, help="second text column (default: guessed, e.g. sentence2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--encoding", default=None,
                   help="the file's encoding, when detection guesses wrong (utf-8, gb18030, big5, cp1252, utf-16, ...)")
    p.add_argument("--raw", action="store_true",
                   help="write text cells as they are (by default cells starting with = + - @ get a leading ')")


run_score.configure = _configure_score


# ----------------------------------------------------------------------------------------------- models
@command("models", "list the registered models")
def run_models(args: argparse.Namespace) -> int:
    from backend.registry import Registry

    reg = Registry.load()
    from backend.families import family_class

    def roles(family: str) -> list[str]:
        try:
            return sorted(family_class(family).roles_of())
        except ValueError:
            return []

    rows = [
        {"key": s.key, "family": s.family, "roles": roles(s.family), "label": s.label, "source": s.source,
         "language": s.language, "default": s.default, "licence": s.licence, "options": dict(s.options)}
        for s in reg
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
    else:
        for r in rows:
            print(f"{r['key']:<10} {r['family']:<6} {r['language']:<5} {'*' if r['default'] else ' '} "
                  f"{'+'.join(r['roles']):<20} {r['source']}")
    for key, err in reg.errors.items():
        print(f"error: {key}: {err}", file=sys.stderr)
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

    for mod in ("backend.evaluation_cli", "backend.server"):
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
    except OptionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0

