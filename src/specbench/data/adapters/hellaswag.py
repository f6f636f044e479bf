"""HellaSwag (Rowan/hellaswag): pick the ending, with lm-eval's text preprocessing."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item


def _clean(text: str) -> str:  # lm-eval hellaswag/utils.py preprocess
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


@adapter("hellaswag")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    ctx = rec["ctx_a"] + " " + rec["ctx_b"].capitalize()
    query = _clean(rec["activity_label"] + ": " + ctx)
    choices = [_clean(e) for e in rec["endings"]]
    if str(rec.get("label", "")).strip() == "":
        raise ValueError(f"hellaswag record {i} has no label (the test split is unlabelled)")
    gold = int(rec["label"])
    doc = {"query": query, "choices": choices, "gold": gold, "activity_label": rec["activity_label"],
           "ind": rec.get("ind")}
    return Item(id=f"{split}/{rec.get('ind', i)}", doc=doc, reference=choices[gold], choices=choices, gold=gold)
