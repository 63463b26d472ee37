"""Evaluation lab: how well each model agrees with gold labels, what its scores mean, and training new models.

Tabs: Metrics (with charts), Calibration, BERT layer probe, Disagreements, Recall → rerank, Train. Every
number comes from a tested backend function (``backend.evaluation``, ``calibration``, ``probe``,
``retrieval``, ``w2v_training``) and every figure from :mod:`ui.charts`; this page only picks inputs and lays
the results out. Long work runs in a background thread per session (:class:`backend.w2v_training.BackgroundJob`)
with a progress bar and a Cancel button, so the page stays usable and other people's sessions are never blocked.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import tempfile
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import numpy as np
import streamlit as st

from backend.calibration import background_scores, calibrate, demo_corpus_texts
from backend.evaluation import (
    EvaluationReport,
    LabelledPairs,
    demo_labelled_pairs,
    disagreements,
    evaluate,
    labelled_from_frame,
    load_labelled_pairs,
    paper_table,
    roc_pr_curves,
)
from backend.io import TableError, guess_label_column, guess_text_columns
from backend.jobs import BackgroundJob
from backend.probe import probe_model
from backend.registry import PROJECT_ROOT, ModelRequest, ModelSpec
from backend.retrieval import build_retrieval_task, recall_rerank
from backend.w2v_training import (
    Word2VecConfig,
    nearest_words,
    read_corpus,
    register_session_model,
    word2vec_task,
    word2vec_text_bytes,
)
from ui import state
from ui.charts import (
    calibration_curve,
    probe_heatmap,
    roc_pr,
    score_distributions,
    score_vs_gold,
    training_curves,
)
from ui.sidebar import Settings, current_settings
from ui.tables import majority_language, nearest_words_frame, parse_label_range, score_span
from ui.widgets import bert_note_ui, download_ui

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
#: above this many pairs the browser evaluates only a prefix (chunked, with progress) and points to the CLI.
BROWSER_MAX_ROWS = 20_000
CHOOSE = "(choose)"


# ------------------------------------------------------------------------------------------------ jobs
def start_job(name: str, fn: Callable[[BackgroundJob], Any], signature: Any = None) -> None:
    """Start ``fn`` in a background thread, kept in this session under ``name`` (one per name)."""
    old = st.session_state.get(f"eval_job_{name}")
    if old is not None and old.running:
        old.cancel()
    st.session_state[f"eval_job_{name}"] = BackgroundJob(fn, name).start()
    st.session_state[f"eval_sig_{name}"] = signature


@st.fragment(run_every=1.0)
def _job_progress_ui(name: str) -> None:
    job: BackgroundJob | None = st.session_state.get(f"eval_job_{name}")
    if job is None or not job.running:
        st.rerun()  # the whole page, to show the result
    s = job.state()
    st.progress(s.fraction, text=f"{s.message or 'working…'} · {s.seconds:.0f} s")
    if st.button("Cancel", key=f"eval_cancel_{name}"):
        job.cancel()


def job_result_ui(name: str, signature: Any = None) -> Any:
    """The finished job's result, or None (showing progress, the error or "cancelled" instead)."""
    job: BackgroundJob | None = st.session_state.get(f"eval_job_{name}")
    if job is None:
        return None
    if job.running:
        _job_progress_ui(name)
        return None
    s = job.state()
    if s.status == "failed":
        st.error(f"Failed: {s.error}")
        return None
    if s.status == "cancelled":
        st.warning(f"Cancelled after {s.seconds:.0f} s.")
        return s.result
    if signature is not None and st.session_state.get(f"eval_sig_{name}") != signature:
        st.warning("The data, models or options changed since this result was computed; run it again to update it.")
    return s.result


# ------------------------------------------------------------------------------------------------ data
@st.cache_data(show_spinner=False, max_entries=8)
def _labelled_upload(name: str, data: bytes, a_col: str, b_col: str, label_col: str,
                     label_range: tuple[float, float] | None) -> LabelledPairs:
    return labelled_from_frame(state.read_upload(name, data).frame, a_col, b_col, label_col, label_range)


