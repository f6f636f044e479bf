"""APPS (Hendrycks et al. 2021): a problem statement, optional starter code, and its test cases.

Hub layout (codeparrot/apps, read from its parquet conversion): ``problem_id``, ``question``,
``solutions`` (JSON list of strings), ``input_output`` (JSON ``{"inputs": [...], "outputs": [...]}``,
plus ``fn_name`` for call-based problems), ``difficulty``, ``url``, ``starter_code``.  ``item.test`` is
the JSON the stdio scorer reads (mode ``apps``: APPS testing_util's comparison)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item


def _json(value: Any, what: str, pid: Any) -> Any:
    """Both layouts: a JSON string (the original) or an already decoded value."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return json.loads(value)
    except ValueError as e:
        raise ValueError(f"apps problem {pid}: '{what}' is not valid JSON ({e})") from e


@adapter("apps")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    pid = rec.get("problem_id", i)
    io = _json(rec.get("input_output"), "input_output", pid) or {}
    fn_name = io.get("fn_name") or None
    solutions = _json(rec.get("solutions"), "solutions", pid) or []
    doc = {"problem_id": pid, "question": rec["question"], "starter_code": rec.get("starter_code") or "",
           "difficulty": rec.get("difficulty", ""), "url": rec.get("url", ""), "fn_name": fn_name,
           "solution": solutions[0] if solutions else ""}
    test = {"mode": "apps", "inputs": io.get("inputs", []), "outputs": io.get("outputs", []), "fn_name": fn_name}
    return Item(id=str(pid), doc=doc, reference=solutions[0] if solutions else "", test=json.dumps(test),
                entry_point=fn_name)
