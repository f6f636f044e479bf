"""Slice specs of the math datasets of issue #15: aime (AIME 2024) and mathqa.

Imported by ``make_slices.py``, which appends :func:`math_specs` to its ``SPECS`` (this module takes its
``SliceSpec`` class as an argument, so it imports nothing of the script it serves).  Lines are copied byte
for byte from ../shared/data; the adapters (``specbench.data.adapters.aime`` / ``mathqa``) map these
layouts to the hub's field names, so a slice record and the hub's record of the same problem give the
same item.

- ``aime.train.jsonl``: all 30 AIME 2024 problems of Qwen2.5-Math's ``aime24`` set, reordered from its
  file order (I-1, I-10, I-11, ...) into contest order (I-1 ... I-15, II-1 ... II-15, read from each
  record's AoPS ``url``), the order gneubig/aime-1983-2024 lists a year's problems in.  It stands in for
  the 2024 rows of the hub's ``train`` split only (933 problems, 1983-2024): a documented partial slice.
- ``mathqa.test.jsonl``: the first 100 records of the ToRA / Qwen harness's 1000-item MathQA test subset.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

AIME_SOURCE = "aime/aime24_test.jsonl"
MATHQA_SOURCE = "mathqa/test.jsonl"
MATHQA_ROWS = 100
_AOPS = re.compile(r"/(\d{4})_AIME_(I{1,2})_Problems/Problem_(\d+)$")


def _lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as fh:
        return [line.rstrip("\r\n") for line in fh if line.strip()]


def aime_contest_order(line: str) -> tuple[int, int, int]:
    """(year, part, problem) of a Qwen2.5-Math AIME record, from its AoPS wiki url."""
    url = json.loads(line)["url"]
    found = _AOPS.search(url)
    if found is None:
        raise ValueError(f"{AIME_SOURCE}: url {url!r} is not an AoPS 'YYYY_AIME_I(I)_Problems/Problem_N' page")
    return int(found[1]), len(found[2]), int(found[3])


def _aime(data: Path) -> list[str]:
    return sorted(_lines(data / AIME_SOURCE), key=aime_contest_order)


def _mathqa(data: Path) -> list[str]:
    return _lines(data / MATHQA_SOURCE)[:MATHQA_ROWS]


def math_specs(spec: Callable[..., object]) -> list[object]:
    """The math datasets' slices, built with make_slices.py's ``SliceSpec``."""
    return [
        spec("aime.train.jsonl", "aime", (AIME_SOURCE,), _aime,
             "all 30 AIME 2024 problems (I and II), lines unchanged, in contest order (from each url)",
             "github QwenLM/Qwen2.5-Math evaluation/data/aime24/test.jsonl", "a45202b",
             "MIT (Qwen2.5-Math evaluation code); problems by the MAA, solutions from the AoPS wiki",
             "gneubig/aime-1983-2024 train, its 2024 rows only (30 of 933)"),
        spec("mathqa.test.jsonl", "mathqa", (MATHQA_SOURCE,), _mathqa,
             f"first {MATHQA_ROWS} records of the harness's 1000-item test subset (keys lower-cased, "
             "'type' = upstream 'category'), lines unchanged",
             "github ZubinGou/math-evaluation-harness data/mathqa/test.jsonl", "db77bc6",
             "Apache-2.0 (MathQA, per its dataset card); MIT (harness)",
             "regisss/math_qa test (2985 problems)"),
    ]