@st.cache_data(show_spinner=False)
def _stsb_dev() -> LabelledPairs:
    return load_labelled_pairs(SHARED_DATA / "stsb-en" / "dev.tsv")


def data_ui() -> tuple[LabelledPairs, str] | None:
    """Choose the labelled pairs (upload with column mapping, demo set, or STS-B dev when present)."""
    sources = {"upload": "my labelled file", "demo": "demo set (same topic = 1, our own sentences)"}
    if (SHARED_DATA / "stsb-en" / "dev.tsv").exists():
        sources["stsb"] = "STS-B dev (../shared/data, development only)"
    source = st.radio("Labelled pairs", list(sources), format_func=sources.get, horizontal=True, key="eval_source")
    if source == "demo":
        return demo_labelled_pairs(200, seed=0), "demo"
    if source == "stsb":
        return _stsb_dev(), "stsb-dev"
    up = st.file_uploader("Pairs with a gold label (CSV/TSV): two text columns and a score (e.g. 0–5) or a 0/1 label",
                          type=["csv", "tsv", "txt"], key="eval_file")
    if up is not None:
        data = up.getvalue()
        st.session_state["eval_upload"] = (up.name, data, hashlib.sha1(data).hexdigest())
    stored = st.session_state.get("eval_upload")
    if not stored:
        st.info("Upload a labelled file, or pick the demo set.", icon="📄")
        return None
    name, data, digest = stored
    try:
        frame = state.read_upload(name, data).frame
    except TableError as exc:
        st.error(f"Cannot read {name}: {exc}")
        return None
    cols = list(frame.columns)
    ga, gb = guess_text_columns(frame)
    gl = guess_label_column(frame, exclude=(ga, gb))
    c1, c2, c3, c4 = st.columns([2, 2, 2, 1])
    a_col = c1.selectbox("Sentence A", cols, index=cols.index(ga) if ga in cols else 0, key=f"eval_a_{digest}")
    b_col = c2.selectbox("Sentence B", cols, index=cols.index(gb) if gb in cols else min(1, len(cols) - 1),
                         key=f"eval_b_{digest}")
    label_opts = [CHOOSE, *[c for c in cols if c not in (a_col, b_col)]]
    label_col = c3.selectbox("Gold label", label_opts, index=label_opts.index(gl) if gl in label_opts else 0,
                             key=f"eval_l_{digest}")
    rng_text = c4.text_input("Label range", "", placeholder="auto, e.g. 0,5", key=f"eval_r_{digest}",
                             help="Declared range of the gold label; labels outside it are skipped. Empty: inferred.")
    if label_col == CHOOSE:
        st.error("No gold label column found. Evaluation needs a numeric label per pair: a graded score "
                 "(e.g. 0–5) or a binary 0/1 label. Choose the column that holds it above.")
        return None
    try:
        data_pairs = _labelled_upload(name, data, a_col, b_col, label_col, parse_label_range(rng_text))
    except (TableError, ValueError) as exc:
        st.error(str(exc))
        return None
    return data_pairs, f"{digest}:{a_col}:{b_col}:{label_col}:{rng_text}"


def describe_ui(data: LabelledPairs) -> None:
    lo, hi = data.label_range
    n_ok = int(np.isfinite(data.labels).sum())
    st.caption(f"**{len(data):,} pairs**, {n_ok:,} with a label · {data.kind} labels on {lo:g}–{hi:g}"
               + ("" if data.kind == "binary" else f" (AUC/F1 call a pair similar when gold ≥ {data.midpoint:g})"))
    for note in data.notes:
        st.info(note, icon="ℹ️")


def _triples(settings: Settings) -> list[ModelRequest]:
    return [ModelRequest(k, k, dict(settings.options.get(k, {}))) for k in settings.keys]


