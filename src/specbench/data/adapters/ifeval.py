"""IFEval (google/IFEval): verifiable instructions; no gold answer, the checks are the instructions.

``reference`` is the prompt's instruction ids joined by ", " (what the checkers verify), so the
per-sample table shows what was asked; the scorer reads ``doc`` (key, prompt, instruction_id_list,
kwargs: the fields lm-eval's ifeval ``process_results`` reads), never ``reference``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item


@adapter("ifeval")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    doc = {"key": rec["key"], "prompt": rec["prompt"],
           "instruction_id_list": list(rec["instruction_id_list"]), "kwargs": list(rec["kwargs"])}
    return Item(id=str(rec["key"]), doc=doc, reference=", ".join(doc["instruction_id_list"]))
