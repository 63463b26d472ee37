"""The Metrics tab: how well each model's scores agree with the gold labels, with charts and a verdict."""

from __future__ import annotations

import streamlit as st

from backend.jobs import BackgroundJob
from backend.lab.evaluation import EvaluationReport, LabelledPairs, evaluate, paper_table, roc_pr_curves
from backend.lab.verdicts import metrics_verdicts
from backend.registry import ModelRequest
from ui import state
from ui.charts import roc_pr, score_distributions, score_vs_gold
from ui.i18n import t
from ui.lab.common import glossary_ui, job_result_ui, job_seconds, start_job
from ui.sidebar import Settings
from ui.tables import metrics_display
from ui.widgets import download_ui, verdict_ui

#: on a CPU the lab starts on a sample of this many pairs; the full set is one click away, with an estimate.
CPU_SAMPLE = 500


def requests(settings: Settings) -> list[ModelRequest]:
    """The sidebar's models with the sidebar's options."""
    return [ModelRequest(k, k, dict(settings.options.get(k, {}))) for k in settings.keys]


def size_ui(n: int, key: str, last: tuple[int, float] | None) -> int:
    """How many pairs to use: a sample first on a CPU, with the estimate for all of them once a run has timed it."""
    be = state.backend()
    default = n if be.device != "cpu" or n <= CPU_SAMPLE else CPU_SAMPLE
    size = int(st.number_input(t("Pairs to use (the first n)"), 2, max(2, n), max(2, default), step=100, key=key,
                               help=t("On a CPU the lab starts on a sample; raise it to the whole set when the numbers "
                                      "look worth it.")))
    if last is not None and last[0] and size != last[0]:
        st.caption(t("The last run took {s} s for {m} pairs: {n} pairs should take about {est} s.", s=f"{last[1]:.0f}",
                     m=f"{last[0]:,}", n=f"{size:,}", est=f"{last[1] * size / last[0]:.0f}"))
    return size


def metrics_tab(data: LabelledPairs, data_id: str, settings: Settings) -> EvaluationReport | None:
    """Run the evaluation in the background; show the table, the verdict and the charts."""
    reqs = requests(settings)
    last = st.session_state.get("lab_metrics_size")
    secs = job_seconds("metrics")
    # The data's id in the key: another data set starts from its own default size, not the last one's.
    size = size_ui(len(data), f"lab_metrics_n_{abs(hash(data_id)) % 10**8}", (last, secs) if last and secs else None)
    signature = (data_id, size, repr([(r.name, sorted(r.options.items())) for r in reqs]))
    if st.button(t("Evaluate {n} pairs with {models}", n=f"{size:,}", models=", ".join(settings.keys)), type="primary",
                 key="lab_metrics_run", disabled=not settings.keys):
        be, sub = state.backend(), data.head(size)
        st.session_state["lab_metrics_size"] = size
        msg = t("{d} / {n} pair scores")  # translated here: the job's thread has no session to ask

        def fn(job: BackgroundJob) -> EvaluationReport:
            return evaluate(be, sub, reqs, lambda d, n: job.report(d / max(n, 1), msg.format(d=f"{d:,}", n=f"{n:,}")),
                            should_stop=job.should_stop)

        start_job("metrics", fn, signature)
    report: EvaluationReport | None = job_result_ui("metrics", signature)
    if report is None:
        return None
    verdict_ui(metrics_verdicts(report))
    table = report.table()
    st.dataframe(metrics_display(table, report.data.kind, t("n/a")), hide_index=True, width="stretch",
                 key="lab_metrics_table")
    st.caption(t("Spearman/Pearson ×100; AUC, average precision, best F1 and accuracy in [0, 1]; threshold in score "
                 "units (a pair is called similar at or above it). Undefined metrics are empty, with the reason in "
                 "notes."))
    glossary_ui("Spearman", "Pearson", "ROC-AUC", "F1")
    download_ui(table, "evaluation.csv", key="lab_metrics_download", label=t("Download metrics"))
    scores = report.scores()
    if not scores:
        return report
    d = report.data
    st.plotly_chart(score_vs_gold(scores, d.labels, tr=t), key="lab_scatter")
    st.plotly_chart(score_distributions(scores, d.labels, d.kind == "binary", tr=t), key="lab_dist")
    metrics = {k: report.results[k].metrics for k in scores}
    curves = roc_pr({k: roc_pr_curves(s, d.labels, d.kind, d.label_range) for k, s in scores.items()},
                    {k: m.auc for k, m in metrics.items()}, {k: m.average_precision for k, m in metrics.items()}, tr=t)
    if curves:
        c1, c2 = st.columns(2)
        c1.plotly_chart(curves[0], key="lab_roc")
        c2.plotly_chart(curves[1], key="lab_pr")
    if d.kind == "graded":
        with st.expander(t("Sentence-BERT paper, Table 1 style")):
            paper = paper_table(report)
            st.dataframe(paper, hide_index=True, width="stretch", key="lab_paper")
            download_ui(paper, "paper_table.csv", key="lab_paper_download")
            st.caption(t("Published numbers are on the STS-B test split (Reimers & Gurevych 2019; the MiniLM model "
                         "card); ours are on the file evaluated here."))
    return report
