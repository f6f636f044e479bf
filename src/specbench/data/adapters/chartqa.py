"""ChartQA (lmms-lab/ChartQA test, or the upstream vis-nlp/ChartQA json the offline slice keeps).

Both shapes become the hub's field names, which lmms-eval's ``chartqa`` task reads and the prompt
template uses: ``question``, ``answer`` and ``type`` (``human_test`` or ``augmented_test``, so the
scorer reports the two splits apart).  The slice records are upstream's ``imgname``/``query``/
``label`` plus ``split`` (the upstream file, ``test_human`` or ``test_augmented``) and ``image``
(the chart's path in the slices folder).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.data.images import hub_image, slice_image
from specbench.types import Item

# upstream json file -> the hub's ``type``
SPLIT_TYPES = {"test_human": "human_test", "test_augmented": "augmented_test"}


@adapter("chartqa")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    item_id = f"{split}/{i}"
    if "query" in rec:  # the offline slice: upstream json record + split + image
        if rec["split"] not in SPLIT_TYPES:
            raise ValueError(f"chartqa {item_id}: unknown split {rec['split']!r} (valid: {', '.join(SPLIT_TYPES)})")
        doc = {"question": rec["query"], "answer": str(rec["label"]), "type": SPLIT_TYPES[rec["split"]]}
        images = [slice_image(rec["image"])]
    else:  # lmms-lab/ChartQA
        doc = {"question": rec["question"], "answer": str(rec["answer"]), "type": rec["type"]}
        ref = hub_image(rec.get("image"), item_id.replace("/", "_"))
        images = [ref] if ref else []
    return Item(id=item_id, doc=doc, reference=doc["answer"], images=images)
