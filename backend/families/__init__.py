"""Model families: one module per family, each exposing ``build(spec, device) -> SentenceModel``.

A registry entry's ``family = "x"`` loads ``backend/families/x.py``; a new family is one new file.
"""

from __future__ import annotations

import importlib
import re

from backend.base import SentenceModel
from backend.registry import ModelSpec


def build_model(spec: ModelSpec, device: str) -> SentenceModel:
    """Instantiate the model a registry entry describes (imports its family module on first use)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", spec.family):
        raise ValueError(f"bad family name {spec.family!r}")
    try:
        module = importlib.import_module(f"backend.families.{spec.family}")
    except ModuleNotFoundError as exc:
        if exc.name == f"backend.families.{spec.family}":
            raise ValueError(f"{spec.key}: no family {spec.family!r} (expected backend/families/{spec.family}.py)") from None
        raise
    return module.build(spec, device)
