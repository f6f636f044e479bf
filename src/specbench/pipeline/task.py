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
from specbench.registry.schema import DatasetConfig, EncoderConfig, TaskType
from specbench.types import ChoiceScores, Item, Judged, ScoreReport

if TYPE_CHECKING:
    from specbench.sandbox import Limits


@dataclass(frozen=True)
class Task:
    """How one dataset's items are answered."""

    dataset: DatasetConfig
    gen: GenParams
    chat: bool  # prompts are chat messages for the model's chat template (instruct models)
    loglik: bool  # choice log-likelihoods (multiple choice) instead of generation
    images_per_prompt: int = 0  # images the model takes per prompt (0: a text model)
    mc_fallback: bool = False  # multiple choice asked by letter and generated (``pipeline.fallback``)
    # An encoder-only model: answered by a probe over its frozen embeddings, fitted on the dataset's
    # structure.train_split, or by its own classification head (``pipeline.probe``); no generation.
    encoder: EncoderConfig | None = None
    # a judged dataset: its items' turns answered one after another (``pipeline.judge``), then graded
    multi_turn: bool = False

    @property
    def probe(self) -> bool:
        """Answered by an encoder (a probe or its head), not by generation or log-likelihoods."""
        return self.encoder is not None

    @property
    def head(self) -> bool:
        """Answered by the encoder checkpoint's own classification head (declared for this dataset)."""
        return self.encoder is not None and self.encoder.head is not None \
            and self.dataset.key in self.encoder.head.datasets


def task_for(dataset: DatasetConfig, *, instruct: bool, seed: int = 0, max_new_tokens: int | None = None,
             images_per_prompt: int = 0, encoder: EncoderConfig | None = None) -> Task:
    """The task of a ready dataset for a model (``instruct``: it has a chat template to apply;
    ``images_per_prompt``: how many images it takes, 0 for a text model; ``encoder``: an encoder-only
    model's section, which answers classification and NER datasets by probe or head).

    ``max_new_tokens`` caps the dataset's own limit (a sweep's short probe)."""
    prompt = dataset.prompt
    if prompt is None:
        raise ValueError(f"dataset '{dataset.key}' has no prompt section")
    if encoder is not None:
        return _encoder_task(dataset, encoder, seed)
    loglik = scoring.answer_capability(dataset) == "loglikelihood"
    limit = prompt.max_new_tokens if max_new_tokens is None else min(max_new_tokens, prompt.max_new_tokens)
    gen = GenParams(max_new_tokens=limit, stop=tuple(prompt.stop), seed=seed)
    return Task(dataset=dataset, gen=gen, chat=instruct and prompt.chat_layout != "none", loglik=loglik,
                images_per_prompt=images_per_prompt, multi_turn=dataset.judge is not None)


def _encoder_task(dataset: DatasetConfig, encoder: EncoderConfig, seed: int) -> Task:
    st = dataset.structure
    if st is None or dataset.task_type not in (TaskType.classification, TaskType.ner):
        raise ValueError(f"encoder models answer classification and NER datasets; {dataset.key} is "
                         f"{dataset.task_type.value}")
    task = Task(dataset=dataset, gen=GenParams(max_new_tokens=1, seed=seed), chat=False, loglik=False,
                encoder=encoder)
    if not task.head and st.train_split is None:
        raise ValueError(f"{dataset.key} declares no structure.train_split, so no probe can be fitted for an "
                         "encoder (and the model's encoder.head does not answer it)")
    return task


@dataclass
class Prepared:
    """A task's items and their prompts, with where the items came from."""

    task: Task
    loaded: data.LoadedDataset
    prompts: list[data.Prompt]  # plain text, or chat messages when the task applies a chat template
    images: list[list[Any]] = field(default_factory=list)  # per item, its decoded images (empty: no images)
    failures: dict[int, str] = field(default_factory=dict)  # item index -> why it could not be asked
    train: list[Item] = field(default_factory=list)  # a probe's training items (structure.train_split)
    train_source: str = ""

    @property
    def items(self) -> list[Item]:
        return self.loaded.items


def prepare(task: Task, samples: int | None = None, offline: bool | None = None) -> Prepared:
    """Load the first ``samples`` items (all when None) and render their prompts, in document
    order: item i gets lm-eval's i-th few-shot draw, so ``samples=N`` is lm-eval's ``--limit N``.

    Items' images are decoded here: one that is missing, truncated or not an image (or more
    images than the model takes) fails that item alone, with its reason, and the rest go on.

    ``offline``: True reads only the shipped slice, False only the hub (a failure is an error,
    never a silent fall-back to a slice), None the hub when it is usable, else the slice."""
    loaded = data.load_items(task.dataset, samples, offline=offline)
    prompts = data.build_prompts(task.dataset, loaded.items, loaded.fewshot, chat=task.chat)
    if task.mc_fallback:
        from specbench.pipeline.fallback import fallback_prompts

        prompts = fallback_prompts(prompts, loaded.items)
    prepared = Prepared(task, loaded, prompts)
    if any(item.images for item in loaded.items):
        _decode_images(prepared)
    if task.probe and not task.head:  # the probe's training split, from the same kind of source
        st = task.dataset.structure
        prepared.train, prepared.train_source = data.load_split_items(task.dataset, st.train_split, st.max_train,
                                                                      offline=loaded.offline)
    return prepared


