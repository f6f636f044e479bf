"""CodeContests (DeepMind, Li et al. 2022): a problem description judged on stdin/stdout tests.

Hub layout (deepmind/code_contests, parquet): ``name``, ``description``, ``public_tests`` /
``private_tests`` / ``generated_tests`` (each ``{"input": [...], "output": [...]}``), ``solutions``
(``{"language": [...], "solution": [...]}``; language 3 = PYTHON3), ``time_limit``
(``{"seconds", "nanos"}``), ``memory_limit_bytes``, ``difficulty``, ``source``.  ``item.test`` holds all
three test sets, in that order, for the stdio scorer (mode ``codecontests``: whitespace-normalized)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item

PYTHON3 = 3  # code_contests Problem.Solution.Language enum: 1 PYTHON (2), 2 CPP, 3 PYTHON3, 4 JAVA


def _tests(rec: Mapping[str, Any], key: str) -> tuple[list[str], list[str]]:
    tests = rec.get(key) or {}
    inputs, outputs = list(tests.get("input") or []), list(tests.get("output") or [])
    if len(inputs) != len(outputs):
        raise ValueError(f"codecontests problem {rec.get('name')!r}: {key} has {len(inputs)} inputs but "
                         f"{len(outputs)} outputs (they must pair up)")
    return inputs, outputs


@adapter("codecontests")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    inputs: list[str] = []
    outputs: list[str] = []
    for key in ("public_tests", "private_tests", "generated_tests"):
        a, b = _tests(rec, key)
        inputs += a
        outputs += b
    tl = rec.get("time_limit") or {}
    time_s = float(tl.get("seconds") or 0) + float(tl.get("nanos") or 0) / 1e9
    sols = rec.get("solutions") or {}
    py = [s for lang, s in zip(sols.get("language") or [], sols.get("solution") or [], strict=False) if lang == PYTHON3]
    doc = {"name": rec["name"], "description": rec["description"], "difficulty": rec.get("difficulty"),
           "source": rec.get("source"), "time_limit_s": time_s or None,
           "memory_limit_mb": int(rec.get("memory_limit_bytes") or 0) // 2**20 or None,
           "public_tests": len(_tests(rec, "public_tests")[0]),
           "solution": py[0] if py else ""}
    test = {"mode": "codecontests", "inputs": inputs, "outputs": outputs}
    return Item(id=str(rec["name"]) or str(i), doc=doc, reference=py[0] if py else "",
                test=json.dumps(test))
