"""Plain records that flow between the layers: data -> engine -> scoring -> tracking."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


@dataclass
class ScoreReport:
    """Aggregate metrics (each ``m`` with ``m_stderr``) and the per-item scores."""

    metrics: dict[str, float]
    samples: list[SampleScore]
