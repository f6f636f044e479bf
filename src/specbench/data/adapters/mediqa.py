"""MEDIQA 2019 Task 2, recognizing question entailment (RQE): does a consumer health question (chq)
entail a FAQ (faq)?  "A entails B if every answer to B is also a complete or partial answer to A."

Shapes: the test set's XML ``<pair pid value>`` with ``<chq>``/``<faq>`` (the shipped slice, one
record per pair) and the hub's bigbio ``mediqa_rqe_source`` records (``chq``, ``faq``, ``label``).
The label is ``true`` or ``false`` whatever the source spelled (a bool, ``"True"``, 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _label(value: Any, where: str) -> str:
    text = str(value).strip().lower()
    if text in _TRUE:
        return "true"
    if text in _FALSE:
        return "false"
    raise ValueError(f"MEDIQA RQE record {where}: label {value!r} is neither true nor false")


@adapter("mediqa")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    where = f"{split}/{i}"
    label = _label(rec["value"] if "value" in rec else rec["label"], where)
    doc = {"chq": str(rec["chq"]).strip(), "faq": str(rec["faq"]).strip(), "label": label, "answer": label}
    pid = rec.get("pid", rec.get("id"))
    return Item(id=where if pid is None else f"{split}/{pid}", doc=doc, reference=label)
