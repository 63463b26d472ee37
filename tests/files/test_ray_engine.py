"""backend.files.ray_engine: the same file job on Ray Data gives the local engine's output, byte for byte."""

from __future__ import annotations

import socket

import pandas as pd
import pytest

# Not importorskip: Ray is in requirements-scale.txt, which requirements-dev.txt installs, so CI must run these.
import ray

from backend.files.ray_engine import EngineError, connect


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


@pytest.mark.parametrize("scheme", ["ray://", ""])
def test_an_address_that_does_not_answer_is_a_clear_error_not_a_hang(scheme):
    address = f"{scheme}127.0.0.1:{unused_port()}"
    with pytest.raises(EngineError, match=f"no Ray cluster answers at {address} .*ray start --head"):
        connect(address, timeout=5)
    assert not ray.is_initialized()


def test_a_malformed_address_says_what_is_expected():
    with pytest.raises(EngineError, match="is not host:port or ray://host:port"):
        connect("ray://head-without-port")


def test_cli_reports_an_unreachable_cluster(tmp_path, capsys):
    from backend.cli import main

    src = tmp_path / "in.csv"
    src.write_text("sentence1,sentence2\na,b\n", encoding="utf-8")
    port = unused_port()
    assert main(["score", str(src), str(tmp_path / "o.csv"), "--models", "w2v", "--engine", "ray",
                 "--address", f"ray://127.0.0.1:{port}", "--quiet"]) == 2
    assert f"no Ray cluster answers at ray://127.0.0.1:{port}" in capsys.readouterr().err


WORDS = ("the cat sat on a mat while dogs ran to the old red house near river bank where people "
         "eat fresh bread and drink hot tea every morning before work")


def pairs(n: int) -> pd.DataFrame:
    import random

    rng = random.Random(7)
    a = [" ".join(rng.choices(WORDS.split(), k=rng.randint(3, 12))) for _ in range(n)]
    b = [" ".join(rng.choices(WORDS.split(), k=rng.randint(3, 12))) for _ in range(n)]
    a[3], b[4], a[5], a[6] = "", "qzxv blorp", "=SUM(A1)", "一只猫在睡觉"
    return pd.DataFrame({"sentence1": a, "sentence2": b, "id": range(n)})


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray with 2 CPUs for this module's jobs (each job reuses it)."""
    started = connect(None, num_cpus=2)
    yield
    if started:
        ray.shutdown()


@pytest.mark.slow
def test_ray_output_equals_the_local_engine_byte_for_byte_and_resumes_across_engines(tmp_path, local_ray):
    from backend.files.batch import score_file
    from backend.files.ray_engine import run_on_ray
    from backend.jobs import StopRequested
    from backend.serving import Backend

    src = tmp_path / "in.csv"
    pairs(2_500).to_csv(src, index=False)
    be = Backend(device="cpu", cache_size=0)
    score_file(be, src, tmp_path / "local.csv", ["w2v"], chunk_rows=400).run(be)
    res = run_on_ray(score_file(be, src, tmp_path / "ray.csv", ["w2v"], chunk_rows=400), workers=2)
    # no score: the empty text and the unknown words; the half-Chinese pair (row 6) goes to w2v-zh and is scored
    assert res.complete and res.rows == 2_500 and res.missing == {"w2v": 2}
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()

    # a local run stopped after two chunks, finished on Ray: still the same bytes
    n = [0]
    with pytest.raises(StopRequested):
        score_file(be, src, tmp_path / "mixed.csv", ["w2v"], chunk_rows=400).run(
            be, should_stop=lambda: (n.__setitem__(0, n[0] + 1) or n[0] > 4))
    res = run_on_ray(score_file(be, src, tmp_path / "mixed.csv", ["w2v"], chunk_rows=400, resume=True), workers=2)
    assert res.resumed_from == 800 and res.rows_this_run == 1_700
    assert (tmp_path / "mixed.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


@pytest.mark.slow
def test_ray_parquet_in_and_out_and_a_bad_row_stops_where_the_local_engine_does(tmp_path, local_ray):
    from backend.files.batch import score_file
    from backend.files.ray_engine import run_on_ray
    from backend.serving import Backend

    be = Backend(device="cpu", cache_size=0)
    src = tmp_path / "in.parquet"
    pairs(900).to_parquet(src, row_group_size=250)
    run_on_ray(score_file(be, src, tmp_path / "ray.parquet", ["w2v"], chunk_rows=200), workers=2)
    score_file(be, src, tmp_path / "local.parquet", ["w2v"], chunk_rows=200).run(be)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ray.parquet"), pd.read_parquet(tmp_path / "local.parquet"))

    bad = tmp_path / "bad.csv"
    lines = pairs(700).to_csv(index=False).splitlines()
    lines[500] = "x,y,z,surplus"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = run_on_ray(score_file(be, bad, tmp_path / "bad_out.csv", ["w2v"], chunk_rows=150), workers=2)
    assert not res.complete and res.rows == 499 and "line 501 has 4 comma-separated fields" in str(res.stopped)
    assert pd.read_csv(tmp_path / "bad_out.csv")["id"].tolist() == list(range(499))


@pytest.mark.slow
def test_ray_embedding_equals_the_local_one(tmp_path, local_ray):
    import numpy as np

    from backend.files.embed import embed_file, load_embedded_corpus
    from backend.files.ray_engine import run_on_ray
    from backend.serving import Backend

    be = Backend(device="cpu", cache_size=0)
    src = tmp_path / "c.csv"
    pd.DataFrame({"text": pairs(600)["sentence1"], "topic": ["t"] * 600}).to_csv(src, index=False)
    embed_file(be, src, tmp_path / "local.parquet", ["w2v"], chunk_rows=128).run(be)
    res = run_on_ray(embed_file(be, src, tmp_path / "ray.parquet", ["w2v"], chunk_rows=128), workers=2)
    assert res.complete and res.rows == 600
    a, b = load_embedded_corpus(tmp_path / "ray.parquet"), load_embedded_corpus(tmp_path / "local.parquet")
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert list(a.texts) == list(b.texts) and a.valid.tolist() == b.valid.tolist() and a.config_id == b.config_id
    assert a.config["dim"] == 50  # learnt by the driver from the actors' output
