"""LLM-as-judge scoring: ratings read from a judge's judgments, FastChat's way.

The judging itself (which prompt, which judge, the second turn's conversation) is
``pipeline.judge``; here a judgment becomes a rating: the first match of the prompt set's
``rating_patterns`` (FastChat's ``one_score_pattern``, then its backup), read as a number.  A
judgment with no match, or a rating outside the scale, is *unparsed*: left out of every mean
(FastChat scores it -1 and drops it) and counted, never scored 0.

``mt_bench_score`` is FastChat's overall score, the mean of every parsed rating over both turns;
``turn_1_score`` and ``turn_2_score`` are its per-turn columns.  They are pooled over judgments,
not means of per-item means, so they are corpus metrics: each item counts (rating sum and parsed
judgments per turn) and the sums give the value and a bootstrap stderr over items.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import numpy as np

from specbench.scoring.registry import Corpus, scorer
from specbench.types import Item, Judged

SCORE, TURN_1, TURN_2, UNPARSED = "mt_bench_score", "turn_1_score", "turn_2_score", "judge_unparsed"
RATINGS = "judge_ratings"  # per-item detail: the rating of each graded turn, None where unparsed
TURNS = 2

@lru_cache(maxsize=16)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def parse_rating(judgment: str, patterns: list[str] | tuple[str, ...], scale: tuple[float, float]) -> float | None:
    """The rating in a judgment: the first group of the first pattern that matches (FastChat's
    order); None when none does, when it is not a number, or when it lies outside the scale."""
    for pattern in patterns:
        match = _compiled(pattern).search(judgment)
        if match:
            try:
                value = float(match.group(1))
            except ValueError:
                return None
            return value if scale[0] <= value <= scale[1] else None
    return None


def _counts(items: list[Item], details: list[dict[str, Any]]) -> np.ndarray:
    """Per item: [turn-1 rating sum, turn-1 parsed, turn-2 rating sum, turn-2 parsed]."""
    rows = []
    for d in details:
        r = (d[RATINGS] + [None] * TURNS)[:TURNS]
        rows.append([r[0] or 0.0, r[0] is not None, r[1] or 0.0, r[1] is not None])
    return np.array(rows, dtype=float).reshape(len(details), 4)


def _reduce(sums: np.ndarray) -> dict[str, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        n1, n2 = sums[..., 1], sums[..., 3]
        return {SCORE: np.where(n1 + n2 > 0, (sums[..., 0] + sums[..., 2]) / np.where(n1 + n2 > 0, n1 + n2, 1),
                                np.nan),
                TURN_1: np.where(n1 > 0, sums[..., 0] / np.where(n1 > 0, n1, 1), np.nan),
                TURN_2: np.where(n2 > 0, sums[..., 2] / np.where(n2 > 0, n2, 1), np.nan)}


def _value(items: list[Item], details: list[dict[str, Any]]) -> dict[str, float]:
    """FastChat's show_result: the mean of the parsed ratings (overall, and per turn)."""
    by_turn = [[r for d in details for r in d[RATINGS][t:t + 1] if r is not None] for t in range(TURNS)]

    def mean(xs: list[float]) -> float:
        return float(np.mean(xs)) if xs else float("nan")

    return {SCORE: mean(by_turn[0] + by_turn[1]), TURN_1: mean(by_turn[0]), TURN_2: mean(by_turn[1])}


@scorer("llm_judge", metrics=[SCORE, TURN_1, TURN_2, UNPARSED], needs="judgments",
        corpus=Corpus((SCORE, TURN_1, TURN_2), _value, _counts, _reduce))
def llm_judge(item: Item, judged: Judged):
    """Each judgment's rating (None: unparsed); per item, the share of its judgments left unparsed."""
    ratings = [parse_rating(j, judged.patterns, judged.scale) for j in judged.judgments]
    unparsed = sum(r is None for r in ratings)
    extracted = " / ".join("?" if r is None else f"{r:g}" for r in ratings)
    detail = {RATINGS: ratings, "judge_prompts": list(judged.prompts), "judgments": list(judged.judgments)}
    return extracted, {UNPARSED: unparsed / len(ratings) if ratings else 1.0}, detail
