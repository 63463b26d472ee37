"""Where the project keeps what it computes on disk (the vector cache, search indexes, ONNX exports), and whether
the persistent cache is on: read from the environment in one place, by the serving layer, the file jobs and the
model families alike."""

from __future__ import annotations

import os
from pathlib import Path

#: values of ``SIMDASH_CACHE`` (or of a ``cache_dir`` setting) that turn the persistent cache off.
OFF_VALUES = frozenset({"0", "off", "false", "no", "memory", "none"})


def default_dir() -> Path:
    """``$SIMDASH_CACHE_DIR``, else ``$XDG_CACHE_HOME/simdash``, else ``~/.cache/simdash``."""
    env = os.environ.get("SIMDASH_CACHE_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "simdash"


def persistent_cache_off(setting: str | os.PathLike | None = None) -> bool:
    """True when ``setting`` (None: ``$SIMDASH_CACHE``) turns the persistent cache off.

    ``0``, ``off``, ``false``, ``no``, ``memory`` and ``none`` (any case) do; anything else, unset included,
    leaves it on (in :func:`default_dir`).
    """
    value = os.environ.get("SIMDASH_CACHE", "") if setting is None else os.fspath(setting)
    return str(value).strip().lower() in OFF_VALUES


__all__ = ["OFF_VALUES", "default_dir", "persistent_cache_off"]
