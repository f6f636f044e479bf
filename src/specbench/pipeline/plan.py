"""Cell plans: what one model x dataset cell will do, decided before anything runs.

A plan is frozen data computed without side effects: nothing is downloaded, converted or
started.  It fixes the engine and its arguments, the sampling parameters, how the dataset is
answered (generation or choice log-likelihoods, from its scorers' declared needs, checked
against what the engine can do) and where the weights are (``weights.locate``); its config
hash, by the one identity rule, is what resume compares.  The weights themselves are
materialized when the cell is prepared (``pipeline.cell``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from specbench.data.errors import DataUnavailable
from specbench.data.loading import SLICES_DIR, DataSource, plan_source, split_slice_name
from specbench.engines import GenParams, engine_info, planned_params
from specbench.identity import digest
from specbench.pipeline.judge import JudgePlan, plan_judge
from specbench.pipeline.task import Task, task_for
from specbench.registry import Registry, RegistryError
from specbench.registry.schema import DatasetConfig, ModelConfig, Parallelism, PresetConfig, Status, TaskType
from specbench.registry.schema import parallelism as _parallelism
from specbench.registry.schema import to_plain as _plain
from specbench.weights import (
    SIMULATED_SOURCE,
    ModelUnavailable,
    ResolvedModel,
    checkpoint_outdated,
    derive_command,
    derived_manifest,
    locate,
)

TUNED = "tuned"  # --preset tuned: the model's own tuned preset, written by `specbench sweep`
SLICE_POLICIES = ("warn", "fail")  # a run that would read only part of its split: say so loudly, or refuse


class CellUnavailable(RuntimeError):
    """The cell cannot run here (planned dataset, unrunnable model); one line of reason."""


@dataclass(frozen=True)
class CellPlan:
    """Everything one cell will do."""

    model: ModelConfig
    dataset: DatasetConfig
    preset_name: str
    preset: PresetConfig
    engine: str
    weights: ResolvedModel  # located, not yet materialized
    engine_params: dict[str, Any]
    task: Task
    samples: int | None
    seed: int
    category: str | None
    role: str
    data: DataSource = DataSource("hub", None)  # where the items come from: part of the identity
    judge: JudgePlan | None = None  # a judged dataset's grader (``pipeline.judge``): part of the identity

    @property
    def gen(self) -> GenParams:
        return self.task.gen

    @property
    def loglik(self) -> bool:
        return self.task.loglik

    @property
    def chat(self) -> bool:
        return self.task.chat

    @property
    def resolved(self) -> ResolvedModel:  # the name callers used before plans became pure
        return self.weights

    @property
    def name(self) -> str:
        return f"{self.model.key}@{self.dataset.key}"

    @property
    def partial_split(self) -> str | None:
        """Why this cell's scores are not the whole split's (it reads an offline slice), or None."""
        return self.data.partial(self.dataset, self.samples)

    @property
    def remote(self) -> bool:
        """Served by an endpoint: no local weights to materialize."""
        return engine_info(self.engine).remote

    @property
    def simulated_quantization(self) -> bool:
        """AWQ weights unpacked to floats (no AWQ kernel here): accuracy is AWQ's, speed and memory are not."""
        return self.weights.source == SIMULATED_SOURCE

    @property
    def quantization_tags(self) -> dict[str, str]:
        """Run tags that say how the weights were quantized and whom a derived model compares with."""
        tags = {"quantization": "simulated" if self.simulated_quantization else self.model.quantization.value}
        if self.simulated_quantization:
            tags["perf_representative"] = "false"
        if self.model.parent:
            tags["parent"] = self.model.parent
        if self.model.random_weights:  # a test model: its scores are no model's
            tags["random_weights"] = self.model.random_weights
        return tags

    @property
    def parallelism(self) -> Parallelism:
        """How the engine spans GPUs and nodes (TP, PP, backend): what the dry run shows and an executor requests."""
        return _parallelism(self.model, self.preset)

    def config(self) -> dict[str, Any]:
        """The resolved configuration (weights' locations excluded: they differ between machines; an
        endpoint's transport settings too: they change no output)."""
        from specbench.engines import identity_params

        engine = identity_params(self.engine_params)
        return {
            "model": _plain(self.model), "model_revision": self.weights.revision,
            "dataset": _plain(self.dataset), "preset": {"name": self.preset_name, **_plain(self.preset)},
            "engine": {"kind": self.engine, **engine}, "sampling": self.gen.as_dict(),
            "samples": self.samples, "seed": self.seed, "chat": self.chat, "data_source": self.data.kind,
            **({"judge": self.judge.identity()} if self.judge else {}),
        }

    def config_hash(self) -> str:
        """The cell's identity (the one rule: prose fields such as notes do not count)."""
        return digest(self.config())


def engine_for(model: ModelConfig, requested: str) -> str | None:
    """The requested engine when the model allows it (``engines`` empty or listing it), else
    None.  A remote endpoint serves whatever it was started with, so it is always allowed."""
    allowed = list(model.engines)
    if not allowed or requested in allowed or engine_info(requested).remote:
        return requested
    return None


