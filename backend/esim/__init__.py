"""ESIM (Chen et al., ACL 2017): our pair scorer that reads both sentences together.

``model.py`` holds the network and its checkpoint files, ``train.py`` the trainer
(``python -m backend.esim train ...``); ``backend/families/esim.py`` is what the dashboard loads.
"""

from __future__ import annotations

from backend.esim.model import ESIM, ESIMConfig, Vocabulary, load_checkpoint, save_checkpoint

__all__ = ["ESIM", "ESIMConfig", "Vocabulary", "load_checkpoint", "save_checkpoint"]
