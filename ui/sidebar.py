"""The sidebar every page shares: the language, which models, their run-time options, the device.

Option widgets are drawn from the families' declarations (``Backend.option_specs``; see
:mod:`backend.options`): one group per family of the chosen models, one widget per run-time option, with the
option's own title and help text (in Chinese where the option declares it). A value applies to every chosen model of that family. Every control is bound to a URL
query parameter (``models``, ``bert.layer``, ``w2v.weighting``, ...), so a copied link reproduces what a person was
looking at; a value equal to its default is left out of the URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from backend.options import Option
from ui import state
from ui.escape import plain
from ui.i18n import option_texts, t, url_choice
from ui.theme import swatch


@dataclass
class Settings:
    """What the sidebar chose, as the backend wants it.

    Attributes
    ----------
    keys : list of str
        Models to show, in registry order.
    options : dict
        Per-model run-time options (``{"bert": {"layer": -2, "pooling": "mean"}, "w2v": {"weighting": "sif"}}``).
    labels : dict
        Key -> display label (registry ``label``).
    """

    keys: list[str]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def _merged(specs: list[tuple[Option, ...]], name: str) -> Option:
    """One widget's option for several models of a family: the narrowest range that suits them all."""
    found = [o for opts in specs for o in opts if o.name == name]
    lows = [o.low for o in found if o.low is not None]
    highs = [o.high for o in found if o.high is not None]
    return found[0].with_range(max(lows) if lows else None, min(highs) if highs else None)


def option_widget(family: str, opt: Option, default: Any) -> Any:
    """The widget for one declared option (bound to ``?<family>.<name>=``); returns its value."""
    key = f"{family}.{opt.name}"
    label, help_ = option_texts(opt)
    if opt.type is bool:
        return st.toggle(label, value=bool(default), key=key, bind="query-params", help=help_)
    if opt.choices is not None:
        # A choice that is a word ("skip", "simplified") is shown in the interface language and kept in the URL as
        # itself (url_choice: a bound widget would write the shown word); a method's name ("sif", "cls") stays.
        choices = list(opt.choices)
        default = default if default in choices else choices[0]
        widget = st.radio if len(choices) <= 3 else st.selectbox
        kwargs = {"horizontal": True} if widget is st.radio else {}
        return url_choice(widget, label, choices, key, choice_text, default=default, help=help_, **kwargs)
    if opt.type is int and opt.low is not None and opt.high is not None:
        # Layers are offered by their negative hidden_states index (-1 = last), as bert-as-service names them.
        high = -1 if opt.name == "layer" else int(opt.high)
        choices = list(range(int(opt.low), high + 1))
        value = default if default in choices else choices[-1]
        return st.select_slider(label, choices, value=value, key=key, bind="query-params", help=help_)
    if opt.type is float:
        return st.number_input(label, min_value=opt.low, max_value=opt.high, value=float(default), key=key,
                               bind="query-params", help=help_, format="%g")
    if opt.type is str:  # free text (bert's layer_mix weights); the model checks it and says what is wrong
        return st.text_input(label, value=str(default), key=key, bind="query-params", help=help_)
    return default


def choice_text(value: Any) -> str:
    """An option's choice as a person reads it: the catalogue's words for it, else the value itself."""
    return t(str(value))


def _layer_caption(value: int, depths: dict[str, int]) -> str:
    """Both numberings of a BERT layer: the hidden_states index the slider shows and the layer it is."""
    parts = []
    for key, depth in depths.items():
        i = value + depth + 1
        name = t("embedding output") if i == 0 else t("layer {i} of {n}", i=i, n=depth)
        parts.append(f"{key} {name}")
    return t("{v} means: {parts}", v=value, parts="; ".join(parts))


