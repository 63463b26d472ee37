"""The lab's labelled pairs: an upload with its columns, our own demo sets, or STS-B dev when it is present."""

from __future__ import annotations

import numpy as np
import streamlit as st

from backend.files.io import TableError
from backend.lab.evaluation import (
    LabelledPairs,
    demo_labelled_pairs,
    labelled_from_frame,
    load_faq_zh,
    load_labelled_pairs,
    parse_label_range,
)
from backend.registry import PROJECT_ROOT
from ui.i18n import t, tw
from ui.widgets import pair_columns_ui, plain, table_ui, upload_ui

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@st.cache_data(show_spinner=False)
def _stsb_dev(lang: str) -> LabelledPairs:
    return load_labelled_pairs(SHARED_DATA / f"stsb-{lang}" / "dev.tsv")


def _sources() -> dict[str, str]:
    out = {"demo": t("demo set, English (same topic = 1; our own sentences)"),
           "faq-zh": t("Chinese FAQ set (same intent = 1; our own sentences)"),
           "upload": t("my labelled file")}
    for lang, name in (("en", "English"), ("zh", "Chinese")):
        if (SHARED_DATA / f"stsb-{lang}" / "dev.tsv").exists():
            out[f"stsb-{lang}"] = t("STS-B dev, {language} (../shared/data, development only)", language=t(name))
    return out


def lab_data_ui() -> tuple[LabelledPairs, str] | None:
    """Choose the labelled pairs; returns ``(pairs, an id of this choice)`` or None after saying what is missing."""
    sources = _sources()
    source = st.radio(t("Labelled pairs"), list(sources), format_func=sources.get, horizontal=True, key="lab_source")
    if source == "demo":
        return demo_labelled_pairs(200, seed=0), "demo"
    if source == "faq-zh":
        return load_faq_zh(), "faq-zh"
    if source.startswith("stsb-"):
        return _stsb_dev(source[-2:]), f"{source}-dev"
    up = upload_ui("lab_upload", t("Pairs with a gold label (CSV/TSV): two text columns and a score (e.g. 0–5) or a "
                                   "0/1 label"))
    if up is None:
        st.info(t("Upload a labelled file, or pick one of the sets above."), icon=":material/upload_file:")
        return None
    table = table_ui(up, f"lab_{up.digest[:8]}")
    cols = pair_columns_ui(table.frame, f"lab_{up.digest[:8]}", label_required=True) if table is not None else None
    if cols is None:
        return None
    rng_text = st.text_input(t("Label range"), "", placeholder=t("auto, e.g. 0,5"), key=f"lab_range_{up.digest[:8]}",
                             help=t("Declared range of the gold label; labels outside it are skipped. Empty: inferred."))
    try:
        data = labelled_from_frame(table.frame, cols.a, cols.b, cols.label, parse_label_range(rng_text))
    except (TableError, ValueError) as exc:
        st.error(plain(str(exc)))
        return None
    data.notes = table.notes + data.notes
    return data, f"{up.digest}:{cols.a}:{cols.b}:{cols.label}:{rng_text}"


def describe_ui(data: LabelledPairs) -> None:
    """How many pairs, which kind of label, and the notes of reading them."""
    lo, hi = data.label_range
    n_ok = int(np.isfinite(data.labels).sum())
    kind = t("binary") if data.kind == "binary" else t("graded")
    st.caption(t("{n} pairs, {ok} with a label · {kind} labels on {lo}–{hi}", n=f"{len(data):,}", ok=f"{n_ok:,}",
                 kind=kind, lo=f"{lo:g}", hi=f"{hi:g}")
               + ("" if data.kind == "binary" else " " + t("(AUC/F1 call a pair similar when gold ≥ {mid})",
                                                          mid=f"{data.midpoint:g}")))
    for note in data.notes:
        st.info(plain(tw(note)), icon=":material/info:")


__all__ = ["SHARED_DATA", "describe_ui", "lab_data_ui"]
