"""Model options as data: each family declares its options once, and they are checked in one place.

A family module lists its options as :class:`Option` objects (``OPTIONS`` on its model class): the name, the
type, the allowed choices or range, the default and one line saying why the option exists. Everything else
reads that declaration:

* :func:`validate_options` checks a registry entry's ``[models.<key>.options]`` table when the model is
  built, and every run-time change (``SentenceModel.with_options``, ``--models bert:layer=-1``), with a
  message that names the model, the option and what is allowed;
* the dashboard's sidebar draws one widget per *run-time* option of the chosen models' families (a select
  box for choices, a slider for an integer range, a toggle for a boolean, a number box for a float);
* the CLI parses ``key:option=value`` with :func:`parse_model_arg`.

Run-time options (``runtime=True``) change how a loaded model turns text into numbers (BERT's layer and
pooling, SIF weighting) and cost nothing to switch; load-time options (file format, token limit) take effect
when the model is (re)loaded and are set in the registry.

An option also carries its own Chinese title and help (``label_zh``, ``why_zh``), so a family's file holds
everything the dashboard says about it; an option without them shows its English text in a Chinese interface.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any


class OptionError(ValueError):
    """An option name or value a model does not accept; the message says what is allowed."""


@dataclass(frozen=True)
class Option:
    """One declared option of a model family.

    Attributes
    ----------
    name : str
        As written in the registry (``layer``) and in ``--models bert:layer=-1``.
    type : type
        ``int``, ``float``, ``bool`` or ``str``.
    default : Any
        Used when the registry entry does not set it.
    why : str
        One line for a person: what changes when you change it (the sidebar's help text).
    choices : tuple, optional
        The allowed values (strings or numbers), in the order a menu shows them.
    low, high : float, optional
        Inclusive range for numbers. A family whose range depends on the loaded weights (BERT's layer on a
        6- or 12-layer model) narrows it on the model instance (``SentenceModel.option_specs``).
    runtime : bool
        True when a loaded model can switch it per request without reloading weights.
    label : str
        Short name for a widget (defaults to the name).
    label_zh, why_zh : str
        The title and the help in Chinese, shown when the interface is in Chinese; empty: the English shows.
        Declared here rather than in the interface's catalogue so that a new family is one file.
    """

    name: str
    type: type
    default: Any
    why: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    runtime: bool = False
    label: str = ""
    # Last, so that positional constructions written before they existed keep their meaning.
    label_zh: str = ""
    why_zh: str = ""

    @property
    def title(self) -> str:
        """The widget label."""
        return self.label or self.name.replace("_", " ")

    def title_in(self, lang: str) -> str:
        """The widget label in ``lang`` (``"en"`` or ``"zh"``): the declared Chinese one, else the English."""
        return self.label_zh if lang == "zh" and self.label_zh else self.title

    def why_in(self, lang: str) -> str:
        """The help text in ``lang``: the declared Chinese one, else the English."""
        return self.why_zh if lang == "zh" and self.why_zh else self.why

    def as_json(self) -> dict[str, Any]:
        """This declaration as JSON-able data (the server's ``option_specs``); :meth:`from_json` reads it back."""
        return {"name": self.name, "type": self.type.__name__, "default": self.default, "why": self.why,
                "choices": list(self.choices) if self.choices is not None else None, "low": self.low,
                "high": self.high, "runtime": self.runtime, "label": self.label, "label_zh": self.label_zh,
                "why_zh": self.why_zh}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Option:
        """The declaration :meth:`as_json` wrote (an unknown type name reads as ``str``; missing optional fields
        take their defaults, so an older server's answer still reads)."""
        return cls(data["name"], _TYPES.get(data.get("type", "str"), str), data.get("default"), data.get("why", ""),
                   tuple(data["choices"]) if data.get("choices") is not None else None, data.get("low"),
                   data.get("high"), bool(data.get("runtime")), data.get("label") or "",
                   data.get("label_zh") or "", data.get("why_zh") or "")

    def with_range(self, low: float | None, high: float | None) -> Option:
        """A copy with another range (a loaded model's own bounds)."""
        return replace(self, low=low, high=high)

    def check(self, value: Any, owner: str = "") -> Any:
        """Return ``value`` converted to this option's type, or raise :class:`OptionError` saying why.

        Strings from a command line or a URL are converted (``"-1"`` -> -1, ``"true"`` -> True); a float
        with a fractional part is not silently truncated to an int.
        """
        where = f"{owner}: " if owner else ""
        try:
            v = _convert(value, self.type)
        except (TypeError, ValueError):
            raise OptionError(f"{where}option {self.name!r} must be {self.type.__name__}, not {value!r}") from None
        if self.choices is not None and v not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            raise OptionError(f"{where}option {self.name!r} must be one of {allowed}, not {value!r}")
        if (self.low is not None and v < self.low) or (self.high is not None and v > self.high):
            raise OptionError(f"{where}option {self.name!r} must be within {_fmt(self.low)}..{_fmt(self.high)}, not {value!r}")
        return v


_TYPES: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else str(x)


def _convert(value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(value)
    if kind is int:
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(value)
            return int(value)
        return int(str(value).strip()) if isinstance(value, str) else int(value)
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(value)
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise TypeError(value)
        return value
    return kind(value)


def validate_options(specs: Sequence[Option], given: Mapping[str, Any], owner: str = "",
                     runtime_only: bool = False) -> dict[str, Any]:
    """Check ``given`` against the declared ``specs``; returns the converted values (unset ones omitted).

    Parameters
    ----------
    specs : sequence of Option
        The family's declaration (or a loaded model's narrowed one).
    given : mapping
        Option values from the registry, the UI or the command line.
    owner : str
        The model key, for the message.
    runtime_only : bool
        Refuse load-time options (a request cannot change a loaded model's file format).

    Raises
    ------
    OptionError
        Unknown name (the message lists the known ones), wrong type, not a choice, out of range, or a
        load-time option where only run-time ones may change.
    """
    by_name = {o.name: o for o in specs}
    out: dict[str, Any] = {}
    where = f"{owner}: " if owner else ""
    for name, value in given.items():
        spec = by_name.get(name)
        if spec is None:
            known = ", ".join(sorted(by_name)) or "none"
            raise OptionError(f"{where}unknown option {name!r} (known: {known})")
        if runtime_only and not spec.runtime:
            tunable = ", ".join(o.name for o in specs if o.runtime) or "none"
            raise OptionError(f"{where}option {name!r} is set when the model loads (in models/registry.toml), "
                              f"not per request; run-time options: {tunable}")
        out[name] = spec.check(value, owner)
    return out


def defaults(specs: Sequence[Option]) -> dict[str, Any]:
    """``{name: default}`` of every declared option."""
    return {o.name: o.default for o in specs}


def parse_model_arg(item: str) -> tuple[str, dict[str, Any]]:
    """Split ``"bert:layer=-1:pooling=cls"`` into ``("bert", {"layer": -1, "pooling": "cls"})``.

    Values are read as JSON where they parse (``-1`` is an int, ``true`` a bool), else kept as strings;
    :func:`validate_options` then checks them against the model's declaration.

    Raises
    ------
    OptionError
        A part without ``=`` or with an empty name.
    """
    key, *parts = item.strip().split(":")
    options: dict[str, Any] = {}
    for part in parts:
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise OptionError(f"bad model option {part!r} in {item!r}: use key:option=value")
        try:
            options[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[name.strip()] = value
    return key.strip(), options


__all__ = ["Option", "OptionError", "defaults", "parse_model_arg", "validate_options"]
