"""IFEval (google/IFEval): verifiable instructions; no reference, the checks are the instructions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item


@adapter("ifeval")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    doc = {"key": rec["key"], "prompt": rec["prompt"],
           "instruction_id_list": list(rec["instruction_id_list"]), "kwargs": list(rec["kwargs"])}
    return Item(id=str(rec["key"]), doc=doc, reference="")
