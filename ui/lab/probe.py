"""The Layer probe tab: Spearman for every BERT layer x pooling, why bert-as-service chose layer -2, and a learnt
layer mix (ELMo's scalar mix) with the option that uses it."""

from __future__ import annotations

import streamlit as st

from backend.jobs import BackgroundJob
from backend.lab.evaluation import LabelledPairs
from backend.lab.probe import MIX_TEST_FRACTION, ProbeResult
from backend.lab.verdicts import probe_verdict
from ui import state
from ui.charts import layer_label, probe_heatmap
from ui.escape import plain
from ui.i18n import t
from ui.lab.common import job_result_ui, start_job
from ui.lab.metrics import size_ui
from ui.widgets import download_ui, verdict_ui

WHY_MINUS_TWO = (
    "Why did bert-as-service choose layer -2? Its author's reasoning: the last layer of a pre-trained BERT is shaped "
    "by the pre-training targets (predicting masked words, next-sentence prediction), so it is biased towards them; "
    "the first layers are still close to the raw tokens; the one before last is a compromise that keeps meaning "
    "without the pre-training bias. It is a rule of thumb for raw BERT, not a law: on a model fine-tuned for sentence "
    "similarity (like the backbone here) the last layer wins, and the probe below lets your data decide."
)


def probe_tab(data: LabelledPairs, data_id: str) -> None:
    """Run the probe for a BERT-family model in the background; heatmap, verdict, table."""
    be = state.backend()
    berts = [k for k in state.visible_keys() if be.registry[k].family == "bert"]
    st.markdown(t(WHY_MINUS_TWO))
    if not berts:
        st.info(t("No BERT-family model (family = \"bert\") is registered."))
        return
    st.caption(t("Spearman ×100 of the cosine for every hidden state × pooling, in one forward pass per sentence. "
                 "Rows are named as the sidebar names layers (-1 = last) and by their layer number. Whitening (Su et "
                 "al. 2021) is fitted on the evaluation sentences themselves: optimistic compared with fitting it on "
                 "another corpus."))
    c1, c2 = st.columns([2, 1])
    key = c1.selectbox(t("Model"), berts, key="lab_probe_model")
    whiten = c2.toggle(t("Whitening"), key="lab_probe_whiten")
    size = size_ui(len(data), f"lab_probe_n_{abs(hash(data_id)) % 10**8}", None)
    signature = (data_id, key, whiten, size)
    if st.button(t("Run the probe"), type="primary", key="lab_probe_run"):
        sub = data.head(size)
        msg = t("{d} / {n} sentences")

        def fn(job: BackgroundJob):
            return be.probe(key, sub, whiten=whiten,
                            progress=lambda d, n: job.report(d / max(n, 1), msg.format(d=f"{d:,}", n=f"{n:,}")))

        start_job("probe", fn, signature)
    res = job_result_ui("probe", signature)
    if res is None:
        return
    verdict_ui([probe_verdict(res)])
    for note in res.notes:
        st.caption(f"ℹ️ {plain(note)}")
    frame = res.frame()
    c1, c2 = st.columns([3, 2])
    c1.plotly_chart(probe_heatmap(frame, res.model, res.n, res.whitened, tr=t), key="lab_probe_fig")
    with c2:
        mix_ui(res)
    st.metric("first_last_avg", "–" if res.first_last_avg is None else f"{res.first_last_avg:.2f}")
    table = frame.reset_index()
    table.insert(0, "hidden_state", [layer_label(int(i), len(frame), t) for i in frame.index])
    download_ui(table, "layer_probe.csv", key="lab_probe_download", label=t("Download the probe"))


def mix_ui(res: ProbeResult) -> None:
    """The learnt layer mix: its weights per hidden state, its held-out Spearman beside the best single layer's,
    and the model string that uses it."""
    st.subheader(t("Layer mix"))
    if res.mix_weights is None:
        st.caption(plain(res.mix_note) if res.mix_note else
                   t("This result has no layer mix (the model server does not send one)."))
        return
    test = round(100 * MIX_TEST_FRACTION)
    st.caption(t("Softmax weights over the hidden states (ELMo's scalar mix), learnt with a ranking loss on the cosines "
                 "of {train}% of the pairs; its Spearman is measured on the other {test}%, which the weights never "
                 "saw.", train=100 - test, test=test))
    delta = None if res.mix_spearman is None or res.mix_baseline is None else f"{res.mix_spearman - res.mix_baseline:+.1f}"
    st.metric(t("Held-out Spearman of the mix"), "–" if res.mix_spearman is None else f"{res.mix_spearman:.1f}",
              delta=delta, help=t("The change is against the best single layer on the same held-out pairs ({v}).",
                                  v="–" if res.mix_baseline is None else f"{res.mix_baseline:.1f}"))
    n_states = len(res.mix_weights)
    table = res.mix_frame().iloc[::-1].reset_index()  # last layer on top, as in the heatmap
    table["layer"] = [layer_label(int(i), n_states, t) for i in table["layer"]]
    st.dataframe(table, hide_index=True, width="stretch", key="lab_probe_mix", column_config={
        "layer": st.column_config.TextColumn(t("Hidden state")),
        "weight": st.column_config.ProgressColumn(t("Weight"), min_value=0.0, max_value=1.0, format="%.3f")})
    st.caption(t("Use it on every surface: the bert family's layer_mix option pools this weighted sum of the hidden "
                 "states (in --models, the API or the registry)."))
    st.code(res.mix_option() or "", language=None)
