"""Models: a card per registered model (what it is, where its weights come from) and a live speed test."""

from __future__ import annotations

import time

import numpy as np
import streamlit as st

from backend.base import SentenceModel
from ui import state
from ui.sidebar import current_settings
from ui.tables import model_facts
from ui.theme import swatch
from ui.widgets import ensure_loaded_ui, short_error

#: sentences timed for throughput: enough batches to amortise start-up, few enough to finish in seconds.
BENCH_SENTENCES = 256


def measure(key: str, options: dict | None) -> dict[str, float]:
    """Latency of one pair and throughput, timed on the model itself (the Backend's vector cache bypassed).

    Returns
    -------
    dict
        ``latency_ms`` (median of 5 single-pair calls), ``per_second`` and ``unit`` ("sentences" for
        encoders, "pairs" for pair scorers such as ESIM).
    """
    be = state.backend()
    model = be.model(key, **(options or {}))
    corpus = state.demo_corpus()["text"].tolist()
    rng = np.random.default_rng(int(time.time()))
    # Texts not seen before in this form: a counter suffix defeats any cache below the model.
    texts = [f"{corpus[i]} ({n})" for n, i in enumerate(rng.integers(0, len(corpus), BENCH_SENTENCES))]
    # ESIM scores pairs natively (a cross-encoder): time it on pairs, the encoders on sentences.
    native = type(model).score_detailed is not SentenceModel.score_detailed
    lat = []
    for n in range(5):
        t0 = time.perf_counter()
        model.score_detailed([texts[n]], [texts[-n - 1]])
        lat.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    if model.can_encode and not native:
        model.encode(texts)
        unit = "sentences"
    else:
        model.score_detailed(texts[: BENCH_SENTENCES // 2], texts[BENCH_SENTENCES // 2 :])
        unit = "pairs"
    spent = time.perf_counter() - t0
    count = BENCH_SENTENCES if unit == "sentences" else BENCH_SENTENCES // 2
    return {"latency_ms": float(np.median(lat) * 1000), "per_second": count / spent, "unit": unit}


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
                st.session_state[f"models_speed_{key}"] = measure(key, options)
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
    keys = be.registry.keys()
    ensure_loaded_ui(keys)
    cols = st.columns(2)
    for i, key in enumerate(keys):
        with cols[i % 2]:
            card_ui(key, settings.options.get(key), settings.labels.get(key, key))


models_ui()