# --------------------------------------------------------------------------------------------- metrics
def metrics_tab(data: LabelledPairs, data_id: str, settings: Settings) -> EvaluationReport | None:
    n = len(data)
    limit = n
    if n > BROWSER_MAX_ROWS:
        st.warning(f"{n:,} pairs is a lot for the browser: the first {BROWSER_MAX_ROWS:,} are evaluated here (in chunks, "
                   "with progress). For the whole file use the command line: "
                   "`python -m backend evaluate FILE --json`.")
        limit = BROWSER_MAX_ROWS
    signature = (data_id, limit, json.dumps([(r.name, r.options) for r in _triples(settings)], sort_keys=True))
    if st.button(f"Evaluate {limit:,} pairs with {', '.join(settings.keys)}", type="primary", key="eval_run",
                 disabled=not settings.keys):
        sub = data.head(limit)
        be = state.backend()

        def fn(job: BackgroundJob) -> EvaluationReport:
            return evaluate(be, sub, _triples(settings), lambda d, t: job.report(d / max(t, 1), f"{d:,} / {t:,} pairs scored"),
                            should_stop=job.should_stop)

        start_job("metrics", fn, signature)
    report: EvaluationReport | None = job_result_ui("metrics", signature)
    if report is None:
        return None
    table = report.table()
    st.dataframe(table, hide_index=True, width="stretch", key="eval_table", column_config={
        c: st.column_config.NumberColumn(format="%.3f") for c in ("auc", "avg_precision", "best_f1", "threshold", "accuracy")
    } | {c: st.column_config.NumberColumn(format="%.2f") for c in ("spearman", "pearson")})
    st.caption("Spearman/Pearson ×100; AUC, average precision, best F1 and accuracy in [0, 1]; threshold in score units "
               "(a pair is called similar at or above it). Undefined metrics are empty, with the reason in notes.")
    download_ui(table, "evaluation.csv", key="eval_download", label="Download metrics")
    bert_note_ui(list(report.results))
    if not report.scores():
        return report
    d, scores = report.data, report.scores()
    st.plotly_chart(score_vs_gold(scores, d.labels), key="eval_scatter")
    st.plotly_chart(score_distributions(scores, d.labels, d.kind == "binary"), key="eval_dist")
    metrics = {k: report.results[k].metrics for k in scores}
    curves = roc_pr({k: roc_pr_curves(s, d.labels, d.kind, d.label_range) for k, s in scores.items()},
                    {k: m.auc for k, m in metrics.items()}, {k: m.average_precision for k, m in metrics.items()})
    if curves:
        c1, c2 = st.columns(2)
        c1.plotly_chart(curves[0], key="eval_roc")
        c2.plotly_chart(curves[1], key="eval_pr")
    if report.data.kind == "graded":
        with st.expander("Sentence-BERT paper, Table 1 style"):
            st.dataframe(paper_table(report), hide_index=True, width="stretch", key="eval_paper")
            st.caption("Published numbers are on the STS-B **test** split (Reimers & Gurevych 2019; the MiniLM model "
                       "card); ours are on the file evaluated here.")
    return report


