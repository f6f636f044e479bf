"""BigCodeBench: adapter, program assembly and the sandboxed verdict on real tasks of the shipped slice.

The reference is bigcodebench's own evaluation: canonical solutions (``complete_prompt +
canonical_solution``, what its codegen saves) pass, broken ones fail; a task whose libraries are
missing is "cannot run", counted apart and left out of pass@1.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from specbench.data import load_items
from specbench.data.adapters.bigcodebench import normalize
from specbench.registry import load_file
from specbench.registry.schema import DatasetConfig
from specbench.scoring import score
from specbench.scoring.bigcodebench import bigcodebench_pass_at_k, required_modules, solution
from specbench.types import Item

CONF = Path(__file__).resolve().parents[1] / "conf" / "datasets" / "bigcodebench.yaml"
DATASET = load_file(CONF, DatasetConfig)
ITEMS = {it.id: it for it in load_items(DATASET, offline=True).items}
# fast tasks (< 1 s each) whose libraries are specbench's own dependencies or the standard library
CORE = ["BigCodeBench/60", "BigCodeBench/90", "BigCodeBench/120", "BigCodeBench/210", "BigCodeBench/240",
        "BigCodeBench/330", "BigCodeBench/510", "BigCodeBench/570", "BigCodeBench/810", "BigCodeBench/990"]
BROKEN = "    return None\n"


def test_slice_items_and_prompt_fields():
    assert len(ITEMS) == 42
    item = ITEMS["BigCodeBench/0"]
    assert item.doc["libs"] == ["random", "itertools"] and item.entry_point == "task_func"
    assert "class TestCases" in item.test and item.reference == item.doc["canonical_solution"]
    assert solution(item, item.reference) == item.doc["complete_prompt"] + item.doc["canonical_solution"]


def test_bad_record_is_one_clear_line():
    rec = {k: "x" for k in ("task_id", "complete_prompt", "instruct_prompt", "canonical_solution", "code_prompt",
                            "test", "entry_point")}
    with pytest.raises(ValueError, match="missing field.*libs"):
        normalize(rec, 0, "v0.1.0_hf")
    with pytest.raises(ValueError, match="not a Python list literal"):
        normalize({**rec, "libs": "['pandas'"}, 0, "v0.1.0_hf")


def test_canonical_solutions_pass_and_broken_ones_fail():
    items = [ITEMS[t] for t in CORE]
    outputs = [[it.reference, BROKEN] for it in items]  # n = 2: canonical first, then a broken body
    for item, (_, scores, detail) in zip(items, bigcodebench_pass_at_k(items, outputs, workers=2), strict=True):
        assert detail["status"][0] == "passed", (item.id, detail)
        assert detail["status"][1] != "passed", (item.id, detail)
        assert scores == {"pass_at_1": 0.5} and detail["cannot_run"] == ""


def test_chat_style_answer_redefining_the_function_passes():
    item = ITEMS["BigCodeBench/330"]
    fenced = f"Here you go:\n```python\n{item.doc['code_prompt']}{item.reference}```\n"
    assert "def task_func" in solution(item, fenced).split('"""')[-1]
    _, scores, _ = bigcodebench_pass_at_k([item], [[fenced]], workers=1)[0]
    assert scores == {"pass_at_1": 1.0}


def test_a_task_needing_an_extra_library():
    """With the bigcodebench extra (Faker) the task is judged; without it (CI, a plain install) it cannot
    run, says why, and gets no score: either way something is asserted."""
    import importlib.util

    item = ITEMS["BigCodeBench/270"]
    assert "faker" in required_modules(item)
    (_, ok, ok_detail), (_, bad, _) = bigcodebench_pass_at_k([item, item], [[item.reference], [BROKEN]], workers=2)
    if importlib.util.find_spec("faker") is not None:
        assert ok == {"pass_at_1": 1.0} and bad == {"pass_at_1": 0.0}
    else:
        assert ok == bad == {} and ok_detail["cannot_run"] == "cannot run: faker not installed"


def test_unrunnable_tasks_are_counted_apart_and_not_failures():
    missing = Item(id="crafted/missing-lib", doc={**ITEMS["BigCodeBench/330"].doc, "libs": ["specbench_no_such_mod"]},
                   reference="", test=ITEMS["BigCodeBench/330"].test, entry_point="task_func")
    assert "specbench_no_such_mod" in required_modules(missing)
    items = [ITEMS["BigCodeBench/330"], ITEMS["BigCodeBench/510"], missing]
    if importlib.util.find_spec("tensorflow") is None:
        items.append(ITEMS["BigCodeBench/289"])
    outputs = [[items[0].reference], [BROKEN]] + [[it.reference] for it in items[2:]]
    report = score(DATASET, items, outputs)
    by_id = {s.id: s for s in report.samples}
    assert by_id["crafted/missing-lib"].detail["cannot_run"] == "cannot run: specbench_no_such_mod not installed"
    assert by_id["crafted/missing-lib"].scores == {}
    if "BigCodeBench/289" in by_id:
        assert by_id["BigCodeBench/289"].detail["cannot_run"] == "cannot run: tensorflow not installed"
    assert report.metrics["pass_at_1"] == 0.5  # one pass, one failure; the unrunnable tasks are not in it
    assert report.metrics["tasks_unrunnable"] == len(items) - 2
