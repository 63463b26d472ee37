"""The backend's results shaped into the tables a person reads and downloads (no streamlit import).

Nothing here computes a number the backend does not already give: these functions pick, order, round and
label. Scores that are missing read ``n/a`` with the reason, never ``None`` or ``NaN``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: above this many rows the batch page announces chunked processing and a time estimate.
LARGE_BATCH_ROWS = 100_000
#: rows scored per backend call on the Batch page: the first chunk's time gives the estimate within seconds.
BATCH_CHUNK_ROWS = 4096


# --------------------------------------------------------------------------------------------- pairs
def pairs_from_editor(frame: pd.DataFrame | None) -> tuple[list[str], list[str], list[int]]:
    """Complete pairs from the pairs editor, and the 1-based numbers of half-filled rows.

    Rows where both cells are empty are ignored (the editor's blank last row); rows with one side only
    are reported so the page can say which row needs a second sentence.
    """
    if frame is None or frame.empty:
        return [], [], []
    a_out: list[str] = []
    b_out: list[str] = []
    partial: list[int] = []
    for n, (a, b) in enumerate(zip(frame.iloc[:, 0].tolist(), frame.iloc[:, 1].tolist(), strict=True), start=1):
        a_s = "" if a is None or (isinstance(a, float) and math.isnan(a)) else str(a).strip()
        b_s = "" if b is None or (isinstance(b, float) and math.isnan(b)) else str(b).strip()
        if a_s and b_s:
            a_out.append(a_s)
            b_out.append(b_s)
        elif a_s or b_s:
            partial.append(n)
    return a_out, b_out, partial


def missing_reason(warnings: Sequence[str]) -> str:
    """Why a score is missing, from a pair's warnings: the ones that say "no score"/"no vector", else all."""
    said = [w for w in warnings if "no score" in w or "no vector" in w or "no known words" in w or "no words" in w]
    return "; ".join(said or warnings) or "undefined"


def score_cell(score: float, warnings: Sequence[str], error: str | None = None,
               na: Callable[[str], str] = lambda reason: f"n/a: {reason}") -> str:
    """A score as a person reads it: ``0.812``, or ``n/a: <reason>`` (failed model: ``n/a: failed: ...``)."""
    if error is not None:
        return na(f"failed: {error}")
    if score is None or not math.isfinite(float(score)):
        return na(missing_reason(warnings))
    return f"{float(score):.3f}"


def scores_frame(a: Sequence[str], b: Sequence[str], results: Mapping[str, Any]) -> pd.DataFrame:
    """One row per pair: ``pair, sentence_a, sentence_b`` and, per model, ``score_<key>`` (float, NaN = none),
    ``scored_by_<key>`` and ``warnings_<key>`` (the download)."""
    out = pd.DataFrame({"pair": np.arange(1, len(a) + 1), "sentence_a": list(a), "sentence_b": list(b)})
    for key, r in results.items():
        if r.error is not None or r.scores is None:
            out[f"score_{key}"] = np.full(len(a), np.nan)
            out[f"scored_by_{key}"] = ""
            out[f"warnings_{key}"] = f"failed: {r.error}"
            continue
        out[f"score_{key}"] = np.round(np.asarray(r.scores, dtype=np.float64), 4)
        out[f"scored_by_{key}"] = list(r.used)
        out[f"warnings_{key}"] = ["; ".join(w) for w in r.warnings]
    return out


def score_cells_frame(a: Sequence[str], b: Sequence[str], results: Mapping[str, Any],
                      na: Callable[[str], str] = lambda reason: f"n/a: {reason}") -> pd.DataFrame:
    """The Compare table: ``#, sentence A, sentence B`` and one text cell per model (a score or n/a + reason),
    with ``→ key`` appended where a language variant scored the pair."""
    out = pd.DataFrame({"#": np.arange(1, len(a) + 1), "A": list(a), "B": list(b)})
    for key, r in results.items():
        cells = []
        for i in range(len(a)):
            if r.error is not None or r.scores is None:
                cells.append(score_cell(float("nan"), [], r.error, na))
                continue
            cell = score_cell(float(r.scores[i]), r.warnings[i], None, na)
            if r.used[i] != key:
                cell += f" → {r.used[i]}"
            cells.append(cell)
        out[key] = cells
    return out


def explain_frame(i: int, results: Mapping[str, Any], labels: Mapping[str, str],
                  settings: Mapping[str, str],
                  na: Callable[[str], str] = lambda reason: f"n/a: {reason}") -> pd.DataFrame:
    """Why pair ``i`` got its scores: one row per model with score, scoring model, settings and warnings (``na``
    writes a missing score, as in :func:`score_cell`)."""
    rows = []
    for key, r in results.items():
        if r.error is not None or r.scores is None:
            rows.append({"model": labels.get(key, key), "score": score_cell(float("nan"), [], r.error, na),
                         "scored by": key, "settings": "", "warnings": ""})
            continue
        used = r.used[i] if r.used else key
        rows.append({
            "model": labels.get(key, key),
            "score": score_cell(float(r.scores[i]), r.warnings[i], None, na),
            "scored by": used,
            "settings": settings.get(used, settings.get(key, "")),
            "warnings": "; ".join(r.warnings[i]) if r.warnings and r.warnings[i] else "",
        })
    return pd.DataFrame(rows, columns=["model", "score", "scored by", "settings", "warnings"])


def answered_label(asked: str, used: Sequence[str], labels: Mapping[str, str]) -> str:
    """The name of what produced a model's results: the asked model's label, or the label of the language variant
    that answered for it (``sbert`` on Chinese text is ``m3e-small (zh)``); several answering models (pairs in both
    languages) are joined by `` / `` in the order they first answered.

    Parameters
    ----------
    asked : str
        The model key a page asked for.
    used : sequence of str
        The key that answered, per item (``ModelResult.used``, ``[Neighbours.model]``, a projection's route key).
    labels : mapping
        Key -> registry label (a key without one is shown as it is).
    """
    keys = list(dict.fromkeys(used)) or [asked]
    return " / ".join(labels.get(k, k) for k in keys)


def settings_text(options: Mapping[str, Any], runtime: Sequence[str]) -> str:
    """How a model turned text into numbers, from its run-time options: ``layer=-2, pooling=mean``."""
    return ", ".join(f"{k}={options[k]}" for k in runtime if k in options)


# ---------------------------------------------------------------------------------------- neighbours
def neighbours_frame(queries: Sequence[str], corpus: Sequence[str], labels: Sequence[str] | None,
                     results: Mapping[str, Any]) -> pd.DataFrame:
    """Long table of every model's top-k: ``query, model, rank, score, text, label, corpus_row``."""
    rows = []
    for key, nb in results.items():
        for q, query in enumerate(queries):
            for rank, (idx, score) in enumerate(zip(nb.indices[q].tolist(), nb.scores[q].tolist(), strict=True), start=1):
                if idx < 0:
                    continue
                rows.append({
                    "query": query, "model": key, "rank": rank, "score": round(float(score), 4),
                    "text": corpus[idx], "label": labels[idx] if labels is not None else "", "corpus_row": int(idx),
                })
    cols = ["query", "model", "rank", "score", "text", "label", "corpus_row"]
    return pd.DataFrame(rows, columns=cols)


def rerank_frame(query: str, candidates: Sequence[int], corpus: Sequence[str], labels: Sequence[str] | None,
                 scores: np.ndarray, results: Mapping[str, Any], q: int) -> pd.DataFrame:
    """Candidates re-ordered by a pair scorer's ``scores``, with each retriever's original rank."""
    rank_of = {key: {int(i): r for r, i in enumerate(nb.indices[q].tolist(), start=1) if i >= 0} for key, nb in results.items()}
    rows = []
    for j, idx in enumerate(candidates):
        s = float(scores[j])
        row = {"query": query, "text": corpus[idx], "label": labels[idx] if labels is not None else "",
               "rerank_score": None if math.isnan(s) else round(s, 4)}
        for key in results:
            row[f"rank_{key}"] = rank_of[key].get(int(idx))
        row["corpus_row"] = int(idx)
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out = out.sort_values("rerank_score", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    out.insert(1, "rerank", np.arange(1, len(out) + 1))
    for key in results:  # ranks are whole numbers; a candidate outside a model's top-k has none
        out[f"rank_{key}"] = out[f"rank_{key}"].astype("Int64")
    return out


def metrics_display(table: pd.DataFrame, kind: str, na: str = "n/a") -> pd.DataFrame:
    """The Evaluation lab's metrics table as a person reads it: columns that do not apply to the label kind are
    left out (Spearman/Pearson for 0/1 labels) and any other missing number reads ``n/a`` (its reason is in notes)."""
    drop = ["spearman", "pearson"] if kind == "binary" else []
    out = table.drop(columns=[c for c in drop if c in table.columns]).copy()
    digits = {"spearman": 2, "pearson": 2, "seconds": 2}
    for c in out.columns:
        if c in ("model", "notes", "n", "skipped"):
            continue
        out[c] = [na if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.{digits.get(c, 3)}f}"
                  for v in out[c]]
    return out


def cluster_names(ids: Sequence[int], name: str = "cluster", none: str = "no vector") -> list[str]:
    """``cluster 1`` ... for k-means ids (``-1`` = no vector), zero-padded so they sort 01, 02, ..., 10."""
    width = len(str(max([int(i) for i in ids] + [0]) + 1))
    return [none if int(i) < 0 else f"{name} {int(i) + 1:0{width}d}" for i in ids]


# -------------------------------------------------------------------------------------------- batch
def format_seconds(s: float | None) -> str:
    """``"45 s"``, ``"3 min 20 s"``, ``"1 h 05 min"``; ``"…"`` for None."""
    if s is None or math.isnan(s):
        return "…"
    s = max(0.0, float(s))
    if s < 60:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def empty_cells(frame: pd.DataFrame, a_col: str, b_col: str) -> int:
    """Rows where either text cell is empty or whitespace (they get no score)."""
    a = frame[a_col].astype(str).str.strip()
    b = frame[b_col].astype(str).str.strip()
    return int(((a == "") | (b == "") | frame[a_col].isna() | frame[b_col].isna()).sum())


def nearest_words_frame(pairs: Sequence[tuple[str, float]]) -> pd.DataFrame:
    """``word, cosine`` rows from :func:`backend.w2v.train.nearest_words`."""
    return pd.DataFrame(list(pairs), columns=["word", "cosine"])


# ------------------------------------------------------------------------------------------- models
def format_count(n: int | None) -> str:
    """``22.7 M``, ``40.0 M``, ``384`` (None -> "—")."""
    if n is None:
        return "—"
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return str(n)


#: a model's ``language`` as the card names it (the registry writes a code).
LANGUAGE_NAMES = {"en": "English", "zh": "Chinese", "multi": "multilingual"}
#: a role as the card names it.
ROLE_NAMES = {"encoder": "encoder (sentence vectors)", "pair_scorer": "pair scorer (reads both texts)"}


def model_facts(info: Mapping[str, Any], tr: Callable[..., str] | None = None) -> list[tuple[str, str]]:
    """The model card's rows as ``(name, value)``, in reading order; facts a family lacks are left out.

    Names are the catalogue's English keys (the page translates them); the words inside values (roles, language,
    "no limit") go through ``tr`` (the page passes :func:`ui.i18n.t`), and so do whole values the catalogue knows
    (a licence, a note on what a score means). Data (keys, sources, numbers) is kept.
    """
    def same(text: str, **values: Any) -> str:
        return text.format(**values) if values else text

    tr = tr or same
    roles = info.get("roles", [])
    language = str(info.get("language", ""))
    facts = [
        ("family", str(info.get("family", ""))),
        ("roles", " + ".join(tr(ROLE_NAMES[r]) if r in ROLE_NAMES else str(r) for r in roles)),
        ("source", str(info.get("source", ""))),
        ("language", tr(LANGUAGE_NAMES[language]) if language in LANGUAGE_NAMES else language),
        ("licence", tr(str(info.get("licence") or "—"))),
        ("parameters", format_count(info.get("parameters"))),
        ("output dim", str(info.get("dim", "—"))),
        ("max tokens", tr("no limit") if info.get("max_tokens") is None else str(info.get("max_tokens"))),
    ]
    if "layer" in info:
        facts.append(("layer / pooling", tr("{layer} of {layers} / {pooling}", layer=info["layer"],
                                            layers=info.get("layers", "?"), pooling=info.get("pooling"))))
    elif "pooling" in info:
        facts.append(("pooling", tr(str(info["pooling"]))))
    if "weighting" in info:
        facts.append(("weighting", f"{info['weighting']}"
                      + (tr(", PC removed") if info.get("principal_component_removed") else "")))
    if "vocabulary" in info:
        facts.append(("vocabulary", format_count(info["vocabulary"])))
    if "score" in info:
        facts.append(("score", tr(str(info["score"]))))
    if info.get("dev_spearman") is not None:
        facts.append(("STS-B dev Spearman", f"{info['dev_spearman']:.3f}"))
    facts += [
        ("device", str(info.get("device", ""))),
        ("dtype", str(info.get("dtype", "—"))),
        ("load time", f"{info.get('load_seconds', 0):.2f} s"),
    ]
    return facts