# ----------------------------------------------------------------------------------------- calibration
def calibration_tab(report: EvaluationReport | None, data: LabelledPairs) -> None:
    if report is None or not report.scores():
        st.info("Evaluate in the Metrics tab first: calibration fits on those scores.")
        return
    c1, c2, c3 = st.columns(3)
    key = c1.selectbox("Model", list(report.scores()), key="cal_model")
    method = c2.radio("Mapping", ["isotonic", "logistic"], horizontal=True, key="cal_method",
                      help="Isotonic: step-wise, no shape assumed (wants a few hundred pairs). Logistic: a sigmoid.")
    n_pairs = c3.number_input("Random background pairs", 200, 20_000, 2_000, step=200, key="cal_pairs",
                              help="Scores of random pairs of the demo corpus: what 'unrelated' looks like.")
    r = report.results[key]
    # The background corpus in the data's language: random English pairs say nothing about Chinese scores.
    lang = majority_language(data.a)
    bg_id = (key, json.dumps(r.options, sort_keys=True), int(n_pairs), lang)
    if st.session_state.get("cal_bg_id") != bg_id:
        with st.spinner(f"Scoring {int(n_pairs):,} random demo-corpus pairs with {key}…"):
            try:
                st.session_state["cal_bg"] = background_scores(state.backend(), r.key, demo_corpus_texts(lang),
                                                               int(n_pairs), 0, r.options or None)
                st.session_state["cal_bg_id"] = bg_id
            except RuntimeError as exc:
                st.error(f"{key} failed: {exc}")
                return
    bg = st.session_state["cal_bg"]
    if len(bg.scores) == 0:
        st.warning(f"{key} could score none of the random demo-corpus pairs (unknown words?): no background percentiles.")
        bg = None
    res = calibrate(r.scores, report.data.binary(), bg, method, key)
    for note in res.notes:
        st.caption(f"ℹ️ {note}")
    if res.calibrator is not None:
        cal = res.calibrator
        m1, m2, m3 = st.columns(3)
        m1.metric("Suggested threshold (P = 0.5)", "–" if cal.threshold_ is None else f"{cal.threshold_:.3f}")
        m2.metric("F1-optimal threshold", "–" if r.metrics.threshold is None else f"{r.metrics.threshold:.3f}")
        m3.metric("Brier score (in-sample)", f"{res.brier:.3f}")
        background = bg.scores if bg is not None else None
        grid, p = cal.curve(201, *score_span(cal.range_, background))
        st.plotly_chart(calibration_curve(key, grid, p, method, background), key="cal_fig")
    x = st.number_input("What does this score mean?", -1.0, 1.0, 0.5, step=0.05, key="cal_x")
    st.dataframe(res.table([x]), hide_index=True, key="cal_one",
                 column_config={"percentile": st.column_config.NumberColumn("beats % of random pairs", format="%.1f"),
                                "p_similar": st.column_config.NumberColumn("P(similar)", format="%.2f")})
    if bg is None:
        return
    q = bg.quantiles()
    st.caption("Background quantiles (score beating that share of random pairs): "
               + ", ".join(f"{int(k * 100)}% → {v:.3f}" for k, v in q.items()))


# ---------------------------------------------------------------------------------------------- probe
def probe_tab(data: LabelledPairs, data_id: str) -> None:
    reg = state.backend().registry
    berts = [k for k in state.visible_keys() if reg[k].family == "bert"]
    if not berts:
        st.info("No BERT-family model (family = \"bert\") is registered.")
        return
    st.caption("Spearman ×100 of the cosine for every hidden layer (0 = embedding output) × pooling, in one forward "
               "pass per sentence. Whitening (Su et al. 2021) is fitted **on the evaluation sentences themselves**: "
               "optimistic compared with fitting it on another corpus.")
    c1, c2, c3 = st.columns(3)
    key = c1.selectbox("Model", berts, key="probe_model")
    whiten = c2.toggle("Whitening", key="probe_whiten")
    n_max = c3.number_input("Pairs", 2, max(2, len(data)), max(2, min(len(data), 1500)), step=100, key="probe_n",
                            help="Every layer of every sentence is kept in memory: start with a few thousand pairs.")
    bert_note_ui([key])
    signature = (data_id, key, whiten, int(n_max))
    if st.button("Run the probe", type="primary", key="probe_run"):
        be, sub = state.backend(), data.head(int(n_max))

        def fn(job: BackgroundJob):
            return probe_model(be, key, sub, whiten=whiten,
                               progress=lambda d, t: job.report(d / max(t, 1), f"{d:,} / {t:,} sentences"))

        start_job("probe", fn, signature)
    res = job_result_ui("probe", signature)
    if res is None:
        return
    for note in res.notes:
        st.caption(f"ℹ️ {note}")
    st.plotly_chart(probe_heatmap(res.frame(), res.model, res.n, res.whitened), key="probe_fig")
    best = res.best()
    c1, c2 = st.columns(2)
    c1.metric("first_last_avg", "–" if res.first_last_avg is None else f"{res.first_last_avg:.2f}")
    if best:
        c2.metric("Best cell", f"{best[2]:.2f}", f"layer {best[0]}, {best[1]}", delta_color="off")


