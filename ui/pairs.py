"""The Compare page's parts: the pairs to score (presets, an editable table, the URL) and "why these scores?"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from backend.lab.presets import PRESETS, as_frame
from ui import state
from ui.charts import alignment_heatmap
from ui.i18n import lang, t, tw, url_choice
from ui.sidebar import Settings
from ui.tables import explain_frame, pairs_from_editor, settings_text
from ui.widgets import plain, text_table_ui

CUSTOM = "(my own pairs)"
#: pairs kept in the URL (a, b query parameters); more would make links unwieldy.
URL_MAX_PAIRS = 20
#: above this many pairs the "why" section explains one chosen pair instead of one expander per pair.
EXPLAIN_EACH_MAX = 12


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"sentence_a": pd.Series(dtype=str), "sentence_b": pd.Series(dtype=str)})


def _set_pairs(frame: pd.DataFrame) -> None:
    st.session_state["cmp_base"] = frame
    # A new editor key discards the old editor's cell edits, which would otherwise apply to the new rows.
    st.session_state["cmp_version"] = st.session_state.get("cmp_version", 0) + 1


def _on_preset() -> None:
    name = st.session_state["preset"]
    _set_pairs(as_frame(name) if name in PRESETS else _empty())


def _on_clear() -> None:
    st.session_state["preset"] = CUSTOM
    _set_pairs(_empty())


def _init_state() -> None:
    """Pairs from the URL (``?a=..&b=..``), else the URL's or the first preset; once per session."""
    if "cmp_base" in st.session_state:
        return
    a, b = st.query_params.get_all("a"), st.query_params.get_all("b")
    if a and b:
        _set_pairs(pd.DataFrame({"sentence_a": a[: len(b)], "sentence_b": b[: len(a)]}))
        st.session_state["preset"] = CUSTOM
    else:
        name = st.query_params.get("preset", next(iter(PRESETS)))
        _set_pairs(as_frame(name if name in PRESETS else next(iter(PRESETS))))


def _sync_url(a: list[str], b: list[str]) -> None:
    """Keep own pairs in the URL (a preset's pairs are already named by ``?preset=``)."""
    name = st.session_state.get("preset")
    same_as_preset = name in PRESETS and list(PRESETS[name].pairs) == list(zip(a, b, strict=True))
    if a and not same_as_preset and len(a) <= URL_MAX_PAIRS:
        st.query_params["a"] = a
        st.query_params["b"] = b
    else:
        for k in ("a", "b"):
            if k in st.query_params:
                del st.query_params[k]


def preset_label(name: str) -> str:
    """A preset's name in the interface language (the URL keeps its English ``name``)."""
    if name not in PRESETS:
        return t("(my own pairs)")
    p = PRESETS[name]
    return p.name_zh if lang() == "zh" and p.name_zh else p.name


def preset_description(name: str) -> str:
    """A preset's description in the interface language."""
    p = PRESETS[name]
    return p.description_zh if lang() == "zh" and p.description_zh else t(p.description)


def pairs_ui() -> tuple[list[str], list[str]]:
    """Preset picker and the editable pairs table; returns the complete pairs."""
    _init_state()
    names = [*PRESETS, CUSTOM]
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    name = url_choice(c1.selectbox, t("Preset"), names, "preset", preset_label, on_change=_on_preset,
                      help=t("Pairs written to expose each model family's blind spots."))
    c2.button(t("Clear the table"), key="cmp_clear", on_click=_on_clear, width="stretch")
    if name in PRESETS:
        st.caption(preset_description(name))
    edited = st.data_editor(
        st.session_state["cmp_base"], num_rows="dynamic", key=f"cmp_editor_{st.session_state['cmp_version']}",
        hide_index=True, width="stretch",
        column_config={
            "sentence_a": st.column_config.TextColumn(t("Sentence A"), width="large"),
            "sentence_b": st.column_config.TextColumn(t("Sentence B"), width="large"),
        },
    )
    st.caption(t("Edit any cell, add rows at the bottom, or paste many rows copied from a spreadsheet (two columns)."))
    a, b, partial = pairs_from_editor(edited)
    if partial:
        st.warning(t("Row {rows} needs both sentences; left out until it has them.", rows=", ".join(map(str, partial))))
    _sync_url(a, b)
    return a, b


def why_ui(a: list[str], b: list[str], results: Mapping[str, Any], settings: Settings) -> None:
    """"Why these scores?" per pair: warnings, the settings each model used, a pair scorer's alignment heatmap."""
    be = state.backend()
    used = {u for r in results.values() if r.error is None for u in r.used}
    how = {}
    for k in used:
        runtime = [o.name for o in be.option_specs(k) if o.runtime]
        how[k] = settings_text({**be.registry[k].options, **settings.options.get(k, {})}, runtime)
    st.subheader(t("Why these scores?"))
    if len(a) <= EXPLAIN_EACH_MAX:
        chosen = list(range(len(a)))
    else:
        chosen = [st.selectbox(t("Explain pair"), range(len(a)), key="cmp_explain",
                               format_func=lambda i: f"#{i + 1}: {a[i][:40]} / {b[i][:40]}")]
    for i in chosen:
        with st.expander(f"#{i + 1} · {plain(a[i], 60)}  ↔  {plain(b[i], 60)}", expanded=len(a) == 1):
            frame = explain_frame(i, results, settings.labels, how,
                                  na=lambda reason: t("n/a: {reason}", reason=tw(reason)))
            frame["warnings"] = frame["warnings"].map(tw)
            frame.columns = [t(c) for c in frame.columns]
            text_table_ui(frame)
            # Heatmaps on request when there are several pairs: each is an alignment to compute on the server and a
            # Plotly figure to draw in the browser, for every pair of every visitor's run (bench/bench_visitors.py).
            if len(a) > 1 and not st.toggle(t("Show each pair scorer's word alignment"), key=f"cmp_align_show_{i}"):
                continue
            for k, r in results.items():
                if r.error is not None or "pair_scorer" not in be.roles(r.used[i]):
                    continue
                try:
                    al = be.align(r.used[i], a[i], b[i])
                except Exception as exc:
                    st.caption(t("{key}: no alignment ({error})", key=r.used[i], error=plain(str(exc))))
                    continue
                if al and len(al["tokens_a"]) and len(al["tokens_b"]):
                    st.plotly_chart(alignment_heatmap(al["tokens_a"], al["tokens_b"], al["matrix"],
                                                      t("{key}: which words of B each word of A attends to",
                                                        key=r.used[i]), tr=t),
                                    key=f"cmp_align_{k}_{i}")
