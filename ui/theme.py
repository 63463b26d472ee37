"""One colour per model, shared by every page, chart and card, and no two models with the same one.

The palette is Okabe & Ito's colour-blind-safe set (Color Universal Design, 2008): mid-tone hues that stay
readable on both the light and the dark Streamlit theme. The shipped models keep the colours listed in
:data:`MODEL_COLORS`; every other key takes the next unused spare hue in registry order (:func:`assign_colors`),
so a new model never shares a colour with another (a hash of the key, as before, put two of seven spares' worth
of keys on one colour as soon as there were two). Beyond the spares, hues are generated deterministically.

:func:`model_color` assigns over the registry file's order (``$SIMDASH_REGISTRY`` or ``models/registry.toml``),
then over keys outside it (a model trained in the browser, a request name) in the order this process first
draws them: the same within a run, on every page.
"""

from __future__ import annotations

import colorsys
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

#: registry key -> colour.
MODEL_COLORS: dict[str, str] = {
    "w2v": "#E69F00",  # orange
    "bert": "#56B4E9",  # sky blue
    "sbert": "#009E73",  # bluish green
    "esim": "#CC79A7",  # reddish purple
    "cross": "#D55E00",  # vermillion
    "hybrid": "#0072B2",  # blue: cross-encoder + bi-encoder cosine
    # Chinese variants: the family's hue, much darker (and hatched in bar charts), so "scored by esim-zh" still
    # reads as ESIM but the two bars are never mistaken for each other.
    "w2v-zh": "#8A5A00",
    "bert-zh": "#1F5F8B",
    "sbert-zh": "#005A42",
    "esim-zh": "#7A2E5C",
    "cross-zh": "#8A3300",
    "hybrid-zh": "#004A75",
}

#: hues for models not listed above, taken in registry order (Okabe-Ito remainder, then Tableau's extras); none of
#: them a listed model's, so a new model never takes another's colour.
SPARE_COLORS: tuple[str, ...] = ("#F0E442", "#999999", "#8C564B", "#17BECF", "#BCBD22", "#9467BD", "#E377C2")

#: categorical colours for corpus labels and clusters in the projection plots (kept apart from the
#: model colours' role: there, colour means "topic", not "model"). D3's category10, then the light
#: variants of its first hues from category20: 12 topics get 12 hues that stay apart, none of them the
#: query marker's yellow.
LABEL_COLORS: tuple[str, ...] = (
    "#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B", "#E377C2", "#7F7F7F",
    "#BCBD22", "#17BECF", "#AEC7E8", "#FFBB78", "#98DF8A", "#FF9896", "#C5B0D5", "#C49C94",
)

#: the query marker in projection plots: a colour no label uses, with an outline for both themes.
QUERY_COLOR = "#FFD400"


def generated_color(i: int) -> str:
    """The ``i``-th hue beyond the palette: golden-angle steps round the colour wheel (each new hue lands in the
    widest gap left), at a lightness that changes every seven hues so that near hues of later rounds still differ."""
    hue = (0.11 + i * 0.618033988749895) % 1.0
    lightness = (0.45, 0.62, 0.33)[(i // 7) % 3]
    r, g, b = colorsys.hls_to_rgb(hue, lightness, 0.70)
    return f"#{round(r * 255):02X}{round(g * 255):02X}{round(b * 255):02X}"


def assign_colors(keys: Sequence[str]) -> dict[str, str]:
    """A distinct colour for each of ``keys``, in their order.

    Parameters
    ----------
    keys : sequence of str
        Model keys in registry order (a repeated key keeps its first colour).

    Returns
    -------
    dict
        Key -> ``"#RRGGBB"``: :data:`MODEL_COLORS` for the shipped keys; for the others, in order, the next
        :data:`SPARE_COLORS` entry no earlier key took, then :func:`generated_color` hues, skipping any already
        given. No two keys get the same colour, however many there are.
    """
    out: dict[str, str] = {}
    used = set(MODEL_COLORS.values())
    spares = iter(SPARE_COLORS)
    generated = 0
    for key in keys:
        if key in out:
            continue
        if key in MODEL_COLORS:
            out[key] = MODEL_COLORS[key]
            continue
        colour = next((c for c in spares if c not in used), None)
        while colour is None or colour in used:
            colour, generated = generated_color(generated), generated + 1
        out[key] = colour
        used.add(colour)
    return out


def registry_order() -> list[str]:
    """The keys of the registry file the backend reads (``$SIMDASH_REGISTRY`` or ``models/registry.toml``), in
    file order; re-read when the file changes. Empty when it cannot be read (the sidebar says why)."""
    return list(_registry()[0])


def _registry() -> tuple[tuple[str, ...], frozenset[str]]:
    """``(keys in file order, keys that are another model's language variant)`` of the registry file."""
    from backend.registry import DEFAULT_REGISTRY

    path = Path(os.environ.get("SIMDASH_REGISTRY") or DEFAULT_REGISTRY)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return (), frozenset()
    return _read_registry(str(path), stamp)


@lru_cache(maxsize=8)
def _read_registry(path: str, stamp: int) -> tuple[tuple[str, ...], frozenset[str]]:
    from backend.registry import Registry

    try:
        reg = Registry.load(path)
    except (OSError, ValueError):  # a broken file: its models have no colour to keep
        return (), frozenset()
    return tuple(reg.keys()), frozenset(v for s in reg for v in s.variants.values())


#: keys outside the registry file, in the order this process first drew them.
_OTHERS: list[str] = []
_OTHERS_LOCK = threading.Lock()  # Streamlit runs sessions as threads


@lru_cache(maxsize=32)
def _assignment(order: tuple[str, ...]) -> dict[str, str]:
    return assign_colors(order)


def model_color(key: str) -> str:
    """The colour of model ``key``: its place in :func:`assign_colors` over the registry order, then the keys
    outside the registry in the order they were first drawn (so the same everywhere within a run)."""
    if key in MODEL_COLORS:
        return MODEL_COLORS[key]
    order = registry_order()
    with _OTHERS_LOCK:
        if key not in order and key not in _OTHERS:
            _OTHERS.append(key)
        others = [k for k in _OTHERS if k not in order]
    return _assignment(tuple(order + others))[key]


def model_pattern(key: str) -> str:
    """Bar hatching: ``"/"`` for a language variant (a model the registry names in another's ``variants``, like
    ``esim-zh``), none otherwise. Read from the registry, not from the key's spelling."""
    return "/" if key in _registry()[1] else ""


def swatch(key: str, text: str | None = None) -> str:
    """HTML for a coloured square followed by ``text`` (default: the key), for markdown headers."""
    return f'<span style="color:{model_color(key)}">■</span> {text if text is not None else key}'