# -------------------------------------------------------------------------------------- disagreements
def disagreements_tab(report: EvaluationReport | None) -> None:
    if report is None or len(report.scores()) < 2:
        st.info("Evaluate at least two models in the Metrics tab first.")
        return
    d = report.data
    st.caption("Each model's scores become percentile ranks (a cosine of 0.6 means different things per model); the "
               "spread is the highest minus the lowest rank a pair gets.")
    c1, c2 = st.columns([3, 1])
    if d.kind == "binary":
        pick = c1.radio("Gold label", ["all", "similar (1)", "not similar (0)"], horizontal=True, key="dis_label")
        between = {"all": None, "similar (1)": (1.0, 1.0), "not similar (0)": (0.0, 0.0)}[pick]
    else:
        lo, hi = d.label_range
        between = c1.slider("Gold label between", float(lo), float(hi), (float(lo), float(hi)), key="dis_range")
    top = c2.number_input("Rows", 5, 500, 25, key="dis_top")
    frame = disagreements(d, report.scores(), int(top), between)
    st.dataframe(frame, hide_index=True, width="stretch", key="dis_table")
    download_ui(frame, "disagreements.csv", key="dis_download")


# ----------------------------------------------------------------------------------------- retrieval
def retrieval_tab(data: LabelledPairs, data_id: str, settings: Settings) -> None:
    keys = state.visible_keys()
    st.caption("Queries: first sentences of the positive pairs; relevant: their second sentences; corpus: every "
               "distinct second sentence. A bi-encoder retrieves the top k, a cross-encoder (ESIM) reorders them. "
               "Metrics as sentence-transformers' InformationRetrievalEvaluator defines them.")
    c1, c2, c3, c4 = st.columns(4)
    retriever = c1.selectbox("Retriever", keys, index=keys.index("sbert") if "sbert" in keys else 0, key="ret_model")
    rerankers = ["(none)", *keys]
    reranker = c2.selectbox("Reranker", rerankers, index=rerankers.index("esim") if "esim" in rerankers else 0,
                            key="ret_rerank")
    k = c3.slider("k", 5, 100, 20, key="ret_k")
    min_score = None
    if data.kind == "graded":
        lo, hi = data.label_range
        min_score = c4.number_input("Relevant if gold ≥", float(lo), float(hi), lo + 0.8 * (hi - lo), key="ret_min")
    try:
        task = build_retrieval_task(data, min_score)
    except ValueError as exc:
        st.error(str(exc))
        return
    st.caption(task.notes[0])
    signature = (data_id, retriever, reranker, k, min_score, json.dumps(settings.options, sort_keys=True))
    if st.button("Retrieve and rerank", type="primary", key="ret_run"):
        be = state.backend()
        rk = None if reranker == "(none)" else reranker

        def fn(job: BackgroundJob):
            job.report(0.0, f"retrieving with {retriever}")
            return recall_rerank(be, task, retriever, rk, k, settings.options.get(retriever),
                                 settings.options.get(rk) if rk else None,
                                 progress=lambda d, t: job.report(d / max(t, 1), f"reranking query {d:,} / {t:,}"),
                                 should_stop=job.should_stop)

        start_job("retrieval", fn, signature)
    res = job_result_ui("retrieval", signature)
    if res is None:
        return
    if res.error:
        st.error(res.error)
    c1, c2 = st.columns(2)
    c1.metric(f"Recall ({res.retriever})", f"{res.recall_seconds:.2f} s")
    c2.metric(f"Rerank ({res.reranker or 'none'})", f"{res.rerank_seconds:.2f} s")
    st.dataframe(res.table(), hide_index=True, key="ret_table", column_config={
        c: st.column_config.NumberColumn(format="%.3f") for c in ("before", "after", "change")})
    for note in res.notes[1:]:
        st.caption(f"ℹ️ {note}")
    with st.expander("Per query"):
        st.dataframe(res.per_query(task), hide_index=True, width="stretch", key="ret_queries")


# ---------------------------------------------------------------------------------------------- train
def train_tab() -> None:
    st.subheader("word2vec on your corpus")
    w2v_train_ui()
    st.divider()
    st.subheader("ESIM on your labelled pairs")
    if importlib.util.find_spec("backend.esim.train") is None:
        st.info("ESIM training in the browser is coming: it needs `backend.esim.train`, which is being written.")
    else:
        esim_train_ui()


# "Add to the comparison" registers in on_click: callbacks run before the rerun draws the sidebar, so the
# new model is in the sidebar's list at once (a plain button would add it after the sidebar was drawn).
def _add_w2v(trained: Any, weighting: str) -> None:
    spec = register_session_model(state.backend(), trained, weighting=weighting, session=state.session_id())
    st.session_state.setdefault("eval_session_models", []).append(spec.key)
    st.session_state["eval_added_w2v"] = spec.key


