"""One colour per model, shared by every page, chart and card.

The palette is Okabe & Ito's colour-blind-safe set (Color Universal Design, 2008): mid-tone hues that stay
readable on both the light and the dark Streamlit theme. A model the palette does not name (a registry
entry added later) gets a stable colour from the spare hues, picked by a hash of its key so it does not
change between runs or pages.
"""

from __future__ import annotations

import zlib

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

#: hues for models not listed above (Okabe-Ito remainder, then Tableau's extras); none of them a listed model's,
#: so a new model never takes another's colour.
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


def model_color(key: str) -> str:
    """The colour of model ``key`` (stable for keys outside :data:`MODEL_COLORS`)."""
    if key in MODEL_COLORS:
        return MODEL_COLORS[key]
    return SPARE_COLORS[zlib.crc32(key.encode()) % len(SPARE_COLORS)]


def model_pattern(key: str) -> str:
    """Bar hatching: ``"/"`` for language variants (keys ending in ``-zh``), none otherwise."""
    return "/" if key.endswith("-zh") else ""


def swatch(key: str, text: str | None = None) -> str:
    """HTML for a coloured square followed by ``text`` (default: the key), for markdown headers."""
    return f'<span style="color:{model_color(key)}">■</span> {text if text is not None else key}'
