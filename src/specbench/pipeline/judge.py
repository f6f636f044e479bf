"""LLM-as-judge: multi-turn answers, then a judge model grades each turn (FastChat's single-answer grading).

A judged dataset (MT-Bench) is answered turn by turn: every item's first question in one engine
call, then every second question after the model's own first answer (its chat template holds the
conversation), and so on.  The judge (a registry model on any engine it allows, or an endpoint
entry) then grades each turn with the dataset's prompt set (conf/judges/): turn 1 alone, turn 2
with the whole conversation, questions of the reference categories against their reference
answers.  Its raw judgments travel to the scorer (``types.Judged``), which reads the ratings.

Planning picks the judge without side effects: the dataset's ``judge.model``, or ``--judge``; where
the dataset's judge cannot be had here (no GPU, offline) its ``judge.embedded`` model stands in,
loudly: the cell is tagged ``judge.embedded`` (plumbing: SmolLM2 judging SmolLM2 measures nothing).
A judge identical to the evaluated model on the same engine reuses the cell's engine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from specbench.engines import Engine, GenParams, identity_params, make_engine, planned_params, with_weights
from specbench.identity import digest
from specbench.registry.schema import DatasetConfig, JudgePromptSet, ModelConfig, to_plain
from specbench.types import Item, Judged, ScoreReport
from specbench.weights import ModelUnavailable, ResolvedModel, locate, materialize

if TYPE_CHECKING:
    from specbench.data import Prompt
    from specbench.pipeline.task import Answered, Task
    from specbench.registry import Registry


NOT_JUDGED = "(not judged: "  # how a judgment the judge was never asked for reads (its reason follows)


class JudgeError(RuntimeError):
    """A judge that gave nothing to read (no judgment at all); the cell fails with this line."""


@dataclass(frozen=True)
class JudgePlan:
    """Who grades a judged cell, with which prompts and budget: part of the cell's identity."""

    model: ModelConfig
    engine: str
    engine_params: dict[str, Any]
    weights: ResolvedModel  # located, not yet materialized
    prompts: JudgePromptSet
    gen: GenParams
    embedded: bool  # the dataset's embedded judge standing in for its real one (plumbing only)
    requested: str  # the judge the dataset or the command line named
    remote: bool = False

    def identity(self) -> dict[str, Any]:
        return {"model": self.model.key, "hf_id": self.model.hf_id, "revision": self.weights.revision,
                "engine": self.engine, **identity_params(self.engine_params), "prompts": self.prompts.key,
                "prompts_digest": self.prompt_version, "sampling": self.gen.as_dict(), "embedded": self.embedded}

    @property
    def prompt_version(self) -> str:
        """The prompt set's digest (prose aside): what changes when a grading prompt does."""
        return digest(to_plain(self.prompts))[:12]

    def tags(self) -> dict[str, str]:
        tags = {"judge.model": self.model.key, "judge.engine": self.engine, "judge.prompts": self.prompts.key,
                "judge.prompt_version": self.prompt_version, "judge.embedded": str(self.embedded).lower()}
        if self.embedded:
            tags["judge.note"] = (f"graded by the embedded judge {self.model.key}, standing in for "
                                  f"{self.requested}: plumbing only, not a judged score")
        return tags


