"""The Train tab: word2vec on your corpus (here), ESIM on your labelled pairs (:mod:`ui.lab.train_esim`), a
transformer fine-tuned on them (:mod:`ui.lab.train_finetune`) and the learning curve (:mod:`ui.lab.train_curve`),
joining the comparison for your session.

Either backend takes them (:meth:`~backend.serving.protocol.BackendProtocol.add_session_model`): with a backend
server, a trained model still runs in the dashboard's process, since the server loads no model files sent to it.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from backend.files.io import TableError
from backend.lab.calibration import demo_corpus_texts
from backend.w2v.train import (
    Word2VecConfig,
    nearest_words,
    read_corpus,
    register_session_model,
    word2vec_task,
    word2vec_text_bytes,
)
from ui import state
from ui.charts import training_curves
from ui.escape import plain
from ui.i18n import t
from ui.lab.common import job_result_ui, start_job
from ui.lab.train_curve import curve_ui
from ui.lab.train_esim import esim_train_ui
from ui.lab.train_finetune import finetune_ui
from ui.tables import nearest_words_frame
from ui.widgets import download_ui, upload_ui


# "Add to the comparison" registers in on_click: callbacks run before the rerun draws the sidebar, so the new model
# is in the sidebar's list at once (a plain button would add it after the sidebar was drawn).
def _add_w2v(trained: Any, weighting: str) -> None:
    spec = register_session_model(state.backend(), trained, weighting=weighting, session=state.session_id())
    st.session_state["lab_added"] = spec.key


def _added_ui() -> None:
    """Say once, after the click, under which key the model was added."""
    key = st.session_state.pop("lab_added", None)
    if key:
        st.success(t("Added as {key}: pick it in the sidebar's model list (your session keeps its last three trained "
                     "models).", key=f"**{key}**"))


def w2v_train_ui() -> None:
    """Train word2vec on the demo corpus or an uploaded one, look at its nearest words, add it to the comparison."""
    sources = {"demo": t("demo corpus (tiny: a smoke test)"), "upload": t("my file (.txt lines or CSV)")}
    src = st.radio(t("Corpus"), list(sources), horizontal=True, key="lab_w2v_src", format_func=sources.get)
    texts: list[str] | None = None
    if src == "demo":
        texts = demo_corpus_texts("all")
    else:
        up = upload_ui("lab_w2v_upload", t("Corpus"), ("txt", "csv", "tsv"))
        if up is not None:
            col = st.text_input(t("Text column (CSV; empty = the wordiest)"), "", key="lab_w2v_col") or None
            try:
                texts = read_corpus(up.data, col, up.name)
            except TableError as exc:
                st.error(plain(str(exc)))
    c = st.columns(6)
    cfg = Word2VecConfig(
        vector_size=int(c[0].number_input(t("Dimensions"), 10, 600, 100, key="lab_w2v_dim")),
        window=int(c[1].number_input(t("Window"), 1, 20, 5, key="lab_w2v_window")),
        min_count=int(c[2].number_input(t("Min count"), 1, 100, 2, key="lab_w2v_min")),
        epochs=int(c[3].number_input(t("Epochs"), 1, 100, 10, key="lab_w2v_epochs")),
        sg=1 if c[4].selectbox(t("Algorithm"), ["skip-gram", "CBOW"], key="lab_w2v_sg") == "skip-gram" else 0,
        seed=int(c[5].number_input(t("Seed"), 0, 2**31 - 1, 42, key="lab_w2v_seed")),
        chinese="word",
    )
    if texts:
        st.caption(t("{n} texts · tokenised like the w2v model (jieba for Chinese) · seed {seed}, one thread "
                     "(reproducible)", n=f"{len(texts):,}", seed=cfg.seed))
        if st.button(t("Train word2vec"), type="primary", key="lab_w2v_run"):
            start_job("w2v", word2vec_task(texts, cfg))
    trained = job_result_ui("w2v")
    if trained is None:
        return
    st.success(t("{words} words × {dim} dimensions from {texts} texts, {epochs} epoch(s) in {s} s.",
                 words=f"{trained.vocabulary:,}", dim=trained.config.vector_size, texts=f"{trained.sentences:,}",
                 epochs=trained.epochs_done, s=f"{trained.seconds:.1f}")
               + (" " + t("(stopped early)") if trained.stopped else ""))
    if trained.history:
        st.plotly_chart(training_curves(trained.history, ["loss"], "w2v", t("word2vec training loss per epoch"),
                                        t("loss (gensim, summed over the epoch)"), tr=t), key="lab_w2v_history")
    word = st.text_input(t("Nearest words to"), trained.kv.index_to_key[0], key="lab_w2v_probe_word")
    near = nearest_words_frame(nearest_words(trained.kv, word))
    st.dataframe(near, hide_index=True, key="lab_w2v_nn")
    download_ui(near, "nearest_words.csv", key="lab_w2v_nn_download")
    c1, c2 = st.columns(2)
    weighting = c1.radio(t("Sentence vector"), ["mean", "sif"], horizontal=True, key="lab_w2v_weighting")
    c1.button(t("Add to the comparison"), key="lab_w2v_add", on_click=_add_w2v, args=(trained, weighting))
    c2.download_button("⬇ " + t("Download vectors (word2vec text)"), word2vec_text_bytes(trained.kv), "vectors.txt",
                       "text/plain", key="lab_w2v_download", on_click="ignore")


def train_tab() -> None:
    """Every trainer and the learning curve; what they train joins this session's model list, whichever backend the
    dashboard uses."""
    st.subheader(t("word2vec on your corpus"))
    w2v_train_ui()
    _added_ui()
    st.divider()
    st.subheader(t("ESIM on your labelled pairs"))
    esim_train_ui()
    _added_ui()
    st.divider()
    st.subheader(t("Fine-tune a transformer on your pairs"))
    chosen = finetune_ui()
    _added_ui()
    st.divider()
    st.subheader(t("Learning curve"))
    curve_ui(chosen)
