"""BigCodeBench scoring: the completion plus the task's unittest ``TestCases``, run in the sandbox.

The verdict follows ``bigcodebench.eval.untrusted_check`` (v0.1.x): the program is the solution
(``complete_prompt + completion``, as bigcodebench's codegen saves it for a base model) then the
task's ``test``; every test of ``TestCases`` is run with a ``unittest.TestResult``, and the task passes
only if no test failed or errored (skips count as passes there too).  Like its ``unsafe_execute``, the
program's standard streams are swallowed, ``TZ`` is UTC, the module namespace has ``os``, ``sys`` and
``environ``, and the time limit is its own: 240 s per task (``BIGCODEBENCH_TIMEOUT_PER_TASK``'s
default).  Address space is bounded at 8 GiB, not its 30 GiB, which would let two workers exhaust a small
machine.  Its ``reliability_guard`` also sets ``builtins.exit = None``; the sandbox would call that
tampering, and it already contains what the guard protects against.

A task whose libraries (``libs`` and the test's own imports) cannot be imported in the sandbox cannot
run here: it gets no pass@k (it is not the model's failure, so pass@k is the mean over the tasks that
ran), its detail says ``cannot run: <lib> not installed``, and ``tasks_unrunnable`` counts them.
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np

from specbench.scoring.code import PASS_AT_K, estimate_pass_at_k, extract_code
from specbench.scoring.registry import Corpus, scorer
from specbench.types import Item

if TYPE_CHECKING:
    from specbench.sandbox import ExecResult, Limits

TIMEOUT_PER_TASK_S = 240.0  # bigcodebench eval TIMEOUT_LIMIT, the default of BIGCODEBENCH_TIMEOUT_PER_TASK
# bigcodebench evaluate's max_as_limit is 30 GiB; 8 GiB here, since two workers at 30 GiB could exhaust a
# small machine's memory (and others' runs with it), and every canonical solution fits in it (see the notes)
MEMORY_MB = 8 * 1024
PROBE_TIMEOUT_S = 300.0  # one program importing every library the scored tasks need
_PROBE_MARK = "specbench-import-probe "

# What bigcodebench's unsafe_execute + reliability_guard set up around the program (minus
# builtins.exit = None, which the sandbox reports as tampering): UTC, one OpenMP thread, the names it
# puts in the module namespace, and stdout / stderr / stdin swallowed by a write-only buffer.
_PRELUDE = '''\
import os, sys, io as _bcb_io, time as _bcb_time
os.environ["TZ"] = "UTC"
_bcb_time.tzset()
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
environ = os.environ
__file__ = "__test__.py"
class _BcbWriteOnly(_bcb_io.StringIO):
    def read(self, *a, **k): raise OSError
    def readline(self, *a, **k): raise OSError
    def readlines(self, *a, **k): raise OSError
    def readable(self, *a, **k): return False
sys.stdout = sys.stderr = sys.stdin = _BcbWriteOnly()
'''
# After the solution and the tests: run TestCases as untrusted_check does and fail on any issue.
_EPILOGUE = '''
import unittest as _bcb_unittest
sys.modules["__test__"] = sys.modules[__name__]
_bcb_result = _bcb_unittest.TestResult()
_bcb_unittest.TestLoader().loadTestsFromTestCase(TestCases).run(_bcb_result)
sys.stdout, sys.stderr, sys.stdin = sys.__stdout__, sys.__stderr__, sys.__stdin__
_bcb_issues = _bcb_result.failures + _bcb_result.errors
for _bcb_test, _bcb_trace in _bcb_issues:
    print(f"--- {_bcb_test.id().split('.')[-1]}\\n{_bcb_trace[-600:]}", file=sys.stderr)
if _bcb_issues:
    raise AssertionError(f"{len(_bcb_issues)} of {_bcb_result.testsRun} tests failed or errored: "
                         + ", ".join(t.id().split(".")[-1] for t, _ in _bcb_issues)
                         + "; first: " + [ln for ln in _bcb_issues[0][1].splitlines() if ln.strip("* ")][-1][:300])
'''


def default_limits() -> Limits:
    """bigcodebench's per-task time limit (wall and CPU: its timeout + 1 s), address space MEMORY_MB."""
    from specbench.sandbox import Limits

    return Limits(wall_s=TIMEOUT_PER_TASK_S + 1, cpu_s=TIMEOUT_PER_TASK_S + 1, memory_mb=MEMORY_MB,
                  max_procs=256, disk_mb=512)


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def solution(item: Item, completion: str) -> str:
    """The code bigcodebench evaluates: ``complete_prompt + completion`` (its codegen for base models).

    The completion is first reduced to its code (``extract_code``, as HumanEval).  When that code
    defines ``def <entry_point>`` itself (a chat model rewriting the function), it follows the prompt on
    a line of its own: the prompt's imports come first and its docstring-only stub is replaced."""
    prompt = str(item.doc.get("complete_prompt", ""))
    code = extract_code(completion, item.entry_point)
    if item.entry_point and _defines(code, item.entry_point):
        return prompt + ("" if prompt.endswith("\n") else "\n") + textwrap.dedent(code)
    return prompt + code


def build_program(item: Item, completion: str) -> str:
    """The sandbox program of one completion: prelude, solution, the task's tests, the test runner."""
    if item.test is None or "TestCases" not in item.test:
        raise ValueError(f"item {item.id}: BigCodeBench scoring needs a test defining class TestCases")
    return _PRELUDE + solution(item, completion) + "\n" + item.test + "\n" + _EPILOGUE


