"""HumanEval (openai/openai_humaneval): complete a function; its ``check`` tests decide."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item


@adapter("humaneval")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    doc = {k: rec[k] for k in ("task_id", "prompt", "canonical_solution", "test", "entry_point")}
    return Item(id=rec["task_id"], doc=doc, reference=rec["canonical_solution"],
                test=rec["test"], entry_point=rec["entry_point"])