def options_ui(keys: list[str]) -> dict[str, dict[str, Any]]:
    """One group of option widgets per family of ``keys``; returns the per-model options."""
    be = state.backend()
    reg = be.registry
    by_family: dict[str, list[str]] = {}
    for k in keys:
        by_family.setdefault(reg[k].family, []).append(k)
    out: dict[str, dict[str, Any]] = {}
    for family, members in by_family.items():
        try:
            specs = [be.option_specs(k) for k in members]
        except Exception:  # a broken family file: its models show their error on the page
            continue
        runtime = [o for o in specs[0] if o.runtime]
        if not runtime:
            continue
        st.subheader(t("{family} options", family=family))
        st.caption(t("Applies to: {keys}", keys=", ".join(members)))
        values, widget_defaults = {}, {}
        for opt in runtime:
            merged = _merged(specs, opt.name)
            default = reg[members[0]].options.get(opt.name, opt.default)
            widget_defaults[opt.name] = default
            values[opt.name] = option_widget(family, merged, default)
            if opt.name == "layer":
                depths = {k: -int(_merged([s], "layer").low) - 1 for k, s in zip(members, specs, strict=True)
                          if _merged([s], "layer").low is not None}
                st.caption(_layer_caption(int(values["layer"]), depths))
        # A setting left at the widget's default is not a choice: each model keeps its own registry value (w2v-zh
        # its tuned sif_a, not w2v's); a changed one applies to every model of the family.
        for k, spec in zip(members, specs, strict=True):
            own = {o.name: reg[k].options.get(o.name, o.default) for o in spec if o.runtime}
            out[k] = {name: (v if v != widget_defaults[name] else own.get(name, v)) for name, v in values.items()}
        if len(members) > 1 and any(out[k] != out[members[0]] for k in members):
            st.caption(t("Runs as: {runs}", runs=" · ".join(
                f"{k} " + ", ".join(f"{n}={v}" for n, v in out[k].items()) for k in members)))
    return out


def sidebar_ui() -> Settings:
    """Draw the shared sidebar and return the :class:`Settings` (also kept in ``st.session_state.settings``)."""
    be = state.backend()
    reg = be.registry
    # Other sessions' trained models stay out of this list (and out of a copied URL's selection).
    keys_all = state.visible_keys()
    labels = {k: reg[k].label for k in keys_all}
    with st.sidebar:
        st.subheader(t("Models"))
        chosen = st.multiselect(
            t("Models to compare"), keys_all, default=[k for k in reg.defaults() if k in keys_all], key="models",
            bind="query-params",
            help=t("Registry keys (see the Models page). Every page shows these models side by side, each in its own "
                   "colour."),
        )
        keys = [k for k in keys_all if k in chosen]
        for k in keys:
            st.markdown(swatch(k, f"<b>{k}</b> {_html(labels[k])}"), unsafe_allow_html=True)
            if reg[k].stands_in_for:
                st.caption("⚠️ " + t("Not {what}: a stand-in for it, which scores differently (its card on the Models "
                                     "page says what it is).", what=t(reg[k].stands_in_for)))
        options = options_ui(keys)
        for key, err in getattr(reg, "errors", {}).items():
            st.error(t("Registry entry {key} is broken: {err}", key=plain(key), err=plain(err)))
    settings = Settings(keys, options, labels)
    st.session_state["settings"] = settings
    return settings


def _html(text: str) -> str:
    import html

    return html.escape(text)


def hardware_ui(keys: list[str]) -> None:
    """Device and precision of the models in memory, at the foot of the sidebar (never loads a model).

    app.py draws it after the page has run, so it lists the models that page has just loaded.
    """
    be = state.backend()
    dtypes = {}
    loaded = set(be.loaded())
    for k in keys:
        if k in loaded:
            try:
                dtypes[k] = be.info(k).get("dtype", "?")
            except Exception:
                continue
    precision = ", ".join(f"{k} {v}" for k, v in dtypes.items()) if dtypes else t("shown once the models are loaded")
    where = be.url
    with st.sidebar:
        st.subheader(t("Hardware"))
        st.caption(t("Device {device} · precision: {precision}", device=be.device, precision=precision)
                   + (" · " + t("models served by {url}", url=where) if where else ""))
