"""Dynamic batching: merged calls give every caller exactly its own results, big jobs do not starve small
requests, one bad request fails alone, and Backend uses it for its cache misses.

Merging is forced without relying on timing: the first batch blocks on an event until the other callers'
pieces are queued, so the next batch must merge them.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from backend.serving.batching import Batcher, BatchSettings, batch_settings
from tests.fakes import CALLS, fake_backend


def wait_until(cond, timeout: float = 20.0) -> None:
    """Poll ``cond`` (a generous timeout only guards against a hang; it never decides pass or fail)."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        time.sleep(0.002)


def queued(b: Batcher, key: str) -> int:
    q = b._queues.get(key)
    return len(q.pieces) if q else 0


def gated_run(b: Batcher, key: str, fn, inputs: list[list], gate: threading.Event, entered: threading.Event):
    """Start one thread per input list: the first one's batch blocks on ``gate`` (``fn`` sets ``entered`` when
    it is inside that first call) until the others have queued."""
    results: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            results[i] = b.run(key, fn, inputs[i])
        except Exception as exc:  # recorded for the test to inspect
            results[i] = exc

    threads = [threading.Thread(target=call, args=(0,))]
    threads[0].start()
    assert entered.wait(20)
    for i in range(1, len(inputs)):
        threads.append(threading.Thread(target=call, args=(i,)))
        threads[-1].start()
    wait_until(lambda: queued(b, key) == len(inputs) - 1)
    gate.set()
    for t in threads:
        t.join(30)
    return results


def test_concurrent_callers_get_their_own_results_from_merged_batches():
    b = Batcher(BatchSettings(wait_ms=50, max_batch=256))
    gate, entered = threading.Event(), threading.Event()
    sizes: list[int] = []

    def fn(xs: list[int]) -> list[int]:
        sizes.append(len(xs))
        if len(sizes) == 1:
            entered.set()
            gate.wait(30)
        return [x * x for x in xs]

    inputs = [[100 * i + j for j in range(i % 3 + 1)] for i in range(16)]
    results = gated_run(b, "sq", fn, inputs, gate, entered)
    assert [results[i] for i in range(16)] == [[x * x for x in xs] for xs in inputs]
    # The first caller's batch ran alone; the 15 others were merged into one call.
    assert sizes[0] == len(inputs[0]) and sizes[1] == sum(len(x) for x in inputs[1:])
    assert b.stats["max_pieces"] == 15 and b.stats["batches"] == 2


def test_request_is_cut_into_pieces_of_one_batch_with_progress():
    b = Batcher(BatchSettings(wait_ms=1, max_batch=4, max_chars=10**6))
    sizes: list[int] = []
    seen: list[tuple[int, int]] = []
    out = b.run("id", lambda xs: sizes.append(len(xs)) or list(xs), list(range(10)), progress=lambda d, t: seen.append((d, t)))
    assert out == list(range(10)) and sizes == [4, 4, 2]
    assert seen == [(4, 10), (8, 10), (10, 10)]


def test_character_budget_cuts_pieces():
    b = Batcher(BatchSettings(wait_ms=1, max_batch=100, max_chars=10))
    sizes: list[int] = []
    b.run("c", lambda xs: sizes.append(len(xs)) or xs, ["aaaa", "bbbb", "cccc", "d" * 30, "e"])
    assert sizes == [2, 1, 1, 1]  # 4+4 fit in 10; 4+30 does not; a 30-character text goes alone


def test_a_big_job_does_not_starve_a_small_request():
    b = Batcher(BatchSettings(wait_ms=1, max_batch=8))
    calls: list[list[str]] = []
    started = threading.Event()

    def fn(xs: list[str]) -> list[str]:
        calls.append(list(xs))
        started.set()
        time.sleep(0.005)  # a forward pass takes time; the outcome asserted below does not depend on it
        return [x.upper() for x in xs]

    big = [f"big{i}" for i in range(800)]
    t = threading.Thread(target=lambda: b.run("m", fn, big))
    t.start()
    started.wait(10)
    wait_until(lambda: len(calls) >= 3)
    before = len(calls)
    assert b.run("m", fn, ["small"]) == ["SMALL"]
    where = next(i for i, c in enumerate(calls) if "small" in c)
    assert where <= before + 1  # behind the batch running at most, never behind the other ~95 pieces of the job
    assert len(calls) < 100
    t.join(60)
    assert sum(len(c) for c in calls) == 801


def test_failure_of_one_request_is_isolated():
    b = Batcher(BatchSettings(wait_ms=50, max_batch=64))
    gate, entered = threading.Event(), threading.Event()
    n = [0]

    def fn(xs: list[str]) -> list[str]:
        n[0] += 1
        if n[0] == 1:
            entered.set()
            gate.wait(30)
        if "bad" in xs:
            raise ValueError("cannot read 'bad'")
        return [x + "!" for x in xs]

    results = gated_run(b, "k", fn, [["first"], ["ok1"], ["bad"], ["ok2", "ok3"]], gate, entered)
    assert results[0] == ["first!"] and results[1] == ["ok1!"] and results[3] == ["ok2!", "ok3!"]
    assert isinstance(results[2], ValueError) and "bad" in str(results[2])


