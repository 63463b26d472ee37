"""The Train tab's fine-tune and learning-curve parts (Streamlit AppTest).

The trainers are stubbed with functions that write a small folder and return what the real ones return (a real
tiny fine-tune runs in tests/finetune): these tests check what the page does with the pairs, the result and the
model, quickly.
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SHARED_DATA
from tests.ui.conftest import app, texts

WORDS = ["cat", "dog", "sleeps", "runs", "the", "a", "small", "big", "house", "garden", "sun", "rain", "reads", "book"]


@pytest.fixture()
def ft_env(tmp_path, monkeypatch):
    """A registry of a tiny w2v model, an sbert-family encoder (never loaded: the trainers are stubbed) and a pair
    scorer, which must not be offered as a base."""
    rng = np.random.default_rng(0)
    lines = [f"{len(WORDS)} 8"] + [w + " " + " ".join(f"{v:.4f}" for v in rng.normal(size=8)) for w in WORDS]
    (tmp_path / "v.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "config.json").write_text("{}")
    (tmp_path / "registry.toml").write_text(
        f'[models.tinya]\nfamily = "w2v"\nlabel = "tinya"\nsource = "path:{tmp_path / "v.txt"}"\nlanguage = "en"\n'
        '[models.tinya.options]\nformat = "word2vec"\nweighting = "mean"\n\n'
        f'[models.enc]\nfamily = "sbert"\nlabel = "Tiny encoder"\nsource = "path:{tmp_path / "enc"}"\n'
        'language = "en"\ndefault = false\nlicence = "Apache-2.0"\n\n'
        f'[models.ranker]\nfamily = "cross"\nlabel = "Ranker"\nsource = "path:{tmp_path / "enc"}"\nlanguage = "en"\n'
        'default = false\n')
    monkeypatch.setenv("SIMDASH_REGISTRY", str(tmp_path / "registry.toml"))
    monkeypatch.setenv("SIMDASH_WARM", "0")
    yield tmp_path


def pairs_csv(n: int, seed: int = 1, scale: float = 5.0, constant: float | None = None) -> bytes:
    rng = np.random.default_rng(seed)
    a = [" ".join(rng.choice(WORDS, 4)) for _ in range(n)]
    b = [" ".join(rng.choice(WORDS, 4)) for _ in range(n)]
    score = np.full(n, constant) if constant is not None else np.round(rng.uniform(0, scale, n), 1)
    if constant is None:
        score[0] = scale  # the top of the scale is there
    return pd.DataFrame({"sentence1": a, "sentence2": b, "score": score}).to_csv(index=False).encode()


def upload(at, data: bytes, name: str = "pairs.csv"):
    up = next(u for u in at.file_uploader if "lab_ft_upload" in (u.proto.id or ""))
    up.set_value((name, data, "text/csv")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def wait_for(at, name: str, timeout: float = 60.0):
    job = at.session_state[f"lab_job_{name}"]
    job.join(timeout)
    assert not job.running, f"{name} did not finish in {timeout} s"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return job.state()


def button_keys(at) -> list[str]:
    return [b.key for b in at.button]


BEFORE = {"n": 8, "auc": 70.0, "spearman": 50.0}
AFTER = {"n": 8, "auc": 75.0, "spearman": 62.5}


def fake_result(kind: str, train, held_out, out_dir, base_source: str, **kw):
    """A FinetuneResult over a real small folder, as the trainers return it."""
    from backend.finetune.bi import FinetuneResult

    out = Path(out_dir)
    out.mkdir(parents=True)
    (out / "model.safetensors").write_bytes(b"\0" * 64)
    (out / "config.json").write_text("{}")
    facts = {"kind": kind, "base_source": base_source, "loss": "CoSENTLoss", "objective": train.objective,
             "label_max": train.label_max, "train_pairs": len(train), "held_out_pairs": len(held_out),
             "metric": "spearman", "before": BEFORE, "after": AFTER, "best_epoch": 1.0, "epochs": kw.get("epochs")}
    history = [{"epoch": 0.5, "spearman": 55.0, "auc": 72.0}, {"epoch": 1.0, "spearman": 62.5, "auc": 75.0}]
    return FinetuneResult(out, kind, BEFORE, AFTER, 1.0, history, 1.5, [], facts)


@pytest.fixture()
def stub_bi(monkeypatch):
    """backend.finetune.bi.train_bi_encoder replaced; the calls it got are kept."""
    calls: list[dict] = []

    def train_bi_encoder(train, held_out, out_dir, base_source, **kw):
        calls.append({"train": train, "held_out": held_out, "base_source": base_source, **kw})
        kw["progress"](0.5, "step 1/2 (epoch 0.50), 40 pairs/s, about 1 min left", None)
        return fake_result("bi", train, held_out, out_dir, base_source, **kw)

    monkeypatch.setattr("backend.finetune.bi.train_bi_encoder", train_bi_encoder)
    return calls


def test_finetune_part_renders_its_widgets_and_offers_encoders_only(ft_env):
    at = app("evaluate")
    assert at.radio(key="lab_ft_kind").value == "bi"
    base = at.selectbox(key="lab_ft_base")
    assert base.options == ["enc"] and base.value == "enc"  # the pair scorer and word vectors are not offered
    assert at.selectbox(key="lab_ft_n").value == 1000
    assert at.number_input(key="lab_ft_epochs").value == 1 and at.number_input(key="lab_ft_seed").value == 13
    sources = at.radio(key="lab_ft_src")
    assert sources.value == "upload"
    assert any("Upload labelled pairs (at least 20)" in s for s in texts(at.info))
    assert "lab_ft_run" not in button_keys(at) and "lab_curve_run" not in button_keys(at)
    # the learning curve's widgets, and what it waits for
    assert at.multiselect(key="lab_curve_sizes").value == [100, 300, 1000, "all"]
    assert [at.checkbox(key=f"lab_curve_{k}").value for k in ("bi", "cross", "esim")] == [True, True, True]
    assert any("Choose training pairs above first" in s for s in texts(at.info))
    # with data, a Fine-tune button
    upload(at, pairs_csv(40))
    assert "lab_ft_run" in button_keys(at) and "lab_curve_run" in button_keys(at)
    assert any("Training on 32 of 32 pairs" in c and "8 held-out pairs" in c for c in texts(at.caption))
    # an upload gets a held-out fraction; STS-B its dev file
    at.number_input(key="lab_ft_holdout").set_value(0.5).run()
    assert any("Training on 20 of 20 pairs" in c and "20 held-out pairs" in c for c in texts(at.caption))
    if (SHARED_DATA / "stsb-en" / "dev.tsv").exists():  # absent from the repository
        assert "STS-B train, en (../shared/data)" in sources.options
        at.radio(key="lab_ft_src").set_value("stsb-en").run()
        assert not at.exception
        assert any("Held out: STS-B dev" in c for c in texts(at.caption))
        assert any("Training on 1,000 of 5,749 pairs" in c and "1,500 held-out pairs" in c for c in texts(at.caption))


@pytest.mark.parametrize("data, message", [
    (pairs_csv(19), "19 usable pair(s); fine-tuning needs at least 20"),
    (pairs_csv(30, constant=3.0), "every label is 3"),
])
def test_data_that_cannot_be_trained_on_shows_the_backends_reason(ft_env, stub_bi, data, message):
    at = upload(app("evaluate"), data)
    assert any(message in e for e in texts(at.error)), texts(at.error)
    assert "lab_ft_run" not in button_keys(at)
    assert not stub_bi


def test_labels_above_five_ask_for_the_top_of_the_scale(ft_env):
    at = upload(app("evaluate"), pairs_csv(40, scale=10.0))
    assert any("go up to 10" in e for e in texts(at.error)), texts(at.error)
    top = at.number_input(key="lab_ft_label_max")
    assert top.value is None
    top.set_value(10.0).run()
    assert not at.exception and not at.error
    assert any("Training on 32 of 32 pairs" in c for c in texts(at.caption))
    assert any("0-10 scale (as given)" in c for c in texts(at.caption))
    assert at.number_input(key="lab_ft_label_max").value == 10.0  # still shown, so the choice is kept


def test_a_finetune_shows_before_after_the_registry_table_a_download_and_joins_the_comparison(ft_env, stub_bi):
    from backend.registry import Registry
    from ui import state
    from ui.lab.train_finetune import model_zip

    at = upload(app("evaluate"), pairs_csv(40))
    at.selectbox(key="lab_ft_n").set_value(100)
    at.number_input(key="lab_ft_epochs").set_value(2)
    at.number_input(key="lab_ft_seed").set_value(7).run()
    at.button(key="lab_ft_run").click().run()
    st_ = wait_for(at, "finetune")
    assert st_.status == "done", st_.error
    (call,) = stub_bi
    assert call["epochs"] == 2 and call["seed"] == 7 and call["base_source"] == f"path:{ft_env / 'enc'}"
    assert len(call["train"]) == 32 and len(call["held_out"]) == 8  # 100 asked, 32 there: all of them
    assert call["should_stop"] is not None and call["overwrite"] is True
    assert st_.message == "step 1/2 (epoch 0.50), 40 pairs/s, about 1 min left"  # the trainer's own message
    # the verdict and the numbers
    assert "Fine-tuning on 32 pairs moved held-out Spearman from 50.0 to 62.5 (+12.5)." in texts(at.success)
    shown = next(d.value for d in at.dataframe if "before" in d.value.columns).set_index("metric")
    assert shown.loc["Spearman", ["before", "after", "change"]].tolist() == [50.0, 62.5, 12.5]
    assert shown.loc["ROC-AUC", ["before", "after", "change"]].tolist() == [70.0, 75.0, 5.0]
    # the registry table: a registry file with it lists the model as a sentence encoder from the folder
    (code,) = at.code
    assert code.value.startswith("[models.enc-ft]") and 'family = "sbert"' in code.value
    out = st_.result.result.out_dir
    (ft_env / "mine.toml").write_text(code.value)
    spec = Registry.load(ft_env / "mine.toml")["enc-ft"]
    assert spec.source == f"path:{out.resolve()}" and spec.language == "en" and "Apache-2.0" in spec.licence
    assert (out / "README.md").is_file()  # the model card
    # the download: the folder as a zip, built on click
    (dl,) = [e for e in at.get("download_button") if "lab_ft_download" in e.proto.id]
    assert dl.proto.label == "⬇ Download the model folder (zip)"
    with zipfile.ZipFile(io.BytesIO(model_zip(out))) as z:
        assert sorted(z.namelist()) == ["enc-ft/", "enc-ft/README.md", "enc-ft/config.json",
                                        "enc-ft/model.safetensors"]
        assert z.read("enc-ft/model.safetensors") == b"\0" * 64
    # add to the comparison: a session model on a copy of the folder, in the sidebar's list at once
    at.button(key="lab_ft_add").click().run()
    assert not at.exception
    sid = at.session_state["session_id"]
    mine = [s for s in state.backend().registry if s.owner == sid]
    assert len(mine) == 1
    added = mine[0]
    assert added.family == "sbert" and added.language == "en" and not added.default
    copy = Path(added.source.removeprefix("path:"))
    assert copy != out and (copy / "model.safetensors").read_bytes() == b"\0" * 64
    assert at.sidebar.multiselect(key="models").options == ["tinya", "enc", "ranker", added.key]
    assert any(added.key in s for s in texts(at.success))
    # added again: another key and another copy
    at.button(key="lab_ft_add").click().run()
    keys = [s.key for s in state.backend().registry if s.owner == sid]
    assert len(keys) == 2 and len(set(keys)) == 2


def test_a_cross_encoder_finetune_joins_as_a_cross_model(ft_env, monkeypatch):
    from ui import state

    calls = []

    def finetune_cross(args, spec, train, held, out, say, extra):
        calls.append((args.epochs, args.seed, spec.key, len(train)))
        say(0.5, "step 2/4: held-out Spearman 55.00", None)
        return fake_result("cross", train, held, out, spec.source, epochs=args.epochs)

    monkeypatch.setattr("backend.finetune.cli._finetune_cross", finetune_cross)
    at = upload(app("evaluate"), pairs_csv(40))
    at.radio(key="lab_ft_kind").set_value("cross").run()
    at.button(key="lab_ft_run").click().run()
    st_ = wait_for(at, "finetune")
    assert st_.status == "done", st_.error
    assert calls == [(1, 13, "enc", 32)]
    assert st_.message.startswith("step 2/4: held-out Spearman 55.00 · about ") and st_.message.endswith(" min left")
    assert 'family = "cross"' in at.code[0].value and "symmetric = true" in at.code[0].value
    assert any("what the cross-encoder has to beat" in c for c in texts(at.caption))
    at.button(key="lab_ft_add").click().run()
    (added,) = [s for s in state.backend().registry if s.owner == at.session_state["session_id"]]
    assert added.family == "cross" and added.options["symmetric"] is True


def test_cancel_stops_a_finetune(ft_env, monkeypatch):
    from backend.jobs import StopRequested

    def slow(train, held_out, out_dir, base_source, **kw):
        kw["progress"](0.1, "step 5/50 (epoch 0.10), 20 pairs/s, about 3 min left", None)
        t0 = time.perf_counter()
        while not kw["should_stop"]():
            assert time.perf_counter() - t0 < 30, "never asked to stop"
            time.sleep(0.05)
        raise StopRequested("stopped at step 5")

    monkeypatch.setattr("backend.finetune.bi.train_bi_encoder", slow)
    at = upload(app("evaluate"), pairs_csv(40))
    at.button(key="lab_ft_run").click().run()
    job = at.session_state["lab_job_finetune"]
    assert job.running
    job.cancel()  # what the progress bar's Cancel button does
    st_ = wait_for(at, "finetune")
    assert st_.status == "cancelled"
    assert any("Cancelled after" in w for w in texts(at.warning))
    assert not at.code and "lab_ft_add" not in button_keys(at)


def test_the_learning_curve_runs_on_the_chosen_pairs_and_says_what_it_shows(ft_env, monkeypatch):
    calls = []

    def learning_curve(train, held_out, out_dir, *, lang, bi_base, cross_base, sizes, kinds, seed, progress,
                       should_stop):
        calls.append({"n": len(train), "held": len(held_out), "lang": lang, "bi_base": bi_base, "sizes": sizes,
                      "kinds": kinds, "seed": seed})
        assert Path(out_dir).is_dir()
        progress(0.5, "bi on 32 pairs (2 of 3)", None)
        return [{"kind": "base", "n": 0, "epochs": 0, "spearman": 50.0, "auc": 70.0, "seconds": 1.0, "model": "x"},
                {"kind": "bi", "n": 32, "epochs": 4, "spearman": 56.25, "auc": 74.0, "seconds": 9.0,
                 "model": str(out_dir)},
                {"kind": "esim", "n": 32, "epochs": 20, "spearman": "20.0", "auc": "60.0", "seconds": "3.0",
                 "model": str(out_dir)}]

    monkeypatch.setattr("backend.finetune.curve.learning_curve", learning_curve)
    at = upload(app("evaluate"), pairs_csv(40))
    at.checkbox(key="lab_curve_cross").uncheck().run()
    at.button(key="lab_curve_run").click().run()
    st_ = wait_for(at, "curve")
    assert st_.status == "done", st_.error
    # 32 training pairs: 100, 300 and 1,000 would all be "all"
    assert calls == [{"n": 32, "held": 8, "lang": "en", "bi_base": f"path:{ft_env / 'enc'}", "sizes": ["all"],
                      "kinds": ["bi", "esim"], "seed": 13}]
    verdict = " ".join(texts(at.success))
    assert ("With 32 pairs the bi-encoder gains +6.2 Spearman over the untrained model (50.0 -> 56.2)." in verdict)
    assert "The ESIM model needs more than 32 pairs to catch up with the untrained model (20.0 against 50.0 with 32)." \
        in verdict
    charts = at.get("plotly_chart")
    assert sum("lab_curve_chart" in c.proto.id for c in charts) == 2  # Spearman and ROC-AUC
    table = next(d.value for d in at.dataframe if "kind" in d.value.columns and "seconds" in d.value.columns)
    assert table["kind"].tolist() == ["base", "bi", "esim"] and "model" not in table.columns
    assert table["spearman"].tolist() == [50.0, 56.25, 20.0] and table["n"].tolist() == [0, 32, 32]
    assert any("lab_curve_download" in e.proto.id for e in at.get("download_button"))


def test_the_parts_read_in_chinese(ft_env, stub_bi):
    at = app("evaluate")
    at.sidebar.radio(key="lang").set_value("zh").run()
    upload(at, pairs_csv(40))
    subheaders = [s.value for s in at.subheader]
    assert "用你的句对微调 Transformer" in subheaders and "学习曲线" in subheaders
    assert at.checkbox(key="lab_curve_esim").label == "ESIM 模型"
    at.button(key="lab_ft_run").click().run()
    assert wait_for(at, "finetune").status == "done"
    assert "在 32 个句对上微调后，留出集 Spearman 从 50.0 变为 62.5（+12.5）。" in texts(at.success)


def test_without_the_training_extra_the_tab_says_what_to_install(ft_env, monkeypatch):
    import ui.lab.train_curve
    import ui.lab.train_finetune

    for mod in (ui.lab.train_finetune, ui.lab.train_curve):
        monkeypatch.setattr(mod, "missing_training_extra", lambda: ["datasets"])
    at = upload(app("evaluate"), pairs_csv(40))
    assert "lab_ft_run" not in button_keys(at) and "lab_curve_run" not in button_keys(at)
    assert sum("pip install -r requirements-train.txt" in s for s in texts(at.info)) == 2
