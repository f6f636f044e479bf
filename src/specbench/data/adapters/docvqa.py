"""DocVQA (lmms-lab/DocVQA, config ``DocVQA``, validation): questions on scanned document pages.

Hub only: DocVQA needs a registration and no faithful public copy exists to cut an offline slice
from (see ../shared/data/README.md).  The doc keeps the hub's fields that lmms-eval's ``docvqa_val``
reads: ``question``, ``answers`` (every accepted answer, for ANLS) and ``questionId``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.data.images import hub_image
from specbench.types import Item


@adapter("docvqa")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    qid = rec.get("questionId")
    item_id = str(qid) if qid is not None else f"{split}/{i}"
    answers = [str(a) for a in rec.get("answers") or []]
    doc = {"question": rec["question"], "answers": answers, "questionId": qid}
    ref = hub_image(rec.get("image"), item_id)
    return Item(id=item_id, doc=doc, reference=answers[0] if answers else "", images=[ref] if ref else [])