def _add_esim(res: Any) -> None:
    # The language and seed the network was trained with (the widgets may have changed since).
    trained_with = st.session_state.get("eval_sig_esim") or {}
    lang, seed = res.config.language, trained_with.get("seed", "?")
    n = len(st.session_state.setdefault("eval_session_models", [])) + 1
    spec = ModelSpec(key=f"esim-{state.session_id()}-{n}", family="esim", label=f"ESIM (trained here, {lang})",
                     source=f"path:{res.out_dir}", language=lang, default=False, owner=state.session_id(),
                     options=MappingProxyType({}), note=f"ESIM trained in this session, seed {seed}")
    state.backend().registry.add(spec)
    st.session_state["eval_session_models"].append(spec.key)
    st.session_state["eval_added_esim"] = spec.key


def _added_ui(kind: str) -> None:
    """Say once, after the click, under which key the model was added."""
    key = st.session_state.pop(f"eval_added_{kind}", None)
    if key:
        st.success(f"Added as **{key}**: pick it in the sidebar's model list.")


def w2v_train_ui() -> None:
    src = st.radio("Corpus", ["demo", "upload"], horizontal=True, key="w2v_src",
                   format_func={"demo": "demo corpus (tiny: a smoke test)", "upload": "my file (.txt lines or CSV)"}.get)
    texts: list[str] | None = None
    if src == "demo":
        texts = demo_corpus_texts("all")
    else:
        up = st.file_uploader("Corpus", type=["txt", "csv", "tsv"], key="w2v_file")
        if up is not None:
            col = st.text_input("Text column (CSV; empty = the wordiest)", "", key="w2v_col") or None
            try:
                texts = read_corpus(up.getvalue(), col, up.name)
            except TableError as exc:
                st.error(str(exc))
    c = st.columns(6)
    cfg = Word2VecConfig(
        vector_size=int(c[0].number_input("Dimensions", 10, 600, 100, key="w2v_dim")),
        window=int(c[1].number_input("Window", 1, 20, 5, key="w2v_window")),
        min_count=int(c[2].number_input("Min count", 1, 100, 2, key="w2v_min")),
        epochs=int(c[3].number_input("Epochs", 1, 100, 10, key="w2v_epochs")),
        sg=1 if c[4].selectbox("Algorithm", ["skip-gram", "CBOW"], key="w2v_sg") == "skip-gram" else 0,
        seed=int(c[5].number_input("Seed", 0, 2**31 - 1, 42, key="w2v_seed")),
        chinese="word",
    )
    if texts:
        st.caption(f"{len(texts):,} texts · tokenised like the w2v model (jieba for Chinese) · seed {cfg.seed}, one thread "
                   "(reproducible)")
        if st.button("Train word2vec", type="primary", key="w2v_run"):
            start_job("w2v", word2vec_task(texts, cfg))
    trained = job_result_ui("w2v")
    if trained is None:
        return
    st.success(f"{trained.vocabulary:,} words × {trained.config.vector_size} dimensions from {trained.sentences:,} texts, "
               f"{trained.epochs_done} epoch(s){' (stopped early)' if trained.stopped else ''} in {trained.seconds:.1f} s.")
    if trained.history:
        st.plotly_chart(training_curves(trained.history, ["loss"], "w2v", "word2vec training loss per epoch",
                                        "loss (gensim, summed over the epoch)"), key="w2v_history")
    word = st.text_input("Nearest words to", trained.kv.index_to_key[0], key="w2v_probe_word")
    st.dataframe(nearest_words_frame(nearest_words(trained.kv, word)), hide_index=True, key="w2v_nn")
    c1, c2 = st.columns(2)
    weighting = c1.radio("Sentence vector", ["mean", "sif"], horizontal=True, key="w2v_weighting")
    c1.button("Add to the comparison", key="w2v_add", on_click=_add_w2v, args=(trained, weighting))
    _added_ui("w2v")
    c2.download_button("⬇ Download vectors (word2vec text)", word2vec_text_bytes(trained.kv), "vectors.txt",
                       "text/plain", key="w2v_download", on_click="ignore")


