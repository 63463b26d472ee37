"""Matching questions against an FAQ or a corpus: the top k corpus texts per question and model, reranked on request.

The everyday FAQ-matching job: a file of user questions, a file of FAQs (or any corpus), and per question each
model's best k entries. One output row per (question, model, rank) with the columns

``query, model, rank, text, score, corpus_row, warnings`` (+ ``rerank_score, rerank_rank, reranked_by``)

after the questions file's own columns. ``model`` names the model that produced the row: a model asked for on a
Chinese corpus is answered by its Chinese variant (one model for the whole corpus, by its dominant language:
:mod:`backend.routing`), so its vectors of corpus and questions share a space. The reranker reads each
(question, candidate) pair and is routed per pair like every pair scorer.

Bad input loses nothing: an empty question gets one row per model saying so (not dropped); empty corpus texts are
skipped and counted; a question in another script than the corpus is warned about; ``k`` above the corpus size
returns all of it, with a note.

:func:`match_file` streams a questions file of any size through :class:`~backend.files.batch.FileJob` (resumable
like ``score``); :class:`Matcher` is the in-memory core the Batch page and ``POST /v1/match`` call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backend.base import ENCODER, PAIR_SCORER, Encoding, ProgressFn
from backend.files.batch import FileJob, Stage
from backend.files.io import TableError, escape_formulas, read_table, require_columns
from backend.files.stream import output_format
from backend.registry import ModelRequest
from backend.results import RoleError
from backend.routing import Route, text_language
from backend.text import clean_text, detect_language

#: the columns a match adds, in order (the rerank ones only when a reranker is asked for).
COLUMNS = ["query", "model", "rank", "text", "score", "corpus_row", "warnings"]
RERANK_COLUMNS = ["rerank_score", "rerank_rank", "reranked_by"]
QUERY_NAMES = ("query", "question", "text", "sentence")
TEXT_NAMES = ("text", "faq", "question", "answer", "sentence", "document")
#: questions per chunk of a match file: each gives k x models rows.
MATCH_CHUNK_ROWS = 256


def pick_column(columns: Sequence[str], wanted: str | None, names: Sequence[str], what: str, flag: str) -> str:
    """``wanted`` (checked), else the first of ``names`` present (any case), else the only column."""
    cols = [str(c) for c in columns]
    if wanted:
        require_columns(pd.DataFrame(columns=cols), wanted)
        return wanted
    lower = {c.lower(): c for c in cols}
    for n in names:
        if n in lower:
            return lower[n]
    if len(cols) == 1:
        return cols[0]
    raise TableError(f"which column holds the {what}? The file has: {', '.join(map(repr, cols))}; name it with {flag}")


@dataclass
class MatchCorpus:
    """The texts questions are matched against, with empty ones left out (counted).

    Attributes
    ----------
    texts : list of str
        The non-empty texts, in file order, cleaned (what the models read).
    rows : np.ndarray
        Each text's row in the file (0 = first data row): the ``corpus_row`` column.
    skipped : int
        Empty texts left out.
    digest : str
        Identifies the texts (a resumed match must use the same corpus).
    """

    texts: list[str]
    rows: np.ndarray
    skipped: int = 0
    digest: str = ""
    originals: list[str] = field(default_factory=list)  # as written in the file: what the output shows

    @classmethod
    def from_texts(cls, texts: Sequence[Any]) -> MatchCorpus:
        cleaned = ["" if t is None or (isinstance(t, float) and np.isnan(t)) else clean_text(str(t)) for t in texts]
        keep = [i for i, t in enumerate(cleaned) if t]
        kept = [cleaned[i] for i in keep]
        digest = hashlib.sha256("\x1e".join(kept).encode()).hexdigest()[:16]
        return cls(kept, np.asarray(keep, dtype=np.int64), len(cleaned) - len(keep), digest,
                   [str(texts[i]) for i in keep])

    @classmethod
    def read(cls, path: str | Path, text_col: str | None = None, encoding: str | None = None) -> tuple[MatchCorpus, str, list[str]]:
        """The corpus of a CSV/TSV/TXT/Parquet file: ``(corpus, text column, notes)``."""
        p = Path(path)
        if p.suffix.lower() == ".parquet":
            frame, notes = pd.read_parquet(p), []
        else:
            table = read_table(p, encoding=encoding)
            frame, notes = table.frame, list(table.notes)
        col = pick_column(frame.columns, text_col, TEXT_NAMES, "corpus texts", "--text-col")
        corpus = cls.from_texts(frame[col].tolist())
        if not corpus.texts:
            raise TableError(f"{p.name}: every text in {col!r} is empty: nothing to match against")
        if corpus.skipped:
            notes.append(f"{corpus.skipped:,} empty corpus text(s) skipped")
        return corpus, col, notes


@dataclass
class Matcher:
    """Top-k matches of questions in one corpus, per model, optionally reranked.

    Parameters
    ----------
    be : Backend (or the remote client)
    corpus : MatchCorpus
    models : list of ModelRequest
        Encoders (a pair scorer alone gives no vectors to search with: refused).
    k : int
        Matches per question and model.
    rerank : ModelRequest, optional
        A pair scorer (or encoder) that rescores each (question, candidate) pair.

    Attributes
    ----------
    routes : dict
        Per model name, the :class:`~backend.routing.Route` that answers for this corpus.
    notes : list of str
        Routing, a k above the corpus size.
    """

    be: Any
    corpus: MatchCorpus
    models: list[ModelRequest]
    k: int = 5
    rerank: ModelRequest | None = None
    routes: dict[str, Route] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _enc: dict[str, Encoding] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, not {self.k}")
        if not self.models:
            raise ValueError("name at least one model to match with")
        for r in self.models:
            if ENCODER not in self.be.roles(r.key):
                raise RoleError(f"{r.key} scores pairs only and gives no vectors to search a corpus with; use it as "
                                f"the reranker (--rerank {r.key}) and match with an encoder "
                                f"({', '.join(self.be.keys_with_role(ENCODER))})")
            route = self.be.route_texts(r.key, self.corpus.texts, r.options)
            self.routes[r.name] = route
            if route.note:
                self.notes.append(f"{r.name}: {route.note}")
        if self.rerank is not None:
            self.be.roles(self.rerank.key)  # unknown key: KeyError now, not after the first chunk
        if self.k > len(self.corpus.texts):
            self.notes.append(f"k = {self.k} is more than the corpus's {len(self.corpus.texts):,} texts: every text is "
                              "returned, ranked")
        self.lang = self._corpus_language()

    def _corpus_language(self) -> str | None:
        from backend.routing import corpus_language

        return corpus_language(self.corpus.texts)[0]

    def corpus_encoding(self, name: str, progress: ProgressFn | None = None) -> Encoding:
        """The corpus's vectors under model ``name``'s route (embedded once per matcher)."""
        if name not in self._enc:
            route = self.routes[name]
            self._enc[name] = self.be.embed(route.key, self.corpus.texts, route.options or None, progress)
        return self._enc[name]

    def _question_warnings(self, q: str) -> list[str]:
        if not q:
            return ["empty question: nothing to match"]
        lang = detect_language(q)
        if lang in ("ja", "ko", "other"):
            return [f"this question is in another script ({lang}) than the corpus: its matches are unreliable"]
        ql = text_language(q)
        if self.lang is not None and ql is not None and ql != self.lang:
            names = {"zh": "Chinese", "en": "English"}
            return [f"this question is {names[ql]}, the corpus is {names[self.lang]}: it is read by the corpus's "
                    "model, made for the other language"]
        return []

    def match(self, queries: Sequence[Any], extra: pd.DataFrame | None = None, progress: ProgressFn | None = None,
              should_stop: Callable[[], bool] | None = None) -> pd.DataFrame:
        """The match rows of ``queries`` (one chunk), after the columns of ``extra`` (the questions' own row)."""
        from backend.jobs import StopRequested
        from backend.serving.backend import top_k_neighbours

        raw = ["" if q is None or (isinstance(q, float) and np.isnan(q)) else str(q) for q in queries]
        qs = [clean_text(q) for q in raw]
        qwarn = [self._question_warnings(q) for q in qs]
        filled = [i for i, q in enumerate(qs) if q]
        parts: list[pd.DataFrame] = []
        steps = len(self.models) * (2 if self.rerank is not None else 1)
        for m_i, r in enumerate(self.models):
            if should_stop is not None and should_stop():
                raise StopRequested("stopped")
            route = self.routes[r.name]

            def sub(d: int, t: int, step: int = m_i) -> None:
                if progress is not None:
                    progress(step * 100 + int(100 * d / max(1, t)), steps * 100)

            c_enc = self.corpus_encoding(r.name, sub)
            k = min(self.k, len(self.corpus.texts))
            if filled:
                q_enc = self.be.embed(route.key, [qs[i] for i in filled], route.options or None)
                nb = top_k_neighbours(q_enc, c_enc, k, route.key)
            rows = {c: [] for c in ["_q", *COLUMNS]}
            pos = {i: j for j, i in enumerate(filled)}
            for i in range(len(qs)):
                shown = raw[i]
                if i not in pos:
                    self._row(rows, i, shown, route.key, None, "", np.nan, None, qwarn[i])
                    continue
                j = pos[i]
                got = [(int(c), float(s)) for c, s in zip(nb.indices[j], nb.scores[j], strict=True) if c >= 0]
                if not got:
                    why = "; ".join(nb.warnings[j]) or "no vector for this question"
                    self._row(rows, i, shown, route.key, None, "", np.nan, None, [*qwarn[i], why])
                    continue
                for rank, (c, s) in enumerate(got, start=1):
                    self._row(rows, i, shown, route.key, rank, self.corpus.originals[c], s, int(self.corpus.rows[c]),
                              [*qwarn[i], *nb.warnings[j]] if rank == 1 else qwarn[i])
            part = pd.DataFrame(rows)
            if self.rerank is not None:
                part = self._rerank(part, lambda d, t, m_i=m_i: sub(d, t, len(self.models) + m_i))
            parts.append(part)
        out = pd.concat(parts, ignore_index=True)
        # Question by question (each model's ranks together), as a person reads the file.
        out = out.sort_values(["_q"], kind="stable").reset_index(drop=True)
        if extra is not None and len(extra.columns):
            own = extra.reset_index(drop=True)
            own = own[[c for c in own.columns if c not in out.columns]]
            out = pd.concat([own.iloc[out["_q"].to_numpy()].reset_index(drop=True), out], axis=1)
        return out.drop(columns=["_q"])

    @staticmethod
    def _row(rows: dict, i: int, q: str, model: str, rank: int | None, text: str, score: float,
             corpus_row: int | None, warnings: list[str]) -> None:
        rows["_q"].append(i)
        rows["query"].append(q)
        rows["model"].append(model)
        rows["rank"].append(rank)
        rows["text"].append(text)
        rows["score"].append(score)
        rows["corpus_row"].append(corpus_row)
        rows["warnings"].append("; ".join(dict.fromkeys(warnings)))

    def _rerank(self, part: pd.DataFrame, progress: ProgressFn | None) -> pd.DataFrame:
        """``rerank_score`` of every (question, candidate) row, ``rerank_rank`` within each question, and the model
        that read the pair (``reranked_by``: routed per pair, so a Chinese pair names the Chinese scorer)."""
        r = self.rerank
        assert r is not None
        has = part["rank"].notna().to_numpy()
        scores = np.full(len(part), np.nan)
        by = [""] * len(part)
        if has.any():
            # What was read: the cleaned forms (the output shows the file's own).
            res = self.be.similarity([clean_text(x) for x in part.loc[has, "query"]],
                                     [clean_text(x) for x in part.loc[has, "text"]], [r],
                                     progress=progress)[r.name]
            if res.error is not None:
                raise RuntimeError(f"the reranker {r.key} failed: {res.error}")
            scores[has] = res.scores
            for j, u in zip(np.flatnonzero(has), res.used, strict=True):
                by[j] = u
        part = part.copy()
        part["rerank_score"] = scores
        ranked = part.assign(_s=np.where(np.isnan(scores), -np.inf, scores))
        part["rerank_rank"] = ranked.groupby("_q")["_s"].rank(method="first", ascending=False).where(has)
        part["reranked_by"] = by
        return part


class MatchStage(Stage):
    """The one step of a match file job: a chunk of questions in, their match rows out (k x models per question)."""

    def __init__(self, matcher: Matcher, query_col: str) -> None:
        self.request = ModelRequest("match", "match", {})
        self.error = None
        self.matcher, self.query_col = matcher, query_col

    def apply(self, be, frame, progress=None, should_stop=None):
        if not len(frame):
            cols = [*frame.columns, *COLUMNS, *(RERANK_COLUMNS if self.matcher.rerank else [])]
            return pd.DataFrame({c: [] for c in dict.fromkeys(cols)})
        extra = frame.drop(columns=[self.query_col])
        return self.matcher.match(frame[self.query_col].tolist(), extra, progress, should_stop)

    def missing(self, frame):
        return int(frame["score"].isna().sum()) if "score" in frame else 0


def match_file(
    be, queries: str | Path, corpus: str | Path, output: str | Path, models: Sequence[str | ModelRequest] | None = None,
    *, top_k: int = 5, rerank: str | ModelRequest | None = None, query_col: str | None = None,
    text_col: str | None = None, raw: bool = False, resume: bool = False, chunk_rows: int = MATCH_CHUNK_ROWS,
    encoding: str | None = None,
) -> FileJob:
    """A resumable job matching every question of ``queries`` against ``corpus`` into ``output``.

    Parameters
    ----------
    models : list, optional
        Encoders to match with (default: the registry's default encoders, each routed by the corpus's language).
    top_k : int
        Rows per question and model.
    rerank : str or ModelRequest, optional
        A pair scorer for ``rerank_score``.
    query_col, text_col : str, optional
        The questions' column (default ``query``, ``question``, ``text``, or the only one) and the corpus's.
    raw : bool
        Write text cells as they are (by default cells that start like a spreadsheet formula are escaped in
        CSV/TSV).

    Returns
    -------
    FileJob
        ``job.query_col``, ``job.text_col`` name the columns found; ``job.notes`` what the user should know.
    """
    if models is None:
        models = [k for k in be.registry.defaults() if ENCODER in be.roles(k)]
    requests = be.registry.requests(models)
    rr = be.registry.requests([rerank])[0] if rerank is not None else None
    if rr is not None and PAIR_SCORER not in be.roles(rr.key) and ENCODER not in be.roles(rr.key):
        raise RoleError(f"{rr.key} cannot score pairs")
    mc, tcol, cnotes = MatchCorpus.read(corpus, text_col)
    matcher = Matcher(be, mc, list(requests), int(top_k), rr)
    fmt = output_format(Path(output))
    escape = fmt != "parquet" and not raw
    chosen: dict[str, str] = {}

    def make(head: pd.DataFrame):
        col = pick_column(head.columns, query_col, QUERY_NAMES, "questions", "--query-col")
        chosen["query_col"] = col
        opts = {"query_col": col, "corpus": mc.digest, "top_k": int(top_k), "format": fmt, "escape_formulas": escape,
                "models": [{"name": r.name, "config": be.model_config(rt.key, rt.options).config_id}
                           for r in requests for rt in [matcher.routes[r.name]]],
                "rerank": None if rr is None else be.model_config(rr.key, rr.options).config_id}
        return [MatchStage(matcher, col)], (escape_formulas if escape else None), opts, None

    job = FileJob.open(queries, output, "match", make, resume=resume, chunk_rows=chunk_rows, encoding=encoding)
    job.notes[:0] = [*cnotes, *matcher.notes]
    job.query_col, job.text_col, job.matcher = chosen["query_col"], tcol, matcher
    return job


__all__ = ["COLUMNS", "MATCH_CHUNK_ROWS", "RERANK_COLUMNS", "MatchCorpus", "MatchStage", "Matcher", "match_file",
           "pick_column"]