def plan_judge(reg: Registry, dataset: DatasetConfig, judge: str | None = None, engine: str | None = None,
               seed: int = 0) -> JudgePlan:
    """The judge of a judged dataset (``judge``: the command line's, else the dataset's own)."""
    from specbench.engines import engine_info
    from specbench.pipeline.plan import CellUnavailable, engine_for, resolve_preset
    from specbench.registry import RegistryError

    cfg = dataset.judge
    if cfg is None:
        raise CellUnavailable(f"dataset {dataset.key} is {dataset.task_type.value} but names no judge")
    key, embedded = judge or cfg.model, False
    model = reg.model(key)
    if not model.can_generate:
        raise CellUnavailable(f"judge {key} cannot generate, so it cannot judge")
    kind = engine or cfg.engine if judge is None else engine
    kind = kind or (model.engines[0] if model.engines else "vllm")
    try:
        engine_info(kind)
    except ValueError as exc:  # --judge-engine: a user's word, one line
        raise RegistryError(f"--judge-engine: {exc}") from None
    if engine_for(model, kind) is None:
        raise CellUnavailable(f"judge {key}: the {kind} engine cannot serve it (allowed: {', '.join(model.engines)})")
    remote = engine_info(kind).remote
    try:
        weights = ResolvedModel(path=model.hf_id or key, revision=model.revision, source="remote") if remote \
            else locate(model)
    except ModelUnavailable as exc:
        if judge is not None or cfg.embedded is None:
            raise CellUnavailable(f"judge {key}: {exc}") from None
        model, embedded = reg.model(cfg.embedded), True  # the dataset's stand-in (registry-checked)
        kind = model.engines[0] if model.engines else "vllm"
        remote = engine_info(kind).remote
        try:
            weights = locate(model)
        except ModelUnavailable as exc2:
            raise CellUnavailable(f"judge {key}: {exc}; its embedded stand-in {model.key}: {exc2}") from None
    _, preset = resolve_preset(reg, model, None)
    prompts = reg.judges[cfg.prompts]
    gen = GenParams(max_new_tokens=cfg.max_new_tokens or prompts.max_new_tokens, seed=seed)
    return JudgePlan(model=model, engine=kind, engine_params=planned_params(kind, model, preset, weights, seed),
                     weights=weights, prompts=prompts, gen=gen, embedded=embedded, requested=key, remote=remote)


def same_engine(judge: JudgePlan, model: str, revision: str | None, engine: str,
                engine_params: dict[str, Any]) -> bool:
    """The judge would be the cell's own engine (same weights, engine and arguments): reuse it."""
    return (judge.model.key, judge.weights.revision, judge.engine) == (model, revision, engine) \
        and identity_params(judge.engine_params) == identity_params(engine_params) and not judge.remote


def start_judge(judge: JudgePlan, **options: Any) -> Engine:
    params = judge.engine_params if judge.remote else \
        with_weights(judge.engine_params, materialize(judge.model, judge.weights).path)
    return make_engine(judge.engine, params, **options)


# -- answering: turn by turn ------------------------------------------------------------


def next_turn(prompt: Prompt, answer: str, question: str) -> Prompt:
    """The conversation so far, the model's answer, and the next question: chat messages for a chat
    template, else the turns as plain text separated by blank lines."""
    if isinstance(prompt, list):
        return [*prompt, {"role": "assistant", "content": answer}, {"role": "user", "content": question}]
    return f"{prompt}{answer}\n\n{question}"


def answer_turns(task: Task, engine: Engine, items: list[Item], prompts: list[Prompt]) -> Answered:
    """Every item's turns: turn t of all items in one engine call, each after its own earlier answers."""
    from specbench.pipeline.task import Answered, answer

    turns = [list(it.doc.get("turns") or []) for it in items]
    answers: list[list[str]] = [[] for _ in items]
    current = list(prompts)
    figures: dict[str, float | None] = {}
    out_tokens, wall = 0, 0.0
    for t in range(max((len(q) for q in turns), default=1)):
        live = [i for i in range(len(items)) if t == 0 or t < len(turns[i])]
        if t > 0:
            for i in live:
                current[i] = next_turn(current[i], answers[i][-1], turns[i][t])
        got = answer(task, engine, [items[i] for i in live], [current[i] for i in live])
        for i, texts in zip(live, got.outputs, strict=True):
            answers[i].append(texts[0])
        for k, v in got.figures.items():  # summed over turns; rates recomputed below
            if v is not None and k in ("generation_s", "output_tokens", "prompt_tokens", "cached_prompts"):
                figures[k] = (figures.get(k) or 0) + v
        out_tokens, wall = out_tokens + got.output_tokens, wall + got.wall_s
    if wall and figures.get("output_tokens"):
        figures["output_tokens_per_s"] = figures["output_tokens"] / wall
        figures["total_tokens_per_s"] = (figures["output_tokens"] + (figures.get("prompt_tokens") or 0)) / wall
    figures["turns"] = float(sum(len(a) for a in answers))
    return Answered(answers, figures, output_tokens=out_tokens, wall_s=wall)


# -- judging ------------------------------------------------------------------------------


def _references(prompts: JudgePromptSet, item: Item) -> list[str] | None:
    """The reference answers a question of a reference category is graded against (None: none)."""
    refs = list(item.doc.get("reference") or [])
    return refs if item.doc.get("category") in prompts.reference_categories and refs else None


