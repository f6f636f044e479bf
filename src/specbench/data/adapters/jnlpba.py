"""JNLPBA (genomics_ner): the CoNLL sentences of SciBERT's files, or the hub's ``jnlpba`` records,
whose ``ner_tags`` are class ids in this order (its ClassLabel names)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.data.adapters.conll_ner import ner_item
from specbench.types import Item

JNLPBA_TAG_NAMES = ("O", "B-DNA", "I-DNA", "B-RNA", "I-RNA", "B-cell_line", "I-cell_line",
                    "B-cell_type", "I-cell_type", "B-protein", "I-protein")


@adapter("jnlpba")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    return ner_item(rec, i, split, JNLPBA_TAG_NAMES)
