"""VQAv2 (lmms-lab/VQAv2, validation): open questions on COCO images.

Hub only: the COCO images are published by URL only (see ../shared/data/README.md).  The doc keeps
the hub's fields that lmms-eval's ``vqav2_val`` reads: ``question``, ``answers`` (the ten human
answers, dicts with ``answer``, for the VQA accuracy) and ``question_id``, plus ``answer_type``
(yes/no, number, other) for breakdowns.  The reference is the hub's ``multiple_choice_answer`` (the
most frequent human answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.data.images import hub_image
from specbench.types import Item


@adapter("vqa_v2")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    qid = rec.get("question_id")
    item_id = str(qid) if qid is not None else f"{split}/{i}"
    answers = [dict(a) for a in rec.get("answers") or []]
    reference = rec.get("multiple_choice_answer") or (answers[0]["answer"] if answers else "")
    doc = {"question": rec["question"], "answers": answers, "question_id": qid,
           "answer_type": rec.get("answer_type")}
    ref = hub_image(rec.get("image"), item_id)
    return Item(id=item_id, doc=doc, reference=str(reference), images=[ref] if ref else [])
