"""Competitive-programming scoring (APPS, CodeContests): a program judged on its stdin/stdout test cases.

The sandbox runs one Python program per completion, so each completion becomes a *harness* program that
embeds the candidate's source and the problem's test cases: for every case it compiles and runs the
candidate with ``sys.stdin`` reading the case's input and ``sys.stdout`` captured (both real text
streams over bytes, so ``sys.stdin.buffer`` works too), catches ``SystemExit``, compares the output as
the reference judge does, and stops at the first failing case.  It prints a verdict line carrying a
per-program nonce; a completion passes only when the run succeeds *and* that line says all cases passed,
so a candidate that ends the process early (``os._exit(0)``) does not pass.

Comparison rules:

* ``apps``: APPS ``eval/testing_util.py`` (hendrycks/apps): standard-input problems go through its
  ladder of checks -- stripped whole-text equality (``custom_compare_``), line lists, stripped non-empty
  lines, float lists within ``np.allclose`` tolerances, sets of per-line token sets, the same with
  floats rounded to 3 places; call-based problems (``fn_name``; ``class Solution`` when the starter code
  has one) compare ``method(*inputs)`` (tuples as lists) with the output or its single wrapped element.
* ``codecontests``: whitespace-normalized equality (``output.split() == expected.split()``), over the
  public, private and generated tests together; a problem passes only if every test passes.

pass@k over a problem's n completions is scoring.code's unbiased estimator.  One difference from
testing_util: it wraps a standard-input program's body in a function ``code()`` (imports hoisted); here the
program runs as a module (``__name__ == "__main__"``), so ``if __name__ == "__main__":`` guards run too.
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

import numpy as np

from specbench.scoring.code import PASS_AT_K, estimate_pass_at_k, extract_code
from specbench.scoring.registry import scorer
from specbench.types import Item

if TYPE_CHECKING:
    from specbench.sandbox import Limits

APPS_TIMEOUT_S = 4.0  # APPS testing_util's per-case `timeout = 4`
CODECONTESTS_DEFAULT_TIME_S = 2.0  # when a problem states no time_limit
MAX_WALL_S = 120.0  # one completion's whole run, all its cases together
_VERDICT = "specbench-stdio-verdict"

# The harness: runs the candidate on each case, in this program's own process (the sandbox confines it).
_HARNESS = r'''
import io as _sb_io, json as _sb_json, math as _sb_math, sys as _sb_sys
_SB_CODE = {code!r}
_SB_CASES = _sb_json.loads({cases!r})
_SB_MODE = {mode!r}
_SB_FN = {fn!r}
_SB_PRELUDE = {prelude!r}

def _sb_floats(xs):
    return [float(x) for x in xs]

def _sb_close(a, b):  # np.allclose's rule: |a - b| <= atol + rtol * |b|
    return len(a) == len(b) and all(abs(x - y) <= 1e-8 + 1e-5 * abs(y) for x, y in zip(a, b))

def _sb_apps_stdio(out, exp):
    """APPS testing_util: its checks for one standard-input case, in its order."""
    lines = out.splitlines()
    if isinstance(exp, list):
        exp = "\n".join(exp)
    if "\n".join(lines).strip() == exp.strip() or "\n".join(x.strip() for x in lines).strip() == exp.strip():
        return True
    if lines == [exp]:
        return True
    exp_lines = [x.strip() for x in exp.split("\n") if x]
    if lines == exp_lines:
        return True
    lines = [x for x in lines if x]
    if lines == exp_lines:
        return True
    try:
        if _sb_close(_sb_floats(lines), _sb_floats(exp_lines)):
            return True
    except ValueError:
        pass
    out_sets = {{frozenset(x.split()) for x in lines if x.split()}}
    exp_sets = {{frozenset(x.split()) for x in exp_lines}}
    if out_sets == exp_sets:
        return True
    try:
        return ({{frozenset(round(float(t), 3) for t in s) for s in out_sets}}
                == {{frozenset(round(float(t), 3) for t in s) for s in exp_sets}})
    except ValueError:
        return False

def _sb_apps_call(got, exp):
    """APPS testing_util, call-based: tuples compared as lists, or the single wrapped output."""
    if isinstance(got, tuple):
        got = list(got)
    ok = got == exp
    if isinstance(exp, list) and exp:
        ok = ok or got == exp[0]
    try:
        if isinstance(got[0], tuple):
            ok = ok or [list(x) for x in got] == exp[0]
    except (TypeError, IndexError, KeyError):
        pass
    return ok

def _sb_run_stdio(inp):
    stdin = _sb_io.TextIOWrapper(_sb_io.BytesIO(inp.encode()), encoding="utf-8")
    buf = _sb_io.BytesIO()
    stdout = _sb_io.TextIOWrapper(buf, encoding="utf-8", write_through=True)
    saved = _sb_sys.stdin, _sb_sys.stdout
    _sb_sys.stdin, _sb_sys.stdout = stdin, stdout
    try:
        exec(compile(_SB_PRELUDE + _SB_CODE, "<solution>", "exec"), {{"__name__": "__main__"}})
    except SystemExit:
        pass
    finally:
        stdout.flush()
        _sb_sys.stdin, _sb_sys.stdout = saved
    return buf.getvalue().decode("utf-8", "replace")

def _sb_main():
    method = None
    if _SB_FN:
        ns = {{"__name__": "__solution__"}}
        exec(compile(_SB_PRELUDE + _SB_CODE, "<solution>", "exec"), ns)
        method = getattr(ns["Solution"](), _SB_FN) if "Solution" in ns and "class Solution" in _SB_CODE else ns[_SB_FN]
    for i, (inp, exp) in enumerate(_SB_CASES):
        if method is not None:
            if isinstance(inp, list) and inp and isinstance(inp[0], dict):  # JSON made int keys strings
                try:
                    inp = [{{int(k): v for k, v in inp[0].items()}}]
                except ValueError:
                    pass
            for _sb_key in (None, 0):  # the same for the expected output, bare or in a singleton list
                try:
                    _sb_d = exp if _sb_key is None else exp[0]
                    if isinstance(_sb_d, dict):
                        exp = [{{int(k): v for k, v in _sb_d.items()}}]
                except (ValueError, TypeError, IndexError, KeyError):
                    pass
            ok = _sb_apps_call(method(*inp), exp)
        else:
            out = _sb_run_stdio("\n".join(inp) if isinstance(inp, list) else inp)
            ok = _sb_apps_stdio(out, exp) if _SB_MODE == "apps" else out.split() == str(exp).split()
        if not ok:
            print(f"case {{i}} of {{len(_SB_CASES)}}: wrong answer", file=_sb_sys.stderr)
            print({verdict!r} + " FAIL", flush=True)
            raise SystemExit(1)
    print({verdict!r} + " PASS", len(_SB_CASES), flush=True)

_sb_main()
'''

# APPS testing_util prepends these imports to every candidate (its `sol` header), so solutions may use them bare.
_APPS_PRELUDE = ("import sys\nimport time\nimport itertools\nfrom itertools import accumulate, product, permutations, "
                 "combinations\nimport collections\nfrom collections import Counter, OrderedDict, deque, defaultdict, "
                 "ChainMap\nfrom functools import lru_cache\nimport math\nfrom math import sqrt, sin, cos, tan, ceil, "
                 "fabs, floor, gcd, exp, log, log2\nimport fractions\nfrom typing import List, Tuple\n"
                 "import numpy as np\nimport random\nimport heapq\nfrom heapq import *\n")


def test_cases(item: Item) -> tuple[str, list[list[Any]], str | None]:
    """``(mode, [[input, expected], ...], fn_name)`` from the adapter's ``item.test`` JSON."""
    try:
        spec = json.loads(item.test or "")
        mode, cases = spec["mode"], [[a, b] for a, b in zip(spec["inputs"], spec["outputs"], strict=True)]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"item {item.id}: stdio scoring needs item.test as JSON with mode, inputs and outputs "
                         f"of equal length ({e})") from e
    return mode, cases, spec.get("fn_name") or None


