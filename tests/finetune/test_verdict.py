"""The sentences a fine-tune and a learning curve end with, from their numbers (backend/finetune/verdict.py)."""

from __future__ import annotations

import re

import pytest

from backend.finetune.verdict import (
    KIND_NAMES,
    TEMPLATES,
    before_after,
    curve_metric,
    curve_verdicts,
    finetune_verdict,
)


def test_finetune_verdict_says_how_far_held_out_spearman_moved():
    v = finetune_verdict({"spearman": 79.25, "auc": 88.1, "n": 300}, {"spearman": 80.84, "auc": 89.0, "n": 300}, 1000)
    assert v.text() == "Fine-tuning on 1,000 pairs moved held-out Spearman from 79.2 to 80.8 (+1.6)."
    assert v.values["delta"] == pytest.approx(1.59)


def test_finetune_verdict_on_binary_labels_uses_auc_and_says_a_loss_as_a_loss():
    v = finetune_verdict({"auc": 90.0}, {"auc": 87.5}, 120, metric="auc")
    assert v.text() == "Fine-tuning on 120 pairs moved held-out ROC-AUC from 90.0 to 87.5 (-2.5)."


@pytest.mark.parametrize("before, after", [({"spearman": None}, {"spearman": 80.0}), ({}, {"spearman": 80.0}),
                                           ({"spearman": 70.0}, {"spearman": float("nan")})])
def test_finetune_verdict_is_none_without_both_numbers(before, after):
    assert finetune_verdict(before, after, 100) is None


def test_before_after_rows_hold_both_metrics_and_their_change():
    rows = before_after({"spearman": 79.25, "auc": 88.1}, {"spearman": 80.84, "auc": None})
    assert rows == [{"metric": "Spearman", "before": 79.25, "after": 80.84, "change": 1.59}]


# A curve as curve.csv gives it back (strings; an empty cell where a metric is undefined).
ROWS = [
    {"kind": "base", "n": "0", "spearman": "79.25", "auc": "88.0"},
    {"kind": "bi", "n": "100", "spearman": "79.0", "auc": "87.0"},
    {"kind": "bi", "n": "1000", "spearman": "80.45", "auc": "88.5"},
    {"kind": "bi", "n": "5231", "spearman": "82.0", "auc": "90.0"},
    {"kind": "cross", "n": "100", "spearman": "60.0", "auc": "80.0"},
    {"kind": "cross", "n": "1000", "spearman": "78.0", "auc": "86.0"},
    {"kind": "cross", "n": "5231", "spearman": "84.0", "auc": "91.0"},
    {"kind": "esim", "n": "100", "spearman": "10.0", "auc": "55.0"},
    {"kind": "esim", "n": "1000", "spearman": "", "auc": "60.0"},
    {"kind": "esim", "n": "5231", "spearman": "55.5", "auc": "70.0"},
]


def test_curve_verdicts_read_gains_catch_ups_and_shortfalls_off_the_rows():
    got = [v.text() for v in curve_verdicts(ROWS)]
    assert got == [
        "With 1,000 pairs the bi-encoder gains +1.2 Spearman over the untrained model (79.2 -> 80.5).",
        "The cross-encoder is below the untrained model with 1,000 pairs and catches up with 5,231 (84.0 against "
        "79.2).",
        # ESIM has no Spearman at 1,000 (an empty cell): its largest size is the reference
        "The ESIM model needs more than 5,231 pairs to catch up with the untrained model (55.5 against 79.2 with 5,231).",
    ]
    assert curve_verdicts(ROWS)[0].values["delta"] == pytest.approx(1.2)


def test_curve_verdicts_on_auc_and_without_an_untrained_row():
    assert curve_metric([{"kind": "bi", "n": 100, "spearman": None, "auc": 70.0}]) == "auc"
    assert curve_metric(ROWS) == "spearman"
    auc = [v.text() for v in curve_verdicts(ROWS, "auc")]
    assert auc[0] == "With 1,000 pairs the bi-encoder gains +0.5 ROC-AUC over the untrained model (88.0 -> 88.5)."
    assert auc[2].startswith("The ESIM model needs more than 5,231 pairs") and "(70.0 against 88.0 with 5,231)" in auc[2]
    no_base = [v.text() for v in curve_verdicts([r for r in ROWS if r["kind"] != "base"])]
    assert no_base[0] == "With 1,000 pairs the bi-encoder reaches held-out Spearman 80.5."
    assert len(no_base) == 3


def test_curve_verdicts_of_a_small_set_use_its_largest_size_and_name_kinds_as_told():
    rows = [{"kind": "base", "n": 0, "spearman": 50.0}, {"kind": "bi", "n": 100, "spearman": 52.0},
            {"kind": "bi", "n": 240, "spearman": 55.0}]
    (v,) = curve_verdicts(rows)
    assert v.text() == "With 240 pairs the bi-encoder gains +5.0 Spearman over the untrained model (50.0 -> 55.0)."
    assert "双塔" in v.text("{n}: {kind}", {"bi": "双塔"})
    assert curve_verdicts([]) == [] and curve_verdicts([{"kind": "base", "n": 0, "spearman": 50.0}]) == []


def test_every_template_and_kind_name_has_a_chinese_translation_with_the_same_fields():
    from ui.locale_zh import ZH

    field = re.compile(r"\{[^{}]*\}")
    for text in [*TEMPLATES.values(), *KIND_NAMES.values()]:
        assert text in ZH, text
        assert sorted(field.findall(ZH[text])) == sorted(field.findall(text)), text
