"""The Batch page's match job: questions against an FAQ or corpus, per model the top k, reranked on request, with
each model's top-1 accuracy when the questions name their right answer.

One test runs the committed Chinese FAQ example with a real model (w2v, answered by w2v-zh: loads in seconds); the
others run stand-in models (``tests/fakes.py``) through a real Backend, so their numbers are known exactly.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from backend.files.io import FAQ_ZH
from backend.files.match import COLUMNS, RERANK_COLUMNS
from backend.files.match_eval import top1_accuracy
from tests.fakes import fake_backend, word_overlap, word_vec
from tests.ui.conftest import app, table_with, texts

QUESTIONS = "query,intent\nhow do I get a refund,refund\nI cannot log in to my account,login\n,login\nwhere is my parcel,delivery\n"
CORPUS = "intent,text\nrefund,refund my order please\nlogin,log in to my account\ndelivery,where is my parcel now\n"


@pytest.fixture
def fakes(monkeypatch):
    """The dashboard on stand-in models: encoder ``fe`` (hashed word counts), pair scorer ``fp`` (word overlap)."""
    from ui import state

    be = fake_backend(encoders={"fe": word_vec}, scorers={"fp": word_overlap})
    monkeypatch.setattr(state, "backend", lambda: be)
    return be


def _match_mode(**query):
    at = app("batch", **query)
    at.radio(key="batch_mode").set_value("match").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _upload(at, questions: bytes, corpus: bytes | None = None, name: str = "questions.csv"):
    at.file_uploader(key="match_questions_file").set_value((name, questions, "text/csv"))
    if corpus is not None:
        at.file_uploader(key="match_corpus_file").set_value(("faq.csv", corpus, "text/csv"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _selected(at, suffix: str):
    return next(s.value for s in at.selectbox if s.key and s.key.endswith(suffix))


def test_the_mode_switch_shows_the_match_widgets_and_keeps_the_pairs_job(fakes):
    at = app("batch", models=["fe"])
    assert at.radio(key="batch_mode").value == "pairs"
    assert [u.key for u in at.file_uploader] == ["batch_upload_file"]  # the pairs job, as before
    at.radio(key="batch_mode").set_value("match").run()
    assert not at.exception
    assert [u.key for u in at.file_uploader] == ["match_questions_file", "match_corpus_file"]
    assert at.button(key="match_example").label == "Use the Chinese FAQ example"
    assert any("Upload a questions file and an FAQ or corpus file" in i for i in texts(at.info))
    assert at.query_params.get("batch_mode") == "match"  # a link keeps the job


def test_the_chinese_faq_example_with_a_real_model_gives_k_ranked_matches_per_question_and_its_accuracy():
    at = _match_mode(models=["w2v"])
    at.button(key="match_example").click().run()
    assert (_selected(at, "_query"), _selected(at, "_text")) == ("query", "text")
    assert (_selected(at, "_label"), _selected(at, "_corpus_label")) == ("intent", "intent")  # guessed
    at.slider(key="match_k").set_value(3).run()
    at.button(key="match_run").click().run()
    assert not at.exception, [e.value for e in at.exception]

    out = at.session_state["match_result"]["frame"]
    corpus = pd.read_csv(FAQ_ZH.with_name("faq_zh_corpus.csv"))
    assert list(out.columns) == ["intent", *COLUMNS]  # the questions' own column first
    assert len(out) == 60 * 1 * 3  # questions x models x k
    assert set(out["model"]) == {"w2v-zh"}  # a Chinese FAQ is embedded by the Chinese variant, and the page says so
    assert any("w2v: embedded by w2v-zh" in c for c in texts(at.caption))
    ranks = out["rank"].to_numpy().reshape(60, 3)
    assert (ranks == [1, 2, 3]).all()
    scores = out["score"].to_numpy().reshape(60, 3)
    assert (np.diff(scores, axis=1) <= 1e-6).all() and np.isfinite(scores).all()
    rows = out["corpus_row"].astype(int)
    assert out["text"].tolist() == corpus["text"].iloc[rows].tolist()  # corpus_row names the FAQ shown

    shown = table_with(at, "corpus_row")
    assert len(shown) == 180 and {"query", "model", "rank", "text", "score"} <= set(shown.columns)
    download = at.download_button(key="match_download")
    assert "180" in download.label
    csv = pd.read_csv(io.BytesIO(at.session_state["match_result"]["csv"]), encoding="utf-8-sig")
    assert len(csv) == 180 and list(csv.columns) == list(out.columns)

    acc = top1_accuracy(out, corpus["intent"].tolist(), "intent").iloc[0]
    assert acc["questions"] == 60 and acc["answerable"] == 60
    assert acc["accuracy"] > 3 / 30  # far above choosing one of 30 FAQs at random
    verdict = texts(at.success)
    assert verdict == [f"w2v-zh puts the right answer first for {acc['correct']} of 60 questions "
                       f"({acc['accuracy']:.0%}), the best of 1 model(s)."]
    assert table_with(at, "top1_accuracy")["correct"].tolist() == [acc["correct"]]
    assert at.download_button(key="match_accuracy_download")


def test_rerank_empty_questions_and_k_above_the_corpus_size(fakes):
    at = _match_mode(models=["fe"])
    _upload(at, QUESTIONS.encode(), CORPUS.encode())
    at.selectbox(key="match_rerank").set_value("fp").run()
    at.button(key="match_run").click().run()
    assert not at.exception, [e.value for e in at.exception]

    out = at.session_state["match_result"]["frame"]
    assert list(out.columns) == ["intent", *COLUMNS, *RERANK_COLUMNS]
    # k = 5 on 3 texts: every text, ranked, and a note; the empty question keeps one row saying so
    assert any("Top k = 5 is more than the corpus's 3 texts" in i for i in texts(at.info))
    assert len(out) == 3 * 3 + 1
    empty = out[out["rank"].isna()]
    assert len(empty) == 1 and empty["warnings"].iloc[0] == "empty question: nothing to match"
    assert any("1 row(s) have no match" in w for w in texts(at.warning))
    matched = out[out["rank"].notna()]
    assert (matched["rank"].to_numpy().reshape(3, 3) == [1, 2, 3]).all()
    assert (np.sort(matched["rerank_rank"].to_numpy().reshape(3, 3), axis=1) == [1, 2, 3]).all()
    assert set(matched["reranked_by"]) == {"fp"}
    np.testing.assert_allclose(matched["rerank_score"], [word_overlap(q, x) for q, x in
                                                         zip(matched["query"], matched["text"], strict=True)], atol=1e-6)
    # word overlap puts each question's own FAQ first: 3 of 4 labelled questions (the empty one is a miss)
    acc = table_with(at, "top1_after_rerank")
    assert acc["questions"].tolist() == [4] and acc["top1_after_rerank"].tolist() == [0.75]
    assert any("Reranked by fp, fe's candidates have it first for 3 (75%)." in s for s in texts(at.success))
    assert at.download_button(key="match_download") and at.download_button(key="match_accuracy_download")


def test_a_questions_file_without_a_question_column_gets_an_error_and_a_picker(fakes):
    at = _match_mode(models=["fe"])
    rows = ["我想换一张绑定的银行卡", "花呗这个月的账单怎么还款", "退款一般多久能到我的账户", "怎样修改登录密码"]
    gbk = ("编号;类别\n" + "".join(f"{i};{q}\n" for i, q in enumerate(rows))).encode("gb18030")
    _upload(at, gbk, CORPUS.encode(), name="zh.csv")
    assert any("gb18030" in i for i in texts(at.info))  # the encoding is detected as on the pairs job
    assert any("Which column of zh.csv holds the questions?" in e for e in texts(at.error)), texts(at.error)
    assert all(b.key != "match_run" for b in at.button)
    # choosing the column clears the error and lets the match run
    next(s for s in at.selectbox if s.key and s.key.endswith("_query")).set_value("类别").run()
    assert not at.error and not at.exception
    at.button(key="match_run").click().run()
    assert len(at.session_state["match_result"]["frame"]) == len(rows) * 3  # k = 5 above the corpus's 3 texts


def test_an_empty_corpus_column_is_an_error_and_nothing_is_lost(fakes):
    at = _match_mode(models=["fe"])
    _upload(at, QUESTIONS.encode(), b"intent,text\nrefund,\nlogin,  \n")
    assert any("Column text of faq.csv has no text." in e for e in texts(at.error)), texts(at.error)
    assert all(b.key != "match_run" for b in at.button)
    assert at.session_state["match_questions"].name == "questions.csv"  # the questions stay


def test_question_columns_named_like_result_columns_are_kept_under_another_name():
    from ui.batch_match import own_columns

    frame = pd.DataFrame({"question": ["q"], "text": ["the right FAQ"], "score": [4], "intent": ["x"]})
    kept, renamed = own_columns(frame, "question")
    assert list(kept.columns) == ["question", "text_input", "score_input", "intent"]
    assert renamed == {"text": "text_input", "score": "score_input"}
    assert own_columns(frame, "text")[1] == {"score": "score_input"}  # the question column itself is never renamed
