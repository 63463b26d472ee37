"""Command line: ``python -m backend <command>``.

Commands (a stable contract that scripts rely on)
-------------------------------------------------
``pair A B [--models w2v,bert,sbert,esim] [--json]``
    One line per model: score and warnings. ``--json`` prints
    ``{"<model>": {"score": float|null, "warnings": [...], "model": "<key that scored>"}}``.
``score IN OUT [--models ...] [--a-col sentence1 --b-col sentence2] [--resume] [--engine local|ray]``
    Writes the input rows plus ``score_<model>``, ``scored_by_<model>`` and ``warnings_<model>`` columns per
    model (:mod:`backend.files.batch`), chunk by chunk with bounded memory, whatever the file size; progress (rows/s,
    time left) on stderr. IN: comma, tab, semicolon separated (UTF-8, UTF-8 with BOM, GBK) or Parquet; OUT:
    .csv, .tsv or .parquet. CSV text cells that start like a spreadsheet formula are escaped unless ``--raw``.
    ``--resume`` continues a killed run after its last finished chunk (``OUT.progress.json``). A bad row
    (another number of fields, a repeated header, an unclosed quote) stops the job with its line number;
    the rows before it are written. ``--engine ray [--address auto|ray://head:10001]``: see docs/scale.md.

``--models`` takes registry keys with optional run-time options: ``w2v,bert:layer=-1:pooling=cls,esim``.
``embed CORPUS OUT.parquet [--models sbert,bert] [--text-col text] [--resume] [--engine local|ray]``
    The corpus's texts and other columns plus ``vec_<model>`` (float32 unit vectors), ``valid_<model>`` and
    ``warnings_<model>``, with every model's configuration in the Parquet schema metadata
    (:mod:`backend.files.embed`; read back with :func:`backend.files.embed.load_embedded_corpus`).
``models [--json]``
    The registry; ``--json`` prints one object per model with its roles, language, variants, licence flags and
    its family's declared ``options`` (name, type, default, range or choices, why, run-time or not, Chinese title),
    the registry's own values under ``registry_options``.
``evaluate FILE [--models ...] [--a-col ... --b-col ... --label-col ...] [--json]``
    Metrics against gold labels (see :mod:`backend.lab.evaluation_cli`); ``--json`` prints
    ``{"<key>": {"n", "spearman", "pearson", "auc", "best_f1", "threshold", "skipped"}}``.
``probe FILE --model bert [--whiten] [--json]``
    Spearman for every BERT layer x pooling.

ESIM training has its own entry point: ``python -m backend.esim train ...``.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from backend.base import ENCODER
from backend.files.batch import CHUNK_ROWS
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


#: a file job keeps no vectors between chunks: each chunk's numbers then depend on its rows alone, so the output is
#: the same on the local engine, on Ray and after a resume (BLAS sums can differ in the last bit with the batch
#: a text is encoded in), and memory stays flat. Texts repeated within a chunk are still encoded once.
FILE_JOB_CACHE = 0


def _backend(args: argparse.Namespace, **kw):
    from backend.serving import Backend

    return Backend(device=args.device, **kw)


# ------------------------------------------------------------------------------------------------- pair
@command("pair", "score one sentence pair with every model")
def run_pair(args: argparse.Namespace) -> int:
    be = _backend(args)
    requests = resolve_models(be, args.models)
    results = be.similarity([args.text_a], [args.text_b], requests)
    if args.json:
        print(json.dumps({k: r.as_json(0) for k, r in results.items()}, ensure_ascii=False))
    else:
        width = max(len(k) for k in results)
        for k, r in results.items():
            j = r.as_json(0)
            score = "  n/a " if j["score"] is None else f"{j['score']:.4f}"
            note = "" if j["model"] == r.key else f"  [scored by {j['model']}]"
            warn = f"  ({'; '.join(j['warnings'])})" if j["warnings"] else ""
            print(f"{k:<{width}}  {score}{note}{warn}")
    # Exit 1 when no model could score: a script must not read "n/a" as done.
    if all(r.error for r in results.values()):
        print("error: no model could score the pair: " + "; ".join(f"{k}: {r.error}" for k, r in results.items()),
              file=sys.stderr)
        return 1
    return 0


def _configure_pair(p: argparse.ArgumentParser) -> None:
    p.add_argument("text_a")
    p.add_argument("text_b")
    _models_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


run_pair.configure = _configure_pair


# ------------------------------------------------------------------------------------------------ score
@command("score", "add score_<model> columns to a CSV/TSV/Parquet file of sentence pairs, of any size")
def run_score(args: argparse.Namespace) -> int:
    from backend.files.batch import score_file

    be = _backend(args, cache_size=FILE_JOB_CACHE)
    requests = resolve_models(be, args.models)  # a mistyped option fails before a big file is read
    # An unreadable input, a refused output or resume ends in main()'s one error line (exit 2).
    job = score_file(be, args.input, args.output, requests, args.a_col, args.b_col, raw=args.raw,
                     resume=args.resume, chunk_rows=args.chunk_rows, encoding=args.encoding)
    for note in job.notes:
        print(f"note: {note}", file=sys.stderr)
    if job.result.complete:
        return 0
    where = be.device if args.engine == "local" else f"Ray ({args.address or 'local'})"
    print(f"scoring pairs of {job.a_col!r} vs {job.b_col!r} with {', '.join(r.name for r in requests)} on {where}",
          file=sys.stderr)
    result = _run_job(job, be, args)
    if result is None:
        return 2
    for name, err in result.errors.items():
        print(f"warning: {name} failed, its column is empty: {err}", file=sys.stderr)
    gaps = ", ".join(f"{k}: {v}" for k, v in result.missing.items() if v)
    done = f"wrote {args.output}: {result.rows} rows" + (
        f" ({result.rows_this_run} in this run)" if result.resumed_from else "") + f" in {result.seconds:.1f}s"
    print(done + (f"; rows without a score (the warnings_<model> column says why): {gaps}" if gaps else ""),
          file=sys.stderr)
    if result.stopped is not None:
        print(f"error: {result.stopped}; the output has the {result.rows:,} row{'s' * (result.rows != 1)} before it "
              f"({Path(args.output).name}.progress.json says where it stopped)", file=sys.stderr)
        return 2
    return 0 if len(result.errors) < len(requests) else 1


def _run_job(job, be, args: argparse.Namespace):
    """Run a file job on the chosen engine with a rows/s progress bar; None when the engine is unavailable."""
    bar, progress = progress_bar("row", args.quiet)
    try:
        if args.engine == "ray":
            from backend.files.ray_engine import EngineError, run_on_ray

            try:
                return run_on_ray(job, address=args.address, workers=args.workers, progress=progress,
                                  device=args.device)
            except EngineError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return None
        return job.run(be, progress=progress)
    finally:
        bar.close()


def _file_job_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", action="store_true",
                   help="continue a killed run of the same OUT after its last finished chunk (OUT.progress.json)")
    p.add_argument("--chunk-rows", type=positive_int, default=None,
                   help="rows read, processed and written per step (default: %(default)s = the job's own)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process; ray: Ray Data actors (pip install -r requirements-scale.txt)")
    p.add_argument("--address", default=None,
                   help="Ray cluster: auto (the one started with `ray start` here) or ray://head:10001; "
                   "default: a Ray started for this job on this machine")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="Ray actors per model (default: the CPUs Ray sees, divided among the models)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _configure_score(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="CSV/TSV (comma, tab, semicolon; UTF-8, BOM, GBK) or Parquet")
    p.add_argument("output", help=".csv, .tsv or .parquet")
    _models_arg(p)
    p.add_argument("--a-col", default=None, help="first text column (default: guessed, e.g. sentence1)")
    p.add_argument("--b-col", default=None, help="second text column (default: guessed, e.g. sentence2)")
    p.add_argument("--encoding", default=None,
                   help="the file's encoding, when detection guesses wrong (utf-8, gb18030, big5, cp1252, utf-16, ...)")
    p.add_argument("--raw", action="store_true",
                   help="write text cells as they are (by default CSV cells starting with = + - @ get a leading ')")
    _file_job_args(p)
    p.set_defaults(chunk_rows=CHUNK_ROWS)


run_score.configure = _configure_score


# ------------------------------------------------------------------------------------------------ match
@command("match", "match a file of questions against an FAQ or corpus: top k per question and model, resumable")
def run_match(args: argparse.Namespace) -> int:
    from backend.files.match import match_file

    be = _backend(args, cache_size=FILE_JOB_CACHE)
    # Default: the registry's default encoders, each routed by the corpus's language (sbert -> sbert-zh).
    requests = resolve_models(be, args.models) if args.models else None
    rerank = resolve_models(be, args.rerank)[0] if args.rerank else None
    job = match_file(be, args.queries, args.corpus, args.output, requests, top_k=args.top_k, rerank=rerank,
                     query_col=args.query_col, text_col=args.text_col, raw=args.raw, resume=args.resume,
                     chunk_rows=args.chunk_rows, encoding=args.encoding)
    for note in job.notes:
        print(f"note: {note}", file=sys.stderr)
    if job.result.complete:
        return 0
    used = ", ".join(r.key for r in job.matcher.routes.values())
    print(f"matching {job.query_col!r} against {len(job.matcher.corpus.texts):,} texts of {job.text_col!r} with "
          f"{used}" + (f", reranked by {rerank.key}" if rerank else "") + f" on {be.device}", file=sys.stderr)
    if args.engine != "local":
        print("error: match runs on the local engine only", file=sys.stderr)
        return 2
    result = _run_job(job, be, args)
    if result is None:
        return 2
    print(f"wrote {args.output}: {result.rows:,} questions in {result.seconds:.1f}s", file=sys.stderr)
    if result.stopped is not None:
        print(f"error: {result.stopped}; the output has the questions before it", file=sys.stderr)
        return 2
    return 0


def _configure_match(p: argparse.ArgumentParser) -> None:
    from backend.files.match import MATCH_CHUNK_ROWS

    p.add_argument("queries", help="questions: CSV/TSV/TXT/Parquet with a query (question, text) column")
    p.add_argument("corpus", help="the FAQ or corpus: CSV/TSV/TXT/Parquet with a text column")
    p.add_argument("output", help=".csv, .tsv or .parquet: one row per question, model and rank")
    _models_arg(p)
    p.add_argument("--top-k", type=positive_int, default=5, help="matches per question and model (default 5)")
    p.add_argument("--rerank", default=None, help="a pair scorer that rescores each (question, match) pair: cross")
    p.add_argument("--query-col", default=None, help="the questions' column (default: query, question, text, or the only one)")
    p.add_argument("--text-col", default=None, help="the corpus's column (default: text, faq, question, ..., or the only one)")
    p.add_argument("--encoding", default=None, help="the questions file's encoding, when detection guesses wrong")
    p.add_argument("--raw", action="store_true", help="write text cells as they are (no formula escaping)")
    _file_job_args(p)
    p.set_defaults(chunk_rows=MATCH_CHUNK_ROWS)


run_match.configure = _configure_match


# ------------------------------------------------------------------------------------------------ embed
@command("embed", "write a corpus's sentence vectors (one column per model) to a Parquet file, of any size")
def run_embed(args: argparse.Namespace) -> int:
    from backend.files.embed import embed_file

    be = _backend(args, cache_size=FILE_JOB_CACHE)
    if args.models is None:  # the default encoders: the defaults that score pairs only give no vectors
        args.models = ",".join(k for k in be.registry.defaults() if ENCODER in be.roles(k))
    requests = resolve_models(be, args.models)
    job = embed_file(be, args.input, args.output, requests, args.text_col, resume=args.resume,
                     chunk_rows=args.chunk_rows)
    for note in job.notes:
        print(f"note: {note}", file=sys.stderr)
    if job.result.complete:
        return 0
    where = be.device if args.engine == "local" else f"Ray ({args.address or 'local'})"
    print(f"embedding {job.text_col!r} with {', '.join(r.key for r in job.models)} on {where}", file=sys.stderr)
    result = _run_job(job, be, args)
    if result is None:
        return 2
    gaps = ", ".join(f"{k}: {v}" for k, v in result.missing.items() if v)
    print(f"wrote {args.output}: {result.rows} texts in {result.seconds:.1f}s"
          + (f"; texts without a vector (the warnings_<model> column says why): {gaps}" if gaps else ""), file=sys.stderr)
    if result.stopped is not None:
        print(f"error: {result.stopped}; the output has the {result.rows:,} texts before it", file=sys.stderr)
        return 2
    return 0


def _configure_embed(p: argparse.ArgumentParser) -> None:
    from backend.files.embed import EMBED_CHUNK_ROWS

    p.add_argument("input", help="corpus: CSV/TSV/Parquet with a text column, or .txt with one text per line")
    p.add_argument("output", help="a .parquet file: texts, the corpus's other columns, vec_/valid_/warnings_<model>")
    _models_arg(p)
    p.add_argument("--text-col", default=None, help="the text column (default: text, sentence, or the only column)")
    _file_job_args(p)
    p.set_defaults(chunk_rows=EMBED_CHUNK_ROWS)


run_embed.configure = _configure_embed


# ----------------------------------------------------------------------------------------------- models
@command("models", "list the registered models")
def run_models(args: argparse.Namespace) -> int:
    from backend.families import family_class
    from backend.registry import Registry

    reg = Registry.load()

    def declared(spec) -> tuple[list[str], list[dict], str | None]:
        """Roles and declared options (type, default, range or choices, why, Chinese title) from the family."""
        try:
            cls = family_class(spec.family)
            return sorted(cls.roles_of()), [o.as_json() for o in cls.declared_options(spec)], None
        except Exception as exc:  # a broken family: its row says why, the other rows are whole
            return [], [], str(exc)

    rows = []
    for s in reg:
        roles, options, error = declared(s)
        rows.append({"key": s.key, "family": s.family, "roles": roles, "label": s.label, "source": s.source,
                     "language": s.language, "variants": dict(s.variants), "default": s.default,
                     "licence": s.licence, "research_only": s.research_only, "stands_in_for": s.stands_in_for,
                     "facts": dict(s.facts), "registry_options": dict(s.options), "options": options,
                     "error": error})
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, default=str))
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

    for mod in ("backend.lab.evaluation_cli", "backend.server", "backend.w2v.cli", "backend.finetune.cli"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def describe_error(exc: BaseException) -> tuple[str, int]:
    """``(one-line message, exit code)`` for an error that ends a command: 2 for a problem with the input, the
    files or the options (the message says what to change), 1 for anything unexpected."""
    if isinstance(exc, KeyError):
        return str(exc).strip("'\""), 2
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        msg = f"{exc.strerror or exc}{where}"
        if exc.errno == errno.ENOSPC:
            msg += ("; the rows finished so far are kept: free some space and run the same command with --resume")
        return msg, 2
    if isinstance(exc, ValueError):  # TableError, OptionError, ResumeError, RoleError, RegistryError: all ValueErrors
        return str(exc), 2
    return (f"unexpected {type(exc).__name__}: {exc} (set SIMDASH_DEBUG=1 to see where; please report it)", 1)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m backend``.

    Every error ends in one line on stderr (``error: ...``) and a non-zero exit code, never a traceback
    (``SIMDASH_DEBUG=1`` prints it too, for a bug report).
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("stopped (a file job goes on from here with --resume)", file=sys.stderr)
        return 130
    except Exception as exc:
        msg, code = describe_error(exc)
        print(f"error: {msg}", file=sys.stderr)
        if os.environ.get("SIMDASH_DEBUG"):
            traceback.print_exc()
        return code

