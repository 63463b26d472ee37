"""How often a match puts the right answer first: top-1 accuracy of :meth:`backend.files.match.Matcher.match` rows
against a label column.

A questions file often says which FAQ each question belongs to (an ``intent`` column in both files, or a column
holding the right FAQ's text). The first match of a question is right when its corpus row carries the question's
label. Labels are compared as text, with surrounding spaces removed and ``3.0`` read as ``3`` (a numeric column with
a gap is read back as floats).

A question counts once per model: its rank-1 row, or the one row an empty question gets (then it is unmatched, and
counts as a miss). Questions without a label are left out. ``answerable`` counts the labelled questions whose label
occurs in the corpus at all: when it is 0, the two label columns do not name the same things.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

#: the columns of :func:`top1_accuracy`'s frame.
ACCURACY_COLUMNS = ["model", "questions", "answerable", "correct", "unmatched", "accuracy"]
#: share of a question column's labels that must occur in a corpus column for the two to be guessed as a pair.
GUESS_OVERLAP = 0.5


def normalise_label(value: Any) -> str | None:
    """A label as compared: stripped text, ``3.0`` as ``"3"``; None for an empty or missing cell."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    text = str(value).strip()
    return text or None


def top1_accuracy(frame: pd.DataFrame, corpus_labels: Sequence[Any], label_col: str,
                  rank_col: str = "rank") -> pd.DataFrame:
    """Per model, how many labelled questions have a first match carrying their label.

    Parameters
    ----------
    frame : pd.DataFrame
        Match rows (``model``, ``corpus_row``, ``rank_col`` and the questions' ``label_col``).
    corpus_labels : sequence
        The label of each corpus file row (``corpus_row`` indexes it): the corpus's label column, or its texts when
        the questions' label is the right FAQ's text.
    label_col : str
        The questions' column naming the right answer.
    rank_col : str
        ``"rank"`` for each model's own order, ``"rerank_rank"`` for the order after a rerank.

    Returns
    -------
    pd.DataFrame
        :data:`ACCURACY_COLUMNS`, one row per model, best ``accuracy`` first (ties by model name); empty when no
        question has a label.

    Raises
    ------
    KeyError
        A column is missing from ``frame``.
    """
    missing = [c for c in ("model", "corpus_row", rank_col, label_col) if c not in frame.columns]
    if missing:
        raise KeyError(f"the match rows have no column {', '.join(map(repr, missing))}")
    labels = [normalise_label(v) for v in corpus_labels]
    known = {v for v in labels if v is not None}
    rank = pd.to_numeric(frame[rank_col], errors="coerce")
    # One row per (question, model): its first match, or the single row of a question that got none.
    first = frame.loc[(rank == 1) | rank.isna(), ["model", "corpus_row", label_col]].copy()
    first["gold"] = [normalise_label(v) for v in first[label_col]]
    first = first[first["gold"].notna()]
    if first.empty:
        return pd.DataFrame({c: [] for c in ACCURACY_COLUMNS})

    def predicted(row: Any) -> str | None:
        if row is None or (isinstance(row, float) and math.isnan(row)):
            return None
        i = int(row)
        return labels[i] if 0 <= i < len(labels) else None

    first["pred"] = [predicted(r) for r in first["corpus_row"]]
    first["correct"] = first["pred"] == first["gold"]
    first["answerable"] = first["gold"].isin(known)
    first["unmatched"] = first["corpus_row"].isna()
    out = first.groupby("model", sort=True).agg(questions=("gold", "size"), answerable=("answerable", "sum"),
                                                correct=("correct", "sum"), unmatched=("unmatched", "sum"))
    out = out.reset_index().astype({"questions": int, "answerable": int, "correct": int, "unmatched": int})
    out["accuracy"] = out["correct"] / out["questions"]
    return out.sort_values(["accuracy", "model"], ascending=[False, True], kind="stable")[ACCURACY_COLUMNS] \
        .reset_index(drop=True)


def _overlap(values: pd.Series, corpus_values: pd.Series) -> float:
    """Share of the non-empty ``values`` that occur among ``corpus_values`` (0 when there are none)."""
    gold = [v for v in (normalise_label(x) for x in values) if v is not None]
    if not gold:
        return 0.0
    known = {v for v in (normalise_label(x) for x in corpus_values) if v is not None}
    return sum(v in known for v in gold) / len(gold)


def guess_label_columns(questions: pd.DataFrame, corpus: pd.DataFrame, query_col: str,
                        text_col: str) -> tuple[str | None, str | None]:
    """The questions' column naming the right answer and the corpus column it names, or ``(None, None)``.

    First a column both files have (``intent``), then a questions column whose values are corpus texts; either way
    at least :data:`GUESS_OVERLAP` of the question column's labels must occur in the corpus column.
    """
    candidates = [str(c) for c in questions.columns if c != query_col]
    for col in candidates:
        if col in corpus.columns and col != text_col and _overlap(questions[col], corpus[col]) >= GUESS_OVERLAP:
            return col, col
    for col in candidates:
        if _overlap(questions[col], corpus[text_col]) >= GUESS_OVERLAP:
            return col, text_col
    return None, None


__all__ = ["ACCURACY_COLUMNS", "GUESS_OVERLAP", "guess_label_columns", "normalise_label", "top1_accuracy"]
