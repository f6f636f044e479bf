"""AIME: lm-evaluation-harness 0.4.13's ``aime`` answer check (lm_eval/tasks/aime/utils.py process_results).

The response's answer is the text between its first and last ``$`` (the whole response with fewer than two),
replaced by the content of its last ``\\boxed{}`` when there is one; it scores 1 when hendrycks_math's
``is_equiv`` holds against ``str(Answer)``.  The functions are specbench.mathequiv's, which keep the
hendrycks/lm-eval behaviour branch by branch (tests/test_scoring.py); tests/test_math_datasets.py checks
this scorer against lm-eval's own aime process_results sample by sample.  No lm_eval import at run time.
"""

from __future__ import annotations

from specbench.mathequiv import boxed_answer, dollar_span, is_equiv
from specbench.scoring.registry import scorer
from specbench.types import Item


@scorer("aime_exact", metrics=["exact_match"], lm_eval={"exact_match": ("exact_match", "none")})
def aime_exact(item: Item, output: str):
    answer, taken_from = dollar_span(output), ("dollar_span" if output.count("$") >= 2 else "response")
    boxed = boxed_answer(output)  # None also where lm-eval's remove_boxed asserts (\fbox): the span stays
    if boxed is not None:
        answer, taken_from = boxed, "boxed"
    return answer, {"exact_match": float(is_equiv(answer, item.reference))}, {"answer_from": taken_from}
