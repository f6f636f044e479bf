"""MBPP (google-research-datasets/mbpp, full or sanitized): write a function that passes asserts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item


@adapter("mbpp")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    # full config: text, code, test_list, test_setup_code; sanitized: prompt, test_imports
    text = rec["text"] if "text" in rec else rec["prompt"]
    setup = rec.get("test_setup_code") or "\n".join(rec.get("test_imports") or [])
    tests = list(rec["test_list"])
    doc = {"task_id": rec["task_id"], "text": text, "code": rec["code"], "test_list": tests,
           "test_setup_code": setup, "challenge_test_list": list(rec.get("challenge_test_list") or [])}
    test = "\n".join(([setup.strip()] if setup.strip() else []) + tests)
    return Item(id=str(rec["task_id"]), doc=doc, reference=rec["code"], test=test)
