"""Relation classification in SciBERT's preprocessing (SciERC, ChemProt): ``{text, label, metadata}``.

The text carries the two entities' markers (SciERC ``[[ ]]`` / ``<< >>``, ChemProt ``<< chemical >>``
/ ``[[ gene ]]``), which are the only thing saying which pair the label is about, so the text is kept
as written: the prompt shows it, and an encoder embeds it, markers included.  The hub copies
(nsusemiehl/SciERC, AdaptLLM/ChemProt) are these same jsonl files, so one shape serves both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item


@adapter("relation")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    label = str(rec["label"])
    # answer: the canonical output text (the label), which few-shot targets render
    doc = {"text": str(rec["text"]), "label": label, "answer": label}
    return Item(id=f"{split}/{i}", doc=doc, reference=label)
