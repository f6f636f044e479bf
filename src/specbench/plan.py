"""Plans: what a cell or a whole category will do, decided before any engine starts.

A cell plan fixes the engine arguments, sampling parameters and resolved weights of one
model x dataset, and so its config hash.  A category plan expands a category into cells
(its models and generalist baselines x its datasets) and says, for each, what it needs
(GPUs, tensor parallelism, memory) and, when it cannot run here, why.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from specbench.registry.schema import DatasetConfig, ModelConfig, PresetConfig, Status, TaskType
from specbench.registry.schema import to_plain as _plain
from specbench.engines import GenParams, planned_params
from specbench.registry import Registry, RegistryError, suggest
from specbench.weights import (
    SIMULATED_SOURCE,
    ModelUnavailable,
    ResolvedModel,
    checkpoint_outdated,
    derived_manifest,
    gpu_count,
    hub_offline,
    hub_unreachable,
    resolve,
    runnable_reason,
)

GENERATIVE = {TaskType.generate, TaskType.code_exec, TaskType.open_qa}
TUNED = "tuned"  # --preset tuned: the model's own tuned preset, written by `specbench sweep`


class CellUnavailable(RuntimeError):
    """The cell cannot run here (planned dataset, unrunnable model); one line of reason."""


@dataclass
class CellPlan:
    """Everything one cell will do."""

    model: ModelConfig
    dataset: DatasetConfig
    preset_name: str
    preset: PresetConfig
    engine: str
    resolved: ResolvedModel
    engine_params: dict[str, Any]
    gen: GenParams
    samples: int | None
    seed: int
    category: str | None
    role: str

    @property
    def loglik(self) -> bool:
        """Multiple-choice style datasets are scored by log-likelihood, never generated."""
        return self.dataset.task_type not in GENERATIVE and any(
            s.startswith("mc_") for s in self.dataset.scorers)

    @property
    def chat(self) -> bool:
        return self.model.instruct and not self.loglik

    @property
    def name(self) -> str:
        return f"{self.model.key}@{self.dataset.key}"

    @property
    def simulated_quantization(self) -> bool:
        """AWQ weights unpacked to floats (no AWQ kernel here): accuracy is AWQ's, speed and memory are not."""
        return self.resolved.source == SIMULATED_SOURCE

    @property
    def quantization_tags(self) -> dict[str, str]:
        """Run tags that say how the weights were quantized and whom a derived model compares with."""
        tags = {"quantization": "simulated" if self.simulated_quantization else self.model.quantization.value}
        if self.simulated_quantization:
            tags["perf_representative"] = "false"
        if self.model.parent:
            tags["parent"] = self.model.parent
        return tags

    def config(self) -> dict[str, Any]:
        """The resolved configuration; its hash identifies the experiment (local paths excluded)."""
        engine = {k: v for k, v in self.engine_params.items() if k not in ("model", "tokenizer")}
        return {
            "model": _plain(self.model), "model_revision": self.resolved.revision,
            "dataset": _plain(self.dataset), "preset": {"name": self.preset_name, **_plain(self.preset)},
            "engine": {"kind": self.engine, **engine}, "sampling": self.gen.as_dict(),
            "samples": self.samples, "seed": self.seed, "chat": self.chat,
        }


def engine_for(model: ModelConfig, requested: str) -> str | None:
    """The requested engine when the model allows it (``engines`` empty or listing it), else
    None.  An OpenAI-compatible endpoint serves whatever it was started with, so it is always
    allowed."""
    allowed = [e.value for e in model.engines]
    return requested if not allowed or requested in allowed or requested == "openai" else None


def plan_cell(reg: Registry, model_key: str, dataset_key: str, *, preset: str | None = None,
              engine: str = "vllm", samples: int | None = None, seed: int = 0,
              category: str | None = None, resolved: ResolvedModel | None = None) -> CellPlan:
    """Resolve names, weights and engine arguments; raise CellUnavailable with the reason."""
    model = reg.model(model_key)
    dataset = reg.dataset(dataset_key)
    preset_name, preset_cfg = resolve_preset(reg, model, preset)
    if dataset.status != Status.ready:
        raise CellUnavailable(f"dataset {dataset.key} is planned: {dataset.planned_reason}")
    if engine_for(model, engine) is None:
        allowed = ", ".join(e.value for e in model.engines)
        raise CellUnavailable(f"{model.key}: the {engine} engine cannot serve it (its registry entry allows: "
                              f"{allowed}); use --engine {model.engines[0].value}")
    if resolved is None and engine == "openai":
        resolved = ResolvedModel(path=model.hf_id or model.key, revision=model.revision, source="remote")
    if resolved is None:
        try:
            resolved = resolve(model)
        except ModelUnavailable as exc:
            raise CellUnavailable(str(exc)) from None
    stale = stale_checkpoint(reg, model) if engine != "openai" else None
    if stale:
        raise CellUnavailable(stale)
    prompt = dataset.prompt
    assert prompt is not None  # ready datasets have one (schema check)
    gen = GenParams(max_new_tokens=prompt.max_new_tokens, stop=tuple(prompt.stop), seed=seed)
    if category is None:
        cats = reg.categories_of(model.key)
        category = cats[0] if cats else model.category
    return CellPlan(
        model=model, dataset=dataset, preset_name=preset_name, preset=preset_cfg, engine=engine,
        resolved=resolved, engine_params=planned_params(engine, model, preset_cfg, resolved, seed),
        gen=gen, samples=samples, seed=seed, category=category, role=reg.role(model.key, category),
    )