def required_modules(item: Item) -> list[str]:
    """Top-level modules the task needs: its ``libs`` and what its test imports (sorted)."""
    mods = {str(m).split(".")[0] for m in item.doc.get("libs") or []}
    try:
        for node in ast.walk(ast.parse(item.test or "")):
            if isinstance(node, ast.Import):
                mods.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods.add(node.module.split(".")[0])
    except SyntaxError:
        pass  # the run itself will report it
    return sorted(m for m in mods if m)


# module -> None (imports in the sandbox) or why not; filled once per process by _probe
_IMPORTABLE: dict[str, str | None] = {}


def _probe(modules: list[str], limits: Limits) -> None:
    """Import each module not yet known, in one sandbox program, and remember which fail and why."""
    todo = sorted(set(modules) - set(_IMPORTABLE))
    if not todo:
        return
    from specbench.sandbox import Limits, run_program

    program = (
        "import importlib, json, sys\n_r = {}\n"
        f"for _m in {todo!r}:\n"
        "    try:\n        importlib.import_module(_m)\n"
        "    except BaseException as _e:\n"
        "        _missing = isinstance(_e, ModuleNotFoundError) and (_e.name or '').split('.')[0] == _m\n"
        "        _r[_m] = 'not installed' if _missing else f'not importable ({type(_e).__name__}: {_e})'[:200]\n"
        f"print({_PROBE_MARK!r} + json.dumps(_r), file=sys.__stdout__, flush=True)\n")
    probe_limits = Limits(wall_s=PROBE_TIMEOUT_S, cpu_s=PROBE_TIMEOUT_S, memory_mb=limits.memory_mb,
                          max_procs=limits.max_procs, disk_mb=limits.disk_mb)
    result = run_program(program, probe_limits)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith(_PROBE_MARK)), None)
    if line is None:  # the probe itself failed: ask the parent's interpreter (the sandbox runs the same one)
        import importlib.util

        for m in todo:
            _IMPORTABLE[m] = None if importlib.util.find_spec(m) is not None else "not installed"
        return
    failed = json.loads(line[len(_PROBE_MARK):])
    for m in todo:
        _IMPORTABLE[m] = failed.get(m)


def unrunnable_reason(item: Item, limits: Limits | None = None) -> str | None:
    """``cannot run: <lib> not installed`` (or not importable) when a library the task needs is missing."""
    mods = required_modules(item)
    _probe(mods, limits or default_limits())
    bad = [f"{m} {_IMPORTABLE[m]}" for m in mods if _IMPORTABLE.get(m)]
    return f"cannot run: {'; '.join(bad)}" if bad else None


def _unrunnable_counts(items: list[Item], details: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[1.0 if d.get("cannot_run") else 0.0] for d in details]).reshape(-1, 1)


UNRUNNABLE = Corpus(
    metrics=("tasks_unrunnable",),
    value=lambda items, details: {"tasks_unrunnable": float(_unrunnable_counts(items, details).sum())},
    counts=_unrunnable_counts,
    reduce=lambda sums: {"tasks_unrunnable": np.asarray(sums)[..., 0]},
)


@scorer("bigcodebench_pass_at_k", metrics=["pass_at_1", "pass_at_10", "pass_at_100", "tasks_unrunnable"],
        needs="texts", corpus=UNRUNNABLE, sandboxed=True)
def bigcodebench_pass_at_k(items: list[Item], outputs: list[list[str]], limits: Limits | None = None,
                           workers: int | None = None) -> list[tuple[str, dict[str, float], dict[str, Any]]]:
    """Per task pass@k (k <= n) over the tasks whose libraries import here; the others are counted apart."""
    from specbench.sandbox import run_programs

    limits = limits or default_limits()
    reasons = [unrunnable_reason(item, limits) for item in items]
    programs: list[str] = []
    spans: list[tuple[int, int]] = []
    build_errors: dict[int, str] = {}
    for i, (item, outs) in enumerate(zip(items, outputs, strict=True)):
        start = len(programs)
        if reasons[i] is None:
            try:
                programs += [build_program(item, o) for o in outs]
            except ValueError as exc:  # a malformed task fails alone, with its reason
                build_errors[i] = str(exc)
        spans.append((start, len(programs)))
    results: list[ExecResult] = run_programs(programs, limits=limits, workers=workers) if programs else []
    scored = []
    for i, ((a, b), item) in enumerate(zip(spans, items, strict=True)):
        code = solution(item, outputs[i][0]) if outputs[i] else ""
        if reasons[i] is not None:
            scored.append((code, {}, {"cannot_run": reasons[i], "libs": required_modules(item)}))
            continue
        n = len(outputs[i])
        runs = results[a:b]
        c = sum(r.passed for r in runs)
        scores = {f"pass_at_{k}": float(estimate_pass_at_k([n], [c], k)[0]) for k in PASS_AT_K if k <= n}
        detail: dict[str, Any] = {"status": [r.status for r in runs] or ["failed"], "n": n, "c": c,
                                  "cannot_run": ""}
        first_fail = next((r for r in runs if not r.passed), None)
        if i in build_errors:
            detail["stderr"] = build_errors[i]
        elif first_fail is not None:
            detail["stderr"] = (first_fail.stderr or first_fail.detail)[-500:]
        scored.append((code, scores, detail))
    return scored
