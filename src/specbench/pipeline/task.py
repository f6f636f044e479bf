"""The one cell pipeline: prepare items and prompts -> answer them with an engine -> score.

A cell (``pipeline.cell``), a sweep's probe (``specbench.sweep``) and re-scoring saved outputs
(``pipeline.rescore``) all go through these three steps, so a prompt, an answer and a score
mean the same thing wherever they are made.

A :class:`Task` is how one dataset is answered: by generation (with these sampling
parameters) or by choice log-likelihoods, which one following from what the dataset's
scorers declare they need; and with the model's chat template or not.  Prompts are
lm-evaluation-harness's (:mod:`specbench.data.prompts`): plain text, or -- for a model with a
chat template, unless the dataset says ``prompt.chat_layout: none`` -- chat messages, which the
engine templates, for generation and log-likelihood contexts alike (lm-eval's
``--apply_chat_template``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from specbench import data, scoring
from specbench.engines import Engine, GenParams
from specbench.registry.schema import DatasetConfig
from specbench.types import ChoiceScores, Item, ScoreReport

if TYPE_CHECKING:
    from specbench.sandbox import Limits


@dataclass(frozen=True)
class Task:
    """How one dataset's items are answered."""

    dataset: DatasetConfig
    gen: GenParams
    chat: bool  # prompts are chat messages for the model's chat template (instruct models)
    loglik: bool  # choice log-likelihoods (multiple choice) instead of generation


def task_for(dataset: DatasetConfig, *, instruct: bool, seed: int = 0, max_new_tokens: int | None = None) -> Task:
    """The task of a ready dataset for a model (``instruct``: it has a chat template to apply).

    ``max_new_tokens`` caps the dataset's own limit (a sweep's short probe)."""
    prompt = dataset.prompt
    if prompt is None:
        raise ValueError(f"dataset '{dataset.key}' has no prompt section")
    loglik = scoring.answer_capability(dataset) == "loglikelihood"
    limit = prompt.max_new_tokens if max_new_tokens is None else min(max_new_tokens, prompt.max_new_tokens)
    gen = GenParams(max_new_tokens=limit, stop=tuple(prompt.stop), seed=seed)
    return Task(dataset=dataset, gen=gen, chat=instruct and prompt.chat_layout != "none", loglik=loglik)


@dataclass
class Prepared:
    """A task's items and their prompts, with where the items came from."""

    task: Task
    loaded: data.LoadedDataset
    prompts: list[data.Prompt]  # plain text, or chat messages when the task applies a chat template

    @property
    def items(self) -> list[Item]:
        return self.loaded.items


def prepare(task: Task, samples: int | None = None, offline: bool | None = None) -> Prepared:
    """Load the first ``samples`` items (all when None) and render their prompts, in document
    order: item i gets lm-eval's i-th few-shot draw, so ``samples=N`` is lm-eval's ``--limit N``.

    ``offline``: True reads only the shipped slice, False only the hub (a failure is an error,
    never a silent fall-back to a slice), None the hub when it is usable, else the slice."""
    loaded = data.load_items(task.dataset, samples, offline=offline)
    prompts = data.build_prompts(task.dataset, loaded.items, loaded.fewshot, chat=task.chat)
    return Prepared(task, loaded, prompts)


@dataclass
class Answered:
    """The engine's outputs (texts per item, or choice log-likelihoods) and what they cost."""

    outputs: list[Any]
    figures: dict[str, float | None] = field(default_factory=dict)
    output_tokens: int = 0
    wall_s: float = 0.0


def answer(task: Task, engine: Engine, items: list[Item], prompts: list[data.Prompt]) -> Answered:
    """Every item in one engine call; throughput only from what the engine really generated."""
    t0 = time.perf_counter()
    if task.loglik:
        requests, owners = [], []
        for i, (item, prompt) in enumerate(zip(items, prompts, strict=True)):
            pairs = data.choice_requests(task.dataset, item, prompt)
            requests += pairs
            owners += [i] * len(pairs)
        results = engine.loglikelihood(requests)
        outputs = [ChoiceScores(logprobs=[], is_greedy=[]) for _ in items]
        for i, r in zip(owners, results, strict=True):
            outputs[i].logprobs.append(r.logprob)
            outputs[i].is_greedy.append(r.is_greedy)
        wall = time.perf_counter() - t0
        return Answered(outputs, {"generation_s": wall, "requests_per_s": len(requests) / wall if wall else None},
                        wall_s=wall)
    gen = engine.generate(prompts, task.gen)
    wall = gen.wall_s or (time.perf_counter() - t0)
    generated = len(prompts) - gen.cached
    figures: dict[str, float | None] = {"generation_s": wall, "cached_prompts": gen.cached}
    if generated:
        figures.update({
            "output_tokens": gen.output_tokens,
            "prompt_tokens": gen.prompt_tokens,
            "output_tokens_per_s": gen.output_tokens / wall if wall else None,
            "total_tokens_per_s": (gen.output_tokens + gen.prompt_tokens) / wall if wall else None,
            "requests_per_s": generated / wall if wall else None,
        })
    if gen.latencies_s:
        figures["latency_mean_s"] = sum(gen.latencies_s) / len(gen.latencies_s)
    return Answered(gen.texts, figures, output_tokens=gen.output_tokens, wall_s=wall)


def score(task: Task, items: list[Item], outputs: list[Any], limits: Limits | None = None) -> ScoreReport:
    """Every scorer the dataset names, over the items and their outputs."""
    return scoring.score(task.dataset, items, outputs, limits)


def sample_rows(items: list[Item], prompts: list[data.Prompt], outputs: list[Any],
                report: ScoreReport) -> list[dict]:
    """The per-sample table: prompt, output, extracted answer, reference and each score.

    The prompt is the text the model read when it is plain text; chat messages are shown as
    their JSON (roles and contents, before the engine's chat template, which only the engine's
    tokenizer knows)."""
    rows = []
    for item, prompt, output, s in zip(items, prompts, outputs, report.samples, strict=True):
        if isinstance(output, ChoiceScores):
            text = item.choices[max(range(len(output.logprobs)), key=output.logprobs.__getitem__)] \
                if item.choices and output.logprobs else ""
            extra = {"logprobs": [round(x, 4) for x in output.logprobs]}
        else:
            text = output[0] if len(output) == 1 else output
            extra = {}
        rows.append({"id": item.id, "prompt": data.prompt_text(prompt), "output": text, "extracted": s.extracted,
                     "reference": item.reference, **{f"score.{k}": v for k, v in s.scores.items()}, **extra})
    return rows