def stale_checkpoint(reg: Registry, model: ModelConfig) -> str | None:
    """Why a derived model's checkpoint no longer matches its recipe in conf/ (None if it does)."""
    manifest = derived_manifest(model) if model.recipe else None
    why = manifest and checkpoint_outdated(manifest, reg.quantization(model.recipe).digest())
    if not why:
        return None
    return (f"{model.key}: its checkpoint was made with {why} ({model.recipe}); "
            f"run `specbench quantize --model {model.parent}` again")


def tuned_preset_name(model_key: str) -> str:
    return f"{TUNED}_{model_key}"


def resolve_preset(reg: Registry, model: ModelConfig, preset: str | None) -> tuple[str, PresetConfig]:
    """The preset a cell runs with: the named one, else the model's own; ``tuned`` means the
    model's tuned preset (conf/presets/tuned_<model>.yaml), so one flag serves every model."""
    name = preset or model.preset
    if name == TUNED:
        name = tuned_preset_name(model.key)
        if name not in reg.presets:
            raise RegistryError(f"no tuned preset for {model.key}: run `specbench sweep --model {model.key}` "
                                f"first (it writes conf/presets/{name}.yaml)")
    return name, reg.preset(name)


# -- categories -----------------------------------------------------------------------------

def hub_reachable() -> bool:
    """Models can be downloaded: HF_HUB_OFFLINE unset and the hub answers (asked once per process)."""
    return not hub_offline() and hub_unreachable() is None


@dataclass
class PlannedCell:
    model: str
    dataset: str
    role: str  # specialist | generalist
    needs: dict[str, Any]
    reason: str | None = None  # why it cannot run here; None = runnable
    plan: CellPlan | None = None
    engine: str = "vllm"  # the category's engine, or the model's own when it cannot serve it

    @property
    def name(self) -> str:
        return f"{self.model}@{self.dataset}"


@dataclass
class CategoryPlan:
    category: str
    cells: list[PlannedCell]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def runnable(self) -> list[PlannedCell]:
        return [c for c in self.cells if c.reason is None]

    @property
    def skipped(self) -> list[PlannedCell]:
        return [c for c in self.cells if c.reason is not None]

    def digest(self) -> str:
        """Identifies the invocation: same category, options and cells -> same digest."""
        blob = json.dumps({"category": self.category, "options": self.options,
                           "cells": [c.name for c in self.cells]}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def needs(model: ModelConfig, preset: PresetConfig) -> dict[str, Any]:
    """What a model asks of the hardware; memory is weights over the preset's fraction
    (None for an API-only model of unpublished size)."""
    size = model.size_gb
    return {
        "gpus": model.min_gpus, "tensor_parallel": model.tensor_parallel_size,
        "weights_gb": None if size is None else round(size, 2),
        "memory_per_gpu_gb": None if size is None else round(
            size / model.tensor_parallel_size / preset.gpu_memory_utilization, 1),
    }


def _pick(names: list[str] | None, allowed: list[str], what: str, category: str) -> list[str]:
    if not names:
        return allowed
    for n in names:
        if n not in allowed:
            raise RegistryError(f"{what} '{n}' is not in category {category}; {suggest(n, allowed)}")
    return [n for n in allowed if n in names]


def plan_category(reg: Registry, name: str, *, preset: str | None = None, engine: str = "vllm",
                  samples: int | None = None, seed: int = 0, models: list[str] | None = None,
                  datasets: list[str] | None = None, baselines: bool = True, secondary: bool = False,
                  resolve_weights: bool = True) -> CategoryPlan:
    """Expand a category into cells.  With ``resolve_weights`` False (a dry run) nothing is
    downloaded or converted; reasons come from the registry, GPU count and hub reachability."""
    cat = reg.category(name)
    members = cat.models + [b for b in cat.baselines if b not in cat.models] if baselines else list(cat.models)
    model_keys = _pick(models, members, "model", cat.key)
    dset_pool = cat.datasets.primary + (cat.datasets.secondary if secondary or datasets else [])
    dataset_keys = _pick(datasets, dset_pool, "dataset", cat.key)
    gpus = gpu_count()
    cells: list[PlannedCell] = []
    for mk in model_keys:
        model = reg.model(mk)
        model_engine = engine_for(model, engine) or model.engines[0].value  # e.g. BioGPT: transformers
        try:
            preset_cfg, reason = resolve_preset(reg, model, preset)[1], None
        except RegistryError as exc:  # --preset tuned: only models without one are skipped
            if preset != TUNED:
                raise
            preset_cfg, reason = reg.preset(model.preset), str(exc)
        reason = reason or (runnable_reason(model, gpus) if engine != "openai" else None)
        if reason is None and engine != "openai":
            reason = stale_checkpoint(reg, model)
        if reason is None and engine != "openai" and model.offline is None and model.recipe is None \
                and not hub_reachable():
            reason = f"{mk}: no hub access to download {model.hf_id} (and no offline source)"
        resolved = None
        if reason is None and resolve_weights and engine != "openai":
            try:
                resolved = resolve(model)
            except ModelUnavailable as exc:
                reason = str(exc)
        for dk in dataset_keys:
            ds = reg.dataset(dk)
            cell = PlannedCell(mk, dk, reg.role(mk, cat.key), needs(model, preset_cfg), reason, engine=model_engine)
            if cell.reason is None and ds.status != Status.ready:
                cell.reason = f"dataset {dk} is planned: {ds.planned_reason}"
            if cell.reason is None and resolve_weights:
                cell.plan = plan_cell(reg, mk, dk, preset=preset, engine=model_engine, samples=samples, seed=seed,
                                      category=cat.key, resolved=resolved)
            cells.append(cell)
    options = {"preset": preset, "engine": engine, "samples": samples, "seed": seed, "baselines": baselines,
               "secondary": secondary, "models": models, "datasets": datasets}
    return CategoryPlan(cat.key, cells, options)
