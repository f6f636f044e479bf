"""The probe: a fixed set of items that every trial answers, through the one cell pipeline.

Items are loaded, prompts rendered, answers generated and scored exactly as a cell does it
(``pipeline.task_for`` / ``prepare`` / ``answer`` / ``score``), so a probe accuracy means what
an evaluation's does; only the generation limit is shorter (``probe.max_new_tokens``, capped
by each dataset's own) and the items are answered in chunks, round-robin over datasets, so
Optuna's pruner sees cumulative throughput after each generate call.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from specbench import pipeline
from specbench.pipeline import Prepared, Task
from specbench.registry import Registry, RegistryError
from specbench.registry.schema import DatasetConfig, ModelConfig, Status
from specbench.registry.sweeps import ProbeSpec


def probe_task(ds: DatasetConfig, model: ModelConfig, probe: ProbeSpec) -> Task | None:
    """The dataset's task with the probe's generation limit; None unless it is ready and
    answered by generation (throughput is measured on generated tokens)."""
    if ds.status != Status.ready:
        return None
    try:
        task = pipeline.task_for(ds, instruct=model.instruct, max_new_tokens=probe.max_new_tokens,
                                 images_per_prompt=model.vision.images_per_prompt if model.vision else 0)
    except ValueError:  # no prompt section, or scorers that want both ways of answering
        return None
    if ds.task_type.value == "multimodal" and model.vision is None:  # a text model cannot see images
        return None
    return None if task.loglik else task


def probe_tasks(reg: Registry, model: ModelConfig, probe: ProbeSpec) -> list[Task]:
    """The probe's datasets: the spec's, else the generative primaries of the model's category
    (else its first two generative datasets)."""
    cats = reg.categories_of(model.key) or [model.category]
    cat = reg.category(cats[0])
    if probe.datasets:
        out = []
        for k in probe.datasets:
            ds = reg.dataset(k)  # unknown name: one line with suggestions
            task = probe_task(ds, model, probe)
            if task is None:
                raise RegistryError(f"probe dataset '{k}' must be ready and generative (it is {ds.status.value}, "
                                    f"{ds.task_type.value}): throughput is measured on generated tokens")
            out.append(task)
        return out
    out = [t for t in (probe_task(reg.dataset(k), model, probe) for k in cat.datasets.primary) if t is not None]
    if not out:
        pool = cat.datasets.primary + cat.datasets.secondary
        out = [t for t in (probe_task(reg.dataset(k), model, probe) for k in pool) if t is not None][:2]
    if not out:
        raise RegistryError(f"category {cat.key} has no ready generative dataset for the probe; "
                            "set probe.datasets in the sweep spec")
    return out


@dataclass
class ProbeSet:
    """The prepared items and prompts per dataset, and the generate calls (steps) that answer them."""

    prepared: list[Prepared]  # one per dataset, in probe order
    chunks: int
    digest: str = ""  # "dataset:data digest" per dataset: what the probe's items were

    @property
    def datasets(self) -> list[DatasetConfig]:
        return [p.task.dataset for p in self.prepared]

    def steps(self) -> list[tuple[Prepared, int, int]]:
        """(prepared dataset, start, stop) per generate call, round-robin over datasets so that
        the first steps a pruner sees already mix the workloads."""
        per_ds = []
        for p in self.prepared:
            n = len(p.prompts)
            bounds = [round(i * n / self.chunks) for i in range(self.chunks + 1)]
            per_ds.append([(p, a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a])
        out = []
        for i in range(max(len(s) for s in per_ds)):
            out += [s[i] for s in per_ds if i < len(s)]
        return out


def build_probe(reg: Registry, model: ModelConfig, probe: ProbeSpec) -> ProbeSet:
    """Load the probe's items and render their prompts, before any engine starts."""
    prepared = [pipeline.prepare(task, probe.samples) for task in probe_tasks(reg, model, probe)]
    chunks = min(probe.chunks, min(len(p.prompts) for p in prepared))
    return ProbeSet(prepared, chunks, digest=",".join(f"{p.task.dataset.key}:{p.loaded.digest}" for p in prepared))


@dataclass
class Measurement:
    """What one configuration did on the probe."""

    output_tokens: int
    generation_s: float
    load_s: float
    peak_rss_mb: float
    accuracy: float  # mean over datasets of each dataset's main metric
    per_dataset: dict[str, float]  # dataset -> main metric
    sample_scores: list[float]  # main-metric score per probe item, in probe order
    output_digests: list[str]  # sha1 of each probe output, in probe order (drift: changed outputs)
    memory: dict[str, float] = field(default_factory=dict)
    sample_ids: list[str] = field(default_factory=list)  # "dataset:item id" per score, in probe order

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.generation_s if self.generation_s > 0 else 0.0


def output_digest(output: Any) -> str:
    """An output's fingerprint; the formula is stored in studies (the reference's outputs), so it stays."""
    return hashlib.sha1(json.dumps(output).encode()).hexdigest()[:12]


def measure(kind: str, params: dict[str, Any], probe: ProbeSet,
            report: Callable[[int, float], None] | None = None) -> Measurement:
    """Start the engine, answer the probe step by step, score it; always close the engine.

    ``report(step, cumulative_tokens_per_s)`` is called after each generate call; it may
    raise (optuna.TrialPruned) to stop the trial early.
    """
    from specbench.engines import PeakRSS, make_engine

    outputs: dict[str, list[Any]] = {p.task.dataset.key: [None] * len(p.prompts) for p in probe.prepared}
    tokens, wall = 0, 0.0
    engine = None
    with PeakRSS() as rss:
        try:
            engine = make_engine(kind, params)
            for step, (p, a, b) in enumerate(probe.steps()):
                answered = pipeline.answer(p.task, engine, p.items[a:b], p.prompts[a:b],
                                           images=p.images[a:b] if p.images else None)
                outputs[p.task.dataset.key][a:b] = answered.outputs
                tokens += answered.output_tokens
                wall += answered.wall_s
                if report is not None:
                    report(step, tokens / wall if wall > 0 else 0.0)
            memory = engine.memory()
            load_s = engine.load_s
        finally:
            if engine is not None:
                engine.close()
    per_ds, sample_scores, digests, ids = {}, [], [], []
    for p in probe.prepared:
        ds = p.task.dataset
        rep = pipeline.score(p.task, p.items, outputs[ds.key])
        per_ds[ds.key] = rep.metrics[ds.main_metric]
        sample_scores += [s.scores.get(ds.main_metric, 0.0) for s in rep.samples]
        digests += [output_digest(o) for o in outputs[ds.key]]
        ids += [f"{ds.key}:{item.id}" for item in p.items]
    return Measurement(output_tokens=tokens, generation_s=wall, load_s=load_s, peak_rss_mb=rss.peak_mb,
                       accuracy=sum(per_ds.values()) / len(per_ds), per_dataset=per_ds,
                       sample_scores=sample_scores, output_digests=digests, memory=memory, sample_ids=ids)
