"""MT-Bench questions in FastChat's layout (question_id, category, turns, reference): the hub's
lighteval/mt-bench and the shipped slice (FastChat's question.jsonl) alike.

HuggingFaceH4/mt_bench_prompts (``prompt`` for turns, a hashed ``prompt_id``) is read too, but its
ids are not FastChat's question ids, so its items would not line up with another source's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item


@adapter("mt_bench")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    turns = rec.get("turns") if rec.get("turns") is not None else rec.get("prompt")
    qid = rec["question_id"] if rec.get("question_id") is not None else rec["prompt_id"]
    reference = list(rec.get("reference") or [])
    doc = {"question_id": qid, "category": rec["category"], "turns": list(turns), "reference": reference}
    return Item(id=str(qid), doc=doc, reference=reference[0] if reference else "")
