"""NCBI-disease: the CoNLL sentences of SciBERT's files, or the hub's ``ncbi_disease`` records,
whose ``ner_tags`` are class ids in this order (its ClassLabel names)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.data.adapters.conll_ner import ner_item
from specbench.types import Item

NCBI_DISEASE_TAG_NAMES = ("O", "B-Disease", "I-Disease")


@adapter("ncbi_disease")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    return ner_item(rec, i, split, NCBI_DISEASE_TAG_NAMES)
