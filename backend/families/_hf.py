"""Helpers shared by the two transformer families (``bert`` and ``sbert``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from backend.base import truncation_message
from backend.registry import ModelSpec


def quiet_transformers() -> None:
    """Silence transformers' per-load progress bars: they clutter the CLI's stderr and the server log."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def hf_load_kwargs(spec: ModelSpec) -> dict:
    """Keyword arguments for ``from_pretrained``: never touch the network for local/package sources.

    A ``hf:`` id is looked up in the local cache first; the hub is only contacted when the user has not set
    ``HF_HUB_OFFLINE=1`` (and then fails fast here, since this machine has no route to it).
    """
    quiet_transformers()
    local = not spec.source.startswith("hf:") or os.environ.get("HF_HUB_OFFLINE") == "1"
    return {"local_files_only": local}


def truncation_warnings(tokenizer, texts: Sequence[str], max_tokens: int) -> list[list[str]]:
    """Say which texts exceed ``max_tokens`` wordpieces (special tokens included) and where they are cut.

    Only texts with more characters than the limit are tokenised: a wordpiece covers at least one character,
    so a shorter text cannot overflow, and the common case (short sentences) costs nothing.
    """
    out: list[list[str]] = [[] for _ in texts]
    n_special = tokenizer.num_special_tokens_to_add(pair=False)
    budget = max_tokens - n_special
    long_idx = [i for i, t in enumerate(texts) if len(t) > budget]
    if not long_idx:
        return out
    enc = tokenizer([texts[i] for i in long_idx], add_special_tokens=False, truncation=False)
    for i, ids in zip(long_idx, enc["input_ids"], strict=True):
        if len(ids) > budget:
            last = tokenizer.convert_ids_to_tokens(ids[budget - 1])
            out[i].append(truncation_message(len(ids) + n_special, max_tokens, last, "word pieces", kept=budget))
    return out