def grading_prompts(prompts: JudgePromptSet, item: Item, answers: list[str]) -> list[tuple[str, str, str]]:
    """(FastChat prompt name, system prompt, user prompt) for each of the item's turns: turn 1
    alone, turn 2 with the whole conversation, as FastChat's run_judge_single formats them."""
    questions, refs = list(item.doc.get("turns") or []), _references(prompts, item)
    out = []
    for t in range(min(len(answers), len(questions), 2)):
        kind = ("single" if t == 0 else "multi_turn") + ("_reference" if refs else "")
        p = prompts.prompts[kind]
        fields: dict[str, str] = {f"ref_answer_{k + 1}": r for k, r in enumerate(refs or [])}
        if t == 0:
            fields |= {"question": questions[0], "answer": answers[0]}
        else:
            fields |= {"question_1": questions[0], "answer_1": answers[0], "question_2": questions[1],
                       "answer_2": answers[1]}
        if refs and t == 1 and len(refs) < 2:
            fields["ref_answer_2"] = ""
        out.append((p.name, p.system, p.template.format(**fields)))
    return out


def judge_answers(judge: JudgePlan, engine: Engine, items: list[Item], answers: list[list[str]],
                  chat: bool) -> tuple[list[Judged], dict[str, float]]:
    """Every turn of every item graded in one judge call; the judgments and what they cost."""
    requests: list[tuple[int, str]] = []
    prompts: list[Prompt] = []
    for i, (item, turns) in enumerate(zip(items, answers, strict=True)):
        for name, system, user in grading_prompts(judge.prompts, item, turns):
            requests.append((i, name))
            prompts.append([{"role": "system", "content": system}, {"role": "user", "content": user}] if chat
                           else f"{system}\n\n{user}")
    t0 = time.perf_counter()
    gen = engine.generate(prompts, judge.gen) if prompts else None
    wall = (gen.wall_s if gen else 0.0) or (time.perf_counter() - t0)
    judged = [Judged(turns=list(turns), judgments=[], prompts=[], patterns=list(judge.prompts.rating_patterns),
                     scale=(judge.prompts.scale[0], judge.prompts.scale[1])) for turns in answers]
    skipped = gen.skipped if gen else {}
    for k, ((i, name), texts) in enumerate(zip(requests, gen.texts if gen else [], strict=True)):
        # a prompt the judge could not read: its reason stands as the judgment (unparsed, counted)
        judged[i].judgments.append(f"{NOT_JUDGED}{skipped[k]})" if k in skipped else texts[0])
        judged[i].prompts.append(name)
    figures = {"judge_s": wall, "judgments": float(len(prompts)), "judge_prompts_over_context": float(len(skipped))}
    if gen is not None and gen.cached < len(prompts):
        figures |= {"judge_output_tokens": float(gen.output_tokens), "judge_prompt_tokens": float(gen.prompt_tokens)}
    return judged, figures


def check_judgments(judge: JudgePlan, report: ScoreReport) -> str | None:
    """A judge that said nothing (every judgment empty, or not asked: over its context) is a failed
    judge: JudgeError, and the cell fails with this line.  One that wrote judgments but no readable
    rating (a small judge ignoring the format) leaves a complete run with no score, never 0: the
    warning returned says so."""
    from specbench.scoring.judge import UNPARSED

    judgments = [j for s in report.samples for j in s.detail.get("judgments", [])]
    written = [j for j in judgments if j.strip() and not j.startswith(NOT_JUDGED)]
    if judgments and not written:
        why = next((j for j in judgments if j.startswith(NOT_JUDGED)), "every judgment empty")
        raise JudgeError(f"judge {judge.model.key} ({judge.engine}) returned no judgment for any of the "
                         f"{len(judgments)} it was asked ({why})")
    if report.samples and report.metrics.get(UNPARSED) == 1.0:
        shown = " ".join(written[0].split())[:80]
        return (f"judge {judge.model.key} wrote {len(judgments)} judgments but no readable rating "
                f"({judge.prompts.rating_patterns[0]} in [{judge.prompts.scale[0]:g}, {judge.prompts.scale[1]:g}]; "
                f"first: {shown!r}): no score, judge_unparsed 1.0")
    return None
