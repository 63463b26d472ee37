"""The sidebar every page shares: which models, BERT layer and pooling, word-vector weighting, device.

Each control is bound to a URL query parameter (``bind="query-params"``, keys ``models``, ``layer``,
``pooling``, ``weighting``), so a copied link reproduces the models and options a person was looking at.
A value equal to its default is left out of the URL, which keeps links short.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from backend.registry import PROJECT_ROOT, Registry
from ui import state
from ui.tables import POOLINGS, WEIGHTINGS, build_options, layer_choices
from ui.theme import swatch


@dataclass
class Settings:
    """What the sidebar chose, as the Backend wants it.

    Attributes
    ----------
    keys : list of str
        Models to show, in registry order.
    options : dict
        Per-model runtime options (``{"bert": {"layer": -2, "pooling": "mean"}, "w2v": {"weighting": "sif"}}``).
    labels : dict
        Key -> display label (registry ``label``).
    """

    keys: list[str]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    layer: int = -2
    pooling: str = "mean"
    weighting: str = "sif"


def bert_note(registry: Registry) -> str:
    """The registry note of the BERT model ("not raw BERT: MiniLM backbone"), one line."""
    if "bert" not in registry:
        return ""
    return " ".join(registry["bert"].note.split())


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def sidebar_ui() -> Settings:
    """Draw the shared sidebar and return the :class:`Settings` (also kept in ``st.session_state.settings``)."""
    be = state.backend()
    reg = be.registry
    # Other sessions' trained models stay out of this list (and out of a copied URL's selection).
    keys_all = state.visible_keys()
    labels = {k: reg[k].label for k in keys_all}
    bert_opts = dict(reg["bert"].options) if "bert" in reg else {}
    w2v_opts = dict(reg["w2v"].options) if "w2v" in reg else {}
    with st.sidebar:
        st.subheader("Models")
        chosen = st.multiselect(
            "Models to compare", keys_all, default=reg.defaults(), key="models", bind="query-params",
            # No format_func on URL-bound widgets: the URL would hold the formatted text instead of the key.
            help="Registry keys (see the Models page). Every page shows these models side by side, each in its "
            "own colour: " + "; ".join(f"{k} = {labels[k]}" for k in keys_all),
        )
        keys = [k for k in keys_all if k in chosen]
        if keys:
            st.markdown("<br>".join(swatch(k, f"<b>{k}</b> {labels[k]}") for k in keys), unsafe_allow_html=True)
        st.subheader("BERT pooling")
        pooling = st.selectbox(
            "Pooling", POOLINGS, index=POOLINGS.index(bert_opts.get("pooling", "mean")), key="pooling",
            bind="query-params", help="How token vectors become one sentence vector. first_last_avg averages the "
            "mean of the embedding layer and of the last layer (it ignores the layer setting).",
        )
        default_layer = int(bert_opts.get("layer", -2))
        n_layers = state.loaded_layers("bert") if "bert" in reg else None
        choices = layer_choices(n_layers, bert_opts.get("layers"), [default_layer, _int_or_none(st.query_params.get("layer"))])
        depth = len(choices) - 1
        layer = st.select_slider(
            "Layer", choices, value=default_layer, key="layer", bind="query-params",
            disabled=pooling == "first_last_avg",
            help=f"hidden_states index: -1 is the last of the {depth} layers, -2 the penultimate (bert-as-service's "
            f"default), {choices[0]} the embedding output."
            + ("" if n_layers else " The range is the registry's until BERT is loaded."),
        )
        note = bert_note(reg)
        if note:
            st.caption(f"⚠️ **About BERT:** {note}")
        st.subheader("Word vectors")
        weighting = st.radio(
            "Weighting", WEIGHTINGS, index=WEIGHTINGS.index(w2v_opts.get("weighting", "sif")), key="weighting",
            bind="query-params", horizontal=True,
            help="sif down-weights frequent words and removes the common component (Arora et al. 2017); mean is the "
            "plain average of the word vectors.",
        )
    settings = Settings(keys, build_options(reg, keys, layer, pooling, weighting), labels, layer, pooling, weighting)
    st.session_state["settings"] = settings
    return settings


def hardware_ui(keys: list[str]) -> None:
    """Device and precision of the models in memory, at the foot of the sidebar (never loads a model).

    app.py draws it after the page has run, so it lists the models that page has just loaded.
    """
    device = state.backend().device
    dtypes = {}
    for k in keys:
        info = state.loaded_info(k)
        if info:
            dtypes[k] = info.get("dtype", "?")
    precision = ", ".join(f"{k} {v}" for k, v in dtypes.items()) if dtypes else "shown once the models are loaded"
    with st.sidebar:
        st.subheader("Hardware")
        st.caption(f"Device **{device}** · precision: {precision}")


def current_settings() -> Settings:
    """The settings the sidebar chose on this run (pages call this first; app.py draws the sidebar).

    Streamlit runs a script from a ``pages/`` folder directly, without app.py, while its legacy multipage
    mode is on: that mode is on when the folder exists, until the first ``st.navigation`` call (on a fresh
    server whose first request is a deep link such as ``/batch``, and on every AppTest run). A page that
    finds itself started that way switches the mode off and runs app.py in its place, within the same run
    (so a button click is not lost to a rerun); app.py then runs this page again with navigation, page
    config and sidebar in place, and the outer run stops.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        entry = PROJECT_ROOT / "app.py"
        exec(compile(entry.read_text(encoding="utf-8"), str(entry), "exec"), {"__name__": "__main__", "__file__": str(entry)})
        st.stop()
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    # A page run on its own (``AppTest.from_file("pages/evaluate.py")``) has no app.py to draw the sidebar:
    # draw it here on every run, or the page would read the settings of its first run.
    ctx = get_script_run_ctx()
    alone = ctx is not None and Path(ctx.main_script_path).resolve() != (PROJECT_ROOT / "app.py").resolve()
    s = st.session_state.get("settings")
    if s is None or alone:
        s = sidebar_ui()
    return s
