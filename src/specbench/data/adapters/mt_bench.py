"""MT-Bench questions (HuggingFaceH4/mt_bench_prompts): multi-turn prompts by category, with the
reference answer where one exists."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item


@adapter("mt_bench")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    reference = rec.get("reference") or [""]
    doc = {"question_id": rec["question_id"], "category": rec["category"], "turns": list(rec["turns"]),
           "reference": list(rec.get("reference") or [])}
    return Item(id=str(rec["question_id"]), doc=doc, reference=reference[0])
