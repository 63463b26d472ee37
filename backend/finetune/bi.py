"""Fine-tuning a bi-encoder (the "twin tower") on a user's labelled pairs, with sentence-transformers' trainer.

The study notes' DSSM-style twin tower, done the way practitioners do it today: one pretrained transformer encodes
each sentence alone, the cosine of the two vectors is the score, and the encoder is trained on labelled pairs.

- **CoSENT** (Su Jianlin's loss, text2vec's recipe; ``sentence_transformers ... CoSENTLoss``) for graded or binary
  labels: for every two pairs in a batch whose labels differ, it penalises the lower-labelled pair's cosine coming
  out above the higher one's. Only the order of the labels matters, so 0-5 and 0/1 labels train alike.
- **MultipleNegativesRankingLoss** for positive pairs without labels: each pair's other sentences in the batch are
  its negatives.

The word-embedding matrix is frozen by default (half of a small BERT's weights; it barely moves with a few thousand
pairs, and freezing it makes a CPU epoch about a fifth faster). The weights kept are those of the half epoch that
scored best on the held-out pairs; before and after metrics are both measured on the held-out pairs, the after on
the fp16 weights as saved. The output folder is an ordinary sentence-transformers model (``SentenceTransformer(
folder)`` loads it), so the ``sbert`` family serves it with ``source = "path:<folder>"``.

Needs the training extra (``datasets``, ``accelerate``; ``requirements-train.txt``).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from backend.finetune.data import LabelledPairs

#: ``progress(fraction, message, metrics)``: the signature of :meth:`backend.jobs.BackgroundJob.report`.
Progress = Callable[[float, str, "dict[str, Any] | None"], None]

STATE = "state.json"
CARD_FILE = "simdash_finetune.json"


@dataclass
class FinetuneResult:
    """What a fine-tune did.

    Attributes
    ----------
    out_dir : Path
    kind : {"bi", "cross"}
    before, after : dict
        Held-out metrics (``spearman`` x100 for graded labels, ``auc``, ``n``) of the base model and of the saved one.
    best_epoch : float
    history : list of dict
        Held-out metrics per half epoch.
    seconds : float
    notes : list of str
    facts : dict
        Everything written to the folder's ``simdash_finetune.json``.
    """

    out_dir: Path
    kind: str
    before: dict[str, Any]
    after: dict[str, Any]
    best_epoch: float
    history: list[dict[str, Any]]
    seconds: float
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


def pair_metrics(scores: np.ndarray, data: LabelledPairs) -> dict[str, Any]:
    """Spearman x100 (graded labels) and ROC-AUC (graded labels cut at the middle of their scale) of scores."""
    from backend.lab.evaluation import compute_metrics

    m = compute_metrics(np.asarray(scores, np.float64), data.y.astype(np.float64), data.kind, (0.0, 1.0))
    out = {"n": m.n, "auc": None if m.auc is None else round(100 * m.auc, 2)}
    if data.kind == "graded":
        out["spearman"] = None if m.spearman is None else round(m.spearman, 2)
    return out


def bi_scores(model, data: LabelledPairs, batch_size: int = 64) -> np.ndarray:
    """Cosines of each pair's two embeddings (the texts encoded once each, longest first)."""
    texts = list(dict.fromkeys(data.a + data.b))
    vecs = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                        show_progress_bar=False)
    row = {t: i for i, t in enumerate(texts)}
    ia = np.fromiter((row[t] for t in data.a), int, len(data.a))
    ib = np.fromiter((row[t] for t in data.b), int, len(data.b))
    return np.einsum("ij,ij->i", vecs[ia], vecs[ib])


def _fingerprint(data: LabelledPairs) -> str:
    """A digest of the training pairs: a resumed run must read the same data it started on."""
    import hashlib

    h = hashlib.sha256()
    for a, b, y in zip(data.a, data.b, data.y.tolist(), strict=True):
        h.update(f"{a}\x1f{b}\x1f{y:.6f}\x1e".encode())
    return h.hexdigest()[:16]


