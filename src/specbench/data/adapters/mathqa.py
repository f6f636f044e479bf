"""MathQA (regisss/math_qa, or the ToRA / Qwen harness's 1000-item test subset): five-way multiple choice.

Choices come from the ``options`` string (``"a ) 38 , b ) 27.675 , c ) 30 , ..."``), parsed as lm-eval's
``mathqa`` task's ``utils.doc_to_choice`` does (the test checks every slice record against it); the gold
is the index of ``correct`` in a-e (its ``doc_to_target``).  The harness's subset lower-cased the hub's
keys and renamed ``category`` to ``type``: they are mapped back, so a slice record and the hub's record of
the same problem give the same item.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item

HUB_FIELDS = ("Problem", "Rationale", "options", "correct", "annotated_formula", "linear_formula", "category")
_FROM_SLICE = {"problem": "Problem", "rationale": "Rationale", "type": "category"}
LABELS = "abcde"
# one option: a-d up to the next ", ", e up to the end (non-greedy, as lm-eval's pattern)
_OPTION = re.compile(r"[abcd] \) .*?, |e \) .*?$")


def parse_options(options: str) -> list[str]:
    """The choice texts of an ``options`` string: each match less its ``"x ) "`` label and trailing ``" ,"``."""
    return [found[4:].rstrip(" ,") for found in _OPTION.findall(options)]


@adapter("mathqa")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    doc = {_FROM_SLICE.get(k, k): v for k, v in rec.items()}
    missing = [k for k in ("Problem", "options", "correct") if k not in doc]
    if missing:
        raise ValueError(f"mathqa record {i}: lacks {', '.join(missing)} (hub records have {', '.join(HUB_FIELDS)})")
    choices = parse_options(doc["options"])
    correct = str(doc["correct"]).strip()
    if correct not in LABELS or LABELS.index(correct) >= len(choices):
        raise ValueError(f"mathqa record {i}: correct={correct!r} names no option of {doc['options']!r} "
                         f"({len(choices)} parsed; valid: a-e)")
    gold = LABELS.index(correct)
    doc = {**{k: doc.get(k) for k in HUB_FIELDS}, "choices": choices, "gold": gold}
    return Item(id=f"{split}/{i}", doc=doc, reference=choices[gold], choices=choices, gold=gold)
