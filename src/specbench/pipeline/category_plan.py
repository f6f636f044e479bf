"""Category plans: a category expanded into cells, each with what it needs and why it
cannot run here.  Pure data, computed without side effects (a dry run and a real run plan
the same cells; nothing is downloaded or converted)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from specbench.engines import engine_info
from specbench.hub import hub_offline, hub_unreachable
from specbench.identity import digest
from specbench.pipeline.plan import TUNED, CellPlan, CellUnavailable, engine_for, plan_cell, resolve_preset
from specbench.registry import Registry, RegistryError, suggest
from specbench.registry.schema import ModelConfig, PresetConfig, Status, parallelism
from specbench.weights import ModelUnavailable, ResolvedModel, gpu_count, locate, runnable_reason


def hub_reachable() -> bool:
    """Models can be downloaded: HF_HUB_OFFLINE unset and the hub answers (asked once per process)."""
    return not hub_offline() and hub_unreachable() is None


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class CategoryPlan:
    category: str
    cells: tuple[PlannedCell, ...]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def runnable(self) -> list[PlannedCell]:
        return [c for c in self.cells if c.reason is None]

    @property
    def skipped(self) -> list[PlannedCell]:
        return [c for c in self.cells if c.reason is not None]

    def partial_splits(self) -> list[str]:
        """Each runnable cell's note that it reads only an offline slice of its split, once per dataset."""
        return list(dict.fromkeys(c.plan.partial_split for c in self.runnable if c.plan and c.plan.partial_split))

    def digest(self) -> str:
        """Identifies the invocation: same category, options and cells -> same digest."""
        return digest({"category": self.category, "options": self.options, "cells": [c.name for c in self.cells]})


def needs(model: ModelConfig, preset: PresetConfig) -> dict[str, Any]:
    """What a model asks of the hardware: the GPUs it declares (min_gpus), how its engine spans them
    (tensor x pipeline parallel, vLLM's backend: ``registry.schema.parallelism``) and the GPUs that
    asks for; memory is weights over the preset's fraction (None for an API-only model of unpublished size)."""
    size = model.size_gb
    par = parallelism(model, preset)
    return {
        "gpus": model.min_gpus, "tensor_parallel": par.tensor, "pipeline_parallel": par.pipeline,
        "backend": par.backend or "auto", "gpus_requested": par.gpus,
        "weights_gb": None if size is None else round(size, 2),
        "memory_per_gpu_gb": None if size is None else round(size / par.gpus / preset.gpu_memory_utilization, 1),
    }


def _pick(names: list[str] | None, allowed: list[str], what: str, category: str) -> list[str]:
    if not names:
        return allowed
    for n in names:
        if n not in allowed:
            raise RegistryError(f"{what} '{n}' is not in category {category}; {suggest(n, allowed)}")
    return [n for n in allowed if n in names]


def _locate_model(reg: Registry, model: ModelConfig, engine: str,
                  gpus: int) -> tuple[str | None, ResolvedModel | None]:
    """Why none of this model's cells can run here (None if they may), and where its weights
    are (located once per model, then handed to each of its cells' plans)."""
    from specbench.pipeline.plan import stale_checkpoint

    if engine_info(engine).remote:
        return None, None
    reason = runnable_reason(model, gpus) or stale_checkpoint(reg, model)
    if reason is None and model.offline is None and model.recipe is None and not hub_reachable():
        reason = f"{model.key}: no hub access to download {model.hf_id} (and no offline source)"
    if reason is not None:
        return reason, None
    try:
        return None, locate(model)
    except ModelUnavailable as exc:
        return str(exc), None


def plan_category(reg: Registry, name: str, *, preset: str | None = None, engine: str = "vllm",
                  samples: int | None = None, seed: int = 0, models: list[str] | None = None,
                  datasets: list[str] | None = None, baselines: bool = True, secondary: bool = False,
                  slice_policy: str = "warn", judge: str | None = None,
                  judge_engine: str | None = None) -> CategoryPlan:
    """Expand a category into cells (its models and generalist baselines x its datasets); ``judge``
    grades its judged datasets instead of their own judges."""
    try:
        engine_info(engine)
    except ValueError as exc:
        raise RegistryError(str(exc)) from None
    cat = reg.category(name)
    members = cat.models + [b for b in cat.baselines if b not in cat.models] if baselines else list(cat.models)
    model_keys = _pick(models, members, "model", cat.key)
    dset_pool = cat.datasets.primary + (cat.datasets.secondary if secondary or datasets else [])
    dataset_keys = _pick(datasets, dset_pool, "dataset", cat.key)
    gpus = gpu_count()
    cells: list[PlannedCell] = []
    for mk in model_keys:
        model = reg.model(mk)
        model_engine = engine_for(model, engine) or model.engines[0]  # e.g. BioGPT: transformers
        try:
            preset_cfg, reason = resolve_preset(reg, model, preset)[1], None
        except RegistryError as exc:  # --preset tuned: only models without one are skipped
            if preset != TUNED:
                raise
            preset_cfg, reason = reg.preset(model.preset), str(exc)
        why_model, weights = _locate_model(reg, model, model_engine, gpus)
        reason = reason or why_model
        for dk in dataset_keys:
            ds = reg.dataset(dk)
            why, plan = reason, None
            if why is None and ds.status != Status.ready:
                why = f"dataset {dk} is planned: {ds.planned_reason}"
            if why is None:
                try:
                    plan = plan_cell(reg, mk, dk, preset=preset, engine=model_engine, samples=samples, seed=seed,
                                     category=cat.key, weights=weights, slice_policy=slice_policy,
                                     judge=judge, judge_engine=judge_engine)
                except CellUnavailable as exc:
                    why = str(exc)
            cells.append(PlannedCell(mk, dk, reg.role(mk, cat.key), needs(model, preset_cfg), why, plan,
                                     engine=model_engine))
    options = {"preset": preset, "engine": engine, "samples": samples, "seed": seed, "baselines": baselines,
               "secondary": secondary, "models": models, "datasets": datasets}
    if slice_policy != "warn":  # the default keeps the digest of invocations made before the option
        options["slice_policy"] = slice_policy
    return CategoryPlan(cat.key, tuple(cells), options)
