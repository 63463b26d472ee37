"""Top-1 accuracy of match rows against a label column, and the guess of which columns hold the labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.files.match_eval import ACCURACY_COLUMNS, guess_label_columns, normalise_label, top1_accuracy

CORPUS_LABELS = ["refund", "login", "delivery"]


def _rows(model: str, questions: list[tuple[str | None, list[int] | None]], rerank: list[list[int]] | None = None):
    """Match rows as Matcher.match gives them: per question its ranked corpus rows, or one row without a match."""
    rows = []
    for q, (gold, ranked) in enumerate(questions):
        if ranked is None:
            rows.append({"intent": gold, "query": f"q{q}", "model": model, "rank": np.nan, "corpus_row": np.nan,
                         "rerank_rank": np.nan})
            continue
        for r, c in enumerate(ranked, start=1):
            rr = rerank[q].index(c) + 1 if rerank else np.nan
            rows.append({"intent": gold, "query": f"q{q}", "model": model, "rank": float(r), "corpus_row": float(c),
                         "rerank_rank": float(rr)})
    return pd.DataFrame(rows)


def test_top1_accuracy_counts_each_question_once_per_model():
    good = _rows("a", [("refund", [0, 1]), ("login", [1, 2]), ("delivery", [0, 2])])
    bad = _rows("b", [("refund", [1, 0]), ("login", [0, 1]), ("delivery", [2, 0])])
    acc = top1_accuracy(pd.concat([good, bad]), CORPUS_LABELS, "intent")
    assert list(acc.columns) == ACCURACY_COLUMNS
    assert acc["model"].tolist() == ["a", "b"]  # best first
    assert acc["questions"].tolist() == [3, 3] and acc["answerable"].tolist() == [3, 3]
    assert acc["correct"].tolist() == [2, 1]
    assert acc["accuracy"].tolist() == pytest.approx([2 / 3, 1 / 3])


def test_accuracy_after_rerank_reads_the_rerank_rank():
    rows = _rows("a", [("refund", [1, 0]), ("login", [0, 1])], rerank=[[0, 1], [1, 0]])
    assert top1_accuracy(rows, CORPUS_LABELS, "intent", "rank")["correct"].tolist() == [0]
    after = top1_accuracy(rows, CORPUS_LABELS, "intent", "rerank_rank")
    assert after["correct"].tolist() == [2] and after["accuracy"].tolist() == [1.0]


def test_an_unmatched_question_is_a_miss_and_an_unlabelled_one_is_left_out():
    rows = _rows("a", [("refund", None), ("login", [1]), (None, [2]), ("  ", [0])])
    acc = top1_accuracy(rows, CORPUS_LABELS, "intent").iloc[0]
    assert (acc["questions"], acc["correct"], acc["unmatched"]) == (2, 1, 1)
    assert acc["accuracy"] == pytest.approx(0.5)


def test_labels_are_compared_as_text_and_unknown_labels_are_not_answerable():
    rows = _rows("a", [(1.0, [0]), (2, [1]), ("x", [2])])
    acc = top1_accuracy(rows, ["1", " 2 ", "3"], "intent").iloc[0]
    assert (acc["questions"], acc["answerable"], acc["correct"]) == (3, 2, 2)
    assert normalise_label(3.0) == "3" and normalise_label(float("nan")) is None and normalise_label(" a ") == "a"


def test_labels_that_are_the_corpus_texts_work_too():
    texts = ["How do I get a refund?", "I cannot log in", "Where is my parcel?"]
    rows = _rows("a", [(texts[0], [0, 2]), (texts[2], [1, 2])])
    assert top1_accuracy(rows, texts, "intent")["correct"].tolist() == [1]


def test_no_labels_give_an_empty_table_and_a_missing_column_is_named():
    rows = _rows("a", [(None, [0])])
    empty = top1_accuracy(rows, CORPUS_LABELS, "intent")
    assert empty.empty and list(empty.columns) == ACCURACY_COLUMNS
    with pytest.raises(KeyError, match="'gold'"):
        top1_accuracy(rows, CORPUS_LABELS, "gold")


def test_guess_label_columns():
    questions = pd.DataFrame({"query": ["a", "b", "c"], "intent": ["x", "y", "x"], "note": ["", "", ""]})
    corpus = pd.DataFrame({"intent": ["x", "y"], "text": ["X?", "Y?"]})
    assert guess_label_columns(questions, corpus, "query", "text") == ("intent", "intent")
    by_text = pd.DataFrame({"question": ["a", "b"], "faq": ["X?", "Y?"]})
    assert guess_label_columns(by_text, corpus, "question", "text") == ("faq", "text")
    # a shared column whose values do not match is no label
    other = pd.DataFrame({"query": ["a"], "intent": ["zzz"]})
    assert guess_label_columns(other, corpus, "query", "text") == (None, None)


def test_the_committed_faq_example_is_fully_labelled():
    from backend.files.io import FAQ_ZH

    questions = pd.read_csv(FAQ_ZH.with_name("faq_zh_questions.csv"))
    corpus = pd.read_csv(FAQ_ZH.with_name("faq_zh_corpus.csv"))
    assert (len(questions), len(corpus)) == (60, 30)
    assert guess_label_columns(questions, corpus, "query", "text") == ("intent", "intent")
    assert set(questions["intent"]) <= set(corpus["intent"])