def build_program(item: Item, completion: str, nonce: str = "") -> str:
    """The harness program judging one completion on all of the item's test cases."""
    mode, cases, fn = test_cases(item)
    code = extract_code(completion, fn)
    prelude = _APPS_PRELUDE if mode == "apps" else ""
    return _HARNESS.format(code=code, cases=json.dumps(cases), mode=mode, fn=fn, prelude=prelude,
                           verdict=f"{_VERDICT} {nonce}")


def item_limits(item: Item, base: Limits | None = None) -> Limits:
    """Wall / CPU budget of one completion: per-case time x cases (capped), memory from the problem."""
    from specbench.sandbox import Limits

    base = base or Limits()
    mode, cases, _ = test_cases(item)
    per_case = APPS_TIMEOUT_S if mode == "apps" else float(item.doc.get("time_limit_s") or CODECONTESTS_DEFAULT_TIME_S)
    wall = min(MAX_WALL_S, 2.0 + per_case * max(1, len(cases)))
    memory = max(base.memory_mb, int(item.doc.get("memory_limit_mb") or 0) + 256)
    return Limits(wall_s=wall, cpu_s=wall, memory_mb=memory, max_procs=base.max_procs,
                  max_output_bytes=base.max_output_bytes, disk_mb=base.disk_mb)


