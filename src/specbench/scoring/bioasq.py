"""BioASQ Task B yes/no measures, as BioASQ's official evaluator computes them.

The reference is ``evaluation.EvaluatorTask1b`` of BioASQ/Evaluation-Measures (Phase B, since
BioASQ 5): ``AccuracyExactAnswersYesNo`` (the share of questions answered right),
``F1ExactAnswersYesNo`` for the label yes and for no (``2TP / (2TP + FP + FN)``, 0 when that
denominator is 0) and ``macroF1ExactAnswersYesNo``, their mean -- BioASQ's ranking measure for
yes/no questions since BioASQ 7, because most answers are yes and accuracy rewards always saying so.
That is scikit-learn's ``f1_score(labels=["yes", "no"], zero_division=0)`` (per label, and
``average="macro"``), which computes the point estimate here; the per-item confusion counts give
the bootstrap stderr (``scoring.corpus_metrics`` checks that both agree).

The answer is the choice with the higher log-likelihood (lm-eval's ``acc``), so every question
is answered, as a Phase B submission must.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from specbench.scoring.registry import Corpus, scorer
from specbench.scoring.text import mc_predictions
from specbench.types import ChoiceScores, Item

LABELS = ("yes", "no")
F1S = ("f1_macro", "f1_yes", "f1_no")


def _value(items: list[Item], details: list[dict[str, Any]]) -> dict[str, float]:
    from sklearn.metrics import f1_score

    gold, pred = [d["gold"] for d in details], [d["pred"] for d in details]
    per_label = f1_score(gold, pred, labels=list(LABELS), average=None, zero_division=0)
    return {"f1_yes": float(per_label[0]), "f1_no": float(per_label[1]),
            "f1_macro": float(f1_score(gold, pred, labels=list(LABELS), average="macro", zero_division=0))}


def _counts(items: list[Item], details: list[dict[str, Any]]) -> np.ndarray:
    """Per item: [tp_yes, tp_no, fp_yes, fp_no, fn_yes, fn_no]."""
    rows = np.zeros((len(details), 6))
    for row, d in zip(rows, details, strict=True):
        g, p = LABELS.index(d["gold"]), LABELS.index(d["pred"])
        if g == p:
            row[g] = 1
        else:
            row[2 + p] = 1
            row[4 + g] = 1
    return rows


def _reduce(sums: np.ndarray) -> dict[str, np.ndarray]:
    tp, fp, fn = sums[..., 0:2], sums[..., 2:4], sums[..., 4:6]
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(np.broadcast(tp, denom).shape), where=denom > 0)
    return {"f1_yes": f1[..., 0], "f1_no": f1[..., 1], "f1_macro": f1.mean(axis=-1)}


@scorer("bioasq_yesno", metrics=["acc", *F1S], needs="choice_logprobs", corpus=Corpus(F1S, _value, _counts, _reduce))
def bioasq_yesno(item: Item, scores: ChoiceScores):
    if list(item.choices or []) != list(LABELS) or item.reference not in LABELS:
        raise ValueError(f"item {item.id}: scorer 'bioasq_yesno' needs the choices yes, no and a yes/no answer "
                         "(the bioasq adapter's items)")
    pred = LABELS[mc_predictions(item, scores)[0]]
    return pred, {"acc": float(pred == item.reference)}, {"gold": item.reference, "pred": pred}