def plan_cell(reg: Registry, model_key: str | ModelConfig, dataset_key: str, *, preset: str | None = None,
              engine: str = "vllm", samples: int | None = None, seed: int = 0,
              category: str | None = None, weights: ResolvedModel | None = None,
              slice_policy: str = "warn", judge: str | None = None, judge_engine: str | None = None) -> CellPlan:
    """Resolve names, presets, engine, weights' location and the data's source; raise
    CellUnavailable with the reason.  ``slice_policy``: a cell that would read only an offline
    slice of its split (the hub unusable) is planned with a loud note (``warn``) or refused (``fail``).
    ``model_key`` may be a ModelConfig with no registry entry (an ad-hoc model, ``registry.adhoc``).
    ``judge`` / ``judge_engine``: who grades a judged dataset instead of its own judge (``pipeline.judge``)."""
    model = model_key if isinstance(model_key, ModelConfig) else reg.model(model_key)
    dataset = reg.dataset(dataset_key)
    try:
        info = engine_info(engine)
    except ValueError as exc:
        raise RegistryError(str(exc)) from None
    preset_name, preset_cfg = resolve_preset(reg, model, preset)
    if too_many := _parallelism(model, preset_cfg).fits(model):  # the preset's override: a bad input, one line
        raise RegistryError(f"preset {preset_name} on {model.key}: {too_many}")
    if dataset.status != Status.ready:
        raise CellUnavailable(f"dataset {dataset.key} is planned: {dataset.planned_reason}")
    if engine_for(model, engine) is None:
        raise CellUnavailable(f"{model.key}: the {engine} engine cannot serve it (its registry entry allows: "
                              f"{', '.join(model.engines)}); use --engine {model.engines[0]}")
    if dataset.task_type == TaskType.multimodal:
        if model.vision is None:
            raise CellUnavailable(f"{dataset.key} asks about images; {model.key} is not a vision-language model "
                                  "(its registry entry has no `vision` section)")
        if not info.can("images"):
            raise CellUnavailable(f"{dataset.key} has images, which the {engine} engine cannot take")
    if not model.can_generate and model.encoder is None:
        raise CellUnavailable(f"{model.key} is encoder-only and declares no `encoder` section (how it answers "
                              "classification and NER datasets)")
    try:
        task = task_for(dataset, instruct=model.instruct, seed=seed,
                        images_per_prompt=model.vision.images_per_prompt if model.vision else 0,
                        encoder=None if model.can_generate else model.encoder)
    except ValueError as exc:
        raise CellUnavailable(f"{model.key} on {dataset.key}: {exc}") from None
    needed = "embeddings" if task.probe else "loglikelihood" if task.loglik else "generate"
    if not info.can(needed):
        raise CellUnavailable(f"{dataset.key} is answered by {needed}, which the {engine} engine cannot do")
    if weights is None and info.remote:
        weights = ResolvedModel(path=model.hf_id or model.key, revision=model.revision, source="remote")
    if weights is None:
        try:
            weights = locate(model)
        except ModelUnavailable as exc:
            raise CellUnavailable(str(exc)) from None
    stale = stale_checkpoint(reg, model) if not info.remote else None
    if stale:
        raise CellUnavailable(stale)
    if slice_policy not in SLICE_POLICIES:
        raise RegistryError(f"slice policy '{slice_policy}': valid: {', '.join(SLICE_POLICIES)}")
    try:
        source = plan_source(dataset)
    except DataUnavailable as exc:
        raise CellUnavailable(str(exc)) from None
    if task.probe and not task.head and source.kind == "slice":  # the probe's training split, offline too
        train = split_slice_name(dataset, dataset.structure.train_split)
        if not train or not (SLICES_DIR / train).is_file():
            raise CellUnavailable(f"{model.key} on {dataset.key}: a probe is fitted on its "
                                  f"'{dataset.structure.train_split}' split, which ships no offline slice and the "
                                  f"hub cannot be used ({source.why})")
    partial = source.partial(dataset, samples)
    if partial and slice_policy == "fail":
        raise CellUnavailable(f"{partial}; refused (--slice-policy fail): give hub access, or --samples <= "
                              f"{source.items} and --slice-policy warn")
    judge_plan = plan_judge(reg, dataset, judge, judge_engine, seed) if dataset.judge is not None else None
    if category is None:
        cats = reg.categories_of(model.key)
        category = cats[0] if cats else model.category
    return CellPlan(
        model=model, dataset=dataset, preset_name=preset_name, preset=preset_cfg, engine=engine, weights=weights,
        engine_params=planned_params(engine, model, preset_cfg, weights, seed), task=task, samples=samples,
        seed=seed, category=category, data=source, judge=judge_plan,  # ad hoc's category is its own role
        role=reg.role(model.key, category) if category in reg.categories else category or "specialist",
    )


def stale_checkpoint(reg: Registry, model: ModelConfig) -> str | None:
    """Why a derived model's checkpoint no longer matches its recipe in conf/ (None if it does)."""
    manifest = derived_manifest(model) if model.recipe else None
    why = manifest and checkpoint_outdated(manifest, reg.recipe(model.recipe).digest())
    if not why:
        return None
    return f"{model.key}: its checkpoint was made with {why} ({model.recipe}); run `{derive_command(model)}` again"


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