def halve_weights(folder: Path) -> None:
    """Rewrite every ``*.safetensors`` under ``folder`` with floating tensors in fp16: half the size on disk, and
    what the held-out "after" metric is measured on (the family loads them back as fp32 on a CPU)."""
    from safetensors.torch import load_file, save_file

    for f in folder.rglob("*.safetensors"):
        tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(str(f)).items()}
        tmp = f.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"format": "pt"})
        tmp.replace(f)


def train_bi_encoder(
    train: LabelledPairs,
    held_out: LabelledPairs,
    out_dir: str | Path,
    base_source: str,
    *,
    loss: Literal["auto", "cosent", "mnrl"] = "auto",
    epochs: int = 1,
    batch_size: int = 16,
    lr: float = 2e-5,
    seed: int = 13,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    max_tokens: int = 128,
    freeze_embeddings: bool = True,
    evals_per_epoch: int = 2,
    threads: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    work_dir: str | Path | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    extra_facts: dict[str, Any] | None = None,
) -> FinetuneResult:
    """Fine-tune a sentence-transformers bi-encoder and save the best half epoch's weights (fp16).

    Parameters
    ----------
    train, held_out : LabelledPairs
        Training pairs and the pairs that measure before/after and choose the half epoch kept.
    out_dir : path
        The model folder to write. Refused when it exists, unless ``overwrite`` (or ``resume`` of this same run).
    base_source : str
        Registry-style source of the base encoder (``package:...``, ``path:...``, ``hf:...``).
    loss : {"auto", "cosent", "mnrl"}
        ``auto``: CoSENT for labelled pairs, MultipleNegativesRankingLoss for positive pairs.
    epochs, batch_size, lr, warmup_ratio, weight_decay : training settings
        AdamW, linear warm-up then linear decay to 0.
    seed : int
        Shuffling and dropout.
    max_tokens : int
        Word pieces per sentence while training (STS sentences are short; 128 costs nothing on them).
    freeze_embeddings : bool
        Freeze the word-embedding matrix.
    evals_per_epoch : int
        Held-out evaluations and resumable checkpoints per epoch (2: every half epoch).
    threads : int, optional
        torch CPU threads during training.
    resume : bool
        Continue the run whose checkpoints are in ``work_dir`` (default ``<out_dir>.ckpt``); refused when that
        run used another base, other data or other settings.
    progress : callable, optional
        ``progress(fraction, message, metrics)`` every few steps (message has the time left) and after each
        evaluation (metrics).
    should_stop : callable, optional
        Polled every step; True ends training at the next step, keeping the best weights so far in ``out_dir``
        and the resumable checkpoint (:class:`backend.jobs.StopRequested` is raised after).
    extra_facts : dict, optional
        Merged into ``simdash_finetune.json`` (the base key, the command line).
    """
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss, MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )
    from transformers import TrainerCallback, set_seed

    from backend.cross.checkpoint import _quiet_transformers
    from backend.cross.train import resumable_state  # the same Trainer checkpoints and state file
    from backend.jobs import StopRequested
    from backend.registry import resolve_source

    t0 = time.perf_counter()
    out = Path(out_dir)
    work = Path(work_dir) if work_dir else out.with_name(out.name + ".ckpt")
    trainer_dir = work / "trainer"
    if loss == "auto":
        loss = "mnrl" if train.objective == "positive" else "cosent"
    if loss == "cosent" and train.objective == "positive":
        raise ValueError("CoSENT needs labels that differ; these pairs have none (use --loss mnrl)")
    notes: list[str] = list(train.notes)
    if loss == "mnrl" and train.objective != "positive":
        keep = np.flatnonzero(train.y >= 0.5)
        notes.append(f"MultipleNegativesRankingLoss trains on positive pairs only: {len(keep)} of {len(train)} pairs "
                     "have a label in the upper half of the scale")
        train = train.take(keep)
        if len(train) < 20:
            raise ValueError(f"{len(train)} positive pairs: too few for MultipleNegativesRankingLoss (at least 20)")

    settings = {"base_source": base_source, "loss": loss, "data": _fingerprint(train), "held_out": _fingerprint(held_out),
                "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "warmup_ratio": warmup_ratio,
                "weight_decay": weight_decay, "max_tokens": max_tokens, "freeze_embeddings": freeze_embeddings,
                "evals_per_epoch": evals_per_epoch}
    state_path = work / STATE
    checkpoint, saved = resumable_state(work, settings, resume)
    if not resume and out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} exists: choose another --out, or add --overwrite to replace it")
        if not out.is_dir():
            raise FileExistsError(f"{out} exists and is not a folder")
        shutil.rmtree(out)

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)

    def say(fraction: float, message: str, metrics: dict[str, Any] | None = None) -> None:
        if progress is not None:
            progress(max(0.0, min(1.0, fraction)), message, metrics)

    try:
        set_seed(seed)
        with _quiet_transformers():
            model = SentenceTransformer(resolve_source(base_source), device="cpu", local_files_only=True)
        model.max_seq_length = max_tokens
        if "before" in saved:
            before = saved["before"]
        else:
            say(0.0, f"measuring the base model on {len(held_out):,} held-out pairs")
            before = pair_metrics(bi_scores(model, held_out), held_out)
        hf = model[0].auto_model
        frozen = 0
        if freeze_embeddings:
            emb = hf.get_input_embeddings()
            emb.weight.requires_grad_(False)
            frozen = int(emb.weight.numel())

        resumed_step = int(checkpoint.name.rsplit("-", 1)[-1]) if checkpoint else 0
        history: list[dict[str, Any]] = [h for h in saved.get("history", []) if h["step"] <= resumed_step]
        best: dict[str, Any] = saved.get("best") or {"metric": -math.inf, "epoch": 0.0, "step": 0}
        if best["step"] > resumed_step:
            best = max(({"metric": h["metric"], "epoch": h["epoch"], "step": h["step"]} for h in history),
                       key=lambda d: d["metric"], default={"metric": -math.inf, "epoch": 0.0, "step": 0})
        steps_per_epoch = math.ceil(len(train) / batch_size)
        eval_every = max(1, math.ceil(steps_per_epoch / max(1, evals_per_epoch)))
        clock = {"start": time.perf_counter(), "start_step": resumed_step}
        stopped = {"flag": False}
        metric_name = "spearman" if held_out.kind == "graded" else "auc"

        def write_state() -> None:
            work.mkdir(parents=True, exist_ok=True)
            tmp = state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"settings": settings, "before": before, "history": history, "best": best,
                                       "seconds": float(saved.get("seconds", 0.0)) + time.perf_counter() - t0},
                                      indent=1), encoding="utf-8")
            tmp.replace(state_path)

        def save_best() -> None:
            tmp = out.with_name(out.name + ".saving")
            shutil.rmtree(tmp, ignore_errors=True)
            model.save(str(tmp))
            halve_weights(tmp)
            shutil.rmtree(out, ignore_errors=True)
            tmp.replace(out)

        class Steps(TrainerCallback):
            """Time left every few steps; held-out metrics and the best weights every ``eval_every`` steps."""

            def on_step_end(self, args, state, control, **kwargs):
                step = state.global_step
                done = step - clock["start_step"]
                rate = done / max(1e-9, time.perf_counter() - clock["start"])
                left = (state.max_steps - step) / rate if rate > 0 else math.inf
                if step % 5 == 0 or step == state.max_steps:
                    say(step / state.max_steps, f"step {step}/{state.max_steps} (epoch {state.epoch:.2f}), "
                        f"{rate * batch_size:.0f} pairs/s, about {math.ceil(left / 60)} min left")
                if should_stop is not None and should_stop():
                    stopped["flag"] = True
                    control.should_training_stop = True
                    return
                if step % eval_every and step != state.max_steps:
                    return
                t_eval = time.perf_counter()
                m = pair_metrics(bi_scores(model, held_out), held_out)
                value = m.get(metric_name)
                h = {"epoch": round(float(state.epoch or 0), 3), "step": step, **m,
                     "metric": -math.inf if value is None else value,
                     "eval_seconds": round(time.perf_counter() - t_eval, 1)}
                history.append(h)
                if h["metric"] > best["metric"]:
                    best.update(metric=h["metric"], epoch=h["epoch"], step=step)
                    save_best()
                write_state()
                say(step / state.max_steps, f"epoch {h['epoch']:.2f}: held-out {metric_name} {value} "
                    f"(before: {before.get(metric_name)})", h)
                model.train()
                clock["start"], clock["start_step"] = time.perf_counter(), step

        if loss == "cosent":
            dataset = Dataset.from_dict({"sentence1": train.a, "sentence2": train.b, "score": train.y.tolist()})
            loss_fn = CoSENTLoss(model)
            sampler = BatchSamplers.BATCH_SAMPLER
        else:
            dataset = Dataset.from_dict({"anchor": train.a, "positive": train.b})
            loss_fn = MultipleNegativesRankingLoss(model)
            sampler = BatchSamplers.NO_DUPLICATES  # a duplicate in a batch would be its own "negative"
        write_state()
        args = SentenceTransformerTrainingArguments(
            output_dir=str(trainer_dir), num_train_epochs=epochs, per_device_train_batch_size=batch_size,
            learning_rate=lr, warmup_steps=warmup_ratio, weight_decay=weight_decay, lr_scheduler_type="linear",
            seed=seed, data_seed=seed, eval_strategy="no", save_strategy="steps", save_steps=eval_every,
            save_total_limit=1, logging_steps=1000, report_to="none", disable_tqdm=True, use_cpu=True,
            dataloader_num_workers=0, batch_sampler=sampler,
        )
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss_fn,
                                             callbacks=[Steps()])
        with _quiet_transformers():
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        if stopped["flag"]:
            raise StopRequested(f"stopped at step {trainer.state.global_step}; the best weights so far are in {out}, "
                                f"and the same command with --resume continues from {work}")
        if best["step"] == 0:
            raise RuntimeError("training ended before the first held-out evaluation")
        say(1.0, "measuring the saved weights on the held-out pairs")
        with _quiet_transformers():
            shipped = SentenceTransformer(str(out), device="cpu", local_files_only=True)
        shipped.to(torch.float32)
        after = pair_metrics(bi_scores(shipped, held_out), held_out)
        seconds = round(time.perf_counter() - t0 + float(saved.get("seconds", 0.0)), 1)
        facts = {
            "format": "simdash-finetune", "version": 1, "kind": "bi", "base_source": base_source,
            "loss": {"cosent": "CoSENTLoss", "mnrl": "MultipleNegativesRankingLoss"}[loss],
            "objective": train.objective, "label_max": train.label_max, "train_pairs": len(train),
            "held_out_pairs": len(held_out), "metric": metric_name, "before": before, "after": after,
            "best_epoch": best["epoch"], "history": history, "epochs": epochs, "batch_size": batch_size, "lr": lr,
            "seed": seed, "warmup_ratio": warmup_ratio, "weight_decay": weight_decay, "max_tokens": max_tokens,
            "frozen_parameters": frozen, "seconds": seconds, "threads": threads, "torch": torch.__version__,
            "weights": "fp16 safetensors", "notes": notes, **(extra_facts or {}),
        }
        (out / CARD_FILE).write_text(json.dumps(facts, indent=1, ensure_ascii=False), encoding="utf-8")
        shutil.rmtree(work, ignore_errors=True)
    finally:
        if threads is not None:
            torch.set_num_threads(old_threads)
    return FinetuneResult(out, "bi", before, after, best["epoch"], history, seconds, notes, facts)


__all__ = ["CARD_FILE", "FinetuneResult", "bi_scores", "halve_weights", "pair_metrics", "train_bi_encoder"]
