"""PubMedQA (bigbio/pubmed_qa source schema / ori_pqal.json, or qiaojin/PubMedQA ``pqa_labeled``).

Both shapes become the bigbio field names, which the prompt templates use; answers are yes/no/maybe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item

PUBMEDQA_CHOICES = ["yes", "no", "maybe"]


@adapter("pubmedqa")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    if "QUESTION" in rec:  # bigbio source schema == ori_pqal.json record (+ pubid)
        doc = {k: rec.get(k) for k in ("QUESTION", "CONTEXTS", "LABELS", "MESHES", "YEAR",
                                        "final_decision", "LONG_ANSWER")}
    else:  # qiaojin/PubMedQA pqa_labeled
        ctx = rec["context"]
        doc = {"QUESTION": rec["question"], "CONTEXTS": list(ctx["contexts"]),
               "LABELS": list(ctx.get("labels") or []), "MESHES": list(ctx.get("meshes") or []),
               "YEAR": None, "final_decision": rec["final_decision"], "LONG_ANSWER": rec.get("long_answer")}
    pubid = rec.get("pubid")
    doc["pubid"] = None if pubid is None else str(pubid)
    decision = doc["final_decision"]
    return Item(id=doc["pubid"] or f"{split}/{i}", doc=doc, reference=decision,
                choices=list(PUBMEDQA_CHOICES), gold=PUBMEDQA_CHOICES.index(decision))
