"""Evaluation lab: how well each model agrees with gold labels, what its scores mean, and training new models.

Each tab is one module in ``ui/lab/``; every number comes from a tested backend function and every long job runs in
the background with a progress bar and a Cancel button.
"""

from __future__ import annotations

import streamlit as st

from ui.frame import page_settings
from ui.i18n import t
from ui.lab.calibration import calibration_tab
from ui.lab.data import describe_ui, lab_data_ui
from ui.lab.disagreements import disagreements_tab
from ui.lab.metrics import metrics_tab
from ui.lab.probe import probe_tab
from ui.lab.retrieval import retrieval_tab
from ui.lab.train import train_tab


def evaluate_ui() -> None:
    """The Evaluation lab page."""
    settings = page_settings()
    st.title(t("Evaluation lab"))
    st.caption(t("How well each model agrees with gold similarity labels, what its scores mean, and new models trained "
                 "here. Command line: python -m backend evaluate FILE, python -m backend probe FILE --model bert."))
    got = lab_data_ui()
    data, data_id = got if got else (None, "")
    if data is not None:
        describe_ui(data)
    tabs = st.tabs([t("Metrics"), t("Calibration"), t("Layer probe"), t("Disagreements"), t("Recall → rerank"),
                    t("Train")])
    report = None
    with tabs[0]:
        if data is None:
            st.info(t("Choose labelled pairs above."))
        elif not settings.keys:
            st.info(t("Choose at least one model in the sidebar."))
        else:
            report = metrics_tab(data, data_id, settings)
    if data is not None:
        with tabs[1]:
            calibration_tab(report, data)
        with tabs[2]:
            probe_tab(data, data_id)
        with tabs[4]:
            retrieval_tab(data, data_id, settings)
    with tabs[3]:
        disagreements_tab(report)
    with tabs[5]:
        train_tab()


evaluate_ui()