@scorer("stdio_pass_at_k", metrics=["pass_at_1", "pass_at_10", "pass_at_100"], needs="texts",
        sandboxed=True)
def stdio_pass_at_k(items: list[Item], outputs: list[list[str]], limits: Limits | None = None,
                    workers: int | None = None) -> list[tuple[str, dict[str, float], dict[str, Any]]]:
    """Judge every completion on its problem's tests in the sandbox; per problem pass@k for each k <= n.

    A problem without test cases gets no pass@k (detail ``cannot_run``): it says nothing of the model."""
    from specbench.sandbox import run_programs

    scored: list[tuple[str, dict[str, float], dict[str, Any]] | None] = [None] * len(items)
    groups: dict[Any, list[tuple[int, int, str, str]]] = {}  # limits -> [(item, sample, program, nonce)]
    for i, (item, outs) in enumerate(zip(items, outputs, strict=True)):
        _, cases, fn = test_cases(item)
        if not cases:
            scored[i] = (extract_code(outs[0], fn), {}, {"cannot_run": "no test cases"})
            continue
        lim = item_limits(item, limits)
        for j, out in enumerate(outs):
            nonce = secrets.token_hex(8)
            groups.setdefault(lim, []).append((i, j, build_program(item, out, nonce), nonce))
    passed: dict[tuple[int, int], bool] = {}
    stderr: dict[int, str] = {}
    status: dict[int, list[str]] = {}
    for lim, runs in groups.items():
        results = run_programs([p for _, _, p, _ in runs], limits=lim, workers=workers)
        for (i, j, _, nonce), r in zip(runs, results, strict=True):
            ok = r.passed and f"{_VERDICT} {nonce} PASS" in r.stdout
            passed[(i, j)] = ok
            status.setdefault(i, []).append(r.status if r.passed == ok else "wrong_answer")
            if not ok and i not in stderr and r.stderr:
                stderr[i] = str(r.stderr)[-500:]
    todo = [i for i in range(len(items)) if scored[i] is None]
    if todo:
        n = np.array([len(outputs[i]) for i in todo])
        c = np.array([sum(passed[(i, j)] for j in range(len(outputs[i]))) for i in todo])
        ks = [k for k in PASS_AT_K if k <= n.min()]
        per_k = {k: estimate_pass_at_k(n, c, k) for k in ks}
        for row, i in enumerate(todo):
            detail: dict[str, Any] = {"status": status[i], "n": int(n[row]), "c": int(c[row])}
            if i in stderr:
                detail["stderr"] = stderr[i]
            _, _, fn = test_cases(items[i])
            scored[i] = (extract_code(outputs[i][0], fn), {f"pass_at_{k}": float(per_k[k][row]) for k in ks}, detail)
    return [s for s in scored if s is not None]
