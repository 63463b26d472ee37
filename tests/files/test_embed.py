"""backend.files.embed: a corpus's vectors on disk with the configuration that made them, and refused when it differs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from backend.files.embed import (
    CorpusMismatch,
    embed_file,
    embed_texts,
    load_embedded_corpus,
    read_embedding_metadata,
)
from backend.files.io import TableError
from backend.registry import ModelRequest
from tests.fakes import fake_backend


def vec(t: str) -> np.ndarray:
    return np.array([t.count(c) for c in "abcdefgh"], dtype=np.float32)  # no letter a-h: no vector


CORPUS = pd.DataFrame({"text": ["a bad cab", "", "fed", "xyz", "ace", "bead"] * 7, "topic": list("uvwxyz") * 7})


@pytest.fixture
def be():
    return fake_backend(encoders={"e": vec, "f": lambda t: vec(t)[::-1].copy()}, scorers={"p": lambda a, b: 0.5})


def test_embed_file_stores_every_text_its_vector_and_the_configuration(tmp_path, be):
    src = tmp_path / "c.csv"
    CORPUS.to_csv(src, index=False)
    job = embed_file(be, src, tmp_path / "v.parquet", ["e", ModelRequest("f:scale=2", "f", {"scale": 2.0})], chunk_rows=5)
    res = job.run(be)
    assert res.complete and res.rows == 42 and res.missing == {"e": 14, "f:scale=2": 14}  # "" and "xyz" have none
    table = pq.read_table(tmp_path / "v.parquet")
    assert table.column_names == ["text", "topic", "vec_e", "valid_e", "warnings_e", "vec_f:scale=2", "valid_f:scale=2",
                                  "warnings_f:scale=2"]
    assert str(table.schema.field("vec_e").type) == "fixed_size_list<element: float>[8]"
    meta = read_embedding_metadata(tmp_path / "v.parquet")
    assert meta["text_col"] == "text" and [m["name"] for m in meta["models"]] == ["e", "f:scale=2"]
    f = meta["models"][1]
    assert f["key"] == "f" and f["dim"] == 8 and f["options"] == {"scale": 2.0}
    assert f["config_id"] == be.model("f", scale=2.0).config_id == be.model_config("f", {"scale": 2.0}).config_id

    c = load_embedded_corpus(tmp_path / "v.parquet", "e", expect=be.model_config("e"))
    direct = be.embed("e", CORPUS["text"].tolist())
    np.testing.assert_allclose(c.vectors, direct.vectors, rtol=1e-6)
    assert c.vectors.dtype == np.float32 and c.vectors.flags["C_CONTIGUOUS"]
    assert c.valid.tolist() == direct.valid.tolist() and list(c.texts) == CORPUS["text"].tolist()
    assert c.texts[2] == "fed" and c.texts[[0, 2]] == ["a bad cab", "fed"] and c.labels[:2].tolist() == ["u", "v"]
    assert "empty text" in c.warnings[1] and c.key == "e" and len(c) == 42 and c.corpus_id == meta["corpus_id"]


def test_vectors_of_another_configuration_are_refused_and_the_message_says_why(tmp_path, be):
    src = tmp_path / "c.csv"
    CORPUS.to_csv(src, index=False)
    embed_file(be, src, tmp_path / "v.parquet", ["e", "f"]).run(be)
    with pytest.raises(CorpusMismatch, match=r"v.parquet was embedded with e scale 1.0; the selected model has scale "
                                             r"3.0: .*--models e:scale=3.0\)"):
        load_embedded_corpus(tmp_path / "v.parquet", expect=be.model_config("e", {"scale": 3.0}))
    with pytest.raises(CorpusMismatch, match="embedded with f, not e"):
        load_embedded_corpus(tmp_path / "v.parquet", "f", expect=be.model_config("e"))
    with pytest.raises(TableError, match="holds vectors of e, f; say which"):
        load_embedded_corpus(tmp_path / "v.parquet")
    with pytest.raises(TableError, match="holds no vectors of g; it has e, f"):
        load_embedded_corpus(tmp_path / "v.parquet", "g")
    assert load_embedded_corpus(tmp_path / "v.parquet", "f").key == "f"


def test_bad_corpora_and_models_are_named(tmp_path, be):
    src = tmp_path / "c.parquet"
    CORPUS.rename(columns={"text": "body"}).assign(extra=1).to_parquet(src)
    with pytest.raises(TableError, match="which column holds the texts\\? The file has: 'body', 'topic', 'extra'"):
        embed_file(be, src, tmp_path / "v.parquet", ["e"])
    with pytest.raises(TableError, match="column\\(s\\) 'text' not found; the file has: 'body', 'topic', 'extra'"):
        embed_file(be, src, tmp_path / "v.parquet", ["e"], text_col="text")
    with pytest.raises(TableError, match=r"name the output \.parquet"):
        embed_file(be, src, tmp_path / "v.csv", ["e"], text_col="body")
    from backend.results import RoleError

    with pytest.raises(RoleError, match="p scores pairs only"):
        embed_file(be, src, tmp_path / "v.parquet", ["p"], text_col="body")
    plain = tmp_path / "plain.parquet"
    CORPUS.to_parquet(plain)
    with pytest.raises(TableError, match="holds no embedded corpus"):
        load_embedded_corpus(plain)


def test_a_txt_corpus_and_a_stopped_embedding_resumes_to_the_same_vectors(tmp_path, be):
    from backend.jobs import StopRequested

    src = tmp_path / "c.txt"
    src.write_text("\n".join(f"text {i} {'abc' * (i % 4)}" for i in range(50)) + "\n", encoding="utf-8")
    embed_file(be, src, tmp_path / "full.parquet", ["e"], chunk_rows=8).run(be)
    n = [0]
    with pytest.raises(StopRequested):
        embed_file(be, src, tmp_path / "v.parquet", ["e"], chunk_rows=8).run(
            be, should_stop=lambda: (n.__setitem__(0, n[0] + 1) or n[0] > 6))
    res = embed_file(be, src, tmp_path / "v.parquet", ["e"], chunk_rows=8, resume=True).run(be)
    assert res.resumed_from > 0 and res.rows == 50
    a, b = load_embedded_corpus(tmp_path / "v.parquet"), load_embedded_corpus(tmp_path / "full.parquet")
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert list(a.texts) == [f"text {i} {'abc' * (i % 4)}".strip() for i in range(50)]  # lines are stripped


def test_embed_texts_gives_an_in_memory_corpus(be):
    c = embed_texts(be, "e", ["abc", "", "bad"], labels=["x", "y", "z"])
    assert c.vectors.shape == (3, 8) and c.valid.tolist() == [True, False, True] and c.labels.tolist() == ["x", "y", "z"]
    assert c.config_id == be.model_config("e").config_id and c.corpus_id


@pytest.mark.slow
def test_embed_cli_with_the_real_word_vectors(tmp_path, capsys):
    from backend.cli import main

    src = tmp_path / "c.csv"
    pd.DataFrame({"text": ["a cat sleeps", "", "qzxv blorp", "the dog runs"], "topic": list("abcd")}).to_csv(src, index=False)
    assert main(["embed", str(src), str(tmp_path / "v.parquet"), "--models", "w2v", "--quiet"]) == 0
    assert "texts without a vector (the warnings_<model> column says why): w2v: 2" in capsys.readouterr().err
    c = load_embedded_corpus(tmp_path / "v.parquet", "w2v")
    assert c.vectors.shape == (4, 50) and c.valid.tolist() == [True, False, False, True]
    np.testing.assert_allclose(np.linalg.norm(c.vectors[[0, 3]], axis=1), 1.0, rtol=1e-5)
    assert main(["embed", str(src), str(tmp_path / "v.csv"), "--models", "w2v"]) == 2
