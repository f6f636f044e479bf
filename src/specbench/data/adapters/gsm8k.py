"""GSM8K (openai/gsm8k ``main``): grade-school math word problems, answer after ``####``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item


@adapter("gsm8k")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    answer = rec["answer"]
    # the reference is only the final number; the doc keeps the worked answer for few-shot targets
    return Item(id=f"{split}/{i}", doc={"question": rec["question"], "answer": answer},
                reference=answer.split("####")[-1].strip())
