"""Schema of LLM judges: a dataset's ``judge:`` section and the prompt sets in conf/judges/.

A judged dataset (MT-Bench) names who grades its answers and with which prompts; the prompts are
data (conf/judges/<key>.yaml, FastChat's single-answer grading prompts verbatim), so a new prompt
version is a new file and the prompt set's digest is part of every judged cell's identity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from specbench.registry.schema_base import _check

PROMPT_KINDS = ("single", "single_reference", "multi_turn", "multi_turn_reference")


@dataclass
class JudgePrompt:
    """One grading prompt: FastChat's system prompt and its user-prompt template (``str.format`` fields:
    question / answer / ref_answer_1 for one turn; question_1, answer_1, question_2, answer_2,
    ref_answer_1, ref_answer_2 for the second turn)."""

    name: str  # FastChat's name (single-v1, single-math-v1-multi-turn, ...): logged with each judgment
    system: str
    template: str


@dataclass
class JudgePromptSet:
    """conf/judges/<key>.yaml: the grading prompts and how a rating is read from a judgment."""

    key: str
    display_name: str
    source: str  # where the prompts come from, at which commit
    license: str
    prompts: dict[str, JudgePrompt]  # single, single_reference, multi_turn, multi_turn_reference
    # question categories graded against the reference answer (FastChat's NEED_REF_CATS)
    reference_categories: list[str] = field(default_factory=list)
    # tried in order; the first group of the first match is the rating (FastChat's one_score_pattern, backup)
    rating_patterns: list[str] = field(default_factory=list)
    scale: list[float] = field(default_factory=lambda: [1.0, 10.0])  # a rating outside it is invalid
    max_new_tokens: int = 2048  # the judge's budget (FastChat: 2048, greedy)
    notes: str = ""

    def __post_init__(self) -> None:
        missing = [k for k in PROMPT_KINDS if k not in self.prompts]
        _check(not missing, "prompts", f"missing {', '.join(missing)} (a set has {', '.join(PROMPT_KINDS)})")
        _check(len(self.rating_patterns) >= 1, "rating_patterns", "at least one regular expression is required")
        for p in self.rating_patterns:
            try:
                ok = re.compile(p).groups >= 1
            except re.error as exc:
                ok = False
                _check(False, "rating_patterns", f"{p!r} is not a regular expression ({exc})")
            _check(ok, "rating_patterns", f"{p!r} has no group for the rating")
        _check(len(self.scale) == 2 and self.scale[0] < self.scale[1], "scale", "must be [lowest, highest]")
        _check(self.max_new_tokens >= 1, "max_new_tokens", f"must be >= 1, got {self.max_new_tokens}")


@dataclass
class JudgeConfig:
    """A judged dataset's ``judge:`` section (the command line's --judge overrides the model)."""

    model: str  # the registry model that grades (any engine it allows, or an endpoint entry)
    prompts: str  # a conf/judges/ key
    engine: str | None = None  # None: the judge model's first listed engine
    # graded with instead when ``model``'s weights cannot be had on this machine (offline, no GPU):
    # a plumbing judge, every such run tagged judge.embedded so its scores are never read as the real ones
    embedded: str | None = None
    max_new_tokens: int | None = None  # None: the prompt set's

    def __post_init__(self) -> None:
        _check(self.max_new_tokens is None or self.max_new_tokens >= 1, "judge.max_new_tokens",
               f"must be >= 1, got {self.max_new_tokens}")
