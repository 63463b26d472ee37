"""Model families: one module per family, each naming its model class ``Model``.

A registry entry's ``family = "x"`` loads ``backend/families/x.py`` and builds ``Model(spec, device)``. The
class says everything the rest of the project needs before any weights are loaded: its roles (it subclasses
:class:`~backend.base.Encoder`, :class:`~backend.base.PairScorer` or both) and its options
(``Model.OPTIONS``, each with its help text and Chinese title). A new family is one new file plus one registry
table: docs/new-family.md walks through a complete one.
"""

from __future__ import annotations

import importlib
import re

from backend.base import SentenceModel
from backend.registry import ModelSpec

#: families registered in code rather than as a file (plugins, tests' stand-ins): name -> model class.
_REGISTERED: dict[str, type[SentenceModel]] = {}


def register_family(name: str, cls: type[SentenceModel]) -> None:
    """Make ``family = "<name>"`` build ``cls`` (a family defined outside ``backend/families/``)."""
    if not (isinstance(cls, type) and issubclass(cls, SentenceModel)):
        raise TypeError(f"{cls!r} is not a SentenceModel subclass")
    _REGISTERED[name] = cls


def family_class(family: str) -> type[SentenceModel]:
    """The model class of ``family`` (imports ``backend/families/<family>.py``; loads no weights).

    Raises
    ------
    ValueError
        No such family file, or the file defines no ``Model`` class.
    """
    if family in _REGISTERED:
        return _REGISTERED[family]
    if not re.fullmatch(r"[a-z][a-z0-9_]*", family):
        raise ValueError(f"bad family name {family!r}")
    try:
        module = importlib.import_module(f"backend.families.{family}")
    except ModuleNotFoundError as exc:
        if exc.name == f"backend.families.{family}":
            raise ValueError(f"no family {family!r} (expected backend/families/{family}.py)") from None
        raise
    cls = getattr(module, "Model", None)
    if not (isinstance(cls, type) and issubclass(cls, SentenceModel)):
        raise ValueError(f"backend/families/{family}.py defines no Model class")
    return cls


def build_model(spec: ModelSpec, device: str) -> SentenceModel:
    """Instantiate the model a registry entry describes (imports its family module on first use)."""
    try:
        cls = family_class(spec.family)
    except ValueError as exc:
        raise ValueError(f"{spec.key}: {exc}") from None
    return cls(spec, device)
