"""Models: a card per registered model (what it is, where its weights come from, its licence) and a live speed test."""

from __future__ import annotations

import streamlit as st

from ui import state
from ui.frame import page_settings
from ui.i18n import t
from ui.tables import model_facts
from ui.theme import swatch
from ui.widgets import load_models_ui, plain, short_error


def card_ui(key: str, options: dict | None, label: str) -> None:
    """One model's card: facts, note, licence, error if it failed to load, and the speed test."""
    be = state.backend()
    spec = be.registry[key]
    with st.container(border=True):
        st.markdown(f"### {swatch(key, plain(label))}", unsafe_allow_html=True)
        st.caption(t("registry key {key}", key=f"`{key}`"))
        if spec.licence and "research" in spec.licence.lower():
            st.warning(t("Licence: {licence}. Do not use it commercially; swap in another model with one registry "
                         "line (models/registry.toml).", licence=spec.licence), icon=":material/gavel:")
        try:
            info = be.info(key, **(options or {}))
        except Exception as exc:
            st.error(t("Could not be loaded: {error}", error=short_error(str(exc).strip("'\""))), icon=":material/error:")
            # What the registry says is still worth reading when the weights are missing.
            st.markdown(f"- **{t('family')}**: {spec.family}\n- **{t('source')}**: {spec.source}\n"
                        f"- **{t('language')}**: {spec.language}")
            if spec.note:
                st.caption(plain(spec.note))
            return
        facts = model_facts(info)
        half = (len(facts) + 1) // 2
        c1, c2 = st.columns(2)
        for col, part in ((c1, facts[:half]), (c2, facts[half:])):
            col.markdown("\n".join(f"- **{t(k)}**: {plain(v)}" for k, v in part))
        if info.get("note"):
            (st.warning if "not raw bert" in info["note"].lower() else st.caption)(plain(info["note"]))
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
    where = getattr(be, "url", None)
    st.caption(t("Every registered model (models/registry.toml), on device {device}.", device=f"**{be.device}**")
               + (" " + t("The models run on the backend server at {url}.", url=where) if where else "")
               + " " + t("Options from the sidebar apply to the models of their family."))
    keys = state.visible_keys()
    load_models_ui(keys)
    cols = st.columns(2)
    for i, key in enumerate(keys):
        with cols[i % 2]:
            card_ui(key, settings.options.get(key), settings.labels.get(key, key))


models_ui()
