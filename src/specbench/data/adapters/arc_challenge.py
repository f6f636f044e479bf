"""ARC-Challenge (allenai/ai2_arc, or llm-foundry's conversion): science multiple choice."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import LETTERS, adapter
from specbench.types import Item


@adapter("arc_challenge")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    if "question" in rec:  # allenai/ai2_arc
        texts, labels = list(rec["choices"]["text"]), list(rec["choices"]["label"])
        question, answer_key, item_id = rec["question"], rec["answerKey"], rec["id"]
    else:  # llm-foundry: query "Question: ...", choices, gold
        texts = list(rec["choices"])
        labels = list(LETTERS[: len(texts)])  # the conversion dropped the labels
        question = rec["query"].removeprefix("Question: ").removesuffix("\nAnswer:")
        answer_key, item_id = labels[int(rec["gold"])], f"{split}/{i}"
    gold = labels.index(answer_key)
    doc = {"id": item_id, "question": question, "choices": {"text": texts, "label": labels},
           "answerKey": answer_key}
    return Item(id=item_id, doc=doc, reference=texts[gold], choices=texts, gold=gold)
