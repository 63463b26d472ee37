"""What a fine-tuned model says about itself: its registry table and its model card.

The registry table is what ``python -m backend finetune`` prints on stdout: appended to a registry file
(``SIMDASH_REGISTRY``), it makes the model usable on every surface. The model card (``README.md`` in the folder)
says what it was trained from, on what, and how it did before and after, on the held-out pairs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backend.registry import KEY_PATTERN, ModelSpec

FAMILY = {"bi": "sbert", "cross": "cross"}


def _toml_str(text: str) -> str:
    """A TOML basic string (JSON's escaping is valid TOML for these characters)."""
    return json.dumps(str(text), ensure_ascii=False)


def registry_table(key: str, kind: str, base: ModelSpec, out_dir: str | Path, facts: dict[str, Any]) -> str:
    """The ``[models.<key>]`` table of a fine-tuned model (TOML), ready to append to a registry file.

    Parameters
    ----------
    key : str
        The new model's key (letters, digits, ``-``, ``_``, ``.``).
    kind : {"bi", "cross"}
    base : ModelSpec
        The registered model it was fine-tuned from: language, licence and research-only flag are inherited.
    out_dir : path
        The model folder; written as an absolute ``path:`` source so the table works from any folder.
    facts : dict
        ``before``, ``after`` (held-out metrics), ``train_pairs``, ``loss``.
    """
    if not KEY_PATTERN.fullmatch(key):
        raise ValueError(f"model key {key!r} cannot be used: letters, digits, '-', '_' and '.' only")
    metric = facts.get("metric", "spearman")
    before = (facts.get("before") or {}).get(metric)
    after = (facts.get("after") or {}).get(metric)
    what = {"bi": "bi-encoder", "cross": "cross-encoder"}[kind]
    label = f"{base.label} fine-tuned ({what}, {facts.get('train_pairs', '?'):,} pairs)"
    note = (f"{base.key} fine-tuned as a {what} ({facts.get('loss', '')}) on {facts.get('train_pairs', '?'):,} "
            f"labelled pairs; held-out {metric} {before} before, {after} after. See {Path(out_dir).resolve()}/README.md.")
    licence = f"derived from {base.key}: {base.licence}" if base.licence else f"derived from {base.key}"
    lines = [
        f"[models.{key}]",
        f"family = {_toml_str(FAMILY[kind])}",
        f"label = {_toml_str(label)}",
        f"source = {_toml_str('path:' + str(Path(out_dir).resolve()))}",
        f"language = {_toml_str(base.language)}",
        "default = false",
        f"note = {_toml_str(note)}",
        f"licence = {_toml_str(licence)}",
    ]
    if base.research_only:
        lines.append("research_only = true")
    lines.append(f"[models.{key}.facts]")
    lines.append(f"{_toml_str('fine-tuned from')} = {_toml_str(base.key)}")
    lines.append(f"{_toml_str('training pairs')} = {int(facts.get('train_pairs', 0))}")
    if before is not None and after is not None:
        lines.append(f"{_toml_str(f'held-out {metric} before')} = {float(before)}")
        lines.append(f"{_toml_str(f'held-out {metric} after')} = {float(after)}")
    if kind == "cross":
        lines += [f"[models.{key}.options]", "symmetric = true"]
    elif "max_tokens" in base.options:
        lines += [f"[models.{key}.options]", f"max_tokens = {int(base.options['max_tokens'])}"]
    return "\n".join(lines) + "\n"


def write_card(out_dir: str | Path, key: str, kind: str, base: ModelSpec, facts: dict[str, Any]) -> Path:
    """Write the folder's ``README.md``: base, data, loss, before/after, history, and the licence it inherits."""
    out = Path(out_dir)
    metric = facts.get("metric", "spearman")
    hist = facts.get("history") or []
    rows = "\n".join(f"| {h.get('epoch')} | {h.get('spearman', '')} | {h.get('auc', '')} |" for h in hist)
    text = f"""# {key}: {base.key} fine-tuned as a {'bi-encoder' if kind == 'bi' else 'cross-encoder'}

Made by `python -m backend finetune` (or the Evaluation lab's training tab).

| fact | value |
| --- | --- |
| base | `{base.key}` ({base.label}), source `{base.source}` |
| licence | inherits the base's: {base.licence or 'see the base model'}{' (research use only)' if base.research_only else ''} |
| loss | {facts.get('loss')} |
| training pairs | {facts.get('train_pairs')} ({facts.get('objective')} labels, scale 0-{facts.get('label_max')}) |
| held-out pairs | {facts.get('held_out_pairs')} |
| held-out {metric} before | {(facts.get('before') or {}).get(metric)} |
| held-out {metric} after | {(facts.get('after') or {}).get(metric)} (the weights as saved) |
| epochs | {facts.get('epochs')} (kept: epoch {facts.get('best_epoch')}) |
| time | {facts.get('seconds')} s |

The kept epoch was chosen on the held-out pairs, so "after" is slightly optimistic; measure on pairs neither run
saw before trusting a small difference.

| epoch | held-out Spearman | held-out AUC |
| --- | --- | --- |
{rows}

No training sentence is stored in this folder.
"""
    path = out / "README.md"
    path.write_text(text, encoding="utf-8")
    return path
