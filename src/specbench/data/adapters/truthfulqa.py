"""TruthfulQA MC1 (truthfulqa/truthful_qa ``multiple_choice``, or TruthfulQA.csv): one true answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item


@adapter("truthfulqa")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    if "mc1_targets" in rec:  # truthfulqa/truthful_qa multiple_choice
        choices, labels = list(rec["mc1_targets"]["choices"]), list(rec["mc1_targets"]["labels"])
    else:  # TruthfulQA.csv: best answer + the incorrect answers (mc1 style)
        wrong = [s.strip() for s in rec["Incorrect Answers"].split(";") if s.strip()]
        choices = [rec["answer"].strip()] + [w for w in wrong if w != rec["answer"].strip()]
        labels = [1] + [0] * (len(choices) - 1)
    gold = labels.index(1)
    doc = {"question": rec["question"], "mc1_targets": {"choices": choices, "labels": labels}}
    return Item(id=f"{split}/{i}", doc=doc, reference=choices[gold], choices=choices, gold=gold)
