"""The Train tab's transformer part: fine-tune a bi-encoder or a cross-encoder on your labelled pairs, and add it.

The pairs chosen here (STS-B train with its dev file, or an upload with a seeded held-out fraction) also feed the
learning curve (:mod:`ui.lab.train_curve`). Everything a run does is :mod:`backend.finetune`'s: reading and refusing
the pairs, training, the registry table and the model card; this module draws widgets and the result.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
import tomllib
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from backend.files.io import TableError
from backend.finetune.cli import ENCODER_FAMILIES, base_spec, load_data
from backend.finetune.data import LabelledPairs, missing_training_extra, subsample
from backend.finetune.verdict import KIND_NAMES, METRIC_NAMES, before_after, finetune_verdict
from backend.jobs import BackgroundJob, StopRequested
from backend.registry import ModelSpec
from ui import state
from ui.charts import training_curves
from ui.escape import plain
from ui.i18n import t
from ui.lab.common import job_result_ui, start_job
from ui.lab.data import SHARED_DATA
from ui.widgets import upload_ui

#: the "number of pairs" choices; 0 is all of them.
PAIR_COUNTS = (100, 300, 1000, 0)
# A new key for every model added (as for ESIM): a reused key would keep answering with the model loaded under it.
_FT_COUNTER = itertools.count(1)


@dataclass
class ChosenPairs:
    """The pairs and base model chosen in the fine-tune part, for the learning curve too.

    Attributes
    ----------
    train, held_out : LabelledPairs
        All the training pairs (before "number of pairs") and the pairs every model is measured on.
    base : ModelSpec
        The registered encoder to start from.
    seed : int
    data_id : str
        Identifies the data and its reading (a job's signature).
    """

    train: LabelledPairs
    held_out: LabelledPairs
    base: ModelSpec
    seed: int
    data_id: str


@dataclass
class FinetuneRun:
    """A finished fine-tune as the page shows it."""

    result: Any  # backend.finetune.bi.FinetuneResult
    table: str
    key: str
    kind: str
    base: ModelSpec
    n_train: int


@st.cache_data(show_spinner=False, max_entries=8)
def _load_pairs(source: str | pd.DataFrame, dev: str | None, label_max: float | None, holdout: float, seed: int,
                bad_rows: str) -> tuple[LabelledPairs, LabelledPairs, list[str]]:
    """:func:`backend.finetune.cli.load_data` (the command line's reading, refusals included), cached per choice."""
    return load_data(argparse.Namespace(train=source, dev=dev, label_max=label_max, holdout=holdout, seed=seed,
                                        bad_rows=bad_rows, limit=None))


def _label_peak(frame: pd.DataFrame) -> float | None:
    """The highest label of an uploaded table, found as :func:`backend.finetune.data.read_labelled` finds the
    label column (None when it finds none): above 5, the page asks for the top of the scale."""
    from backend.esim.train import _pick_columns

    try:
        _, _, col = _pick_columns(frame)
    except ValueError:
        return None
    values = pd.to_numeric(frame[col], errors="coerce")
    return float(values.max()) if values.notna().any() else None


def model_zip(folder: str | Path) -> bytes:
    """The model folder as a zip (``<folder name>/...`` inside), built in a temporary folder."""
    folder = Path(folder)
    with tempfile.TemporaryDirectory(prefix="simdash-zip-") as tmp:
        archive = shutil.make_archive(str(Path(tmp) / folder.name), "zip", root_dir=folder.parent,
                                      base_dir=folder.name)
        return Path(archive).read_bytes()


def session_spec(run: FinetuneRun, folder: str | Path, session: str) -> ModelSpec:
    """The session model of a fine-tune: its registry table as a person would append it, with a key of its own, the
    source pointing at ``folder`` (a copy of the model), owned by ``session``."""
    from backend.registry import _spec_from_table

    spec = _spec_from_table(run.key, tomllib.loads(run.table)["models"][run.key])
    return replace(spec, key=f"{run.key}-{session}-{next(_FT_COUNTER)}", source=f"path:{folder}", owner=session,
                   default=False)


# Registered in on_click (before the rerun draws the sidebar), so the new model is in the sidebar's list at once.
def _add_finetuned(run: FinetuneRun) -> None:
    # A copy of the folder for each model added: the backend deletes a session model's folder when the model goes.
    folder = tempfile.mkdtemp(prefix="simdash-ft-")
    shutil.copytree(run.result.out_dir, folder, dirs_exist_ok=True)
    spec = session_spec(run, folder, state.session_id())
    state.backend().add_session_model(spec, folder)
    st.session_state["lab_added"] = spec.key


def _finetune_task(kind: str, base: ModelSpec, train: LabelledPairs, held_out: LabelledPairs, epochs: int,
                   seed: int, time_left: str):
    """The background job: train, write the model card, return a :class:`FinetuneRun`."""
    from backend.finetune.card import registry_table, write_card

    key = f"{base.key}-ft"

    def fn(job: BackgroundJob) -> FinetuneRun:
        out = Path(tempfile.mkdtemp(prefix="simdash-ft-")) / key
        extra = {"base_key": base.key, "key": key}
        if kind == "bi":
            from backend.finetune.bi import train_bi_encoder

            result = train_bi_encoder(train, held_out, out, base.source, epochs=epochs, seed=seed, overwrite=True,
                                      progress=job.report, should_stop=job.should_stop, extra_facts=extra)
        else:
            from backend.finetune.cli import _finetune_cross

            def say(fraction: float, message: str, metrics: dict[str, Any] | None = None) -> None:
                # The cross-encoder's trainer has no stop flag: its progress callback is where a Cancel lands.
                if job.should_stop():
                    raise StopRequested("cancelled")
                s = job.state().seconds
                left = s * (1 - fraction) / fraction if fraction > 0.02 else None
                job.report(fraction, message if left is None else f"{message} · {time_left.format(m=int(left // 60) + 1)}",
                           metrics)

            args = argparse.Namespace(epochs=epochs, batch_size=16, lr=None, seed=seed, threads=None, resume=False,
                                      overwrite=True)
            result = _finetune_cross(args, base, train, held_out, out, say, extra)
        write_card(out, key, kind, base, result.facts)
        return FinetuneRun(result, registry_table(key, kind, base, out, result.facts), key, kind, base, len(train))

    return fn


def _source_ui() -> tuple[str | pd.DataFrame | None, str | None, str]:
    """(training pairs: a path or a table, the dev file or None, an id of the choice); the table is None after saying
    what is missing."""
    sources = {"upload": t("my labelled file")}
    for lang in ("en", "zh"):
        if (SHARED_DATA / f"stsb-{lang}" / "train.tsv").exists() and (SHARED_DATA / f"stsb-{lang}" / "dev.tsv").exists():
            sources[f"stsb-{lang}"] = t("STS-B train, {lang} (../shared/data)", lang=lang)
    src = "upload" if len(sources) == 1 else st.radio(t("Training pairs"), list(sources), horizontal=True,
                                                      key="lab_ft_src", format_func=sources.get)
    if src.startswith("stsb-"):
        folder = SHARED_DATA / src
        st.caption(t("Held out: STS-B dev (every model is measured on it; it never trains)."))
        return str(folder / "train.tsv"), str(folder / "dev.tsv"), src
    up = upload_ui("lab_ft_upload", t("Training pairs (two text columns and a score or 0/1 label)"), ("csv", "tsv"))
    if up is None:
        st.info(t("Upload labelled pairs (at least 20), or pick STS-B above when it is offered."),
                icon=":material/upload_file:")
        return None, None, src
    try:
        return state.read_upload(up.name, up.data).frame, None, up.digest
    except TableError as exc:
        st.error(plain(str(exc)))
        return None, None, up.digest


def finetune_ui() -> ChosenPairs | None:
    """Choose pairs and a base encoder, fine-tune it as a background job, show before/after, the registry table, a
    download and "Add to the comparison". Returns the choice (for the learning curve), or None."""
    source, dev, data_id = _source_ui()
    label_max: float | None = None
    holdout, bad_rows = 0.2, "error"
    if isinstance(source, pd.DataFrame):
        c = st.columns(3)
        holdout = float(c[0].number_input(t("Held-out fraction"), 0.05, 0.9, 0.2, 0.05, key="lab_ft_holdout",
                                          help=t("A seeded random share of your pairs, kept out of training to "
                                                 "measure every model on.")))
        bad_rows = "skip" if c[1].checkbox(t("Skip bad rows"), key="lab_ft_skip",
                                           help=t("Rows with an empty text or a missing label are left out and "
                                                  "counted, instead of stopping with their row numbers.")) else "error"
        peak = _label_peak(source)
        if peak is not None and peak > 5:
            given = c[2].number_input(t("Top of the label scale"), min_value=1.0, value=None, step=1.0,
                                      key="lab_ft_label_max", placeholder=t("e.g. 10"),
                                      help=t("Your labels go up to {peak}: give the top of their scale (10 for 0-10 "
                                             "ratings).", peak=f"{peak:g}"))
            label_max = None if given is None else float(given)
    kinds = {"bi": t("bi-encoder (twin tower)"), "cross": t("cross-encoder")}
    c = st.columns(5)
    kind = c[0].radio(t("Kind"), list(kinds), key="lab_ft_kind", format_func=kinds.get,
                      help=t("bi-encoder: each sentence becomes a vector, the score is their cosine (fast search). "
                             "cross-encoder: reads both sentences together (more accurate, scores pairs only)."))
    registry = state.backend().registry
    encoders = [k for k in state.visible_keys() if registry[k].family in ENCODER_FAMILIES]
    if not encoders:
        st.warning(t("No transformer encoder (sbert or bert family) is registered: fine-tuning starts from one."))
        return None
    lang = data_id[-2:] if data_id.startswith("stsb-") else None
    # A sentence encoder of the data's language first: it starts nearer to the task than raw BERT does.
    sbert = [i for i, k in enumerate(encoders) if registry[k].family == "sbert"]
    first = next((i for i in sbert if registry[encoders[i]].language == lang), sbert[0] if sbert else 0)
    # Other training pairs chosen: start again from the encoder of their language (a kept choice of the English
    # encoder would fine-tune MiniLM on Chinese text, which it reads as unknown word pieces).
    if st.session_state.get("lab_ft_base_for") != data_id:
        st.session_state["lab_ft_base_for"] = data_id
        st.session_state["lab_ft_base"] = encoders[first]
    if st.session_state.get("lab_ft_base") not in encoders:
        st.session_state["lab_ft_base"] = encoders[first]
    base_key = c[1].selectbox(t("Base model"), encoders, key="lab_ft_base",
                              help=t("The registered transformer encoder the training starts from."))
    counts = {n: (t("all") if n == 0 else f"{n:,}") for n in PAIR_COUNTS}
    n_pairs = c[2].selectbox(t("Number of pairs"), list(counts), index=2, key="lab_ft_n", format_func=counts.get)
    epochs = int(c[3].number_input(t("Epochs"), 1, 20, 1, key="lab_ft_epochs"))
    seed = int(c[4].number_input(t("Seed"), 0, 2**31 - 1, 13, key="lab_ft_seed"))
    try:
        base = base_spec(base_key, kind, registry)
    except ValueError as exc:
        st.error(plain(str(exc)))
        return None
    if source is None:
        return None
    try:
        train, held, notes = _load_pairs(source, dev, label_max, holdout, seed, bad_rows)
    except (ValueError, FileNotFoundError, TableError) as exc:
        st.error(plain(str(exc)))
        return None
    part = subsample(train, n_pairs, seed) if n_pairs else train
    st.caption(t("Training on {n} of {total} pairs (a seeded random subset), measured on {held} held-out pairs · "
                 "seed {seed}", n=f"{len(part):,}", total=f"{len(train):,}", held=f"{len(held):,}", seed=seed))
    for note in notes:
        st.caption(plain(note))
    chosen = ChosenPairs(train, held, base, seed, f"{data_id}:{label_max}:{holdout}:{bad_rows}:{seed}")
    signature = (chosen.data_id, kind, base.key, n_pairs, epochs)
    if missing := missing_training_extra():
        st.info(t("Fine-tuning needs the training extra ({packages}): pip install -r requirements-train.txt",
                  packages=", ".join(missing)), icon=":material/info:")
    elif st.button(t("Fine-tune"), type="primary", key="lab_ft_run"):
        start_job("finetune", _finetune_task(kind, base, part, held, epochs, seed, t("about {m} min left")),
                  signature)
    run = job_result_ui("finetune", signature)
    if run is not None:
        finetune_result_ui(run)
    return chosen


def finetune_result_ui(run: FinetuneRun) -> None:
    """Before/after on the held-out pairs in one sentence and a table, the registry table, download, add."""
    r = run.result
    metric = r.facts.get("metric", "spearman")
    verdict = finetune_verdict(r.before, r.after, run.n_train, metric)
    if verdict is not None:
        st.success(verdict.text(t(verdict.template), {k: t(v) for k, v in KIND_NAMES.items()}),
                   icon=":material/lightbulb:")
    rows = before_after(r.before, r.after)
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="lab_ft_before_after")
    if run.kind == "cross":
        st.caption(t("Before is the base model's cosine (as a bi-encoder): what the cross-encoder has to beat."))
    history = [h for h in r.history if h.get(metric) is not None]
    if len(history) >= 2:
        st.plotly_chart(training_curves(history, [metric], "sbert" if run.kind == "bi" else "cross",
                                        t("Held-out {metric} during training", metric=METRIC_NAMES.get(metric, metric)), t("metric"), tr=t),
                        key="lab_ft_history")
    st.code(run.table, language="toml")
    st.caption(t("Append this table to a registry file (SIMDASH_REGISTRY) to use the model everywhere. Its source is "
                 "this server's temporary folder: after unzipping the download, point source at your copy."))
    c1, c2 = st.columns(2)
    c1.button(t("Add to the comparison"), key="lab_ft_add", on_click=_add_finetuned, args=(run,))
    # Built on click (a deferred download): zipping a transformer's weights on every rerun would stall the page.
    c2.download_button("⬇ " + t("Download the model folder (zip)"), partial(model_zip, r.out_dir),
                       f"{run.key}.zip", "application/zip", key="lab_ft_download", on_click="ignore")


__all__ = ["ChosenPairs", "FinetuneRun", "finetune_result_ui", "finetune_ui", "model_zip", "session_spec"]
