"""BC5CDR with chemicals and diseases as one ``Entity`` type, as SciBERT's preprocessing has it.

The shipped sentences come from SciBERT's files (already ``Entity``); the hub's ``tner/bc5cdr``
keeps the two types apart with class ids in tner's order (its label2id), so its records are
decoded and both types renamed ``Entity`` -- the task SciBERT reports, not BC5CDR-chem/-disease.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.data.adapters.conll_ner import ner_item
from specbench.types import Item

TNER_BC5CDR_TAG_NAMES = ("O", "B-Chemical", "B-Disease", "I-Disease", "I-Chemical")
COLLAPSE = {"Chemical": "Entity", "Disease": "Entity"}


@adapter("bc5cdr")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    return ner_item(rec, i, split, TNER_BC5CDR_TAG_NAMES, COLLAPSE)
