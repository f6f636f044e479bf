"""Plain records that flow between the layers: data -> engine -> scoring -> tracking."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ImageRef:
    """Where one of an item's images is: a file (an offline slice's), or the bytes a hub record
    carried.  Decoded only when an engine needs it (``specbench.data.images.open_image``), so a
    missing or broken image fails that item, with its reason, not the whole load."""

    name: str  # what the per-sample table shows: the slice-relative path, or the hub record's file name
    path: str | None = None  # absolute path of the file
    data: bytes | None = None  # encoded image bytes (PNG, JPEG, ...) from a hub record


@dataclass
class Item:
    """One normalized dataset item, whatever the source format was."""

    id: str
    doc: dict[str, Any]  # the fields the Jinja2 prompt templates see
    reference: str  # gold answer text (for multiple choice: the gold choice's text)
    choices: list[str] | None = None  # multiple choice continuations
    gold: int | None = None  # index of the right choice
    test: str | None = None  # code_exec: test code run after the program
    entry_point: str | None = None  # code_exec: function the tests call
    images: list[ImageRef] = field(default_factory=list)  # shown to the model before the prompt text


@dataclass
class ChoiceScores:
    """Log-likelihood of each choice continuation given the prompt (lm-eval's loglikelihood)."""

    logprobs: list[float]  # summed log-probability of each continuation's tokens
    is_greedy: list[bool] = field(default_factory=list)


@dataclass
class SampleScore:
    """Per-item outcome: what was extracted from the output and each metric's value."""

    id: str
    extracted: str
    scores: dict[str, float]
    detail: dict[str, Any] = field(default_factory=dict)
    # per scorer with corpus metrics (F1 over all items): this item's additive statistics, from
    # which the analysis recomputes those metrics over resampled items (paired tests, intervals)
    counts: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class ScoreReport:
    """Aggregate metrics (each ``m`` with ``m_stderr``) and the per-item scores."""

    metrics: dict[str, float]
    samples: list[SampleScore]


@dataclass
class Judged:
    """A judged item's answers and what its judge said: the scorer reads the judgments' ratings.

    ``turns``: the model's answer to each turn; ``judgments``: the judge's raw text per graded
    turn (turn 1, turn 2, ...), ``prompts``: which grading prompt produced each (FastChat's name),
    so a rescore re-reads the same judgments without asking the judge again."""

    turns: list[str]
    judgments: list[str]
    prompts: list[str]
    # how a rating is read (the prompt set's rating_patterns and scale): they travel with the judgments
    patterns: list[str]
    scale: tuple[float, float]
