"""Models: a card per registered model (what it is, where its weights come from, its licence) and a live speed test."""

from __future__ import annotations

import streamlit as st

from backend.base import fact_rows
from ui import state
from ui.frame import page_settings
from ui.i18n import t
from ui.tables import model_facts
from ui.theme import swatch
from ui.widgets import load_models_ui, plain, short_error

#: facts the card shows in a form of its own: in its title and warnings, or formatted by ``ui.tables.model_facts``
#: (``layer`` and ``pooling`` as one row, counts as 22.7 M, ...). Every other fact a family reports follows them.
SHOWN_APART = frozenset({
    "key", "label", "note", "research_only", "stands_in_for",
    "family", "roles", "source", "language", "licence", "parameters", "dim", "max_tokens", "layer", "layers",
    "pooling", "weighting", "principal_component_removed", "vocabulary", "score", "dev_spearman", "device", "dtype",
    "load_seconds",
})

def card_ui(key: str, options: dict | None, label: str) -> None:
    """One model's card: facts, note, licence, error if it failed to load, and the speed test."""
    be = state.backend()
    spec = be.registry[key]
    with st.container(border=True):
        st.markdown(f"### {swatch(key, plain(label))}", unsafe_allow_html=True)
        st.caption(t("registry key {key}", key=f"`{key}`"))
        try:
            info, error = be.info(key, **(options or {})), None
        except Exception as exc:
            info, error = {}, exc
        # The registry's flag, or the loaded model's (a server's registry may know fields this client does not).
        if spec.research_only or info.get("research_only"):
            st.warning(t("Licence: {licence}. Do not use it commercially; swap in another model with one registry "
                         "line (models/registry.toml).", licence=t(spec.licence)), icon=":material/gavel:")
        if error is not None:
            st.error(t("Could not be loaded: {error}", error=short_error(str(error).strip("'\""))), icon=":material/error:")
            # What the registry says is still worth reading when the weights are missing.
            st.markdown(f"- **{t('family')}**: {spec.family}\n- **{t('source')}**: {spec.source}\n"
                        f"- **{t('language')}**: {dict(model_facts({'language': spec.language}, t))['language']}")
            if spec.note:
                (st.warning if spec.stands_in_for else st.caption)(plain(t(spec.note)))
            return
        # Every fact the family reports: the common ones formatted, then its own, in the order it gives them.
        # A value is data (a key, a number, a source) unless the catalogue knows it as words ("yes", a licence, what
        # a score means): t() leaves data as it is.
        facts = model_facts(info, t) + fact_rows(info, skip=SHOWN_APART)
        half = (len(facts) + 1) // 2
        c1, c2 = st.columns(2)
        for col, part in ((c1, facts[:half]), (c2, facts[half:])):
            col.markdown("\n".join(f"- **{t(k)}**: {plain(t(v))}" for k, v in part))
        if info.get("note"):
            (st.warning if info.get("stands_in_for") else st.caption)(plain(t(info["note"])))
        if st.button(t("Measure speed"), key=f"models_bench_{key}",
                     help=t("Latency of one pair and throughput on fresh texts")):
            with st.spinner(t("Timing {key}…", key=key)):
                st.session_state[f"models_speed_{key}"] = be.measure_speed(key, options)
        speed = st.session_state.get(f"models_speed_{key}")
        if speed:
            m1, m2 = st.columns(2)
            m1.metric(t("latency, one pair"), f"{speed.latency_ms:.1f} ms")
            m2.metric(t("throughput, {unit}/s", unit=t(speed.unit)), f"{speed.per_second:,.0f}")


def models_ui() -> None:
    """The Models page."""
    settings = page_settings()
    be = state.backend()
    st.title(t("Models"))
    where = be.url
    st.caption(t("Every registered model (models/registry.toml), on device {device}.", device=f"**{be.device}**")
               + (" " + t("The models run on the backend server at {url}.", url=where) if where else "")
               + " " + t("Options from the sidebar apply to the models of their family."))
    keys = state.visible_keys()
    load_models_ui(keys, eager=True)
    cols = st.columns(2)
    for i, key in enumerate(keys):
        with cols[i % 2]:
            card_ui(key, settings.options.get(key), settings.labels.get(key, key))


models_ui()
