"""Where the project keeps what it computes on disk (the vector cache, search indexes, ONNX exports), and whether
the persistent cache is on: read from the environment in one place, by the serving layer, the file jobs and the
model families alike."""

from __future__ import annotations

import os
import secrets
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


def temp_beside(path: Path) -> Path:
    """A new empty file in ``path``'s folder under a name no other writer has (``O_EXCL``); the caller removes
    it.

    Written there and renamed over the real name, a file appears whole or not at all (indexes, outputs, progress
    files). Not :func:`tempfile.mkstemp`: its mode 0600 would make an index or an output saved beside shared data
    unreadable to the other users of it; this one follows the umask like any file written.
    """
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


__all__ = ["OFF_VALUES", "default_dir", "persistent_cache_off", "temp_beside"]
