"""AIME (gneubig/aime-1983-2024, or Qwen2.5-Math's aime24 file): competition problems with integer answers.

The hub's records (``ID``, ``Year``, ``Problem Number``, ``Question``, ``Answer``, ``Part``) are lm-eval's
``aime`` task's documents as they are.  The offline slice is Qwen2.5-Math's AIME 2024 file (``id``,
``problem``, ``solution``, ``answer``, ``url``); its records are mapped to the hub's fields here, so the
prompt template (``{{Question}}``) and the scorer (``str(Answer)``, as lm-eval) read one layout.  Qwen
writes answers zero-padded (``"025"``); the hub's ``Answer`` column is an integer, so the slice's is
``int``'d: with the padding lm-eval's comparison of ``str(Answer)`` with a model's ``25`` would fail.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item

HUB_FIELDS = ("ID", "Year", "Problem Number", "Question", "Answer", "Part")
# a Qwen record's contest and problem number live only in its AoPS wiki url
_AOPS = re.compile(r"/(\d{4})_AIME_(I{1,2})_Problems/Problem_(\d+)$")


def _from_qwen(rec: Mapping[str, Any], i: int) -> dict[str, Any]:
    found = _AOPS.search(str(rec.get("url", "")))
    if found is None or "problem" not in rec or "answer" not in rec:
        raise ValueError(f"aime record {i}: expected the hub's fields ({', '.join(HUB_FIELDS)}) or Qwen2.5-Math's "
                         "(problem, answer, url of an AoPS 'YYYY_AIME_I(I)_Problems/Problem_N' page)")
    year, part, number = int(found[1]), found[2], int(found[3])
    return {"ID": f"{year}-{part}-{number}", "Year": year, "Problem Number": number,
            "Question": rec["problem"], "Answer": int(rec["answer"]), "Part": part}


@adapter("aime")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    if "Question" in rec:  # gneubig/aime-1983-2024
        missing = [k for k in ("ID", "Question", "Answer") if k not in rec]
        if missing:
            raise ValueError(f"aime record {i}: lacks {', '.join(missing)} (hub records have {', '.join(HUB_FIELDS)})")
        doc = {k: rec.get(k) for k in HUB_FIELDS}
    else:
        doc = _from_qwen(rec, i)
    # lm-eval's aime process_results compares with str(doc["Answer"])
    return Item(id=str(doc["ID"]), doc=doc, reference=str(doc["Answer"]))