def _decode_images(p: Prepared) -> None:
    from specbench.data.images import ImageError, open_image

    for i, item in enumerate(p.items):
        decoded: list[Any] = []
        if len(item.images) > p.task.images_per_prompt:
            p.failures[i] = (f"{len(item.images)} images, the model takes {p.task.images_per_prompt} per prompt "
                             "(vision.images_per_prompt)")
        else:
            try:
                decoded = [open_image(ref) for ref in item.images]
            except ImageError as exc:
                p.failures[i] = str(exc)
        p.images.append(decoded)


def answer_prepared(p: Prepared, engine: Engine) -> Answered:
    """The prepared items answered in one engine call, with their images; an item that failed
    to prepare is not sent and gets an empty answer (scored wrong, its reason in the table)."""
    if p.task.probe:
        from specbench.pipeline.probe import answer_encoder

        return answer_encoder(p, engine)
    if p.task.multi_turn:
        from specbench.pipeline.judge import answer_turns

        return answer_turns(p.task, engine, p.items, p.prompts)
    if not p.images:
        return answer(p.task, engine, p.items, p.prompts)
    ok = [i for i in range(len(p.items)) if i not in p.failures]
    sub = answer(p.task, engine, [p.items[i] for i in ok], [p.prompts[i] for i in ok],
                 images=[p.images[i] for i in ok]) if ok else Answered([], {})
    outputs: list[Any] = [[""] for _ in p.items]
    for i, out in zip(ok, sub.outputs, strict=True):
        outputs[i] = out
    n_images = sum(len(p.images[i]) for i in ok)
    figures = {**sub.figures, "items_failed": len(p.failures), "images": n_images}
    if n_images and sub.wall_s and sub.figures.get("cached_prompts", 0) < len(ok):
        figures["images_per_s"] = n_images / sub.wall_s
    return Answered(outputs, figures, output_tokens=sub.output_tokens, wall_s=sub.wall_s)


@dataclass
class Answered:
    """The engine's outputs (texts per item, or choice log-likelihoods) and what they cost."""

    outputs: list[Any]
    figures: dict[str, float | None] = field(default_factory=dict)
    output_tokens: int = 0
    wall_s: float = 0.0


def answer(task: Task, engine: Engine, items: list[Item], prompts: list[data.Prompt],
           images: list[list[Any]] | None = None) -> Answered:
    """Every item in one engine call; throughput only from what the engine really generated
    (prompt tokens include the image tokens the engine expanded the images into)."""
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
    gen = engine.generate(prompts, task.gen, images=images) if images else engine.generate(prompts, task.gen)
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
    if gen.skipped:  # not sent, answered empty (scored wrong): counted, never hidden
        figures["prompts_over_context"] = len(gen.skipped)
    if gen.latencies_s:
        figures["latency_mean_s"] = sum(gen.latencies_s) / len(gen.latencies_s)
    return Answered(gen.texts, figures, output_tokens=gen.output_tokens, wall_s=wall)


def score(task: Task, items: list[Item], outputs: list[Any], limits: Limits | None = None) -> ScoreReport:
    """Every scorer the dataset names, over the items and their outputs."""
    return scoring.score(task.dataset, items, outputs, limits)


def sample_rows(items: list[Item], prompts: list[data.Prompt], outputs: list[Any],
                report: ScoreReport, failures: dict[int, str] | None = None) -> list[dict]:
    """The per-sample table: prompt, output, extracted answer, reference and each score; for items
    with images the image names, and for an item that could not be asked, why (``error``).

    The prompt is the text the model read when it is plain text; chat messages are shown as
    their JSON (roles and contents, before the engine's chat template, which only the engine's
    tokenizer knows)."""
    rows = []
    failures = failures or {}
    for i, (item, prompt, output, s) in enumerate(zip(items, prompts, outputs, report.samples, strict=True)):
        if isinstance(output, Judged):  # the turns' answers, and each turn's judgment as the judge wrote it
            text = output.turns[0] if len(output.turns) == 1 else output.turns
            extra = {"judgments": output.judgments, "judge_prompts": output.prompts}
        elif isinstance(output, ChoiceScores):
            text = item.choices[max(range(len(output.logprobs)), key=output.logprobs.__getitem__)] \
                if item.choices and output.logprobs else ""
            extra = {"logprobs": [round(x, 4) for x in output.logprobs]}
        else:
            text = output[0] if len(output) == 1 else output
            extra = {}
        if item.images:
            extra["image"] = ", ".join(ref.name for ref in item.images)
        if i in failures:
            extra["error"] = failures[i]
        rows.append({"id": item.id, "prompt": data.prompt_text(prompt), "output": text, "extracted": s.extracted,
                     "reference": item.reference, **{f"score.{k}": v for k, v in s.scores.items()},
                     **{f"{scoring.COUNTS_PREFIX}{k}": v for k, v in s.counts.items()}, **extra})
    return rows


def isolation_tags(dataset: DatasetConfig) -> dict[str, str]:
    """``sandbox.isolation`` (full, namespaces or none; docs/sandbox.md) for a dataset whose scorers run
    generated code, else nothing: a code score means something only with the isolation it ran under."""
    if not any(scoring.scorer_info(s, dataset.key).sandboxed for s in dataset.scorers):
        return {}
    from specbench import sandbox

    return {"sandbox.isolation": sandbox.isolation_level()}
