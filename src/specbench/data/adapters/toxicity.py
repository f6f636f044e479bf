"""Davidson et al. 2017 tweets (toxicity_detection): hate speech, offensive language or neither.

Two record shapes: the CSV's (``index``, ``count``, ``hate_speech``, ``offensive_language``,
``neither``, ``class`` 0/1/2, ``tweet``; the shipped slices, cut by scripts/structure_slices.py) and
the hub's ``tdavidson/hate_speech_offensive`` (``*_count`` columns, ``class`` a ClassLabel id).

The corpus has no official split, so one is defined on what both shapes carry, the tweet's text
(:func:`fold`): sha256 modulo 5 == 0 is test, the rest train.  It is independent of row order
(the hub's rows have no index, and the CSV's index has gaps), so the slice and the hub agree on
every tweet's fold.  The hub holds one ``train`` split of all 24,783 tweets; :func:`in_split` is
the filter that carves this dataset's ``test`` / ``train`` out of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item

CLASS_LABELS = ("hate_speech", "offensive_language", "neither")  # the source's class 0, 1, 2
TEST_MODULUS = 5


def fold(tweet: str) -> str:
    """The tweet's split: 'test' when sha256(tweet, UTF-8) modulo 5 is 0, else 'train'."""
    return "test" if int(hashlib.sha256(tweet.encode("utf-8")).hexdigest(), 16) % TEST_MODULUS == 0 else "train"


def in_split(rec: Mapping[str, Any], split: str) -> bool:
    """Whether a record (either shape) belongs to this dataset's ``split`` ('test' or 'train')."""
    return fold(str(rec["tweet"])) == split


@adapter("toxicity", hub_split="train", split_filter=in_split)
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    cls = int(rec["class"])
    if not 0 <= cls < len(CLASS_LABELS):
        raise ValueError(f"toxicity record {split}/{i}: class {cls} is not 0, 1 or 2")
    label = CLASS_LABELS[cls]
    doc: dict[str, Any] = {"text": str(rec["tweet"]), "label": label, "answer": label}
    for name in ("count", *CLASS_LABELS):  # annotator counts, under the CSV's names
        value = rec.get(name, rec.get(f"{name}_count"))
        doc[name] = None if value is None else int(value)
    index = rec.get("index")
    return Item(id=f"{split}/{i}" if index is None else f"row{index}", doc=doc, reference=label)
