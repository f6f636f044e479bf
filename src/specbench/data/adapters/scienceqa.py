"""ScienceQA, the image questions (lmms-lab/ScienceQA ``ScienceQA-IMG``, or LLaVA's conversion).

The hub record has ``hint``, ``question``, ``choices`` and ``answer`` (the gold index), the fields
lmms-eval's ``scienceqa_img`` prompt reads; the offline slice keeps LLaVA's layout
(``llava_test_CQM-A.json``: id = ScienceQA pid, ``image``, and a human turn ``"<image>\\n"`` +
(``"Context: " + hint + "\\n"`` if a hint) + question + ``"\\n"`` + ``"A. choice"`` lines, answered by a
``gpt`` turn with the letter), parsed back here into those four fields: the question is the last
line before the choices.  lmms-eval's ``sqa_doc_to_text`` over the parsed doc gives the human turn
back, character for character (tests/test_vision_data.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import LETTERS, adapter
from specbench.data.images import hub_image, slice_image
from specbench.types import Item

IMAGE_TOKEN = "<image>\n"
CONTEXT = "Context: "


def parse_llava_turn(text: str) -> tuple[str, str, list[str]]:
    """LLaVA's ScienceQA human turn -> (hint, question, choices)."""
    lines = text.removeprefix(IMAGE_TOKEN).split("\n")
    # the choices are the trailing lines "A. ...", "B. ...", ... in order, up to the end
    start = next((s for s in range(len(lines) - 1, 0, -1)
                  if len(lines) - s <= len(LETTERS)
                  and all(ln.startswith(f"{LETTERS[k]}. ") for k, ln in enumerate(lines[s:]))), None)
    if start is None:
        raise ValueError(f"not a LLaVA ScienceQA turn (no trailing 'A. ...' choice lines): {text[:120]!r}")
    choices = [ln[3:] for ln in lines[start:]]
    head = lines[:start]
    if head[0].startswith(CONTEXT) and len(head) > 1:
        hint = "\n".join(head[:-1])[len(CONTEXT):]
        question = head[-1]
    else:
        hint, question = "", "\n".join(head)
    return hint, question, choices


@adapter("scienceqa")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    if "conversations" in rec:  # LLaVA's layout (the offline slice)
        turns = {t["from"]: t["value"] for t in rec["conversations"]}
        hint, question, choices = parse_llava_turn(turns["human"])
        letter = turns["gpt"].strip()
        if letter not in LETTERS[: len(choices)]:
            raise ValueError(f"scienceqa {rec['id']}: answer {letter!r} is not one of the {len(choices)} choices")
        answer, item_id = LETTERS.index(letter), str(rec["id"])
        images = [slice_image(rec["image"])] if rec.get("image") else []
    else:  # lmms-lab/ScienceQA
        hint, question, choices = rec.get("hint") or "", rec["question"], list(rec["choices"])
        answer, item_id = int(rec["answer"]), f"{split}/{i}"
        ref = hub_image(rec.get("image"), item_id.replace("/", "_"))
        images = [ref] if ref else []
    doc = {"hint": hint, "question": question, "choices": choices, "answer": answer}
    return Item(id=item_id, doc=doc, reference=LETTERS[answer], choices=choices, gold=answer, images=images)
