"""Labelled pairs for fine-tuning: read, check, split.

A fine-tune is only as good as the table it reads, so everything a user can get wrong is refused here with the
reason, before a model loads:

- fewer than :data:`MIN_PAIRS` usable pairs (nothing can be learnt or measured);
- every label equal (no loss has a gradient to follow: CoSENT ranks pairs against each other);
- labels on a scale we cannot infer (above 5): the top of the scale must be given (``label_max``);
- negative labels, empty texts, missing labels (row numbers named; ``bad_rows="skip"`` leaves them out, counted).

Labels are read by :func:`backend.esim.train.read_pairs` (the project's one reader of labelled pairs): 0/1 labels
are binary, scores up to 1 a 0-1 scale, up to 5 STS's 0-5 scale, and the scale found is said in ``notes``. A table
with two text columns and no label column holds *positive pairs* (questions and their answers, duplicates): the
bi-encoder then trains with in-batch negatives (sentence-transformers' ``MultipleNegativesRankingLoss``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from backend.esim.train import PairData, _pick_columns, _read_frame, read_pairs

#: fewer usable pairs than this are refused: 20 is below any learning curve's first point, and a held-out split of
#: fewer than four pairs measures nothing.
MIN_PAIRS = 20

Objective = Literal["regression", "binary", "positive"]


@dataclass
class LabelledPairs:
    """Pairs ready to train on.

    Attributes
    ----------
    a, b : list of str
    y : np.ndarray (n,) float32
        Targets in [0, 1] (score / label_max); all 1 for positive pairs.
    objective : {"regression", "binary", "positive"}
    label_max : float
        The top of the scale the labels were read on (5, 1, or the user's ``label_max``).
    notes : list of str
        What reading did: the scale inferred, rows skipped.
    """

    a: list[str]
    b: list[str]
    y: np.ndarray
    objective: Objective
    label_max: float
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.a)

    def take(self, idx: np.ndarray) -> LabelledPairs:
        """The pairs at ``idx`` (same scale and objective)."""
        return replace(self, a=[self.a[i] for i in idx], b=[self.b[i] for i in idx], y=self.y[idx],
                       notes=list(self.notes))

    @property
    def kind(self) -> Literal["graded", "binary"]:
        """How :func:`backend.lab.evaluation.compute_metrics` reads the labels."""
        return "graded" if self.objective == "regression" else "binary"

    def frame(self) -> pd.DataFrame:
        """A table ``sentence1, sentence2, score`` (score on 0-5, or 0/1) that :func:`read_pairs` reads back."""
        top = 5.0 if self.objective == "regression" else 1.0
        return pd.DataFrame({"sentence1": self.a, "sentence2": self.b, "score": self.y.astype(np.float64) * top})


def _positive_columns(frame: pd.DataFrame) -> tuple[str, str] | None:
    """The two text columns of a table that has no label column (positive pairs), or None."""
    if frame.shape[1] != 2:
        return None
    numeric = [c for c in frame.columns if pd.to_numeric(frame[c], errors="coerce").notna().mean() > 0.5]
    return None if numeric else (str(frame.columns[0]), str(frame.columns[1]))


def read_labelled(
    source: str | Path | pd.DataFrame,
    name: str = "training data",
    *,
    label_max: float | None = None,
    bad_rows: Literal["error", "skip"] = "error",
    min_pairs: int = MIN_PAIRS,
) -> LabelledPairs:
    """Read a table of labelled (or positive) pairs and refuse what cannot be trained on.

    Parameters
    ----------
    source : path or DataFrame
        CSV/TSV/Parquet; columns as :func:`backend.esim.train.read_pairs` finds them (``sentence1``,
        ``sentence2``, ``score``/``label``...), or exactly two text columns for positive pairs.
    name : str
        What to call the table in messages.
    label_max : float, optional
        The top of the label scale (10 for 0-10 ratings). Needed when labels go above 5; otherwise inferred.
    bad_rows : {"error", "skip"}
        A row with an empty text or a missing/out-of-range label: refuse naming it, or skip it and count it.
    min_pairs : int
        Refuse fewer usable pairs than this.

    Raises
    ------
    ValueError
        With the reason: too few pairs, every label equal, labels above 5 without ``label_max``, bad rows.
    """
    frame = _read_frame(source).reset_index(drop=True)
    if len(frame) == 0:
        raise ValueError(f"{name}: the table has no rows")
    pos = _positive_columns(frame)
    if pos is not None:
        a_s = frame[pos[0]].fillna("").astype(str)
        b_s = frame[pos[1]].fillna("").astype(str)
        empty = (a_s.str.strip() == "") | (b_s.str.strip() == "")
        notes = [f"{name}: no label column, so every row is a positive pair (columns {pos[0]!r}, {pos[1]!r}); "
                 "other rows of a batch serve as negatives"]
        if empty.any():
            if bad_rows == "error":
                rows = ", ".join(str(i + 1) for i in np.flatnonzero(empty.to_numpy())[:10])
                raise ValueError(f"{name}: an empty text in row(s) {rows} (row 1 = first after the header); fix "
                                 "them or skip them (--bad-rows skip)")
            notes.append(f"{name}: skipped {int(empty.sum())} rows with an empty text")
        keep = ~empty.to_numpy()
        data = LabelledPairs(a_s[keep].tolist(), b_s[keep].tolist(), np.ones(int(keep.sum()), np.float32),
                             "positive", 1.0, notes)
    else:
        scale_note = ""
        _, _, col_y = _pick_columns(frame)
        raw = pd.to_numeric(frame[col_y], errors="coerce")
        if label_max is not None:
            if not label_max > 0:
                raise ValueError(f"label_max must be above 0, not {label_max}")
            frame = frame.copy()
            frame[col_y] = raw / float(label_max) * 5.0  # onto STS's 0-5 scale, which read_pairs knows
            scale_note = f"labels read on a 0-{label_max:g} scale (as given)"
        else:
            top = float(np.nanmax(raw.to_numpy(dtype=np.float64))) if raw.notna().any() else float("nan")
            if top > 5:
                raise ValueError(
                    f"{name}: labels in {col_y!r} go up to {top:g}, beyond the scales that can be inferred (0/1, "
                    f"0-1, 0-5): give the top of their scale (--label-max {top:g}, or the scale's real top)")
        pairs: PairData = read_pairs(frame, name, bad_rows=bad_rows)
        if not scale_note:
            scale_note = {"binary": "labels read as binary (0 = different, 1 = similar)",
                          "regression": f"labels read on a 0-{pairs.label_max:g} scale (inferred from their range)"}[
                pairs.objective]
        label_top = float(label_max) if label_max is not None else pairs.label_max
        data = LabelledPairs(pairs.a, pairs.b, pairs.y, pairs.objective, label_top,
                             [f"{name}: {scale_note}", *pairs.notes])
        if np.ptp(data.y) == 0:
            raise ValueError(f"{name}: every label is {float(data.y[0]) * label_top:g}: nothing tells a similar pair "
                             "from a different one, so there is nothing to learn. Add pairs with other labels, or "
                             "drop the label column to train on positive pairs")
    if len(data) < min_pairs:
        raise ValueError(f"{name}: {len(data)} usable pair(s); fine-tuning needs at least {min_pairs} (and a learning "
                         "curve hundreds)")
    return data


#: what the trainers import beyond the dashboard's requirements (sentence-transformers' Trainer needs both).
TRAINING_EXTRA = ("datasets", "accelerate")


def missing_training_extra() -> list[str]:
    """The training packages not installed (``pip install -r requirements-train.txt`` adds them); empty when
    fine-tuning can run. Asked without importing them (``datasets`` alone takes seconds to import)."""
    from importlib.util import find_spec

    return [m for m in TRAINING_EXTRA if find_spec(m) is None]


def split_holdout(data: LabelledPairs, fraction: float, seed: int) -> tuple[LabelledPairs, LabelledPairs]:
    """A seeded random split into (train, held out); the held-out part has at least 4 pairs.

    Raises
    ------
    ValueError
        When ``fraction`` is outside (0, 0.9] or too little would be left to train on.
    """
    if not 0 < fraction <= 0.9:
        raise ValueError(f"the held-out fraction must be in (0, 0.9], not {fraction}")
    n = len(data)
    n_out = max(4, round(n * fraction))
    if n - n_out < MIN_PAIRS:
        raise ValueError(f"holding out {n_out} of {n} pairs leaves {n - n_out} to train on (at least {MIN_PAIRS}): "
                         "add pairs, lower the held-out fraction, or give a separate dev file")
    order = np.random.default_rng(seed).permutation(n)
    return data.take(np.sort(order[n_out:])), data.take(np.sort(order[:n_out]))


def subsample(data: LabelledPairs, n: int, seed: int) -> LabelledPairs:
    """A seeded random ``n`` of the pairs (all when ``n >= len``): STS-B's rows are grouped by genre, so the first
    rows would be captions only. Subsamples of one seed are nested (the first 100 are among the first 300)."""
    if n >= len(data):
        return data
    order = np.random.default_rng(seed).permutation(len(data))
    return data.take(np.sort(order[:n]))
