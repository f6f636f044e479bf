"""BigCodeBench (bigcode/bigcodebench): complete a library-heavy function; its unittest ``TestCases`` decide.

Records carry ``libs`` as the string of a Python list (``"['pandas', 'numpy']"``) on the hub and in the
upstream jsonl alike; it is parsed here once, so the scorer can tell a task whose libraries this machine
lacks ("cannot run") from a model's failure.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item

FIELDS = ("task_id", "complete_prompt", "instruct_prompt", "canonical_solution", "code_prompt", "test",
          "entry_point")


def parse_libs(value: Any, task_id: str) -> list[str]:
    """The task's ``libs`` as a list of module names (a list, or the string of one)."""
    libs = value
    if isinstance(value, str):
        try:
            libs = ast.literal_eval(value)
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"bigcodebench task {task_id}: libs {value[:80]!r} is not a Python list literal "
                             f"(expected e.g. \"['pandas', 'numpy']\")") from exc
    if not isinstance(libs, list | tuple) or not all(isinstance(x, str) for x in libs):
        raise ValueError(f"bigcodebench task {task_id}: libs must be a list of module names, got {value!r:.80}")
    return list(libs)


@adapter("bigcodebench")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    missing = [k for k in (*FIELDS, "libs") if k not in rec]
    task_id = str(rec.get("task_id", f"{split}/{i}"))
    if missing:
        raise ValueError(f"bigcodebench record {i} ({task_id}): missing field(s) {', '.join(missing)}; "
                         f"a BigCodeBench record has {', '.join((*FIELDS, 'libs'))}")
    doc = {k: rec[k] for k in FIELDS}
    doc["libs"] = parse_libs(rec["libs"], task_id)
    return Item(id=task_id, doc=doc, reference=rec["canonical_solution"], test=rec["test"],
                entry_point=rec["entry_point"])
