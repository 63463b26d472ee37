"""Fine-tuned cross-encoders: a small pretrained BERT that reads both sentences and scores the pair.

``checkpoint.py`` holds the compact checkpoint format (:func:`save_compact`, :func:`load_compact`) and
:func:`score_pairs`; ``train.py`` the trainer (``python -m backend.cross train ...``).
"""

from __future__ import annotations

from backend.cross.checkpoint import load_compact, save_compact, score_pairs

__all__ = ["load_compact", "save_compact", "score_pairs"]
