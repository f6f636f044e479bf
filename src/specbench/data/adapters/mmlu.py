"""MMLU (cais/mmlu, or the hendrycks/test CSVs): lettered four-way multiple choice per subject.

Item ids are numbered within each subject (``group="subject"``), as the CSVs are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import LETTERS, adapter
from specbench.types import Item


@adapter("mmlu", group="subject")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    if "choices" in rec:  # cais/mmlu
        choices, answer = list(rec["choices"]), int(rec["answer"])
    else:  # hendrycks/test CSV columns
        choices, answer = [rec[c] for c in "ABCD"], "ABCD".index(rec["answer"].strip())
    subject = rec["subject"]
    doc = {"question": rec["question"], "subject": subject, "choices": choices, "answer": answer}
    return Item(id=f"{subject}/{split}/{i}", doc=doc, reference=LETTERS[answer],
                choices=list(LETTERS[: len(choices)]), gold=answer)
