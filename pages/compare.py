"""Compare pairs: every chosen model's score for each sentence pair, side by side, and why."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.presets import PRESETS, as_frame
from ui import state
from ui.charts import alignment_heatmap, score_bars
from ui.sidebar import Settings, current_settings
from ui.tables import explain_frame, pairs_from_editor, scores_frame, settings_text
from ui.widgets import LazyProgress, bert_note_ui, download_ui, ensure_loaded_ui, model_header_ui

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


def pairs_ui() -> tuple[list[str], list[str]]:
    """Preset picker and the editable pairs table; returns the complete pairs."""
    names = [*PRESETS, CUSTOM]
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    name = c1.selectbox("Preset", names, key="preset", bind="query-params", on_change=_on_preset,
                        help="Pairs written to expose each model family's blind spots.")
    c2.button("Clear the table", key="cmp_clear", on_click=_on_clear, width="stretch")
    if name in PRESETS:
        st.caption(PRESETS[name].description)
        if PRESETS[name].description_zh:
            st.caption(PRESETS[name].description_zh)
    edited = st.data_editor(
        st.session_state["cmp_base"], num_rows="dynamic", key=f"cmp_editor_{st.session_state['cmp_version']}",
        hide_index=True, width="stretch",
        column_config={
            "sentence_a": st.column_config.TextColumn("Sentence A", width="large"),
            "sentence_b": st.column_config.TextColumn("Sentence B", width="large"),
        },
    )
    st.caption("Edit any cell, add rows at the bottom, or paste many rows copied from a spreadsheet (two columns).")
    a, b, partial = pairs_from_editor(edited)
    if partial:
        st.warning(f"Row {', '.join(map(str, partial))} needs both sentences; left out until it has them.")
    _sync_url(a, b)
    return a, b


def score_ui(a: list[str], b: list[str], settings: Settings) -> None:
    """Score the pairs with every chosen model; the table, the chart and the explanations."""
    be = state.backend()
    ensure_loaded_ui(settings.keys)
    bar = LazyProgress(f"Scoring {len(a)} pair(s) with {len(settings.keys)} models…")
    results = be.similarity(a, b, settings.keys, settings.options, progress=lambda d, t: bar(d / max(t, 1)))
    bar.done()
    errors = {k: r.error for k, r in results.items() if r.error}
    model_header_ui(settings, errors, {k: r.seconds for k, r in results.items()})
    frame = scores_frame(a, b, results, warnings=True)
    config: dict[str, object] = {"pair": st.column_config.NumberColumn("#", width="small"),
                                 "sentence_a": "Sentence A", "sentence_b": "Sentence B"}
    for k in settings.keys:
        label = settings.labels.get(k, k)
        # Short keys as headers keep every model on screen; the label and note are in the header's tooltip.
        config[f"score_{k}"] = st.column_config.NumberColumn(
            f"{k} ⚠ failed" if k in errors else k, format="%.3f",
            help=f"{label} failed: {errors[k]}" if k in errors else f"{label}. {be.registry[k].note}",
        )
        config[f"scored_by_{k}"] = st.column_config.TextColumn(f"{k}: scored by")
    shown = [c for c in frame.columns if not c.startswith("warnings_")]
    st.dataframe(frame, column_config=config, column_order=shown, hide_index=True, width="stretch", key="cmp_scores")
    download_ui(frame, "pair_scores.csv", key="cmp_download", label="Download scores (with warnings)")
    st.plotly_chart(score_bars(frame, settings.keys, settings.labels), key="cmp_chart")
    bert_note_ui(settings.keys)
    why_ui(a, b, results, settings)


def why_ui(a: list[str], b: list[str], results: dict, settings: Settings) -> None:
    """"Why this score" per pair: warnings, the settings each model used, ESIM's alignment heatmap."""
    be = state.backend()
    used = {u for r in results.values() if not r.error for u in r.used}
    info = {}
    for k in used:
        info[k], _ = state.info_or_error(k, settings.options.get(k))
    how = {k: settings_text(v) for k, v in info.items()}
    st.subheader("Why these scores?")
    if len(a) <= EXPLAIN_EACH_MAX:
        chosen = range(len(a))
    else:
        pick = st.selectbox("Explain pair", range(len(a)), key="cmp_explain",
                            format_func=lambda i: f"#{i + 1}: {a[i][:40]} / {b[i][:40]}")
        chosen = [pick]
    for i in chosen:
        with st.expander(f"#{i + 1} · {a[i][:60]}  ↔  {b[i][:60]}", expanded=len(a) == 1):
            st.dataframe(explain_frame(i, results, settings.labels, how), hide_index=True, width="stretch",
                         key=f"cmp_why_{i}")
            for k, r in results.items():
                if r.error or be.registry[k].family != "esim":
                    continue
                model = be.model(r.used[i])
                if not hasattr(model, "align"):
                    continue
                try:
                    al = model.align(a[i], b[i])
                except Exception as exc:
                    st.caption(f"{r.used[i]}: no alignment ({exc})")
                    continue
                if len(al["tokens_a"]) and len(al["tokens_b"]):
                    st.plotly_chart(alignment_heatmap(al["tokens_a"], al["tokens_b"], al["matrix"],
                                                      f"{r.used[i]}: which words of B each word of A attends to"),
                                    key=f"cmp_align_{k}_{i}")


def compare_ui() -> None:
    """The Compare pairs page."""
    settings = current_settings()
    st.title("Compare pairs")
    st.caption("Every model's similarity for each pair, side by side. Pick a preset or type your own pairs.")
    _init_state()
    a, b = pairs_ui()
    if not settings.keys:
        st.info("Choose at least one model in the sidebar.")
        st.stop()
    if not a:
        st.info("Type a pair or choose a preset.", icon=":material/edit_note:")
        st.stop()
    score_ui(a, b, settings)


compare_ui()
