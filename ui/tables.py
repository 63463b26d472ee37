"""The dashboard's numbers as plain data: tables, overlaps, metrics and chunked batch scoring.

Nothing here imports streamlit, so each function is unit-tested in ``tests/test_ui_charts.py`` and the
pages only lay the results out. The backend does the modelling; this module turns its result objects
(:class:`~backend.service.ModelResult`, :class:`~backend.service.Neighbours`) into the frames a person reads
and downloads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backend.registry import Registry

#: BERT poolings the sidebar offers (backend/families/bert.py POOLINGS, in the order people ask for them).
POOLINGS: tuple[str, ...] = ("mean", "cls", "max", "first_last_avg")
#: word-vector weightings (backend/families/w2v.py).
WEIGHTINGS: tuple[str, ...] = ("sif", "mean")
#: transformer layers the BERT layer slider assumes until the model is loaded: the bundled MiniLM backbone's
#: 6. A registry entry for a deeper model declares its own (``[models.bert.options] layers = 12``).
DEFAULT_BERT_LAYERS = 6
#: rows scored per call in the batch page: small enough that the first chunk (the time estimate) comes
#: back within seconds, large enough that per-call overhead stays negligible.
BATCH_CHUNK_ROWS = 4096
#: above this many rows the batch page announces chunked processing and a time estimate.
LARGE_BATCH_ROWS = 100_000


# ------------------------------------------------------------------------------------------- options
def build_options(registry: Registry, keys: Sequence[str], layer: int, pooling: str, weighting: str) -> dict[str, dict[str, Any]]:
    """Per-model runtime options from the sidebar: BERT layer/pooling and word-vector weighting.

    Options go to every selected model of the family they belong to (a second BERT added to the registry
    gets the same layer and pooling), and to no other model, since an unknown option raises.

    Returns
    -------
    dict
        ``{"bert": {"layer": -2, "pooling": "mean"}, "w2v": {"weighting": "sif"}}`` for the defaults.
    """
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        family = registry[key].family
        if family == "bert":
            out[key] = {"layer": int(layer), "pooling": pooling}
        elif family == "w2v":
            out[key] = {"weighting": weighting}
    return out


def layer_choices(n_layers: int | None = None, declared: int | None = None,
                  keep: Sequence[int | None] = ()) -> list[int]:
    """The ``hidden_states`` indices the BERT layer slider offers: ``-(L + 1)`` (embedding output) to ``-1``.

    A model with L transformer layers has L + 1 hidden states (embedding output first), so its valid
    negative layers are ``-(L + 1) .. -1``: -7..-1 for the 6-layer MiniLM backbone, -13..-1 for BERT-base.

    Parameters
    ----------
    n_layers : int, optional
        L of the loaded model (``Backend.model("bert").n_layers``); None while it is not in memory.
    declared : int, optional
        L declared in the registry (``options.layers``), used until the model is loaded; else
        :data:`DEFAULT_BERT_LAYERS`.
    keep : sequence of int or None
        Negative layers that must be offered while L is only assumed (the registry's ``layer``, a copied
        URL's ``?layer=``): a select-slider drops a value that is not among its options. Once the model is
        loaded its own range wins.

    Returns
    -------
    list of int
        Ascending, ending at -1.
    """
    if n_layers is not None and n_layers > 0:
        depth = int(n_layers)
    else:
        depth = int(declared) if declared is not None and int(declared) > 0 else DEFAULT_BERT_LAYERS
        depth = max([depth, *(-int(v) - 1 for v in keep if v is not None and int(v) < 0)])
    return list(range(-(depth + 1), 0))


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


def scores_frame(a: Sequence[str], b: Sequence[str], results: Mapping[str, Any], warnings: bool = False) -> pd.DataFrame:
    """One row per pair: ``pair, sentence_a, sentence_b, score_<key>...`` (NaN = no score).

    A ``scored_by_<key>`` column is added for a model whose language variant stood in for some pair
    (ESIM -> esim-zh on Chinese pairs), so the download says which network produced each number. With
    ``warnings=True`` a ``warnings_<key>`` column per model says why a score is missing or doubtful.
    """
    out = pd.DataFrame({"pair": np.arange(1, len(a) + 1), "sentence_a": list(a), "sentence_b": list(b)})
    for key, r in results.items():
        if r.error is not None or r.scores is None:
            out[f"score_{key}"] = np.full(len(a), np.nan)
            if warnings:
                out[f"warnings_{key}"] = f"failed: {r.error}"
            continue
        out[f"score_{key}"] = np.round(np.asarray(r.scores, dtype=np.float64), 4)
        if any(u != key for u in r.used):
            out[f"scored_by_{key}"] = list(r.used)
        if warnings:
            out[f"warnings_{key}"] = ["; ".join(w) for w in r.warnings] if r.warnings else ""
    return out


def settings_text(info: Mapping[str, Any] | None) -> str:
    """How a model turned text into a score, in a few words (from ``Backend.info``)."""
    if not info:
        return ""
    family = info.get("family")
    if family == "bert":
        return f"layer {info.get('layer')} of {info.get('layers')}, {info.get('pooling')} pooling, ≤{info.get('max_tokens')} tokens"
    if family == "w2v":
        w = "SIF-weighted average" if info.get("weighting") == "sif" else "plain average"
        return w + (", 1st principal component removed" if info.get("principal_component_removed") else "")
    if family == "sbert":
        return f"{info.get('pooling', 'mean pooling')}, ≤{info.get('max_tokens')} tokens"
    if family == "esim":
        return f"cross-encoder: reads both sentences together, ≤{info.get('max_tokens')} tokens each"
    return ""


def explain_frame(i: int, results: Mapping[str, Any], labels: Mapping[str, str],
                  settings: Mapping[str, str]) -> pd.DataFrame:
    """Why pair ``i`` got its scores: one row per model with score, scoring model, settings and warnings."""
    rows = []
    for key, r in results.items():
        if r.error is not None or r.scores is None:
            rows.append({"model": labels.get(key, key), "score": None, "scored by": key, "settings": "",
                         "warnings": f"failed: {r.error}"})
            continue
        s = float(r.scores[i])
        rows.append({
            "model": labels.get(key, key),
            "score": None if math.isnan(s) else round(s, 4),
            "scored by": r.used[i] if r.used else key,
            "settings": settings.get(r.used[i] if r.used else key, settings.get(key, "")),
            "warnings": "; ".join(r.warnings[i]) if r.warnings and r.warnings[i] else "",
        })
    return pd.DataFrame(rows, columns=["model", "score", "scored by", "settings", "warnings"])


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


def topk_sets(indices: np.ndarray) -> list[set[int]]:
    """The set of corpus rows in each query's top-k (padding ``-1`` dropped)."""
    return [{int(i) for i in row if i >= 0} for row in np.atleast_2d(indices)]


def jaccard(x: set[int], y: set[int]) -> float:
    """|x ∩ y| / |x ∪ y|; two empty sets count as identical (1.0)."""
    union = x | y
    return 1.0 if not union else len(x & y) / len(union)


def overlap_matrix(sets: Mapping[str, list[set[int]]]) -> pd.DataFrame:
    """Mean Jaccard overlap of the top-k sets between every two models, averaged over queries.

    Parameters
    ----------
    sets : mapping
        ``{model: [top-k set of query 0, query 1, ...]}``; every list has the same length.

    Returns
    -------
    pandas.DataFrame
        Square, symmetric, models on both axes, ones on the diagonal.
    """
    keys = list(sets)
    m = np.ones((len(keys), len(keys)))
    for i, ki in enumerate(keys):
        for j, kj in enumerate(keys):
            if j <= i:
                continue
            vals = [jaccard(x, y) for x, y in zip(sets[ki], sets[kj], strict=True)]
            m[i, j] = m[j, i] = float(np.mean(vals)) if vals else float("nan")
    return pd.DataFrame(m, index=keys, columns=keys)


def candidate_union(results: Mapping[str, Any], q: int) -> list[int]:
    """Corpus rows in any model's top-k for query ``q``, in first-seen order (best ranks first)."""
    seen: dict[int, None] = {}
    ranks = [nb.indices[q].tolist() for nb in results.values()]
    for r in range(max((len(x) for x in ranks), default=0)):
        for lst in ranks:
            if r < len(lst) and lst[r] >= 0:
                seen.setdefault(int(lst[r]), None)
    return list(seen)


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
    return out


def kmeans_labels(vectors: np.ndarray, valid: np.ndarray, n_clusters: int, seed: int) -> list[str]:
    """KMeans cluster names (``"cluster 1"``...) for rows of ``vectors``; rows without a vector get ``"no vector"``."""
    from sklearn.cluster import KMeans

    out = ["no vector"] * len(vectors)
    x = vectors[valid]
    if len(x) == 0:
        return out
    k = max(1, min(n_clusters, len(x)))
    lab = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    for i, c in zip(np.flatnonzero(valid).tolist(), lab.tolist(), strict=True):
        out[i] = f"cluster {c + 1}"
    return out


# -------------------------------------------------------------------------------------------- batch
def is_binary(values: pd.Series) -> bool:
    """True when a gold column holds exactly two values, 0 and 1 (duplicate / not duplicate)."""
    v = pd.to_numeric(values, errors="coerce").dropna().unique()
    return len(v) == 2 and set(v.tolist()) <= {0, 1}


def label_metrics(frame: pd.DataFrame, label_col: str, keys: Sequence[str]) -> pd.DataFrame:
    """Agreement of each model's ``score_<key>`` with a gold column.

    ROC-AUC when the gold column is binary (0/1), else Spearman's rank correlation (graded STS-style
    scores); rows without a gold value or without a model score are left out, and counted.

    Returns
    -------
    pandas.DataFrame
        ``model, metric, value, pairs`` (``value`` NaN when it cannot be computed, e.g. one class only).
    """
    from backend.evaluation import compute_metrics, parse_labels

    gold, _ = parse_labels(frame[label_col].tolist())
    binary = is_binary(frame[label_col])
    rows = []
    for key in keys:
        col = f"score_{key}"
        if col not in frame:
            continue
        scores = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
        # The Evaluation lab's own metric code, so the two pages can never disagree on a number.
        m = compute_metrics(scores, gold, "binary" if binary else "graded")
        value = m.auc if binary else (None if m.spearman is None else m.spearman / 100)
        rows.append({"model": key, "metric": "ROC-AUC" if binary else "Spearman ρ",
                     "value": float("nan") if value is None else float(value), "pairs": m.n})
    return pd.DataFrame(rows, columns=["model", "metric", "value", "pairs"])


@dataclass
class BatchProgress:
    """Where a chunked batch job stands.

    Attributes
    ----------
    done, total : int
        Rows scored (by every model) so far, and in all.
    elapsed : float
        Seconds since the start.
    estimate : float or None
        Total seconds the job should take, from the first chunk's speed (None until it finishes).
    remaining : float or None
        Seconds left at the current average speed (None until the first chunk finishes).
    """

    done: int
    total: int
    elapsed: float
    estimate: float | None = None
    remaining: float | None = None


def score_in_chunks(
    backend: Any, frame: pd.DataFrame, a_col: str, b_col: str, keys: Sequence[str],
    progress: Callable[[BatchProgress], None] | None = None, chunk_rows: int = BATCH_CHUNK_ROWS,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[pd.DataFrame, dict[str, str], float]:
    """Score ``frame`` with :func:`backend.batch.score_frame`, reporting rows done and a time estimate.

    The backend scores every chunk with every model before the next, so after the first chunk the average
    speed so far is an honest estimate of the whole job. Load the models before calling, or their load time
    inflates it.

    Returns
    -------
    tuple
        ``(scored frame, {model: error}, seconds)``.
    """
    from backend.batch import score_frame

    n = len(frame)
    t0 = time.perf_counter()
    per_row = max(len(keys), 1)
    timing: dict[str, float | None] = {"estimate": None}

    def inner(done: int, total: int) -> None:
        if progress is None:
            return
        rows = min(n, done // per_row)
        elapsed = time.perf_counter() - t0
        if timing["estimate"] is None and rows >= min(chunk_rows, n) and rows:
            timing["estimate"] = elapsed * n / rows
        remaining = elapsed / rows * (n - rows) if timing["estimate"] is not None and rows else None
        progress(BatchProgress(rows, n, elapsed, timing["estimate"], remaining))

    scored = score_frame(backend, frame, a_col, b_col, list(keys), options={k: dict(v) for k, v in (options or {}).items()},
                         progress=inner, chunk=chunk_rows)
    return scored.frame, scored.errors, time.perf_counter() - t0


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


# ---------------------------------------------------------------------------------- evaluation lab
def parse_label_range(text: str) -> tuple[float, float] | None:
    """The declared range of a gold label as typed (``"0,5"`` -> ``(0.0, 5.0)``); empty -> None (inferred).

    Raises
    ------
    ValueError
        With a message for the person who typed it: not two numbers, or the low end not first.
    """
    if not text.strip():
        return None
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"the label range must be two numbers, e.g. 0,5 (not {text.strip()!r})") from None
    if not lo < hi:
        raise ValueError(f"the label range must start with its low end, e.g. 0,5 (not {text.strip()!r})")
    return lo, hi


def majority_language(texts: Sequence[str], sample: int = 200) -> str:
    """``"zh"`` when most of the first ``sample`` texts are Chinese, else ``"en"``.

    The calibration tab draws its random background pairs from the demo corpus in this language: random
    English pairs say nothing about what a score means for Chinese pairs.
    """
    from backend.text import detect_language

    head = list(texts[:sample])
    return "zh" if head and sum(detect_language(t) == "zh" for t in head) > len(head) / 2 else "en"


def score_span(fitted: tuple[float, float], background: np.ndarray | None = None) -> tuple[float, float]:
    """The score range a calibration curve is drawn over: the fitted scores' range, widened to the background's."""
    lo, hi = float(fitted[0]), float(fitted[1])
    if background is not None and len(background):
        lo, hi = min(lo, float(np.min(background))), max(hi, float(np.max(background)))
    return lo, hi


def nearest_words_frame(pairs: Sequence[tuple[str, float]]) -> pd.DataFrame:
    """``word, cosine`` rows from :func:`backend.w2v_training.nearest_words`."""
    return pd.DataFrame(list(pairs), columns=["word", "cosine"])


# ------------------------------------------------------------------------------------------- models
#: sentences timed for throughput: enough batches to amortise start-up, few enough to finish in seconds.
BENCH_SENTENCES = 256


def measure_speed(model: Any, corpus: Sequence[str], n: int = BENCH_SENTENCES, seed: int | None = None) -> dict[str, Any]:
    """Latency of one pair and throughput of ``model``, timed on the model itself (no Backend cache).

    Parameters
    ----------
    model : SentenceModel
        A loaded model (``Backend.model(key, **options)``).
    corpus : sequence of str
        Realistic sentences to sample from (the demo corpus).
    n : int
        Sentences timed for throughput (``n // 2`` pairs for a pair scorer).

    Returns
    -------
    dict
        ``latency_ms`` (median of 5 single-pair calls), ``per_second`` and ``unit``: "sentences" for
        encoders, "pairs" for native pair scorers (ESIM reads two sentences per call).
    """
    from backend.base import Encoder, PairScorer

    rng = np.random.default_rng(seed if seed is not None else time.time_ns() % 2**32)
    # A counter suffix makes every text new, so no cache anywhere below the model can answer.
    texts = [f"{corpus[i]} ({j})" for j, i in enumerate(rng.integers(0, len(corpus), n))]
    native = isinstance(model, PairScorer)
    latencies = []
    for j in range(5):
        t0 = time.perf_counter()
        model.score_detailed([texts[j]], [texts[-j - 1]])
        latencies.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    if isinstance(model, Encoder) and not native:
        model.encode(texts)
        unit, count = "sentences", n
    else:
        model.score_detailed(texts[: n // 2], texts[n // 2 :])
        unit, count = "pairs", n // 2
    spent = max(time.perf_counter() - t0, 1e-9)
    return {"latency_ms": float(np.median(latencies) * 1000), "per_second": count / spent, "unit": unit}


def format_count(n: int | None) -> str:
    """``22.7 M``, ``40.0 M``, ``384`` (None -> "—")."""
    if n is None:
        return "—"
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return str(n)


def model_facts(info: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The model card's rows as ``(name, value)``, in reading order; facts a family lacks are left out."""
    facts = [
        ("family", str(info.get("family", ""))),
        ("source", str(info.get("source", ""))),
        ("language", str(info.get("language", ""))),
        ("parameters", format_count(info.get("parameters"))),
        ("output dim", str(info.get("dim", "—"))),
        ("max tokens", "no limit" if info.get("max_tokens") is None else str(info.get("max_tokens"))),
    ]
    if "layer" in info:
        facts.append(("layer / pooling", f"{info['layer']} of {info.get('layers', '?')} / {info.get('pooling')}"))
    elif "pooling" in info:
        facts.append(("pooling", str(info["pooling"])))
    if "weighting" in info:
        facts.append(("weighting", f"{info['weighting']}" + (", PC removed" if info.get("principal_component_removed") else "")))
    if "vocabulary" in info:
        facts.append(("vocabulary", format_count(info["vocabulary"])))
    if "score" in info:
        facts.append(("score", str(info["score"])))
    if info.get("dev_spearman") is not None:
        facts.append(("STS-B dev Spearman", f"{info['dev_spearman']:.3f}"))
    facts += [
        ("device", str(info.get("device", ""))),
        ("dtype", str(info.get("dtype", "—"))),
        ("load time", f"{info.get('load_seconds', 0):.2f} s"),
    ]
    return facts


#: our own same-meaning judgement for the example file's preset pairs (1 = same meaning), in PRESETS order;
#: it only exists so the batch page can show a metric on the example, not as a benchmark.
_EXAMPLE_LABELS = {
    "Negation": (0, 0, 0, 0, 0),
    "Word order": (0, 0, 0, 0, 0),
    "Paraphrase, no shared words": (1, 1, 1, 1, 1),
    "Same topic, different meaning": (0, 0, 0, 0, 0),
    "中文: negation (否定)": (0, 0, 0, 0, 0),
    "中文: word order (语序)": (0, 0, 0, 0, 0, 0),
    "中文: same characters, different meaning (同字异义)": (0, 0, 0, 0, 0, 0),
    "中文: synonyms, no shared characters (同义不同字)": (1, 1, 1, 1, 1, 1),
    "中文: traditional vs simplified (繁简)": (1, 1, 1, 1, 1, 1),
    "中文: full-width vs half-width (全角半角)": (1, 1, 1, 1, 1, 1),
    "中文: mixed Chinese-English (中英混合)": (1, 1, 1, 1, 1, 1),
    "Mixed & edge cases": (1, 1, 1, 1, 1),
}


def example_pairs_frame() -> pd.DataFrame:
    """Every preset pair as a batch file: ``sentence1, sentence2, label, preset`` (label: our judgement)."""
    from backend.presets import PRESETS

    rows = []
    for name, preset in PRESETS.items():
        labels = _EXAMPLE_LABELS.get(name, (None,) * len(preset.pairs))
        for (a, b), y in zip(preset.pairs, labels, strict=False):
            rows.append({"sentence1": a, "sentence2": b, "label": y, "preset": name})
    return pd.DataFrame(rows)
