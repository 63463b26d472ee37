"""Fine-tuned cross-encoders: a small pretrained BERT that reads both sentences and scores the pair.

``checkpoint.py`` holds the compact checkpoint format (:func:`save_compact`, :func:`load_compact`) and
:func:`score_pairs`; ``train.py`` the trainer (``python -m backend.cross train ...``); ``fusion.py`` the hybrid's
weights.

Nothing is imported here: ``checkpoint`` imports torch (a second), and reading a hybrid's ``fusion.json`` to key its
cache entries must not pay for it. The names below are found on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_compact", "save_compact", "score_pairs"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from backend.cross import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'backend.cross' has no attribute {name!r}")