def test_models_have_their_own_workers():
    b = Batcher(BatchSettings(wait_ms=1))
    slow_gate, entered = threading.Event(), threading.Event()
    t = threading.Thread(target=lambda: b.run("slow", lambda xs: entered.set() or (slow_gate.wait(30) and xs), [1]))
    t.start()
    assert entered.wait(20)
    # The slow model is stuck inside its forward pass; another model still answers.
    assert b.run("fast", lambda xs: [x + 1 for x in xs], [1, 2]) == [2, 3]
    slow_gate.set()
    t.join(30)


def test_zero_wait_switches_batching_off(monkeypatch):
    monkeypatch.setenv("SIMDASH_BATCH_WAIT_MS", "0")
    s = batch_settings()
    assert not s.enabled
    threads: list[str] = []
    assert Batcher(s).run("x", lambda xs: threads.append(threading.current_thread().name) or xs, [1]) == [1]
    assert threads == [threading.current_thread().name]  # ran on the caller's thread


def test_settings_from_environment_and_errors(monkeypatch):
    monkeypatch.setenv("SIMDASH_BATCH_WAIT_MS", "2.5")
    monkeypatch.setenv("SIMDASH_BATCH_MAX", "16")
    s = batch_settings()
    assert (s.wait_ms, s.max_batch, s.enabled) == (2.5, 16, True)
    assert batch_settings(wait_ms=0).enabled is False  # an argument wins over the environment
    monkeypatch.setenv("SIMDASH_BATCH_WAIT_MS", "soon")
    with pytest.raises(ValueError, match="SIMDASH_BATCH_WAIT_MS"):
        batch_settings()
    monkeypatch.setenv("SIMDASH_BATCH_WAIT_MS", "-1")
    with pytest.raises(ValueError, match=">= 0"):
        batch_settings()


# ------------------------------------------------------------------------------------------ in Backend
def test_backend_merges_concurrent_embeds_and_returns_each_callers_vectors():
    gate, entered = threading.Event(), threading.Event()

    def vec(text: str) -> np.ndarray:
        if text == "gate":
            entered.set()
            gate.wait(30)
        rng = np.random.default_rng(abs(hash(text)) % 2**32)
        return rng.normal(size=8)

    be = fake_backend({"enc_b": vec}, batching=BatchSettings(wait_ms=50, max_batch=256))
    unbatched = fake_backend({"enc_b": vec}, batching=BatchSettings(wait_ms=0))
    texts = [[f"text {i} {j}" for j in range(i % 4 + 1)] for i in range(12)]
    out: dict[int, np.ndarray] = {}
    first = threading.Thread(target=lambda: be.embed("enc_b", ["gate"]))
    first.start()
    assert entered.wait(20)
    key = next(iter(be.batcher._queues))
    CALLS.clear()
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, be.embed("enc_b", texts[i]).vectors))
               for i in range(12)]
    for t in threads:
        t.start()
    wait_until(lambda: queued(be.batcher, key) == 12)
    gate.set()
    for t in [first, *threads]:
        t.join(30)
    for i in range(12):
        np.testing.assert_allclose(out[i], unbatched.embed("enc_b", texts[i]).vectors, atol=1e-6)
    # The twelve requests were merged into one call of the model.
    assert next(n for k, n in CALLS if k == "enc_b") == sum(len(t) for t in texts)
    assert be.batcher.stats["max_pieces"] == 12


def test_backend_batches_native_pair_scores_in_input_order():
    be = fake_backend(scorers={"pair_b": lambda a, b: len(a) / (len(a) + len(b))},
                      batching=BatchSettings(wait_ms=1, max_batch=3))
    a = ["a", "bbbbbb", "cc", "", "dddd", "a"]
    b = ["xx", "y", "zzzzzzz", "w", "v", "xx"]
    r = be.score_pairs("pair_b", a, b)
    want = [len(x) / (len(x) + len(y)) if x and y else np.nan for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(r.scores, want, rtol=1e-6)
    assert "A: empty text: no score" in r.warnings[3]
    assert be.batcher.stats["batches"] >= 2  # cut into pieces of three pairs


@pytest.mark.slow
def test_batched_sbert_matches_unbatched_within_1e5():
    """Real model: texts merged with other threads' texts (other padding) give the unbatched vectors."""
    from backend.serving import Backend

    sentences = ["An old clockmaker is fixing a brass pendulum.", "The cat sleeps.", "Stock markets fell sharply on Monday after the "
                 "central bank raised interest rates again.", "Rain.", "Two dogs run across a snowy field together.",
                 "She reads a book in the garden.", "今天天气很好。", "The quick brown fox jumps over the lazy dog."]
    batched = Backend(device="cpu", cache_dir="memory", batching=BatchSettings(wait_ms=30, max_batch=64))
    plain = Backend(device="cpu", cache_dir="memory", batching=BatchSettings(wait_ms=0))
    ref = plain.embed("sbert", sentences).vectors
    out: dict[int, np.ndarray] = {}
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, batched.embed("sbert", [sentences[i]]).vectors[0]))
               for i in range(len(sentences))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    got = np.stack([out[i] for i in range(len(sentences))])
    assert np.abs(got - ref).max() < 1e-5
