"""Models: a card per registered model (what it is, where its weights come from) and a live speed test."""

from __future__ import annotations

import streamlit as st

from ui import state
from ui.sidebar import current_settings
from ui.tables import measure_speed, model_facts
from ui.theme import swatch
from ui.widgets import ensure_loaded_ui, short_error


def card_ui(key: str, options: dict | None, label: str) -> None:
    """One model's card: facts, note, error if it failed to load, and the speed test."""
    with st.container(border=True):
        st.markdown(f"### {swatch(key, label)}", unsafe_allow_html=True)
        st.caption(f"registry key `{key}`")
        info, error = state.info_or_error(key, options)
        if error:
            st.error(f"Could not be loaded: {short_error(error)}", icon=":material/error:")
            spec = state.backend().registry[key]
            # What the registry says is still worth reading when the weights are missing.
            st.markdown(f"- **family**: {spec.family}\n- **source**: {spec.source}\n- **language**: {spec.language}")
            if spec.note:
                st.caption(" ".join(spec.note.split()))
            return
        facts = model_facts(info)
        half = (len(facts) + 1) // 2
        c1, c2 = st.columns(2)
        for col, part in ((c1, facts[:half]), (c2, facts[half:])):
            col.markdown("\n".join(f"- **{k}**: {v}" for k, v in part))
        if info.get("note"):
            (st.warning if key == "bert" else st.caption)(" ".join(info["note"].split()))
        if st.button("Measure speed", key=f"models_bench_{key}", help="Latency of one pair and throughput on fresh texts"):
            with st.spinner(f"Timing {key}…"):
                corpus = state.demo_corpus()["text"].tolist()
                st.session_state[f"models_speed_{key}"] = measure_speed(state.backend().model(key, **(options or {})), corpus)
        speed = st.session_state.get(f"models_speed_{key}")
        if speed:
            m1, m2 = st.columns(2)
            m1.metric("latency, one pair", f"{speed['latency_ms']:.1f} ms")
            m2.metric(f"throughput, {speed['unit']}/s", f"{speed['per_second']:,.0f}")


def models_ui() -> None:
    """The Models page."""
    settings = current_settings()
    st.title("Models")
    be = state.backend()
    st.caption(f"Every registered model (models/registry.toml), on device **{be.device}**. Options from the sidebar "
               "apply to BERT and the word vectors.")
    keys = state.visible_keys()
    ensure_loaded_ui(keys)
    cols = st.columns(2)
    for i, key in enumerate(keys):
        with cols[i % 2]:
            card_ui(key, settings.options.get(key), settings.labels.get(key, key))


models_ui()
