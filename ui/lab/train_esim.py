"""The Train tab's ESIM part: train ESIM on STS-B train (when present) or your labelled file, and add it."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from types import MappingProxyType
from typing import Any

import streamlit as st

from backend.files.io import TableError
from backend.jobs import BackgroundJob
from backend.registry import ModelSpec
from ui import state
from ui.charts import training_curves
from ui.escape import plain
from ui.i18n import t
from ui.lab.common import job_result_ui, start_job
from ui.lab.data import SHARED_DATA
from ui.widgets import upload_ui

# A new key for every model added: counting the session's models would give a key again once the oldest is dropped
# (a session keeps three), and a reused key would keep answering with the model loaded under it before.
_ESIM_COUNTER = itertools.count(1)


# Registered in on_click (before the rerun draws the sidebar), so the new model is in the sidebar's list at once.
def _add_esim(res: Any, seed: int) -> None:
    sid = state.session_id()
    lang = res.config.language
    # A copy of the checkpoint for each model added: the backend deletes a session model's folder when the model
    # goes, and one training may be added more than once (the others would lose their files with the first).
    folder = tempfile.mkdtemp(prefix="simdash-esim-")
    shutil.copytree(res.out_dir, folder, dirs_exist_ok=True)
    spec = ModelSpec(key=f"esim-{sid}-{next(_ESIM_COUNTER)}", family="esim", label=f"ESIM (trained here, {lang})",
                     source=f"path:{folder}", language=lang, default=False, owner=sid,
                     options=MappingProxyType({}), note=f"ESIM trained in this session, seed {seed}")
    state.backend().add_session_model(spec, folder)
    st.session_state["lab_added"] = spec.key


def esim_train_ui() -> None:
    """Train ESIM on STS-B train (when present) or an uploaded labelled file; add it to the comparison."""
    from backend.esim.train import train_esim

    sources = {"upload": t("my labelled file")}
    for lang in ("en", "zh"):
        if (SHARED_DATA / f"stsb-{lang}" / "train.tsv").exists():
            sources[f"stsb-{lang}"] = t("STS-B train, {lang} (../shared/data)", lang=lang)
    src = "upload" if len(sources) == 1 else st.radio(t("Training pairs"), list(sources), horizontal=True,
                                                      key="lab_esim_src", format_func=sources.get)
    train: Any = None
    lang_default = "en"
    if src.startswith("stsb-"):
        train, lang_default = str(SHARED_DATA / f"stsb-{src[-2:]}" / "train.tsv"), src[-2:]
    else:
        up = upload_ui("lab_esim_upload", t("Training pairs (two text columns and a score or 0/1 label)"), ("csv", "tsv"))
        if up is not None:
            try:
                train = state.read_upload(up.name, up.data).frame
            except TableError as exc:
                st.error(plain(str(exc)))
    c = st.columns(4)
    lang = c[0].selectbox(t("Language"), ["en", "zh"], index=["en", "zh"].index(lang_default), key="lab_esim_lang")
    epochs = int(c[1].number_input(t("Epochs (max)"), 1, 50, 10, key="lab_esim_epochs"))
    seed = int(c[2].number_input(t("Seed"), 0, 2**31 - 1, 13, key="lab_esim_seed"))
    emb = c[3].selectbox(t("Embeddings"), ["auto", "pretrained", "random"], key="lab_esim_emb",
                         help=t("auto: GloVe for English, learnt from scratch for Chinese. pretrained vs random re-runs "
                                "the notes' question: do pretrained word vectors matter?"))
    st.caption(t("10% of the training pairs are held out for early stopping. Training uses one CPU thread."))
    if train is not None and st.button(t("Train ESIM"), type="primary", key="lab_esim_run"):
        out_dir = tempfile.mkdtemp(prefix="simdash-esim-")
        first = t("building the vocabulary")

        def fn(job: BackgroundJob):
            def progress(epoch: int, total: int, m: dict[str, float]) -> None:
                shown = ", ".join(f"{k} {v:.3f}" for k, v in m.items() if k.startswith("dev_"))
                job.report(epoch / total, f"epoch {epoch}/{total}: {shown}", m)

            job.report(0.0, first)
            return train_esim(train, None, out_dir, lang=lang, epochs=epochs, seed=seed, embeddings=emb, threads=None,
                              progress=progress, should_stop=job.should_stop)

        start_job("esim", fn, {"lang": lang, "seed": seed})
    res = job_result_ui("esim")
    if res is None:
        return
    st.success(t("Best epoch {epoch} (held-out {metric}) in {s} s.", epoch=res.best_epoch, metric=f"{res.best_metric:.3f}",
                 s=f"{res.seconds:.0f}") + (" " + t("(stopped early)") if res.stopped else ""))
    if res.history:
        dev = [m for m in res.history[0] if m.startswith("dev_")]
        st.plotly_chart(training_curves(res.history, dev, "esim", t("ESIM on the held-out pairs, per epoch"),
                                        t("metric"), tr=t), key="lab_esim_history")
    trained_seed = (st.session_state.get("lab_sig_esim") or {}).get("seed", seed)
    st.button(t("Add to the comparison"), key="lab_esim_add", on_click=_add_esim, args=(res, trained_seed))
