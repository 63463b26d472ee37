"""Device and precision choice, in one place (cuda, then mps, then cpu)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def pick_device(requested: str | None = None) -> str:
    """Choose where models run.

    Parameters
    ----------
    requested : str, optional
        ``"auto"``/None (cuda, then mps, then cpu), or an explicit ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
        ``$SIMDASH_DEVICE`` overrides ``"auto"``.

    Returns
    -------
    str
        A torch device string. An explicit GPU request on a machine without one falls back to ``"cpu"``
        rather than failing: the dashboard must still open.
    """
    requested = (requested or os.environ.get("SIMDASH_DEVICE") or "auto").lower()
    if requested == "cpu":
        return "cpu"  # without importing torch (about a second): a CLI answered from the cache never needs it
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        return "cpu"
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        return "cpu"
    return requested


def pick_dtype(device: str, requested: str | None = None) -> torch.dtype:
    """Weights' dtype: bf16 on GPUs that support it (fp16 otherwise), fp32 on the CPU.

    Half precision halves memory traffic on a GPU; on a CPU it is slower than fp32 and loses accuracy,
    so we never use it there. Scores are always computed in fp32 from the pooled vectors.
    """
    import torch

    requested = (requested or os.environ.get("SIMDASH_DTYPE") or "auto").lower()
    if requested in ("fp32", "float32"):
        return torch.float32
    if requested in ("bf16", "bfloat16"):
        return torch.bfloat16
    if requested in ("fp16", "float16"):
        return torch.float16
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bf16"``."""
    import torch

    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))
