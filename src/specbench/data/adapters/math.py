"""MATH (EleutherAI/hendrycks_math, or llm-foundry's conversion): competition problems, boxed answers.

The hub copy is one config per subject; with the YAML's ``hub_config`` null they are loaded
in :data:`MATH_TYPES` order and concatenated (the order the offline slice is cut in).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.mathequiv import boxed_answer
from specbench.types import Item

MATH_TYPES = {  # hendrycks_math config -> the "type" field of its records
    "algebra": "Algebra", "counting_and_probability": "Counting & Probability",
    "geometry": "Geometry", "intermediate_algebra": "Intermediate Algebra",
    "number_theory": "Number Theory", "prealgebra": "Prealgebra", "precalculus": "Precalculus",
}
_MATH_CONFIG = {v: k for k, v in MATH_TYPES.items()}


@adapter("math", hub_configs=tuple(MATH_TYPES))
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    if "problem" in rec:  # EleutherAI/hendrycks_math
        problem, solution, mtype = rec["problem"], rec["solution"], rec["type"]
        subject, level = _MATH_CONFIG.get(mtype, mtype), rec.get("level")
        answer = boxed_answer(solution)  # the reference answer, extracted as lm-eval does
    else:  # llm-foundry conversion: context, answer, chain_of_thought, category
        problem, solution, subject = rec["context"], rec["chain_of_thought"], rec["category"]
        mtype, level, answer = MATH_TYPES.get(subject, subject), None, rec["answer"]
    if answer is None:
        raise ValueError(f"math record {i}: no \\boxed answer in the solution")
    doc = {"problem": problem, "solution": solution, "answer": answer, "type": mtype,
           "subject": subject, "level": level}
    return Item(id=f"{subject}/{split}/{i}", doc=doc, reference=answer)