def esim_train_ui() -> None:
    from backend.esim.train import train_esim

    stsb = SHARED_DATA / "stsb-en" / "train.tsv"
    opts = ["upload", *(["stsb"] if stsb.exists() else [])]
    src = st.radio("Training pairs", opts, horizontal=True, key="esim_src",
                   format_func={"upload": "my labelled file", "stsb": "STS-B train (../shared/data)"}.get)
    train: Any = None
    if src == "stsb":
        train = str(stsb)
    else:
        up = st.file_uploader("Training pairs (two text columns and a score or 0/1 label)", type=["csv", "tsv"],
                              key="esim_file")
        if up is not None:
            try:
                train = state.read_upload(up.name, up.getvalue()).frame
            except TableError as exc:
                st.error(str(exc))
    c = st.columns(4)
    lang = c[0].selectbox("Language", ["en", "zh"], key="esim_lang")
    epochs = int(c[1].number_input("Epochs (max)", 1, 50, 10, key="esim_epochs"))
    seed = int(c[2].number_input("Seed", 0, 2**31 - 1, 13, key="esim_seed"))
    emb = c[3].selectbox("Embeddings", ["auto", "pretrained", "random"], key="esim_emb",
                         help="auto: GloVe for English, learnt from scratch for Chinese.")
    st.caption("10% of the training pairs are held out for early stopping. Training uses one CPU thread.")
    if train is not None and st.button("Train ESIM", type="primary", key="esim_run"):
        out_dir = tempfile.mkdtemp(prefix="simdash-esim-")

        def fn(job: BackgroundJob):
            def progress(epoch: int, total: int, m: dict[str, float]) -> None:
                shown = ", ".join(f"{k} {v:.3f}" for k, v in m.items() if k.startswith("dev_"))
                job.report(epoch / total, f"epoch {epoch}/{total}: {shown}", m)

            job.report(0.0, "building the vocabulary")
            return train_esim(train, None, out_dir, lang=lang, epochs=epochs, seed=seed, embeddings=emb, threads=None,
                              progress=progress, should_stop=job.should_stop)

        start_job("esim", fn, {"lang": lang, "seed": seed})
    res = job_result_ui("esim")
    if res is None:
        return
    st.success(f"Best epoch {res.best_epoch} (dev {res.best_metric:.3f}) in {res.seconds:.0f} s"
               + (" (stopped early)" if res.stopped else "") + f"; checkpoint in `{res.out_dir}`.")
    if res.history:
        dev = [m for m in res.history[0] if m.startswith("dev_")]
        st.plotly_chart(training_curves(res.history, dev, "esim", "ESIM on the held-out pairs, per epoch", "metric"),
                        key="esim_history")
    st.button("Add to the comparison", key="esim_add", on_click=_add_esim, args=(res,))
    _added_ui("esim")


# ------------------------------------------------------------------------------------------------ page
def evaluate_ui() -> None:
    """The Evaluation lab page."""
    st.title("Evaluation lab")
    st.caption("How well each model agrees with gold similarity labels, what its scores mean, and new models trained "
               "here. Command line: `python -m backend evaluate FILE` and `python -m backend probe FILE --model bert`.")
    settings = current_settings()
    got = data_ui()
    data, data_id = got if got else (None, "")
    if data is not None:
        describe_ui(data)
    tabs = st.tabs(["Metrics", "Calibration", "Layer probe", "Disagreements", "Recall → rerank", "Train"])
    report = None
    with tabs[0]:
        if data is None:
            st.info("Choose labelled pairs above.")
        elif not settings.keys:
            st.info("Choose at least one model in the sidebar.")
        else:
            report = metrics_tab(data, data_id, settings)
    with tabs[1]:
        if data is not None:
            calibration_tab(report, data)
    with tabs[2]:
        if data is not None:
            probe_tab(data, data_id)
    with tabs[3]:
        disagreements_tab(report)
    with tabs[4]:
        if data is not None:
            retrieval_tab(data, data_id, settings)
    with tabs[5]:
        train_tab()


evaluate_ui()
