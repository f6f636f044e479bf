"""The registry's cross-reference checks, run by ``load_registry`` once every file has loaded:
every name a file mentions exists, derived models and encoders are consistent with what they name,
and the framework matrix points at real models and categories."""

from __future__ import annotations

from pathlib import Path

from specbench.builders import BUILDERS  # names only: its torch imports are lazy
from specbench.registry.loader import Registry, RegistryError, suggest
from specbench.registry.schema import Architecture, JudgeConfig, Modality, ModelConfig, Status, TaskType


def check_refs(reg: Registry) -> None:
    """Dangling references: every name a file mentions must exist."""
    from specbench.registry.checks_derived import check_finetune, check_recipe_of  # it imports this module

    d = reg.root
    for m in reg.models.values():
        f = d / "models" / f"{m.key}.yaml"
        if m.category not in reg.categories and not any(
                m.category in c.aliases for c in reg.categories.values()):
            raise RegistryError(f"unknown category '{m.category}'; {suggest(m.category, reg.categories)}",
                                f, "category")
        if m.preset not in reg.presets:
            raise RegistryError(f"unknown preset '{m.preset}'; {suggest(m.preset, reg.presets)}", f, "preset")
        if m.parent is not None and m.parent not in reg.models:
            raise RegistryError(f"unknown parent model '{m.parent}'; {suggest(m.parent, reg.models)}", f, "parent")
        if m.recipe is not None:
            check_recipe_of(reg, m, f)
        if m.offline is not None and m.offline.build is not None and m.offline.build not in BUILDERS:
            raise RegistryError(f"unknown builder '{m.offline.build}'; {suggest(m.offline.build, BUILDERS)}",
                                f, "offline.build")
        if m.vision is not None and m.modality != Modality.vision:  # how a VLM's engine takes images
            raise RegistryError(f"a vision section needs modality: vision, not {m.modality.value}", f, "vision")
        if m.encoder is not None:
            check_encoder(reg, m, f)
    for q in reg.quantizations.values():
        f = d / "quantization" / f"{q.key}.yaml"
        cal = q.calibration
        if cal.dataset not in reg.datasets:
            raise RegistryError(f"unknown dataset '{cal.dataset}'; {suggest(cal.dataset, reg.datasets)}",
                                f, "calibration.dataset")
        if cal.split == reg.datasets[cal.dataset].split:
            raise RegistryError(f"'{cal.split}' is {cal.dataset}'s evaluation split; calibrate on another "
                                "(e.g. train) so that no evaluated item shapes the weights", f, "calibration.split")
    for ft in reg.finetunes.values():
        check_finetune(reg, ft, d / "finetune" / f"{ft.key}.yaml")
    for c in reg.categories.values():
        f = d / "categories" / f"{c.key}.yaml"
        for field_name, names, table in (
            ("models", c.models, reg.models),
            ("baselines", c.baselines, reg.models),
            ("datasets.primary", c.datasets.primary, reg.datasets),
            ("datasets.secondary", c.datasets.secondary, reg.datasets),
        ):
            for i, name in enumerate(names):
                if name not in table:
                    what = "model" if table is reg.models else "dataset"
                    raise RegistryError(f"unknown {what} '{name}'; {suggest(name, table)}",
                                        f, f"{field_name}[{i}]")
    for ds in reg.datasets.values():
        if ds.judge is not None:
            check_judge(reg, ds.key, ds.judge, d / "datasets" / f"{ds.key}.yaml")
        if ds.status == Status.ready and ds.prompt is None:  # pragma: no cover - schema checks it
            raise RegistryError("ready dataset without prompt", d / "datasets" / f"{ds.key}.yaml")


def check_judge(reg: Registry, dataset: str, judge: JudgeConfig, f: Path) -> None:
    """A judge section names a prompt set of conf/judges/ and registry models that can generate."""
    if judge.prompts not in reg.judges:
        raise RegistryError(f"unknown judge prompt set '{judge.prompts}'; {suggest(judge.prompts, reg.judges)}",
                            f, "judge.prompts")
    for field_name, name in (("judge.model", judge.model), ("judge.embedded", judge.embedded)):
        if name is None:
            continue
        if name not in reg.models:
            raise RegistryError(f"unknown model '{name}'; {suggest(name, reg.models)}", f, field_name)
        if not reg.models[name].can_generate:
            raise RegistryError(f"'{name}' cannot generate, so it cannot judge", f, field_name)


def check_encoder(reg: Registry, m: ModelConfig, f: Path) -> None:
    """An encoder section belongs to an encoder; its head answers classification datasets in their labels."""
    if m.architecture != Architecture.encoder_only:
        raise RegistryError(f"an encoder section needs architecture: encoder_only, not {m.architecture.value}",
                            f, "encoder")
    head = m.encoder.head
    for i, name in enumerate(head.datasets if head else ()):
        ds = reg.datasets.get(name)
        if ds is None or ds.structure is None or ds.task_type != TaskType.classification:
            raise RegistryError(f"'{name}' is not a classification dataset of the registry; a head answers those",
                                f, f"encoder.head.datasets[{i}]")
        for target in [*head.labels.values(), *([head.default] if head.default else [])]:
            if target not in ds.structure.labels:
                raise RegistryError(f"'{target}' is not a label of {name}; valid: {', '.join(ds.structure.labels)}",
                                    f, "encoder.head.labels")


def check_framework(reg: Registry) -> None:
    if reg.framework is None:
        return
    f = reg.root / "framework.yaml"
    for key, task in reg.framework.tasks.items():
        if task.category not in reg.categories:
            raise RegistryError(f"unknown category '{task.category}'; {suggest(task.category, reg.categories)}",
                                f, f"tasks.{key}.category")
        for role, model in task.models.items():
            if model not in reg.models:
                raise RegistryError(f"unknown model '{model}'; {suggest(model, reg.models)}", f,
                                    f"tasks.{key}.models.{role}")
        for i, name in enumerate(task.datasets):
            if name not in reg.datasets:
                raise RegistryError(f"unknown dataset '{name}'; {suggest(name, reg.datasets)}", f,
                                    f"tasks.{key}.datasets[{i}]")


