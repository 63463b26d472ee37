"""What the backend answers with: a model's result, its configuration, neighbours, and the two errors a caller
handles (a model that could not load, a model asked for what its role does not give).

Plain data with no behaviour beyond formatting, shared by the in-process :class:`~backend.serving.Backend`, its
HTTP client (:mod:`backend.serving.client`), the file jobs (:mod:`backend.files`) and the server, so none of
them imports another to read a result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says which and why (and the others are unaffected)."""


@dataclass
class ModelResult:
    """One model's answer to a multi-model request.

    Attributes
    ----------
    key : str
        The model asked for.
    scores : np.ndarray (n,) or None
        None when the model failed (see ``error``); NaN entries are undefined scores (see ``warnings``).
    warnings : list of list of str
        Per pair.
    used : list of str
        Per pair, the key of the model that actually scored (a language variant may stand in).
    error : str or None
    seconds : float
        Wall time of this model's part of the request.
    """

    key: str
    scores: np.ndarray | None
    warnings: list[list[str]] = field(default_factory=list)
    used: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    def as_json(self, i: int = 0) -> dict[str, Any]:
        """``{"score": float | None, "warnings": [...], "model": key}`` for pair ``i`` (the CLI contract)."""
        if self.error is not None or self.scores is None:
            return {"score": None, "warnings": [f"error: {self.error}"], "model": self.key}
        s = float(self.scores[i])
        return {"score": None if np.isnan(s) else round(s, 6), "warnings": self.warnings[i], "model": self.used[i]}


@dataclass
class Neighbours:
    """Top-k corpus items per query.

    Attributes
    ----------
    indices, scores : np.ndarray (n_queries, k)
        Corpus row indices and cosine similarities, best first. ``-1`` / NaN pad when the corpus has fewer
        than ``k`` usable rows.
    warnings : list of list of str
        Per query.
    corpus_warnings : list of list of str
        Empty for an embedded corpus (its file's ``warnings_<model>`` column has them).
    model : str
    search : IndexInfo, optional
        How the corpus was searched (exact, or approximate with its measured recall@10): see
        :meth:`Backend.search`.
    """

    indices: np.ndarray
    scores: np.ndarray
    warnings: list[list[str]]
    corpus_warnings: list[list[str]]
    model: str
    search: Any = None


@dataclass(frozen=True)
class ModelConfig:
    """Everything that makes a model's numbers what they are, known without loading its weights.

    Attributes
    ----------
    key, family, source : str
    config_id : str
        The id the embedding cache uses (:attr:`backend.base.SentenceModel.config_id`): equal ids, equal vectors.
    options : dict
        Every option's value, defaults included.
    """

    key: str
    family: str
    source: str
    config_id: str
    options: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "family": self.family, "source": self.source, "config_id": self.config_id,
                "options": dict(self.options)}

    def differences(self, other: dict[str, Any]) -> str | None:
        """Why vectors made under ``other`` (a stored :meth:`as_dict`) are not this model's (None: they are).

        The sentence names what was used and what is selected now, e.g. ``embedded with bert layer -2 pooling
        mean; the selected model has layer -1``.
        """
        if other.get("config_id") == self.config_id:
            return None
        if other.get("key") != self.key:
            return f"embedded with {other.get('key')}, not {self.key}"
        if other.get("source") != self.source:
            return f"embedded with {self.key} from {other.get('source')}; the selected {self.key} loads {self.source}"
        from backend.registry import NEUTRAL_OPTIONS

        old, new = dict(other.get("options") or {}), self.options
        # An option that did not exist when the file was written reads as its neutral value.
        diff = [k for k in sorted(set(old) | set(new))
                if old.get(k, NEUTRAL_OPTIONS.get(k)) != new.get(k, NEUTRAL_OPTIONS.get(k))]
        if not diff:
            return f"embedded with another configuration of {self.key} ({other.get('config_id')} vs {self.config_id})"
        was = " ".join(f"{k} {old.get(k, '(unset)')}" for k in diff)
        now = " ".join(f"{k} {new.get(k, '(unset)')}" for k in diff)
        return f"embedded with {self.key} {was}; the selected model has {now}"


class RoleError(ValueError):
    """A model asked for something its role does not give (vectors from a cross-encoder); says what it does."""


__all__ = ["ModelConfig", "ModelLoadError", "ModelResult", "Neighbours", "RoleError"]
