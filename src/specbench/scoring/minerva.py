"""MATH with the Minerva prompt: lm-evaluation-harness 0.4.13's ``minerva_math`` scoring, used as a library.

Per item, ``lm_eval.tasks.minerva_math.utils.process_results`` runs on the output, so the values are
lm-eval's by construction: ``exact_match`` takes the X of "Final Answer: The final answer is X. I hope it is
correct.", normalizes it (Lewkowycz et al. 2022, appendix D: ``normalize_final_answer``) and compares it with
the reference answer by string identity or sympy (``parse_latex``, ``simplify(a - b) == 0``, 5 s limit);
``math_verify`` is HF's Math-Verify on the whole output against the whole reference solution.  The item's
lm-eval document is rebuilt as lm-eval's ``process_docs`` does, with lm-eval's own functions: the answer is
the normalized content of the solution's last ``\\boxed{}``.

lm_eval is imported when an item is scored, not when specbench is: it lives in the ``dev`` extra, and its
minerva utils need ``lm_eval[math]`` (sympy, math_verify, antlr4-python3-runtime 4.11, for parse_latex).
lm-eval bounds sympy with ``signal.alarm``, which only the main thread may set: scored elsewhere, its
timeout setup would fail and the comparison would silently read "not equal", so that is refused instead.
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any

from specbench.scoring.registry import scorer
from specbench.types import Item

LM_EVAL_PIN = "lm_eval[math]==0.4.13"


def lm_eval_minerva() -> ModuleType:
    """lm-eval's ``tasks.minerva_math.utils``, or one clear line saying what to install."""
    try:
        from lm_eval.tasks.minerva_math import utils
    except (ImportError, AssertionError) as e:  # lm_eval, or sympy / math_verify / antlr4 4.11 of its [math] extra
        raise RuntimeError(f"scorer 'minerva_math' uses lm-evaluation-harness's minerva_math utils, which cannot "
                           f"be imported ({' '.join(str(e).split())[:200]}); install them: pip install "
                           f"'{LM_EVAL_PIN}'") from None
    return utils


def minerva_doc(item: Item) -> dict[str, Any]:
    """The lm-eval document of an item (its ``process_docs``): problem, solution, normalized boxed answer."""
    utils = lm_eval_minerva()
    solution = item.doc.get("solution")
    if not isinstance(solution, str) or not solution:
        raise ValueError(f"scorer 'minerva_math': item {item.id} has no solution text (MATH records have problem, "
                         "solution)")
    boxed = utils.last_boxed_only_string(solution)
    if boxed is None:
        raise ValueError(f"scorer 'minerva_math': item {item.id}'s solution has no \\boxed{{}} answer")
    return {"problem": item.doc.get("problem", ""), "solution": solution,
            "answer": utils.normalize_final_answer(utils.remove_boxed(boxed))}


@scorer("minerva_math", metrics=["exact_match", "math_verify"],
        lm_eval={"exact_match": ("exact_match", "none"), "math_verify": ("math_verify", "none")})
def minerva_math(item: Item, output: str):
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("scorer 'minerva_math' must run in the main thread: lm-eval's sympy comparison times "
                           "out by signal.alarm, which other threads cannot set (it would score every answer 0)")
    utils = lm_eval_minerva()
    doc = minerva_doc(item)
    result = utils.process_results(doc, [output])
    extracted = utils.normalize_final_answer(utils.get_unnormalized_answer(output))
    scores = {"exact_match": float(result["exact_match"]), "math_verify": float(result["math_verify"])}
    return extracted, scores, {"reference_normalized": doc["answer"]}
