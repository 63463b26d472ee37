"""One sentence from a fine-tune's numbers, and from a learning curve's.

After a fine-tune: "Fine-tuning on 1,000 pairs moved held-out Spearman from 79.3 to 80.8 (+1.5)." After a learning
curve: how much each trained model gains over the untrained encoder at 1,000 pairs (or the largest size trained),
and, for a model still below it there, how many pairs it needs to catch up ("more than 5,231" when no size reached
it). Like :mod:`backend.lab.verdicts`, a verdict is a template and its values: the dashboard translates the
template (every one is in :data:`TEMPLATES`; ``tests/finetune/test_verdict.py`` requires a Chinese translation of
each) and names the model kinds in the interface language (:data:`KIND_NAMES`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backend.lab.verdicts import Verdict as LabVerdict

#: every sentence, by id; filled with str.format (keep the placeholders in translations).
TEMPLATES: dict[str, str] = {
    "finetune_moved": "Fine-tuning on {n} pairs moved held-out {metric} from {before:.1f} to {after:.1f} "
                      "({delta:+.1f}).",
    "curve_gain": "With {n} pairs the {kind} gains {delta:+.1f} {metric} over the untrained model "
                  "({base:.1f} -> {value:.1f}).",
    "curve_catches_up": "The {kind} is below the untrained model with {below} pairs and catches up with {n} "
                        "({value:.1f} against {base:.1f}).",
    "curve_short": "The {kind} needs more than {n} pairs to catch up with the untrained model ({value:.1f} against "
                   "{base:.1f} with {n}).",
    "curve_no_base": "With {n} pairs the {kind} reaches held-out {metric} {value:.1f}.",
}
#: what a person calls each kind of model a curve trains.
KIND_NAMES: dict[str, str] = {"bi": "bi-encoder", "cross": "cross-encoder", "esim": "ESIM model"}
#: how a metric is named in a sentence.
METRIC_NAMES: dict[str, str] = {"spearman": "Spearman", "auc": "ROC-AUC"}
#: the curve's reference size: the point a person asks about ("is labelling 1,000 pairs worth it?").
REFERENCE_N = 1000


@dataclass(frozen=True)
class Verdict(LabVerdict):
    """A lab verdict (:class:`backend.lab.verdicts.Verdict`: a template id and its values) whose templates are this
    module's and whose ``kind`` value (a key of :data:`KIND_NAMES`) is named by :meth:`text`."""

    @property
    def template(self) -> str:
        """The English template."""
        return TEMPLATES[self.id]

    def text(self, template: str | None = None, kind_names: Mapping[str, str] | None = None) -> str:
        """The sentence: ``template`` (a translation of :attr:`template`) or the English one, filled in, with the
        kind named by ``kind_names`` (a translation of :data:`KIND_NAMES`) or in English."""
        values = dict(self.values)
        if "kind" in values:
            values["kind"] = (kind_names or KIND_NAMES).get(values["kind"], values["kind"])
        return (template or self.template).format(**values)


def _number(x: Any) -> float | None:
    """A finite float from a row's cell (curve.csv gives strings, empty when a metric is undefined), else None."""
    if x is None or x == "":
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def finetune_verdict(before: Mapping[str, Any], after: Mapping[str, Any], n_train: int,
                     metric: str = "spearman") -> Verdict | None:
    """"Fine-tuning on N pairs moved held-out <metric> from X to Y", or None when either number is missing.

    Parameters
    ----------
    before, after : dict
        Held-out metrics of the base model and the saved one (:attr:`backend.finetune.bi.FinetuneResult.before`).
    n_train : int
        Training pairs.
    metric : {"spearman", "auc"}
        The metric the fine-tune was judged on (``facts["metric"]``).
    """
    b, a = _number(before.get(metric)), _number(after.get(metric))
    if b is None or a is None:
        return None
    return Verdict("finetune_moved", {"n": f"{n_train:,}", "metric": METRIC_NAMES.get(metric, metric),
                                      "before": b, "after": a, "delta": a - b})


def before_after(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows ``metric, before, after, change`` for each metric measured both times (Spearman, then ROC-AUC; x100)."""
    rows = []
    for metric, name in METRIC_NAMES.items():
        b, a = _number(before.get(metric)), _number(after.get(metric))
        if b is not None and a is not None:
            rows.append({"metric": name, "before": b, "after": a, "change": round(a - b, 2)})
    return rows


def curve_metric(rows: Sequence[Mapping[str, Any]]) -> str:
    """``spearman`` when the curve has Spearman values (graded labels), else ``auc``."""
    return "spearman" if any(_number(r.get("spearman")) is not None for r in rows) else "auc"


def curve_verdicts(rows: Sequence[Mapping[str, Any]], metric: str | None = None) -> list[Verdict]:
    """One sentence per trained kind (bi, cross, esim, in that order), read off a learning curve's rows.

    At the reference size (1,000 pairs when the kind was trained on them, else its largest size): a gain over the
    untrained model (``n = 0``, kind ``base``) is said as a gain; otherwise the smallest size where it catches up,
    or that it needs more pairs than the largest size trained. Without an untrained row, each kind's value at the
    reference size.

    Parameters
    ----------
    rows : sequence of dict
        ``kind``, ``n``, ``spearman``, ``auc`` (:func:`backend.finetune.curve.learning_curve`'s rows; strings as
        read back from ``curve.csv`` are accepted).
    metric : {"spearman", "auc"}, optional
        Default: :func:`curve_metric`.
    """
    metric = metric or curve_metric(rows)
    name = METRIC_NAMES.get(metric, metric)
    base = next((_number(r.get(metric)) for r in rows if r.get("kind") == "base"), None)
    out: list[Verdict] = []
    for kind in KIND_NAMES:
        points = sorted((int(r["n"]), v) for r in rows if r.get("kind") == kind
                        and (v := _number(r.get(metric))) is not None)
        if not points:
            continue
        at = dict(points)
        ref = REFERENCE_N if REFERENCE_N in at else points[-1][0]
        value = at[ref]
        if base is None:
            out.append(Verdict("curve_no_base", {"n": f"{ref:,}", "kind": kind, "metric": name, "value": value}))
        elif value >= base:
            out.append(Verdict("curve_gain", {"n": f"{ref:,}", "kind": kind, "metric": name, "base": base,
                                              "value": value, "delta": value - base}))
        else:
            caught = next(((n, v) for n, v in points if n > ref and v >= base), None)
            if caught is not None:
                out.append(Verdict("curve_catches_up", {"below": f"{ref:,}", "n": f"{caught[0]:,}", "kind": kind,
                                                        "base": base, "value": caught[1]}))
            else:
                last_n, last_v = points[-1]
                out.append(Verdict("curve_short", {"n": f"{last_n:,}", "kind": kind, "base": base,
                                                   "value": last_v}))
    return out


__all__ = ["KIND_NAMES", "METRIC_NAMES", "REFERENCE_N", "TEMPLATES", "Verdict", "before_after", "curve_metric", "curve_verdicts",
           "finetune_verdict"]
