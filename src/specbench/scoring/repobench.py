"""RepoBench next-line completion scoring: exact match and edit similarity of the predicted line.

Follows RepoBench's evaluation (Leolty/repobench ``evaluation/metrics.py`` and ``run.py``): the prediction is
the first line of the completion that is neither blank nor a comment (``get_first_line_not_comment``: leading
newlines dropped, ``#`` lines and triple-quoted blocks skipped; the first line when every line is skipped), then

* ``exact_match``: ``pred.split() == next_line.split()`` (whitespace-insensitive), 0 or 1;
* ``edit_similarity``: fuzzywuzzy's ``fuzz.ratio(pred, next_line)`` -- ``round(100 * Levenshtein.ratio)``, an
  integer (100 for equal strings, else 0 when either is empty) -- here divided by 100, so 0..1
  (RepoBench's tables show both x100).

``fuzz.ratio`` comes from rapidfuzz (maintained; fuzzywuzzy is not): its ratio is ``100 * (1 - indel distance /
total length)``, the same normalized InDel similarity as python-Levenshtein's ``ratio`` that fuzzywuzzy uses when
python-Levenshtein is installed; fuzzywuzzy then rounds to an integer and maps empty inputs to 0, as done here.
"""

from __future__ import annotations

from typing import Any

from rapidfuzz import fuzz

from specbench.scoring.registry import scorer
from specbench.types import Item


def first_line_not_comment(code: str) -> str:
    """RepoBench ``get_first_line_not_comment`` (Python): the first non-blank line outside comments, else
    the first line (RepoBench run.py, which scores this line, not the whole completion)."""
    in_docstring = False
    lines = code.lstrip("\n").split("\n")
    for line in lines:
        stripped = line.strip()
        if not stripped:
            continue
        if not in_docstring and (stripped.startswith('"""') or stripped.startswith("'''")):
            in_docstring = True
            continue
        if in_docstring:
            if stripped.endswith('"""') or stripped.endswith("'''"):
                in_docstring = False
            continue
        if stripped.startswith("#"):
            continue
        return line
    return lines[0]


def edit_similarity(pred: str, gold: str) -> int:
    """fuzzywuzzy ``fuzz.ratio``: integer 0..100; equal strings 100, else 0 when either is empty (its decorators)."""
    if pred == gold:
        return 100
    if not pred or not gold:
        return 0
    return int(round(fuzz.ratio(pred, gold)))


@scorer("repobench_next_line", metrics=["exact_match", "edit_similarity"])
def repobench_next_line(item: Item, output: str) -> tuple[str, dict[str, float], dict[str, Any]]:
    pred = first_line_not_comment(output)
    gold = item.reference
    return pred, {"exact_match": float(pred.split() == gold.split()),
                  "edit_similarity": edit_similarity(pred, gold) / 100.0}, {}
