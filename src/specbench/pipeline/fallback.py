"""The generative fallback for multiple choice: ask for the answer's letter, score by matching.

lm-eval answers a multiple-choice item by the log-likelihood of each choice as a continuation
of the prompt, which needs the prompt's token log-probabilities.  A chat-only endpoint (a
vendor's API, or any server without the completions endpoint's ``echo``) returns none, so such
a model declares ``multiple_choice: generate`` in its registry entry (or a run passes
``--multiple-choice generate``): its multiple-choice cells show the same prompt zero-shot, with
the choices listed by letter, ask for the letter, and score what comes back with the
``mc_generated`` scorer (the letter, or the text of one choice).

This is a different measurement from the log-likelihood one: the cell's dataset is recorded as
changed (scorers ``[mc_generated]``, main metric ``acc``, no lm-eval task, no few-shot), so its
identity, config.json and comparisons say so.  See docs/endpoints.md.
"""

from __future__ import annotations

import dataclasses
import string
from typing import Any

from specbench.data import Prompt
from specbench.data.adapters import get_adapter
from specbench.engines import GenParams
from specbench.pipeline.task import Task
from specbench.registry.schema import DatasetConfig
from specbench.types import Item

SCORER = "mc_generated"
INSTRUCTION = "Answer with the option's letter from the given choices directly."
MAX_NEW_TOKENS = 32  # a letter, or a short sentence that names one
LETTERS = string.ascii_uppercase


def fallback_dataset(dataset: DatasetConfig) -> DatasetConfig:
    """The dataset as the fallback answers it; ValueError (one line) where it cannot."""
    if dataset.prompt is None:
        raise ValueError(f"dataset '{dataset.key}' has no prompt section")
    if get_adapter(dataset).partial:
        raise ValueError(f"{dataset.key}: its choices are partial contexts (one prompt per option), which cannot be "
                         "asked as lettered choices; the generative fallback does not apply")
    prompt = dataclasses.replace(dataset.prompt, fewshot=0, max_new_tokens=MAX_NEW_TOKENS, stop=["\n\n"])
    return dataclasses.replace(dataset, scorers=[SCORER], main_metric="acc", lm_eval_task=None, prompt=prompt,
                               notes=f"generative fallback of {dataset.key}: letters asked, matched "
                                     f"(docs/endpoints.md). {dataset.notes}".strip())


def generative_fallback(task: Task) -> Task:
    """A multiple-choice task answered by generation (greedy, short: the answer is a letter);
    a task answered by generation already is returned as it is."""
    if not task.loglik:
        return task
    dataset = fallback_dataset(task.dataset)
    gen = GenParams(max_new_tokens=MAX_NEW_TOKENS, stop=("\n\n",), seed=task.gen.seed)
    return dataclasses.replace(task, dataset=dataset, gen=gen, loglik=False, mc_fallback=True)


def lettered(text: str, choices: list[str], plain: bool) -> str:
    """``text`` with the choices listed by letter (unless it lists them already, as MMLU's
    template does) and the instruction; a trailing "Answer:" moves after them (plain text only)."""
    body = text.rstrip()
    if body.endswith("Answer:"):
        body = body[: -len("Answer:")].rstrip()
    stripped = [c.strip() for c in choices]
    listed = stripped == list(LETTERS[: len(choices)]) or f"A. {stripped[0]}" in body
    if not listed:
        body += "\n" + "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(stripped))
    body += "\n" + INSTRUCTION
    return body + "\nAnswer:" if plain else body


def fallback_prompts(prompts: list[Prompt], items: list[Item]) -> list[Prompt]:
    """Each prompt asking for its item's letter: plain text, or the last user message of chat messages."""
    out: list[Prompt] = []
    for prompt, item in zip(prompts, items, strict=True):
        if not item.choices:
            raise ValueError(f"item {item.id} has no choices")
        if len(item.choices) > len(LETTERS):
            raise ValueError(f"item {item.id}: {len(item.choices)} choices, more than letters")
        if isinstance(prompt, str):
            out.append(lettered(prompt, item.choices, plain=True))
            continue
        messages: list[dict[str, Any]] = [dict(m) for m in prompt]
        last = max(i for i, m in enumerate(messages) if m["role"] == "user")
        if not isinstance(messages[last]["content"], str):
            raise ValueError(f"item {item.id}: the generative fallback takes text prompts only")
        messages[last]["content"] = lettered(messages[last]["content"], item.choices, plain=False)
        out.append(messages)  # type: ignore[arg-type]
    return out
