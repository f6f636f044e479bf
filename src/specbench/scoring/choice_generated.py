"""``mc_generated``: a multiple-choice item answered by generation (the generative fallback,
``specbench.pipeline.fallback``), scored by matching the output to a choice.

specbench's own rule, no reference implementation: the output names choice i when it is the
letter alone ("B", "b", "(B)", "B." / "B)" / "B:" followed by anything), when it says "answer
is B" / "Answer: B" anywhere, or when it starts with that choice's text (case and surrounding
punctuation ignored; the longest matching choice wins).  Anything else names no choice and is
wrong.  ``extracted`` is the letter of the named choice (empty when none).
"""

from __future__ import annotations

import re
import string

from specbench.scoring.registry import scorer
from specbench.types import Item

_LEAD = re.compile(r"^\s*\(?([A-Z])\)?(?:[.):,]|\s|$)")
_ALONE = re.compile(r"^\s*\(?([A-Za-z])\)?[.)]?\s*$")
_MARKED = re.compile(r"\banswer\b\W{0,3}(?:is\W{0,3})?(?:option\W{0,3})?\(?([A-Z])\)?(?:\W|$)", re.IGNORECASE)


def _norm(text: str) -> str:
    return " ".join(text.lower().strip().strip(string.punctuation + " ").split())


def named_choice(output: str, choices: list[str]) -> int | None:
    """The index of the choice ``output`` names, or None."""
    for pattern in (_ALONE, _LEAD, _MARKED):
        m = pattern.search(output)
        if m:
            i = ord(m.group(1).upper()) - ord("A")
            if 0 <= i < len(choices):
                return i
    said = _norm(output)
    matches = [(len(_norm(c)), i) for i, c in enumerate(choices) if _norm(c) and said.startswith(_norm(c))]
    return max(matches)[1] if matches else None


@scorer("mc_generated", metrics=["acc"])
def mc_generated(item: Item, output: str):
    if not item.choices or item.gold is None:
        raise ValueError(f"item {item.id}: mc_generated needs choices and a gold index")
    pred = named_choice(output, item.choices)
    letter = "" if pred is None else string.ascii_uppercase[pred]
    return letter, {"acc": float(pred == item.gold)}, {"pred": -1 if pred is None else pred}
