"""BERT layer probe: the matrix's shape follows the model, its numbers match the model's own scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from backend.lab.evaluation import LabelledPairs
from backend.lab.probe import (
    MIX_MIN_PAIRS,
    PROBE_POOLINGS,
    fit_whitening,
    layer_probe,
    learn_layer_mix,
    probe_model,
)

# Our own sentences, with gold similarity on 0-5 as we would judge it.
PAIRS = [
    ("The train leaves at seven in the morning.", "The train departs at 7 a.m.", 4.8),
    ("She is baking bread in the kitchen.", "A woman bakes bread at home.", 4.0),
    ("The children are playing football outside.", "Kids play soccer in the yard.", 4.2),
    ("He forgot his umbrella on the bus.", "He left his umbrella on the bus.", 4.6),
    ("The museum opens on Sundays.", "The museum is closed on Sundays.", 1.5),
    ("A cat is sleeping on the sofa.", "A dog is barking at the door.", 0.8),
    ("The price of coffee went up this year.", "Coffee became more expensive this year.", 4.4),
    ("I am learning to play the violin.", "The stock market fell sharply today.", 0.0),
    ("They painted the fence white.", "The fence was painted white by them.", 4.9),
    ("Rain is expected tomorrow afternoon.", "Tomorrow afternoon will probably be rainy.", 4.5),
    ("The library has a new reading room.", "The bakery sells fresh croissants.", 0.2),
    ("Two men are repairing a roof.", "Two workers fix the roof of a house.", 3.8),
    ("My phone battery dies quickly.", "My laptop battery lasts all day.", 1.2),
    ("The river flooded the village.", "The village was flooded by the river.", 4.9),
    ("A boy is reading a comic book.", "A girl is writing a letter.", 1.0),
    ("The concert was cancelled because of the storm.", "The storm forced the concert to be cancelled.", 4.7),
]


def labelled() -> LabelledPairs:
    a, b, y = zip(*PAIRS, strict=True)
    return LabelledPairs(list(a), list(b), np.array(y), "graded", (0.0, 5.0))


class FakeLayers:
    """A three-layer 'model' whose layer 2 mean-pooled vectors encode the label (for exact numbers)."""

    key = "fake"

    def __init__(self, texts_to_label: dict[str, float]) -> None:
        self.t = texts_to_label

    def encode_layers(self, texts, poolings, batch_size=None, progress=None):
        rng = np.random.default_rng(0)
        n, d = len(texts), 8
        out = {p: rng.normal(size=(1 if p == "first_last_avg" else 3, n, d)) for p in poolings}
        out["cls"][:] = 1.0  # constant: every cosine is 1, so Spearman is undefined
        if progress:
            progress(n, n)
        return out


def test_fit_whitening_gives_identity_covariance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6)) + 3.0
    mu, w = fit_whitening(x)
    z = (x - mu) @ w
    assert np.allclose(z.mean(0), 0, atol=1e-9)
    assert np.allclose(np.cov(z, rowvar=False), np.eye(6), atol=1e-8)
    # fewer samples than dimensions: near-zero directions are dropped instead of blown up
    _, w_small = fit_whitening(rng.normal(size=(4, 10)))
    assert w_small.shape == (10, 3)


def test_undefined_cells_are_nan_in_matrix_and_null_in_json():
    r = layer_probe(FakeLayers({}), labelled())
    assert r.spearman.shape == (3, 3) and r.poolings == PROBE_POOLINGS
    assert np.isnan(r.spearman[:, 1]).all()
    assert np.isfinite(r.spearman[:, 0]).all()
    j = json.loads(json.dumps(r.as_json()))
    assert j["spearman"][0][1] is None and j["layers"] == [0, 1, 2]
    assert any("undefined" in n for n in r.notes)


def test_probe_refuses_a_model_without_layers():
    class NotBert:
        key = "w2v"

    with pytest.raises(ValueError, match="BERT-family"):
        layer_probe(NotBert(), labelled())


def test_pairs_without_text_or_label_are_skipped():
    d = labelled()
    d.a[0] = ""
    d.labels[1] = np.nan
    r = layer_probe(FakeLayers({}), d)
    assert (r.n, r.skipped) == (14, 2)


# ``backend`` is the session-wide real Backend of tests/conftest.py (models load once per test run).


@pytest.mark.slow
def test_real_bert_probe_shape_and_agreement_with_the_model(backend):
    model = backend.model("bert")
    r = probe_model(backend, "bert", labelled())
    # hidden_states = embeddings + one per layer: 7 for the bundled 6-layer MiniLM backbone.
    assert r.spearman.shape == (model.n_layers + 1, 3) == (7, 3)
    # Layer 0 [CLS] is the same embedding for every sentence: undefined, and said so. Every other cell is a number.
    cls = PROBE_POOLINGS.index("cls")
    assert np.isnan(r.spearman[0, cls]) and any("layer 0 with cls" in n for n in r.notes)
    rest = np.delete(r.spearman.ravel(), cls)
    assert np.isfinite(rest).all() and r.first_last_avg is not None
    # The registry's bert is layer -2 with mean pooling: the probe's cell must reproduce the model's own score.
    own = backend.score_pairs("bert", labelled().a, labelled().b).scores
    want = stats.spearmanr(own, labelled().labels).statistic * 100
    assert r.spearman[-2, PROBE_POOLINGS.index("mean")] == pytest.approx(want, abs=0.5)
    # a fine-tuned sentence model separates these pairs well at its top layers
    assert r.spearman[-1, 0] > 70
    w = probe_model(backend, "bert", labelled(), whiten=True)
    assert w.whitened and w.spearman.shape == (7, 3) and any("evaluation sentences" in n for n in w.notes)


@pytest.mark.slow
def test_probe_refuses_non_bert_registry_model(backend):
    with pytest.raises(ValueError, match="family 'sbert'"):
        probe_model(backend, "sbert", labelled())


@pytest.mark.slow
def test_probe_cli_json_round_trip(tmp_path, capsys):
    import pandas as pd

    from backend.cli import main

    path = tmp_path / "pairs.tsv"
    pd.DataFrame(PAIRS, columns=["sentence1", "sentence2", "score"]).to_csv(path, sep="\t", index=False)
    assert main(["probe", str(path), "--model", "bert", "--json", "--quiet", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"model", "layers", "poolings", "spearman", "first_last_avg", "whitened", "n", "skipped",
                        "mix_weights", "mix_spearman", "mix_baseline", "mix_note", "mix_option"}
    # 16 pairs are too few to learn a mix and test it: null, and the note says why
    assert out["mix_weights"] is None and out["mix_option"] is None and "too few" in out["mix_note"]
    assert out["layers"] == list(range(7)) and out["poolings"] == ["mean", "cls", "max"]
    assert np.array(out["spearman"], dtype=float).shape == (7, 3)
    assert out["n"] == len(PAIRS) and out["whitened"] is False
    assert main(["probe", str(path), "--model", "bert", "--quiet", "--device", "cpu"]) == 0
    human = capsys.readouterr().out
    assert "-7 · embeddings" in human and "-2 · layer 5" in human and "first_last_avg" in human
    assert "layer mix: no layer mix: 16 pairs are too few" in human
    assert "pooling is best" in human or "default (layer -2, mean pooling) is also the best" in human


def test_layer_names_give_both_numberings():
    from backend.lab.probe import layer_name

    assert [layer_name(i, 7) for i in (0, 5, 6)] == ["-7 · embeddings", "-2 · layer 5", "-1 · layer 6"]


# ------------------------------------------------------------------------------------------- layer mix
class SignalLayers:
    """Five hidden states of 16-d sentence vectors: state 3 carries the pairs' similarity, state 2 a noisy copy of
    it, the others are noise of the same size (so the mix has to find the signal, not the largest vectors)."""

    key = "signal"

    def __init__(self, n_pairs: int = 300, kind: str = "graded", seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        sigma = rng.uniform(0.1, 3.0, n_pairs)  # how far b is from a
        z_a = rng.normal(size=(n_pairs, 16))
        z_b = z_a + sigma[:, None] * rng.normal(size=(n_pairs, 16))
        gold = 5 * np.exp(-sigma / 1.5) if kind == "graded" else (sigma < 1.5).astype(float)
        self.data = LabelledPairs([f"a{i}" for i in range(n_pairs)], [f"b{i}" for i in range(n_pairs)], gold, kind,
                                  (0.0, 5.0) if kind == "graded" else (0.0, 1.0))
        self.vectors = {}
        for name, z in (("a", z_a), ("b", z_b)):
            for i in range(n_pairs):
                noise = rng.normal(size=(5, 16)) * 4
                noise[3] = z[i] + 0.1 * rng.normal(size=16)
                noise[2] = z[i] + 3 * rng.normal(size=16)
                self.vectors[f"{name}{i}"] = noise

    def encode_layers(self, texts, poolings, batch_size=None, progress=None):
        arr = np.stack([self.vectors[t] for t in texts], axis=1).astype(np.float32)  # (5, n, 16)
        return {p: arr[:1] if p == "first_last_avg" else arr for p in poolings}


def test_mix_finds_the_layer_that_carries_the_signal_and_matches_it_on_held_out_pairs():
    model = SignalLayers()
    r = layer_probe(model, model.data)
    w = r.mix_weights
    assert w.shape == (5,) and w.sum() == pytest.approx(1.0) and int(np.argmax(w)) == 3 and w[3] > 0.6
    # honest: measured on held-out pairs, where it is at least as good as the best single layer (give or take)
    assert r.mix_spearman >= r.mix_baseline - 2.0 and r.mix_baseline > 60
    assert "learnt on 210 pairs, measured on the other 90" in r.mix_note and "-2 · layer 3" in r.mix_note
    option = r.mix_option()
    assert option.startswith("signal:pooling=mean:layer_mix=") and "," not in option
    from backend.families.bert import parse_layer_mix

    np.testing.assert_allclose(parse_layer_mix(option.split("layer_mix=")[1], states=5), w, atol=5e-3)
    j = json.loads(json.dumps(r.as_json()))
    assert len(j["mix_weights"]) == 5 and j["mix_option"] == option
    assert r.mix_frame()["weight"].tolist() == pytest.approx(w.tolist())


def test_mix_is_seeded_and_works_on_binary_labels():
    model = SignalLayers(kind="binary")
    a, b = learn_layer_mix(*_states(model)), learn_layer_mix(*_states(model))
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.spearman == b.spearman and int(np.argmax(a.weights)) == 3
    assert (a.n_train, a.n_test) == (210, 90)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", ["graded", "binary"])
def test_mix_holds_on_other_draws_of_the_data(seed, kind):
    # from a uniform start some of these draws sank into a mix of noise layers (held-out Spearman near 0)
    m = learn_layer_mix(*_states(SignalLayers(kind=kind, seed=seed)))
    assert m.weights[3] > 0.8 and m.spearman >= m.baseline - 2.5


def _states(model: SignalLayers):
    texts = [*model.data.a, *model.data.b]
    n = len(model.data)
    return (model.encode_layers(texts, ("mean",))["mean"], np.arange(n), np.arange(n, 2 * n), model.data.labels)


def test_no_mix_on_too_few_pairs_or_a_nonlinear_pooling():
    model = SignalLayers(n_pairs=MIX_MIN_PAIRS - 1)
    r = layer_probe(model, model.data)
    assert r.mix_weights is None and r.mix_option() is None and f"it needs {MIX_MIN_PAIRS}" in r.mix_note
    assert r.mix_frame().empty
    with pytest.raises(ValueError, match="linear pooling"):
        layer_probe(model, model.data, mix_pooling="max")
    assert layer_probe(model, model.data, mix=False).mix_note == "no layer mix asked for"
